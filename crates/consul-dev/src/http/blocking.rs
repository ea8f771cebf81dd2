//! Blocking queries: `index`, `wait` (default, cap, jitter), `stale`/`consistent`, and the
//! wait itself.
//!
//! A waiter holds one `watch::Receiver` of the global index and nothing else: no task, no
//! timer wheel entry beyond its own timeout, so thousands can wait at once. Every write wakes
//! every waiter; each re-runs its query and goes back to sleep unless its index moved past the
//! one it was given (Consul's watch sets are finer, which only saves re-runs).

use std::time::Duration;

use rand::Rng as _;
use tokio::time::Instant;

use super::reply::{Ctx, Reply};
use super::Shared;
use crate::duration::parse_go;
use crate::state::Store;

/// `wait` when the client gives none (Consul's default MaxQueryTime).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// The longest `wait` honoured.
pub const MAX_WAIT: Duration = Duration::from_secs(600);
/// Jitter is up to wait / this (Consul's JitterFraction).
pub const JITTER_FRACTION: u32 = 16;

/// Parsed query options.
#[derive(Debug, Clone, Copy)]
pub struct QueryOpts {
    /// `index`: 0 means do not block.
    pub index: u64,
    /// `wait`, capped.
    pub wait: Duration,
    /// The effective consistency mode, for `X-Consul-Effective-Consistency`.
    pub consistency: &'static str,
}

/// Parses `index`, `wait`, `stale`, `consistent` as Consul's `parseWait` and
/// `parseConsistency` do, answering their 400s.
pub fn parse_opts(ctx: &Ctx) -> Result<QueryOpts, Reply> {
    let stale = ctx.has("stale");
    let consistent = ctx.has("consistent");
    if stale && consistent {
        return Err(Reply::bad(
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        ));
    }
    let mut wait = DEFAULT_WAIT;
    if let Some(w) = ctx.get("wait").filter(|w| !w.is_empty()) {
        wait = parse_go(w).map_err(|_| Reply::bad("Invalid wait time"))?;
    }
    let mut index = 0;
    if let Some(i) = ctx.get("index").filter(|i| !i.is_empty()) {
        index = i.parse::<u64>().map_err(|_| Reply::bad("Invalid index"))?;
    }
    let wait = if wait.is_zero() {
        DEFAULT_WAIT
    } else {
        wait.min(MAX_WAIT)
    };
    let consistency = if stale {
        "stale"
    } else if consistent {
        "consistent"
    } else {
        "leader"
    };
    Ok(QueryOpts {
        index,
        wait,
        consistency,
    })
}

/// Answers with `render` once `index` (the result's index, cheap to compute) passes
/// `opts.index` or the wait runs out, with the index headers set. Rendering happens only for
/// the answer that is sent, under the same lock as the index it reports.
pub async fn run<I, R>(shared: &Shared, opts: QueryOpts, index: I, render: R) -> Reply
where
    I: Fn(&Store) -> u64,
    R: Fn(&Store) -> Reply,
{
    let answer = |s: &Store| (index(s), render(s));
    let mut rx = shared.index_tx.subscribe();
    if opts.index == 0 {
        let (idx, reply) = shared.read(answer);
        return reply.with_index(idx, opts.consistency);
    }
    let jitter_max = opts.wait / JITTER_FRACTION;
    let jitter = if jitter_max.is_zero() {
        Duration::ZERO
    } else {
        rand::thread_rng().gen_range(Duration::ZERO..jitter_max)
    };
    let deadline = Instant::now() + opts.wait + jitter;
    loop {
        rx.borrow_and_update();
        let ready = shared.read(|s| {
            let idx = index(s);
            (idx > opts.index).then(|| (idx, render(s)))
        });
        if let Some((idx, reply)) = ready {
            return reply.with_index(idx, opts.consistency);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out, or the agent is going away: answer with what there is.
            _ => {
                let (idx, reply) = shared.read(answer);
                return reply.with_index(idx, opts.consistency);
            }
        }
    }
}
