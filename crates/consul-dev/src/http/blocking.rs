//! Blocking queries: `index`, `wait` (default, cap, jitter), `stale`/`consistent`, and the
//! wait itself.
//!
//! A waiter registers what it waits on ([`Interest`]: a key, a prefix, a table) with its index
//! and a `Notify`, and nothing else: no task, no timer wheel entry beyond its own timeout, so
//! thousands can wait at once. After each write, [`Waiters::wake`] wakes only the waiters whose
//! result index that write may have moved (a changed key under the prefix, say), as Consul's
//! watch sets do; a woken waiter re-runs its query and goes back to sleep unless its index
//! moved past the one it was given. A write to one key thus costs the waiters of that key, not
//! a re-run of every blocking query.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::Notify;
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

/// What a blocking query's index depends on.
#[derive(Debug, Clone)]
pub enum Interest {
    /// One KV key (its ModifyIndex, or the table index while it is missing).
    Key(String),
    /// A KV prefix (`recurse` or `keys`): the highest index under it.
    Prefix(String),
    /// The sessions table.
    Sessions,
    /// The catalog and health tables.
    Catalog,
}

/// What one write changed, as far as waiters care.
pub struct Changes<'a> {
    /// KV keys written (set, deleted, released...).
    pub keys: &'a [String],
    /// Whether the KV table moved at all (a key written, or tombstones reaped).
    pub kv_moved: bool,
}

struct Waiter {
    interest: Interest,
    index: u64,
    notify: Arc<Notify>,
}

impl Waiter {
    /// Whether the write described by `c` may have moved this waiter's index past the one it
    /// waits beyond. Errs on the side of waking: a woken waiter re-checks.
    fn concerned(&self, s: &Store, c: &Changes<'_>) -> bool {
        match &self.interest {
            Interest::Sessions => s.sessions_index > self.index,
            Interest::Catalog => s.catalog_index > self.index,
            Interest::Key(k) => {
                c.kv_moved && (c.keys.iter().any(|x| x == k) || s.kv.get(k).is_none())
            }
            Interest::Prefix(p) => {
                c.kv_moved
                    && (p.is_empty()
                        || c.keys.iter().any(|x| x.starts_with(p.as_str()))
                        // Reaping can raise the floor of every prefix, and an empty prefix
                        // answers with the table index, which every KV write moves.
                        || s.kv.reaped_floor > self.index
                        || !s.kv.has_records(p))
            }
        }
    }
}

/// Every blocking query waiting right now.
#[derive(Default)]
pub struct Waiters {
    next_id: u64,
    waiting: HashMap<u64, Waiter>,
}

impl Waiters {
    /// Wakes the waiters that the write described by `c` concerns (`s` is the store after it).
    pub fn wake(&self, s: &Store, c: &Changes<'_>) {
        for w in self.waiting.values() {
            if w.concerned(s, c) {
                w.notify.notify_one();
            }
        }
    }
}

/// A registered waiter; leaves the registry when dropped (answered, timed out, or cancelled
/// because the client went away).
struct Registration<'a> {
    shared: &'a Shared,
    id: u64,
    notify: Arc<Notify>,
}

impl<'a> Registration<'a> {
    fn new(shared: &'a Shared, interest: Interest, index: u64) -> Registration<'a> {
        let notify = Arc::new(Notify::new());
        let mut w = shared.waiters();
        w.next_id += 1;
        let id = w.next_id;
        w.waiting.insert(
            id,
            Waiter {
                interest,
                index,
                notify: notify.clone(),
            },
        );
        Registration { shared, id, notify }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.waiters().waiting.remove(&self.id);
    }
}

/// Answers with `render` once `index` (the result's index, cheap to compute) passes
/// `opts.index` or the wait runs out, with the index headers set. Rendering happens only for
/// the answer that is sent, under the same lock as the index it reports.
pub async fn run<I, R>(
    shared: &Shared,
    opts: QueryOpts,
    interest: Interest,
    index: I,
    render: R,
) -> Reply
where
    I: Fn(&Store) -> u64,
    R: Fn(&Store) -> Reply,
{
    let answer = |s: &Store| (index(s), render(s));
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
    // A query served by the Raft leader stalls with it when it freezes (see `Faults`).
    let started = std::time::Instant::now();
    let behind_leader = opts.consistency != "stale";
    // Registered before the first check: a write between the check and the wait leaves a
    // permit in the `Notify`, so no wake-up is lost.
    let reg = Registration::new(shared, interest, opts.index);
    loop {
        if behind_leader && shared.wait_out_frozen_leader(started).await {
            continue;
        }
        let ready = shared.read(|s| {
            let idx = index(s);
            (idx > opts.index).then(|| (idx, render(s)))
        });
        if let Some((idx, reply)) = ready {
            return reply.with_index(idx, opts.consistency);
        }
        match tokio::time::timeout_at(deadline, reg.notify.notified()).await {
            Ok(()) => continue,
            // Timed out: answer with what there is (unless the leader froze meanwhile).
            Err(_) => {
                if behind_leader && shared.wait_out_frozen_leader(started).await {
                    continue;
                }
                let (idx, reply) = shared.read(answer);
                return reply.with_index(idx, opts.consistency);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(interest: Interest, index: u64) -> Waiter {
        Waiter {
            interest,
            index,
            notify: Arc::new(Notify::new()),
        }
    }

    /// Whether the write of `key` (at the next index) concerns `interest` waiting at the
    /// index it would have read just before.
    fn wakes(s: &mut Store, interest: Interest, key: &str) -> bool {
        let index = match &interest {
            Interest::Key(k) => s.kv.key_index(k),
            Interest::Prefix(p) => s.kv.prefix_index(p),
            Interest::Sessions => s.sessions_index,
            Interest::Catalog => s.catalog_index,
        };
        let w = waiter(interest, index);
        let idx = s.next_index();
        s.kv.set(key, b"v".to_vec(), 0, idx);
        s.index = idx;
        let keys = s.kv.take_changes();
        w.concerned(
            s,
            &Changes {
                keys: &keys,
                kv_moved: true,
            },
        )
    }

    #[test]
    fn only_writes_that_can_move_the_index_wake() {
        let mut s = Store::new("n", "dc1");
        s.kv.set("jobs/a", vec![], 0, 3);
        s.kv.set("other/x", vec![], 0, 4);
        s.index = 4;
        let _ = s.kv.take_changes();
        let prefix = |p: &str| Interest::Prefix(p.to_string());
        let key = |k: &str| Interest::Key(k.to_string());
        assert!(wakes(&mut s, prefix("jobs/"), "jobs/b"));
        assert!(!wakes(&mut s, prefix("jobs/"), "other/y"));
        // An empty prefix and the root answer with the table index, which every write moves.
        assert!(wakes(&mut s, prefix("none/"), "other/z"));
        assert!(wakes(&mut s, prefix(""), "other/z"));
        assert!(wakes(&mut s, key("jobs/a"), "jobs/a"));
        assert!(!wakes(&mut s, key("jobs/a"), "jobs/ab"));
        assert!(wakes(&mut s, key("missing"), "other/x"));
        assert!(!wakes(&mut s, Interest::Sessions, "jobs/a"));
        assert!(!wakes(&mut s, Interest::Catalog, "jobs/a"));
    }
}
