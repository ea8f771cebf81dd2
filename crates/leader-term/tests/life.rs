//! A term with jobs that have a life and a spread: jittered fires are held to their jittered
//! instant and enqueued then (never staged), their lateness counted against it; no fire
//! outside `start_at`/`end_at`; a job past its end costs the term nothing; a one-shot missed
//! while nobody led is caught up once, with its slot's fire id.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::Duration;
use common::*;
use cron_core::fire::fire_id;
use leader_term::{Action, Event, FireOutcome, Outcome};
use serde_json::json;

#[test]
fn a_jittered_fire_is_enqueued_at_its_jittered_instant_with_its_slot_s_fire_id() {
    let mut h = H::new();
    let j = job("spread", "0 * * * * *", json!({"jitter": "30s"}));
    let slot = sec(60);
    let due = j.fire_at(slot);
    assert!(due > slot && due < slot + Duration::seconds(30), "{due}");
    h.lead(7, std::slice::from_ref(&j));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("spread", sec(0))]);
    // Not staged ahead of the slot, and nothing at the slot: the term waits for the instant.
    h.at(sec(59));
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), Some(due));
    h.at(slot);
    assert!(h.next().is_none());
    h.at(due + Duration::milliseconds(4));
    let a = h.expect();
    assert!(is_enqueue(&a), "{a:?}");
    assert_eq!(sent(&a), vec![("spread".into(), slot)]);
    match &a {
        Action::Enqueue { fires, .. } => assert_eq!(fires[0].fire.fire_id, fire_id("spread", slot)),
        _ => unreachable!(),
    }
    h.all_enqueued(1);
    // Lateness against the jittered instant: 4 ms, not the offset.
    assert!(
        h.events.contains(&Event::Lateness {
            seconds: 0.004,
            tasks: 1
        }),
        "{:?}",
        h.events
    );
}

#[test]
fn a_caught_up_jittered_slot_waits_for_its_instant() {
    let mut h = H::new();
    let j = job("spread", "0 * * * * *", json!({"jitter": "1m"}));
    // Missed slot t0 (cursor a minute before): its jittered instant is still to come for a
    // term starting 1 ms after the slot.
    let slot = sec(0);
    let due = j.fire_at(slot);
    assert!(due > at(1), "pick a slot whose offset is over 1 ms: {due}");
    h.at(at(1));
    h.lead(7, std::slice::from_ref(&j));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("spread", sec(-60))]);
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), Some(due));
    h.at(due);
    let a = h.expect();
    assert_eq!(sent(&a), vec![("spread".into(), slot)]);
}

#[test]
fn no_fire_after_end_and_an_ended_job_costs_nothing() {
    let mut h = H::new();
    let ending = job(
        "ending",
        "* * * * * *",
        json!({"end_at": sec(2).to_rfc3339()}),
    );
    let ended = job(
        "ended",
        "* * * * * *",
        json!({"end_at": (t0() - Duration::hours(2)).to_rfc3339()}),
    );
    let later = job(
        "later",
        "* * * * * *",
        json!({"start_at": sec(100).to_rfc3339()}),
    );
    h.lead(7, &[ending, ended, later]);
    // The ended job's cursor is not even read.
    match h.expect() {
        Action::ReadCursors { jobs } => {
            let jobs: Vec<_> = jobs.iter().map(|j| j.to_string()).collect();
            assert_eq!(jobs, ["ending", "later"]);
        }
        other => panic!("{other:?}"),
    }
    h.cursors(&[("ending", sec(0)), ("later", sec(0))]);
    let a = h.expect();
    assert_eq!(
        sent(&a),
        vec![("ending".into(), sec(1)), ("ending".into(), sec(2))]
    );
    h.answer(ok(&a));
    // Past the end, only the job that starts later is planned, from its start.
    let mut slots = Vec::new();
    for s in 3..=101 {
        h.at(sec(s));
        while let Some(a) = h.next() {
            if let Action::Stage { fires, .. } | Action::Enqueue { fires, .. } = &a {
                slots.extend(
                    fires
                        .iter()
                        .map(|p| (p.fire.job_id.to_string(), p.fire.slot)),
                );
            }
            h.answer(ok(&a));
        }
    }
    assert_eq!(
        slots,
        vec![
            ("later".into(), sec(100)),
            ("later".into(), sec(101)),
            ("later".into(), sec(102)),
            ("later".into(), sec(103))
        ]
    );
}

#[test]
fn a_one_shot_missed_while_nobody_led_fires_once_on_recovery() {
    let shot = sec(-300);
    let j = job("once", &format!("@at {}", shot.to_rfc3339()), json!({}));
    let mut h = H::new();
    h.lead(7, std::slice::from_ref(&j));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    // Never enqueued: caught up from its creation (10 minutes before t0).
    h.cursors(&[]);
    let a = h.expect();
    assert!(is_enqueue(&a));
    match &a {
        Action::Enqueue { fires, .. } => {
            assert_eq!(fires.len(), 1);
            assert_eq!(fires[0].fire.slot, shot);
            assert_eq!(fires[0].fire.fire_id, fire_id("once", shot));
        }
        _ => unreachable!(),
    }
    h.answer(Outcome::Sent(Ok(vec![FireOutcome::Enqueued])));
    // Nothing more, ever.
    h.at(sec(86_400));
    assert!(h.next().is_none());
    // A successor with the cursor at the shot plans nothing.
    let mut s = H::new();
    s.lead(8, std::slice::from_ref(&j));
    assert!(matches!(s.expect(), Action::ReadCursors { .. }));
    s.cursors(&[("once", shot)]);
    assert!(s.next().is_none());
}
