//! # consul-lock: cronnode's Consul client
//!
//! Owns everything cronnode says to Consul: sessions, the leader lock and its fencing token,
//! the node's service registration and TTL check, and the job store under `<prefix>/jobs/`.
//!
//! SKELETON: the consul-lock issue fills this crate.
#![deny(missing_docs)]
