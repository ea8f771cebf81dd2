//! The private redis-server of tests (cargo feature `test-server`), from the workspace's one
//! harness, `crates/dev-harness`.
//!
//! Kept under this path for the suites that import it from here (this crate's tests and
//! benches, the chaos suite); new code imports `dev_harness` directly. Nothing is written here:
//! the server, its options and its errors are dev-harness's.

pub use dev_harness::{Location, RedisServer, RedisServerError, ServerOptions, START_TIMEOUT};
