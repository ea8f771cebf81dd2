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

use consul_lock::JobSet;
use cron_core::Job;
use redis_queue::{RouteState, Routes};
use serde_json::{json, Value};

/// Most jobs listed by [`missing_json`] (the count is whole).
pub const MISSING_LISTED: usize = 20;

/// What the node's route cache says of `job`'s route, for the API: `{"state": "found"}`,
/// `{"state": "missing", "message"}` (its fires are not enqueued until it is back), or
/// `{"state": "unresolved"}` (not read yet, or IronFunctions never answered).
pub fn route_json(routes: &Routes, job: &Job) -> Value {
    let f = &job.spec.function;
    match routes.get(&f.app, &f.path) {
        Some(RouteState::Found(_)) => json!({"state": "found"}),
        Some(RouteState::Missing(why)) => json!({"state": "missing", "message": why}),
        None => json!({"state": "unresolved"}),
    }
}

/// The jobs of `set` whose route IronFunctions lacks: `{"count", "jobs": [{"id", "app",
/// "path", "message"}]}` (at most [`MISSING_LISTED`] listed).
pub fn missing_json(set: &JobSet, routes: &Routes) -> Value {
    let mut count = 0;
    let mut jobs = Vec::new();
    for s in set.jobs() {
        let f = &s.job.spec.function;
        if let Some(RouteState::Missing(why)) = routes.get(&f.app, &f.path) {
            count += 1;
            if jobs.len() < MISSING_LISTED {
                jobs.push(json!({"id": s.id(), "app": f.app, "path": f.path, "message": why}));
            }
        }
    }
    json!({"count": count, "jobs": jobs})
}
