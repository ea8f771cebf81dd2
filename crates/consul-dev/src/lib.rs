//! # consul-dev: a Consul-compatible dev agent
//!
//! Speaks the parts of Consul's HTTP API that cronnode uses, as Consul does, for tests and for
//! `cronnode dev`.
//!
//! SKELETON: the consul-dev issue fills this crate.
#![deny(missing_docs)]
