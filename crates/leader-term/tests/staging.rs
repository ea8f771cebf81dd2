//! The steady state: stage within the lookahead, release at the slot (release before stage),
//! retry with the same fire ids after the one backoff, remember staged slots before the call,
//! prepare the next release, write the history, enqueue delayed jobs at their slot.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use leader_term::{Action, Config, Event, FireOutcome, Leader, Op, Outcome, StagedRead};
use serde_json::json;

/// Leads with one every-second job whose cursor is at t0: the next action stages 1 and 2.
fn running() -> H {
    let mut h = H::new();
    h.lead(7, &[job("every", "* * * * * *", json!({}))]);
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("every", sec(0))]);
    h
}

fn ids(a: &Action) -> Vec<uuid::Uuid> {
    match a {
        Action::Enqueue { fires, .. } | Action::Stage { fires, .. } => {
            fires.iter().map(|p| p.fire.fire_id).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fires_are_staged_a_lookahead_ahead_and_released_at_their_slot() {
    let mut h = running();
    let a = h.expect();
    assert!(is_stage(&a));
    assert_eq!(
        sent(&a),
        vec![("every".into(), sec(1)), ("every".into(), sec(2))]
    );
    h.all_enqueued(2);
    // Nothing until half a second before the first slot (prepare its release).
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), Some(at(500)));
    h.at(at(500));
    assert!(matches!(h.expect(), Action::PrepareRelease { slot, .. } if slot == sec(1)));
    h.answer(Outcome::Prepared { ready: true });
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), Some(sec(1)));
    // At the slot: the release first (it is the time-critical step), then the next stage.
    h.at(at(1003));
    assert!(matches!(h.expect(), Action::Release { until, token: 7 } if until == at(1003)));
    h.released(&[(sec(1), 1)]);
    assert!(h.events.contains(&Event::Lateness {
        seconds: 0.003,
        tasks: 1
    }));
    let a = h.expect();
    assert!(is_stage(&a));
    assert_eq!(sent(&a), vec![("every".into(), sec(3))]);
    h.all_enqueued(1);
    // With nothing more urgent, the released slot's history is written.
    assert!(matches!(h.expect(), Action::RecordHistory { token: 7 }));
    h.answer(Outcome::Recorded(Ok(false)));
    assert!(h.next().is_none());
}

#[test]
fn a_stage_whose_answer_is_lost_is_released_at_its_slot_and_retried_with_the_same_fire_ids() {
    let mut h = running();
    let first = h.expect();
    assert!(is_stage(&first));
    // The answer is lost: the call may have staged the fires, or not.
    h.answer(Outcome::Sent(Err(lost())));
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::CallFailed { op: Op::Stage, retry_in, .. } if *retry_in == Duration::from_millis(100))));
    // No Redis call during the backoff.
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), Some(at(100)));
    // After it: the same fires, the same ids.
    h.at(at(100));
    let retry = h.expect();
    assert!(is_stage(&retry));
    assert_eq!(ids(&retry), ids(&first));
    h.answer(Outcome::Sent(Err(lost())));
    // Redis stays down past the first slot. Remembered before the call, slot 1 is released
    // even though no stage of it was ever answered: the lost call may have staged it.
    h.at(sec(1));
    assert!(matches!(h.expect(), Action::Release { .. }));
    h.released(&[(sec(1), 1)]);
    // Its fire, if the lost call did not stage it, goes out directly now (same id: a
    // duplicate if it was staged and just released); slot 2 is staged again with slot 3.
    let direct = h.expect();
    assert!(is_enqueue(&direct));
    assert_eq!(ids(&direct), ids(&first)[..1].to_vec());
    h.answer(Outcome::Sent(Ok(vec![FireOutcome::Duplicate])));
    let again = h.expect();
    assert!(is_stage(&again));
    assert_eq!(ids(&again)[0], ids(&first)[1]);
    assert_eq!(sent(&again)[1], ("every".into(), sec(3)));
}

#[test]
fn one_backoff_doubles_up_to_its_ceiling_across_calls_and_resets_after_a_success() {
    let mut h = running();
    let mut now = t0();
    let mut pauses = Vec::new();
    for _ in 0..8 {
        let a = h.expect();
        h.answer(match a {
            Action::Stage { .. } | Action::Enqueue { .. } => Outcome::Sent(Err(lost())),
            Action::Release { .. } => Outcome::Released(Err(lost())),
            other => panic!("{other:?}"),
        });
        let Some(Event::CallFailed { retry_in, .. }) = h.events.last().cloned() else {
            panic!("{:?}", h.events.last())
        };
        pauses.push(retry_in.as_millis());
        now += chrono::Duration::from_std(retry_in).unwrap();
        assert_eq!(h.leader.poll_timeout(), Some(now));
        h.at(now);
    }
    assert_eq!(pauses, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    // A success resets it.
    let a = h.expect();
    h.answer(ok(&a));
    let a = h.expect();
    h.answer(match a {
        Action::Stage { .. } | Action::Enqueue { .. } => Outcome::Sent(Err(lost())),
        Action::Release { .. } => Outcome::Released(Err(lost())),
        Action::RecordHistory { .. } => Outcome::Recorded(Err(lost())),
        other => panic!("{other:?}"),
    });
    assert!(
        matches!(h.events.last(), Some(Event::CallFailed { retry_in, .. }) if retry_in.as_millis() == 100)
    );
}

#[test]
fn a_scheduled_fire_whose_slot_has_passed_is_enqueued_and_its_lateness_counted() {
    let mut h = running();
    // The leader was busy (or asleep) until 1.25 s: slot 1 is enqueued, 2 and 3 staged.
    h.at(at(1250));
    let a = h.expect();
    assert!(is_enqueue(&a));
    assert_eq!(sent(&a), vec![("every".into(), sec(1))]);
    h.all_enqueued(1);
    assert!(h.events.contains(&Event::Lateness {
        seconds: 0.25,
        tasks: 1
    }));
    let a = h.expect();
    assert!(is_stage(&a));
    assert_eq!(
        sent(&a),
        vec![("every".into(), sec(2)), ("every".into(), sec(3))]
    );
}

#[test]
fn a_clock_step_backwards_stages_no_slot_twice() {
    let mut h = running();
    h.answer_next_ok();
    // NTP steps the clock back 10 s: what was staged waits for its slot, nothing is planned
    // again (the planner never gives a slot twice).
    h.at(sec(-10));
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), Some(at(500)));
    h.at(at(1000));
    assert!(matches!(h.expect(), Action::Release { .. }));
    h.released(&[(sec(1), 1)]);
    let a = h.expect();
    assert_eq!(sent(&a), vec![("every".into(), sec(3))]);
}

#[test]
fn fires_of_a_delayed_job_are_never_staged_they_are_enqueued_at_their_slot() {
    let mut h = H::new();
    let delayed = job(
        "delayed",
        "* * * * * *",
        json!({"function": {"app": "a", "path": "/p", "image": "i", "delay": 30}}),
    );
    h.lead(7, &[delayed]);
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("delayed", sec(0))]);
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), Some(sec(1)));
    h.at(sec(1));
    let a = h.expect();
    assert!(is_enqueue(&a));
    assert_eq!(sent(&a), vec![("delayed".into(), sec(1))]);
}

#[test]
fn a_burst_is_sent_in_batches_of_at_most_max_batch() {
    let mut h = H::new();
    h.leader = Leader::new(Config {
        max_batch: 2,
        ..config()
    });
    let jobs: Vec<_> = (0..5)
        .map(|i| job(&format!("j{i}"), "* * * * * *", json!({})))
        .collect();
    h.lead(7, &jobs);
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    let cursors: Vec<_> = (0..5).map(|i| (format!("j{i}"), sec(0))).collect();
    let cursors: Vec<(&str, _)> = cursors.iter().map(|(j, c)| (j.as_str(), *c)).collect();
    h.cursors(&cursors);
    let mut sizes = Vec::new();
    while let Some(a) = h.next() {
        match &a {
            Action::Stage { fires, .. } => sizes.push(fires.len()),
            Action::PrepareRelease { .. } => {}
            other => panic!("{other:?}"),
        }
        h.answer(ok(&a));
    }
    // Ten fires (two slots of five jobs), in slot order, two at a time.
    assert_eq!(sizes, vec![2; 5]);
}

#[test]
fn a_term_start_with_released_slots_awaiting_their_history_writes_it() {
    let mut h = H::new();
    h.leadership(leader_term::Leadership::Leader {
        token: 7,
        since: t0(),
    });
    h.jobs(1, vec![]);
    assert!(matches!(h.expect(), Action::RaiseFence { .. }));
    h.answer(Outcome::FenceRaised(Ok(7)));
    assert!(matches!(h.expect(), Action::ReadStaged));
    h.answer(Outcome::StagedRead(Ok(StagedRead {
        unrecorded: true,
        ..StagedRead::default()
    })));
    h.job_index();
    assert!(matches!(h.expect(), Action::RecordHistory { .. }));
    // More than one call's worth: again.
    h.answer(Outcome::Recorded(Ok(true)));
    assert!(matches!(h.expect(), Action::RecordHistory { .. }));
    h.answer(Outcome::Recorded(Ok(false)));
    assert!(h.next().is_none());
}

impl H {
    /// Answers the next action with success.
    fn answer_next_ok(&mut self) {
        let a = self.expect();
        self.answer(ok(&a));
    }
}
