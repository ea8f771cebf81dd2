//! The planner used ahead of time, as cronnode's leader does when it stages fires a few seconds
//! before their slot: `due` with an instant in the future gives the slots up to it once, and a
//! catch-up whose cursor is in the future (a slot staged and not yet released) plans nothing
//! and never gives that slot out again.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cron_core::{FireKind, Job, JobSpec, Planner};

fn job(id: &str, frequency: &str, created: DateTime<Utc>) -> Arc<Job> {
    let spec = serde_json::json!({
        "id": id,
        "function": {"app": "a", "path": "/p"},
        "frequency": frequency,
        "created_at": created.to_rfc3339(),
        "catchup": {"policy": "all", "window": "1h"},
    });
    Arc::new(
        JobSpec::from_json(spec.to_string().as_bytes())
            .unwrap()
            .validate()
            .unwrap(),
    )
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap() + Duration::seconds(secs)
}

#[test]
fn due_with_a_future_instant_gives_each_slot_once() {
    let mut p = Planner::new();
    p.upsert(job("s", "@every 1s", t(-60)), t(0));
    // At 0.5 s with a 2 s lookahead: slots 1 and 2.
    let now = t(0) + Duration::milliseconds(500);
    let fires = p.due(now + Duration::seconds(2));
    let slots: Vec<_> = fires.iter().map(|f| f.slot).collect();
    assert_eq!(slots, [t(1), t(2)]);
    assert!(fires.iter().all(|f| f.kind == FireKind::Scheduled));
    assert_eq!(p.next_wakeup(), Some(t(3)));
    // Asking again for the same horizon, or an earlier one, gives nothing.
    assert!(p.due(now + Duration::seconds(2)).is_empty());
    assert!(p.due(now).is_empty());
    assert_eq!(p.due(t(3)).len(), 1);
}

#[test]
fn a_catch_up_with_a_staged_cursor_in_the_future_plans_nothing_and_skips_that_slot() {
    let mut p = Planner::new();
    let now = t(0);
    p.upsert(job("s", "@every 1s", t(-60)), now);
    // A predecessor staged slots up to 2 s ahead; the cursor says 2.
    let plan = p.catch_up("s", Some(t(2)), now);
    assert!(plan.fires.is_empty(), "{plan:?}");
    assert_eq!(plan.skipped, 0);
    assert_eq!(p.next_slot("s"), Some(t(3)));
    let slots: Vec<_> = p
        .due(now + Duration::seconds(5))
        .iter()
        .map(|f| f.slot)
        .collect();
    assert_eq!(slots, [t(3), t(4), t(5)]);

    // A job behind (cursor in the past) catches up to now and goes on from the next slot,
    // which the lookahead then hands out.
    p.upsert(job("b", "@every 1s", t(-60)), now);
    let plan = p.catch_up("b", Some(t(-3)), now);
    let missed: Vec<_> = plan.fires.iter().map(|f| f.slot).collect();
    assert_eq!(missed, [t(-2), t(-1), t(0)]);
    assert_eq!(p.next_slot("b"), Some(t(1)));
}
