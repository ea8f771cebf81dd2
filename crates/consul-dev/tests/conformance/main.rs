//! The conformance suite: Consul's HTTP API as cronnode uses it, checked over real HTTP.
//!
//! Runs against an in-process consul-dev agent, or against any Consul agent named by
//! `CONSUL_CONFORMANCE_ADDR` (then `/_dev/` fault tests and dev-agent-only tests skip, saying
//! why). Each test's doc comment cites the behaviour it pins (consul-api.md section, or the
//! Consul source file where the spec is silent).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod acl;
mod agent;
mod bad_input;
mod blocking;
mod faults;
mod kv;
mod persist;
mod sessions;
mod txn;
mod versions;
