//! Planner tests: many jobs driven by a simulated clock.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::JobSpec;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn job(id: &str, freq: &str, policy: &str, window: &str) -> Arc<Job> {
    zoned(id, freq, "UTC", policy, window)
}

fn zoned(id: &str, freq: &str, tz: &str, policy: &str, window: &str) -> Arc<Job> {
    let json = format!(
        r#"{{"id":"{id}","function":{{"app":"a","path":"/f"}},"frequency":"{freq}",
            "timezone":"{tz}","catchup":{{"policy":"{policy}","window":"{window}"}}}}"#
    );
    Arc::new(
        JobSpec::from_json(json.as_bytes())
            .unwrap()
            .validate()
            .unwrap(),
    )
}

fn paused(j: &Arc<Job>, p: bool) -> Arc<Job> {
    let mut spec = j.spec.clone();
    spec.paused = p;
    Arc::new(spec.validate().unwrap())
}

#[test]
fn new_job_starts_strictly_after_now_and_due_is_in_slot_order() {
    let mut p = Planner::new();
    let now = t("2026-01-01T00:00:00Z");
    p.upsert(job("a", "* * * * *", "all", "1h"), now);
    p.upsert(job("b", "*/30 * * * * *", "all", "1h"), now);
    assert_eq!(p.next_wakeup(), Some(t("2026-01-01T00:00:30Z")));
    let fires = p.due(t("2026-01-01T00:01:00Z"));
    let got: Vec<_> = fires.iter().map(|f| (&*f.job_id, f.slot)).collect();
    assert_eq!(
        got,
        [
            ("b", t("2026-01-01T00:00:30Z")),
            ("a", t("2026-01-01T00:01:00Z")),
            ("b", t("2026-01-01T00:01:00Z")),
        ]
    );
    assert!(fires.iter().all(|f| f.kind == FireKind::Scheduled));
    assert_eq!(
        fires[0].fire_id,
        crate::fire::fire_id("b", t("2026-01-01T00:00:30Z"))
    );
    assert_eq!(p.next_wakeup(), Some(t("2026-01-01T00:01:30Z")));
    assert!(p.due(t("2026-01-01T00:01:29Z")).is_empty());
}

#[test]
fn thousands_of_jobs_each_get_every_slot_once_in_order() {
    let mut p = Planner::new();
    // Across Berlin's spring-forward (2026-03-29 01:00Z), so zoned jobs meet a gap.
    let start = t("2026-03-28T23:00:00Z");
    let exprs = [
        ("* * * * *", "UTC"),
        ("*/7 * * * * *", "UTC"),
        ("@every 45s", "UTC"),
        ("0 */2 * * *", "UTC"),
        ("13 * * * 6", "UTC"),
        ("*/10 * * * *", "Europe/Berlin"),
        ("30 2 * * *", "Europe/Berlin"),
        ("0,30 * * * *", "Asia/Kathmandu"),
    ];
    let n = 3000;
    let jobs: Vec<_> = (0..n)
        .map(|k| {
            let (e, tz) = exprs[k % exprs.len()];
            zoned(&format!("j{k}"), e, tz, "all", "1h")
        })
        .collect();
    for j in &jobs {
        p.upsert(j.clone(), start);
    }
    let mut seen: HashMap<Arc<str>, Vec<DateTime<Utc>>> = HashMap::new();
    let end = start + Duration::hours(3);
    let mut now = start;
    let mut last_slot = start;
    while let Some(w) = p.next_wakeup() {
        if w > end {
            break;
        }
        // Uneven steps, as a loaded leader would take.
        now = (now + Duration::seconds(17)).max(w);
        for f in p.due(now) {
            assert!(f.slot <= now && f.slot >= last_slot, "slot order");
            last_slot = f.slot;
            seen.entry(f.job_id.clone()).or_default().push(f.slot);
        }
    }
    for j in &jobs {
        let mut expect = Vec::new();
        let mut s = start;
        while let Some(x) = j.schedule.next_after(s) {
            if x > now {
                break;
            }
            expect.push(x);
            s = x;
        }
        let got = seen.remove(j.spec.id.as_str()).unwrap_or_default();
        assert!(!got.is_empty(), "job {} never fired", j.spec.id);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "job {}", j.spec.id);
        assert_eq!(got, expect, "job {}", j.spec.id);
    }
}

#[test]
fn churn_keeps_the_queue_small_and_the_places_right() {
    let mut p = Planner::new();
    let now = t("2026-01-01T00:00:00Z");
    for k in 0..2000 {
        p.upsert(job(&format!("j{k}"), "* * * * *", "all", "1h"), now);
    }
    // Every job changes schedule many times, and half are removed and re-added.
    for round in 0..20 {
        for k in 0..2000 {
            let expr = if round % 2 == 0 {
                "*/2 * * * *"
            } else {
                "* * * * *"
            };
            p.upsert(job(&format!("j{k}"), expr, "all", "1h"), now);
            if k % 2 == 0 && round % 5 == 0 {
                p.remove(&format!("j{k}"));
                p.upsert(job(&format!("j{k}"), expr, "all", "1h"), now);
            }
        }
        assert!(
            p.queued <= 2 * p.len() + STALE_SLACK,
            "queue grew to {}",
            p.queued
        );
    }
    assert_eq!(p.len(), 2000);
    // The last round (19) set every job to `* * * * *`: one fire each at 00:01.
    let fires = p.due(t("2026-01-01T00:01:00Z"));
    assert_eq!(fires.len(), 2000);
    let mut ids: Vec<_> = fires.iter().map(|f| f.job_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2000);
    assert_eq!(p.next_wakeup(), Some(t("2026-01-01T00:02:00Z")));
}

#[test]
fn upsert_keeps_place_remove_and_pause_stop_fires() {
    let mut p = Planner::new();
    let now = t("2026-01-01T00:00:00Z");
    let a = job("a", "* * * * *", "all", "1h");
    p.upsert(a.clone(), now);
    assert_eq!(p.due(t("2026-01-01T00:01:00Z")).len(), 1);
    // Same schedule, later `now`: the pending slot stays.
    p.upsert(a.clone(), t("2026-01-01T00:01:30Z"));
    assert_eq!(p.next_slot("a"), Some(t("2026-01-01T00:02:00Z")));
    // New schedule: first slot after both now and the last slot given out.
    p.upsert(
        job("a", "*/10 * * * * *", "all", "1h"),
        t("2026-01-01T00:01:00Z"),
    );
    assert_eq!(p.next_slot("a"), Some(t("2026-01-01T00:01:10Z")));
    p.upsert(paused(&a, true), t("2026-01-01T00:01:05Z"));
    assert_eq!(p.next_wakeup(), None);
    assert!(p.due(t("2026-01-01T01:00:00Z")).is_empty());
    p.upsert(paused(&a, false), t("2026-01-01T01:00:30Z"));
    assert_eq!(p.next_wakeup(), Some(t("2026-01-01T01:01:00Z")));
    p.remove("a");
    assert_eq!(p.next_wakeup(), None);
    assert!(p.is_empty());
    assert!(p.due(t("2026-01-02T00:00:00Z")).is_empty());
}

#[test]
fn catch_up_by_policy() {
    let now = t("2026-01-01T01:00:30Z");
    let cursor = Some(t("2026-01-01T00:50:00Z"));
    let plan = |policy: &str, window: &str| {
        let mut p = Planner::new();
        p.upsert(job("a", "* * * * *", policy, window), now);
        let plan = p.catch_up("a", cursor, now);
        assert_eq!(p.next_slot("a"), Some(t("2026-01-01T01:01:00Z")));
        let slots: Vec<_> = plan
            .fires
            .iter()
            .map(|f| f.slot.format("%H:%M").to_string())
            .collect();
        assert!(plan.fires.iter().all(|f| f.kind == FireKind::CatchUp));
        (slots, plan.skipped)
    };
    // Missed: 00:51 .. 01:00, ten slots.
    let (all, skipped) = plan("all", "1h");
    assert_eq!(all.len(), 10);
    assert_eq!(
        (all[0].as_str(), all[9].as_str(), skipped),
        ("00:51", "01:00", 0)
    );
    assert_eq!(plan("latest", "1h"), (vec!["01:00".to_string()], 9));
    assert_eq!(plan("skip", "1h"), (vec![], 10));
    // The window [now - 5m, now] holds 00:56 .. 01:00.
    let (w, skipped) = plan("all", "5m");
    assert_eq!((w.len(), w[0].as_str(), skipped), (5, "00:56", 0));
}

#[test]
fn catch_up_never_plans_slots_from_before_the_job_was_created() {
    // A job deleted and created again under the same id finds its old cursor in Redis: the
    // slots between that cursor and the new creation were never the new job's to fire.
    let now = t("2026-01-01T01:00:30Z");
    let mut spec = job("a", "* * * * *", "all", "1h").spec.clone();
    spec.created_at = Some(t("2026-01-01T00:57:10Z"));
    let mut p = Planner::new();
    p.upsert(Arc::new(spec.validate().unwrap()), now);
    let plan = p.catch_up("a", Some(t("2026-01-01T00:30:00Z")), now);
    let slots: Vec<_> = plan.fires.iter().map(|f| f.slot).collect();
    assert_eq!(
        slots,
        vec![
            t("2026-01-01T00:58:00Z"),
            t("2026-01-01T00:59:00Z"),
            t("2026-01-01T01:00:00Z")
        ]
    );
    assert_eq!(plan.skipped, 0);
}

#[test]
fn a_job_never_enqueued_catches_up_from_its_creation() {
    // Created at 00:57:10 while no node led (or just before the leader's watch saw it): the
    // leader that loads it at 01:00:30 finds no cursor, and owes it 00:58, 00:59 and 01:00.
    let now = t("2026-01-01T01:00:30Z");
    let mut spec = job("a", "* * * * *", "all", "1h").spec.clone();
    spec.created_at = Some(t("2026-01-01T00:57:10Z"));
    let mut p = Planner::new();
    p.upsert(Arc::new(spec.clone().validate().unwrap()), now);
    let plan = p.catch_up("a", None, now);
    assert_eq!(plan.fires.len(), 3);
    assert_eq!(plan.fires[0].slot, t("2026-01-01T00:58:00Z"));
    assert_eq!(p.next_slot("a"), Some(t("2026-01-01T01:01:00Z")));
    // By its policy: `latest` only the newest, `skip` none (both counted).
    spec.catchup.policy = CatchUpPolicy::Latest;
    let mut p = Planner::new();
    p.upsert(Arc::new(spec.clone().validate().unwrap()), now);
    let plan = p.catch_up("a", None, now);
    assert_eq!((plan.fires.len(), plan.skipped), (1, 2));
    assert_eq!(plan.fires[0].slot, t("2026-01-01T01:00:00Z"));
}

#[test]
fn catch_up_caps_all_and_counts_the_rest() {
    let now = t("2026-01-01T02:00:00Z");
    let mut p = Planner::new();
    p.upsert(job("a", "* * * * * *", "all", "2h"), now);
    let plan = p.catch_up("a", Some(t("2026-01-01T01:00:00Z")), now);
    assert_eq!(plan.fires.len(), MAX_CATCHUP_PER_JOB);
    assert_eq!(plan.skipped, 3600 - MAX_CATCHUP_PER_JOB as u64);
    // The newest are kept.
    assert_eq!(plan.fires.last().unwrap().slot, now);
}

#[test]
fn catch_up_without_cursor_or_creation_plans_nothing_and_never_repeats() {
    // A hand-written entry without `created_at`, never enqueued: nothing to owe it.
    let now = t("2026-01-01T00:10:00Z");
    let mut p = Planner::new();
    p.upsert(
        job("a", "* * * * *", "all", "1h"),
        t("2026-01-01T00:00:00Z"),
    );
    let plan = p.catch_up("a", None, now);
    assert_eq!(plan, CatchUpPlan::default());
    assert_eq!(p.next_slot("a"), Some(t("2026-01-01T00:11:00Z")));
    // A cursor ahead of what the planner gave out: nothing at or before it comes back.
    let plan = p.catch_up("a", Some(t("2026-01-01T00:20:00Z")), now);
    assert!(plan.fires.is_empty());
    assert_eq!(p.next_slot("a"), Some(t("2026-01-01T00:21:00Z")));
    assert_eq!(p.due(t("2026-01-01T00:21:00Z")).len(), 1);
    assert!(p.catch_up("missing", None, now).fires.is_empty());
}

#[test]
fn thousands_of_jobs_catch_up_exactly() {
    let now = t("2026-06-01T12:00:00Z");
    let mut p = Planner::new();
    let policies = ["all", "latest", "skip"];
    for k in 0..3000 {
        p.upsert(
            job(&format!("j{k}"), "*/5 * * * *", policies[k % 3], "1h"),
            now,
        );
    }
    // Cursors from 0 to 2999 minutes back: windows cut the old ones.
    for k in 0..3000 {
        let cursor = now - Duration::minutes(k as i64);
        let plan = p.catch_up(&format!("j{k}"), Some(cursor), now);
        // Slots now - 5j with 5j < k (after the cursor) and 5j <= 60 (inside the window).
        let missed_in_window = if k == 0 {
            0
        } else {
            ((k - 1) / 5).min(12) as u64 + 1
        };
        let (fires, skipped) = (plan.fires.len() as u64, plan.skipped);
        match policies[k % 3] {
            "all" => assert_eq!((fires, skipped), (missed_in_window, 0)),
            "latest" => assert_eq!(
                (fires, skipped),
                (missed_in_window.min(1), missed_in_window.saturating_sub(1))
            ),
            _ => assert_eq!((fires, skipped), (0, missed_in_window)),
        }
    }
    assert_eq!(p.next_wakeup(), Some(t("2026-06-01T12:05:00Z")));
    assert_eq!(p.due(t("2026-06-01T12:05:00Z")).len(), 3000);
}

#[test]
fn catch_up_again_plans_the_same_fires_and_due_never_repeats_them() {
    let now = t("2026-01-01T00:10:30Z");
    let mut p = Planner::new();
    p.upsert(job("a", "* * * * *", "all", "1h"), now);
    let cursor = Some(t("2026-01-01T00:07:00Z"));
    let first = p.catch_up("a", cursor, now);
    assert_eq!(first.fires.len(), 3);
    assert_eq!(p.catch_up("a", cursor, now), first);
    let later = p.due(t("2026-01-01T00:12:00Z"));
    let slots: Vec<_> = later.iter().map(|f| f.slot).collect();
    assert_eq!(
        slots,
        [t("2026-01-01T00:11:00Z"), t("2026-01-01T00:12:00Z")]
    );
}

/// What each of a million jobs costs the leader (BENCHMARKS.md, cron-core): one byte more here
/// is a megabyte more there.
#[test]
fn per_job_structures_stay_small() {
    use std::mem::size_of;
    assert!(size_of::<Option<Entry>>() <= 80, "{}", size_of::<Entry>());
    assert!(size_of::<Slots>() <= 32, "{}", size_of::<Slots>());
    assert!(size_of::<crate::Schedule>() <= 32);
    // 376 before `jitter`, `start_at` and `end_at` (three boxed texts and one pointer to their
    // parsed form): 448-byte malloc chunks with the `Arc`'s counts, 48 bytes a job more.
    assert!(size_of::<Job>() <= 432, "{}", size_of::<Job>());
}
