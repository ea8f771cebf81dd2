//! The one background task behind every clock: session TTLs, check TTLs,
//! DeregisterCriticalServiceAfter, and the forgetting of spent lock-delays.
//!
//! It ticks at a fixed short period rather than sleeping to the next deadline: the state is
//! small, a scan is cheap, and nothing has to tell the task that a deadline moved. It must not
//! decide anything itself; the rules live in `crate::state`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::http::Shared;

/// How often deadlines are checked: the expiry of a TTL is late by at most this.
pub const TICK: Duration = Duration::from_millis(100);

/// Runs until `shutdown` flips.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        shared.write(|s, now| {
            s.expire_sessions(now);
            s.expire_checks(now);
            s.gc_lock_delays(now);
        });
    }
}
