//! IronFunctions' API, read so that a fire is the call IronFunctions itself would make: the
//! task's image and variables come from the job's app and route (redis-queue's `model.rs` has
//! the rules).
//!
//! - `client.rs`: [`FunctionsClient`], the two `GET`s (an app, a route), with a deadline and
//!   a size cap on every answer;
//! - `resolver.rs`: [`Resolver`], the background cache that the leader's tasks read; a fire
//!   never waits on IronFunctions.
//!
//! The API's create and replace ask IronFunctions directly (`api/jobs.rs`): a job for an app
//! or a route it does not have is refused there.
//!
//! **Architecture Invariant:** no HTTP call to IronFunctions on the path of a fire.

mod client;
mod resolver;

pub use client::{FunctionsClient, FunctionsError};
pub use resolver::Resolver;
