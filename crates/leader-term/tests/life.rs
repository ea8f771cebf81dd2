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

fn backfill_of(
    h: &mut H,
    job: &str,
    slots: Vec<chrono::DateTime<chrono::Utc>>,
) -> leader_term::CommandId {
    h.command(leader_term::Command::Backfill {
        job: job.into(),
        slots,
    })
}

fn done(h: &mut H, id: leader_term::CommandId) -> leader_term::BackfillDone {
    match h.reply_to(id) {
        Some(leader_term::Reply::Backfill(Ok(d))) => d,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_backfill_enqueues_each_slot_with_its_fire_id_and_says_what_each_became() {
    let mut h = H::new();
    let j = job(
        "daily",
        "0 * * * *",
        json!({"catchup": {"policy": "skip", "window": "1h"}}),
    );
    h.lead(7, std::slice::from_ref(&j));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("daily", sec(0))]);
    assert!(h.next().is_none());
    let slots: Vec<_> = (1..=5).map(|k| sec(-3600 * k)).rev().collect();
    let id = backfill_of(&mut h, "daily", slots.clone());
    let a = h.expect();
    match &a {
        Action::Enqueue { token, fires, .. } => {
            assert_eq!(*token, 7);
            let got: Vec<_> = fires
                .iter()
                .map(|p| (p.fire.slot, p.fire.fire_id, p.fire.kind))
                .collect();
            let want: Vec<_> = slots
                .iter()
                .map(|s| (*s, fire_id("daily", *s), cron_core::FireKind::Backfill))
                .collect();
            assert_eq!(got, want);
        }
        other => panic!("{other:?}"),
    }
    // Two of them were enqueued before (Redis says so): they are not enqueued again.
    h.answer(Outcome::Sent(Ok(vec![
        FireOutcome::Duplicate,
        FireOutcome::Enqueued,
        FireOutcome::Enqueued,
        FireOutcome::Duplicate,
        FireOutcome::Enqueued,
    ])));
    assert!(h.next().is_none());
    let d = done(&mut h, id);
    assert_eq!(d.token, 7);
    assert_eq!(d.enqueued, [slots[1], slots[2], slots[4]]);
    assert_eq!(d.already, [slots[0], slots[3]]);
    assert!(d.held.is_empty() && d.dropped.is_empty());
}

#[test]
fn a_failed_backfill_batch_is_retried_with_the_same_fire_ids_and_big_ones_go_in_batches() {
    let mut h = H::new();
    let j = job(
        "sec",
        "* * * * * *",
        json!({"catchup": {"policy": "skip", "window": "1h"}}),
    );
    h.lead(7, std::slice::from_ref(&j));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("sec", sec(0))]);
    let first = h.expect();
    h.answer(ok(&first)); // the staging of the next slots
    let max = leader_term::Config::default().max_batch;
    let n = max as i64 + 3;
    let slots: Vec<_> = (0..n).map(|k| sec(k - n)).collect();
    let id = backfill_of(&mut h, "sec", slots.clone());
    let a = h.expect();
    let ids = |a: &Action| match a {
        Action::Enqueue { fires, .. } => fires.iter().map(|p| p.fire.fire_id).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let sent = ids(&a);
    assert_eq!(sent.len(), max);
    h.answer(Outcome::Sent(Err(lost())));
    assert!(h.next().is_none(), "nothing during the backoff");
    h.at(at(100));
    let again = h.expect();
    assert_eq!(ids(&again), sent);
    h.answer(ok(&again));
    let rest = h.expect();
    assert_eq!(ids(&rest).len(), 3, "{rest:?}");
    h.answer(ok(&rest));
    let _ = h.next();
    let d = done(&mut h, id);
    assert_eq!(d.enqueued, slots);
}

#[test]
fn a_backfill_leaves_held_slots_to_the_term_drops_foreign_ones_and_needs_a_leader() {
    let mut h = H::new();
    let j = job("spread", "0 * * * * *", json!({"jitter": "1m"}));
    // The slot at t0 is waiting for its jittered instant in the term.
    let slot = sec(0);
    assert!(j.fire_at(slot) > at(1));
    h.at(at(1));
    h.lead(7, std::slice::from_ref(&j));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("spread", sec(-60))]);
    assert!(h.next().is_none());
    let id = backfill_of(&mut h, "spread", vec![sec(-120), sec(-90), slot]);
    let a = h.expect();
    assert_eq!(sent(&a), vec![("spread".into(), sec(-120))]);
    h.answer(ok(&a));
    assert!(h.next().is_none());
    let d = done(&mut h, id);
    assert_eq!(d.enqueued, [sec(-120)]);
    assert_eq!(d.held, [slot]);
    assert_eq!(d.dropped, [sec(-90)], "not a slot of the job");

    let mut f = H::new();
    let id = backfill_of(&mut f, "spread", vec![sec(-120)]);
    assert!(f.next().is_none());
    assert!(matches!(
        f.reply_to(id),
        Some(leader_term::Reply::Backfill(Err(
            leader_term::CommandError::NotLeader
        )))
    ));
}

#[test]
fn a_failed_jittered_fire_goes_out_before_its_job_s_next_one() {
    // The cursor is advanced by each enqueue: were slot 2 enqueued while slot 1 waits for its
    // retry, a successor's catch-up would start after slot 2 and never fire slot 1.
    let mut h = H::new();
    let j = job("spread", "*/10 * * * * *", json!({"jitter": "10s"}));
    h.lead(7, std::slice::from_ref(&j));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("spread", sec(0))]);
    let (first, second) = (sec(10), sec(20));
    h.at(j.fire_at(first));
    loop {
        let a = h.expect();
        if h.now >= j.fire_at(second) {
            assert_eq!(
                sent(&a),
                vec![("spread".into(), first), ("spread".into(), second)]
            );
            break;
        }
        assert_eq!(sent(&a), vec![("spread".into(), first)]);
        h.answer(Outcome::Sent(Err(lost())));
        let next = h.leader.poll_timeout().unwrap();
        h.at(next);
    }
}
