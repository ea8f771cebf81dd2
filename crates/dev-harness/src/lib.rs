//! # dev-harness: real processes on free loopback ports
//!
//! The one harness of the workspace's tests, of the pipeline benchmark and of `cronnode dev`:
//!
//! - [`free_port`]: a loopback port that was free a moment ago;
//! - [`wait_for`] / [`eventually`]: poll until a probe gives a value, or panic naming what
//!   never came (tests); [`poll`] / [`poll_async`] return [`TimedOut`] instead (tools);
//! - [`RedisServer`]: a private `redis-server` child with its own port and directory;
//! - [`FunctionsApi`]: a stand-in for IronFunctions' API server (its two read endpoints,
//!   byte for byte), on a free loopback port, for the tests and benchmarks that resolve routes.
//!
//! **Invariant:** everything here acts only on what it started itself (a child by its handle,
//! never a process found by name or port), so a test cannot disturb a service it did not start.
//!
//! Must not: know cronnode's crates, or judge what a test checks (it starts and waits, the
//! tests assert).
#![deny(missing_docs)]

mod functions;
mod redis;
mod wait;

pub use functions::{FunctionsApi, Route};
pub use redis::{Location, RedisServer, RedisServerError, ServerOptions, START_TIMEOUT};
pub use wait::{eventually, poll, poll_async, wait_for, TimedOut, POLL_INTERVAL};

use std::net::TcpListener;

/// A loopback port that was free a moment ago (bind port 0, read it, release it). Another
/// process may take it before the caller binds it: callers that start a server on it check
/// that what answers there is theirs ([`RedisServer`] does).
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
