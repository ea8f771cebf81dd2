//! A job's life and spread with explicit instants: `start_at`/`end_at` in the planner and its
//! catch-up, the one-shot `@at`, and jitter (bounds, determinism, order, spread).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use cron_core::{fire::fire_id, FireKind, Job, JobSpec, JobState, Planner, Schedule};
use serde_json::{json, Value};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn spec(id: &str, frequency: &str, extra: Value) -> Value {
    let mut v = json!({"id": id, "function": {"app": "a", "path": "/f"}, "frequency": frequency,
        "created_at": "2026-01-01T00:00:00Z"});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

fn job(id: &str, frequency: &str, extra: Value) -> Arc<Job> {
    Arc::new(try_job(id, frequency, extra).unwrap())
}

fn try_job(id: &str, frequency: &str, extra: Value) -> Result<Job, String> {
    JobSpec::from_json(spec(id, frequency, extra).to_string().as_bytes())
        .and_then(JobSpec::validate)
        .map_err(|e| e.to_string())
}

fn slots(fires: &[cron_core::Fire]) -> Vec<DateTime<Utc>> {
    fires.iter().map(|f| f.slot).collect()
}

#[test]
fn no_slot_before_start_or_after_end() {
    let j = job(
        "b",
        "* * * * *",
        json!({"start_at": "2026-01-01T01:02:30+01:00", "end_at": "2026-01-01T00:05:00Z"}),
    );
    let mut p = Planner::new();
    p.upsert(j.clone(), t("2026-01-01T00:00:00Z"));
    assert_eq!(p.next_slot("b"), Some(t("2026-01-01T00:03:00Z")));
    let fires = p.due(t("2026-01-01T00:10:00Z"));
    assert_eq!(
        slots(&fires),
        [
            t("2026-01-01T00:03:00Z"),
            t("2026-01-01T00:04:00Z"),
            t("2026-01-01T00:05:00Z")
        ]
    );
    assert_eq!(p.next_wakeup(), None);
    assert_eq!(p.next_slot("b"), None);
    assert!(j.has_slot(t("2026-01-01T00:05:00Z")));
    assert!(!j.has_slot(t("2026-01-01T00:06:00Z")));
    assert!(!j.has_slot(t("2026-01-01T00:02:00Z")));
}

#[test]
fn an_end_stops_a_job_among_others_in_one_due() {
    // The ended job's next slot was computed from the schedule alone; the planner stops it
    // before the bucket after its end, while the other job goes on.
    let mut p = Planner::new();
    let now = t("2026-01-01T00:00:00Z");
    p.upsert(
        job(
            "ends",
            "*/10 * * * * *",
            json!({"end_at": "2026-01-01T00:00:35Z"}),
        ),
        now,
    );
    p.upsert(job("goes", "*/10 * * * * *", json!({})), now);
    let fires = p.due(t("2026-01-01T00:01:00Z"));
    let of = |id: &str| {
        fires
            .iter()
            .filter(|f| &*f.job_id == id)
            .map(|f| f.slot)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("ends").len(), 3, "{:?}", of("ends"));
    assert_eq!(of("goes").len(), 6);
    // A later end given by a change brings the job back, from its floor.
    p.upsert(
        job(
            "ends",
            "*/10 * * * * *",
            json!({"end_at": "2026-01-01T00:01:20Z"}),
        ),
        t("2026-01-01T00:01:00Z"),
    );
    let fires = p.due(t("2026-01-01T00:02:00Z"));
    let ends: Vec<_> = fires.iter().filter(|f| &*f.job_id == "ends").collect();
    assert_eq!(
        ends.iter().map(|f| f.slot).collect::<Vec<_>>(),
        [t("2026-01-01T00:01:10Z"), t("2026-01-01T00:01:20Z")]
    );
}

#[test]
fn catch_up_keeps_inside_start_and_end() {
    let mut p = Planner::new();
    let now = t("2026-01-01T00:10:00Z");
    p.upsert(
        job(
            "c",
            "* * * * *",
            json!({"start_at": "2026-01-01T00:03:00Z", "end_at": "2026-01-01T00:05:00Z"}),
        ),
        now,
    );
    let plan = p.catch_up("c", None, now);
    assert_eq!(
        slots(&plan.fires),
        [
            t("2026-01-01T00:03:00Z"),
            t("2026-01-01T00:04:00Z"),
            t("2026-01-01T00:05:00Z")
        ]
    );
    assert_eq!(p.next_wakeup(), None);
}

#[test]
fn state_follows_the_life() {
    let j = job(
        "s",
        "0 * * * *",
        json!({"start_at": "2026-02-01T00:00:00Z", "end_at": "2026-03-01T00:00:00Z"}),
    );
    assert_eq!(j.state(t("2026-01-15T00:00:00Z"), None), JobState::Waiting);
    assert_eq!(j.state(t("2026-02-15T00:00:00Z"), None), JobState::Active);
    assert_eq!(j.state(t("2026-03-01T00:00:00Z"), None), JobState::Ended);
    // Finished (costs the leader nothing) once the last slot is older than the window (1 h).
    assert!(!j.finished(t("2026-03-01T00:59:59Z")));
    assert!(j.finished(t("2026-03-01T01:00:01Z")));
}

#[test]
fn a_one_shot_fires_once_then_is_done() {
    let j = job("x", "@at 2026-12-24T18:00:00+01:00", json!({}));
    let at = t("2026-12-24T17:00:00Z");
    assert_eq!(j.schedule.one_shot(), Some(at));
    assert_eq!(j.next_after(t("2026-12-01T00:00:00Z")), Some(at));
    assert_eq!(j.next_after(at), None);
    let mut p = Planner::new();
    p.upsert(j.clone(), t("2026-12-24T16:00:00Z"));
    let fires = p.due(t("2026-12-31T00:00:00Z"));
    assert_eq!(slots(&fires), [at]);
    assert_eq!(fires[0].fire_id, fire_id("x", at));
    assert_eq!(p.next_wakeup(), None);
    assert_eq!(j.state(t("2026-12-24T16:00:00Z"), None), JobState::Active);
    assert_eq!(j.state(t("2026-12-24T17:30:00Z"), Some(at)), JobState::Done);
    assert_eq!(j.state(t("2026-12-24T17:30:00Z"), None), JobState::Due);
    assert_eq!(j.state(t("2026-12-24T18:00:01Z"), None), JobState::Missed);
}

#[test]
fn a_one_shot_missed_while_nobody_led_is_caught_up_once_inside_its_window() {
    let j = job("x", "@at 2026-12-24T17:00:00Z", json!({}));
    let at = t("2026-12-24T17:00:00Z");
    let mut p = Planner::new();
    let recovery = t("2026-12-24T17:20:00Z");
    p.upsert(j.clone(), recovery);
    let plan = p.catch_up("x", None, recovery);
    assert_eq!(slots(&plan.fires), [at]);
    assert_eq!(plan.fires[0].kind, FireKind::CatchUp);
    assert_eq!(plan.fires[0].fire_id, fire_id("x", at));
    // Its cursor after the enqueue: planned again by a successor, nothing.
    let mut q = Planner::new();
    q.upsert(j.clone(), recovery);
    assert!(q.catch_up("x", Some(at), recovery).fires.is_empty());
    assert!(q.due(t("2027-01-01T00:00:00Z")).is_empty());
    // Beyond the window (1 h): nothing.
    let mut r = Planner::new();
    let late = t("2026-12-24T18:00:01Z");
    r.upsert(j.clone(), late);
    assert!(r.catch_up("x", None, late).fires.is_empty());
}

#[test]
fn a_bad_one_shot_names_what_is_allowed() {
    assert_eq!(
        Schedule::parse("@at", None).unwrap_err().to_string(),
        "@at needs an instant, e.g. @at 2026-12-24T18:00:00+01:00"
    );
    let e = Schedule::parse("@at 2026-12-24T18:00:00", None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("@at \"2026-12-24T18:00:00\": ")
            && e.ends_with("expected an RFC 3339 instant with an offset, e.g. 2026-12-24T18:00:00+01:00 or 2026-12-24T17:00:00Z"),
        "{e}"
    );
}

#[test]
fn life_fields_are_checked_by_name() {
    let e = try_job("e", "* * * * *", json!({"start_at": "tomorrow"})).unwrap_err();
    assert!(
        e.starts_with("start_at: \"tomorrow\" is not an RFC 3339 instant with an offset"),
        "{e}"
    );
    let e = try_job("e", "* * * * *", json!({"end_at": "2026-01-01T00:00:00"})).unwrap_err();
    assert!(e.starts_with("end_at: "), "{e}");
    let e = try_job(
        "e",
        "* * * * *",
        json!({"start_at": "2026-02-01T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "end_at: 2026-01-01T00:00:00+00:00 is before start_at 2026-02-01T00:00:00+00:00: a \
         schedule cannot end before it starts"
    );
    let e = try_job("e", "* * * * *", json!({"jitter": "5m"})).unwrap_err();
    assert_eq!(
        e,
        "jitter: 5m is longer than the shortest interval between two slots of \"* * * * *\" \
         (1m): a later slot could then run before an earlier one; give at most 1m"
    );
    let e = try_job("e", "@every 90s", json!({"jitter": "91s"})).unwrap_err();
    assert!(e.ends_with("give at most 1m30s"), "{e}");
    let e = try_job("e", "0 0 * * *", json!({"jitter": "25h"})).unwrap_err();
    assert_eq!(e, "jitter: 25h is longer than the limit of 24h");
    let e = try_job("e", "0 0 * * *", json!({"jitter": "5 minutes"})).unwrap_err();
    assert!(e.starts_with("jitter: duration \"5 minutes\""), "{e}");
    // At the bound, and a one-shot (no two slots to reorder), are fine.
    assert!(try_job("e", "* * * * *", json!({"jitter": "1m"})).is_ok());
    assert!(try_job("e", "@at 2026-12-24T17:00:00Z", json!({"jitter": "24h"})).is_ok());
}

#[test]
fn the_shortest_interval_of_a_crontab() {
    let cases = [
        ("* * * * *", 60),
        ("*/15 * * * *", 900),
        ("0 0 * * *", 86_400),
        ("0 0,12 * * *", 43_200),
        ("0 9,17 * * 1-5", 28_800),
        ("30 0 * * * *", 3_600),
        ("0 50 23 * * *", 86_400),
        ("10,50 * * * * *", 20),
        ("0 0 1 * *", 86_400),
        ("0 22,2 * * *", 14_400),
        ("@hourly", 3600),
        ("@every 90s", 90),
    ];
    for (expr, secs) in cases {
        let s = Schedule::parse(expr, None).unwrap();
        assert_eq!(s.shortest_interval(), Some(secs), "{expr}");
    }
    assert_eq!(
        Schedule::parse("@at 2026-12-24T17:00:00Z", None)
            .unwrap()
            .shortest_interval(),
        None
    );
}

#[test]
fn jitter_is_a_pure_function_of_job_and_slot_inside_the_bound() {
    let a = job("a", "0 0 * * *", json!({"jitter": "5m"}));
    let a2 = job(
        "a",
        "0 0 * * *",
        json!({"jitter": "5m", "description": "same id"}),
    );
    let slot = t("2026-01-02T00:00:00Z");
    let at = a.fire_at(slot);
    assert_eq!(at, a2.fire_at(slot));
    assert!(at >= slot && at < slot + Duration::minutes(5), "{at}");
    // Pinned: every node and every version computes this instant.
    assert_eq!(at, a.fire_at(slot));
    let plain = job("a", "0 0 * * *", json!({}));
    assert_eq!(plain.fire_at(slot), slot);
    // 10,000 jobs at midnight: spread over the five minutes, about evenly.
    let mut per_minute = BTreeMap::new();
    for i in 0..10_000 {
        let j = job(&format!("job-{i}"), "0 0 * * *", json!({"jitter": "5m"}));
        let at = j.fire_at(slot);
        assert!(at >= slot && at < slot + Duration::minutes(5));
        *per_minute.entry((at - slot).num_minutes()).or_insert(0) += 1;
    }
    assert_eq!(per_minute.len(), 5);
    for (minute, n) in per_minute {
        assert!((1800..2200).contains(&n), "minute {minute}: {n}");
    }
}

#[test]
fn jitter_keeps_order_across_a_daylight_saving_change() {
    // On 2026-03-29 Berlin skips 02:00-03:00: `30 * * * *` fires at 01:30, 03:00 (the end of
    // the gap) and 03:30 local, 30 minutes apart on the real clock, though its shortest
    // interval on the local clock (the jitter's bound) is an hour.
    let spec_json = json!({"id": "d", "function": {"app": "a", "path": "/f"},
        "frequency": "30 * * * *", "timezone": "Europe/Berlin", "jitter": "1h"});
    for id in 0..200 {
        let mut v = spec_json.clone();
        v["id"] = json!(format!("d-{id}"));
        let j = JobSpec::from_json(v.to_string().as_bytes())
            .unwrap()
            .validate()
            .unwrap();
        let mut last = None;
        for slot in j.schedule.upcoming(t("2026-03-28T22:00:00Z")).take(8) {
            let at = j.fire_at(slot);
            if let Some(prev) = last {
                assert!(at > prev, "{id}: {slot} runs at {at}, before {prev}");
            }
            last = Some(at);
        }
    }
}
