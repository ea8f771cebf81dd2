//! A term's start and end: the fence first, what an earlier leader staged, the job set, the
//! catch-up from each cursor by policy; a fence above the token; deposed; leadership lost.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use leader_term::{
    Action, Command, CommandError, Event, FireOutcome, Leadership, Outcome, Refused, Reply,
    StagedFire, StagedRead, Status, TermEnd,
};
use serde_json::json;

fn leader(token: u64) -> Leadership {
    Leadership::Leader { token, since: t0() }
}

#[test]
fn a_term_raises_the_fence_then_reads_what_was_staged_then_catches_up_from_the_cursors() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.leadership(leader(7));
    // Nothing may be enqueued before the fence is ours.
    assert!(matches!(h.expect(), Action::RaiseFence { token: 7 }));
    // One call at a time: nothing until its answer.
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), None);
    h.answer(Outcome::FenceRaised(Ok(7)));
    assert!(matches!(h.expect(), Action::ReadStaged));
    h.answer(Outcome::StagedRead(Ok(StagedRead::default())));
    h.job_index();
    // Running, but the job set has not come: nothing is planned on an empty view.
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), None);

    h.jobs(10, vec![upsert(&every, 3)]);
    match h.expect() {
        Action::ReadCursors { jobs } => assert_eq!(jobs, vec!["every".into()]),
        other => panic!("{other:?}"),
    }
    // The last leader enqueued up to 3 s ago: the slots since are caught up (policy all),
    // enqueued at once, and marked as catch-up fires.
    h.cursors(&[("every", sec(-3))]);
    let a = h.expect();
    assert!(is_enqueue(&a));
    assert_eq!(
        sent(&a),
        vec![
            ("every".into(), sec(-2)),
            ("every".into(), sec(-1)),
            ("every".into(), sec(0))
        ]
    );
    if let Action::Enqueue { fires, token, at } = &a {
        assert_eq!((*token, *at), (7, t0()));
        assert!(fires
            .iter()
            .all(|p| p.fire.kind == cron_core::FireKind::CatchUp && p.version == 3));
    }
    h.all_enqueued(3);
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::CatchUp {
            term_start: true,
            jobs: 1,
            jobs_behind: 1,
            planned: 3,
            skipped: 0
        }
    )));
    // Then the slots of the next LOOKAHEAD (2 s) are staged.
    let a = h.expect();
    assert!(is_stage(&a));
    assert_eq!(
        sent(&a),
        vec![("every".into(), sec(1)), ("every".into(), sec(2))]
    );
    h.all_enqueued(2);
    assert_eq!(
        h.leader.status(),
        Status::Leading {
            token: 7,
            since: t0()
        }
    );
}

#[test]
fn a_job_with_no_cursor_is_caught_up_from_its_creation() {
    let mut h = H::new();
    // Created 10 minutes before t0, every minute, never enqueued (created while nobody led).
    let minutely = job("minutely", "* * * * *", json!({}));
    h.lead(1, &[minutely]);
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[]);
    let a = h.expect();
    // 11:51 .. 12:00: ten slots after created_at (11:50), none at or before it.
    let slots: Vec<_> = sent(&a).into_iter().map(|(_, s)| s).collect();
    assert_eq!(slots.len(), 10);
    assert_eq!(slots[0], sec(-9 * 60));
    assert_eq!(slots[9], sec(0));
}

#[test]
fn the_catch_up_follows_each_jobs_policy() {
    let mut h = H::new();
    let all = job("all", "* * * * *", json!({}));
    let latest = job(
        "latest",
        "* * * * *",
        json!({"catchup": {"policy": "latest"}}),
    );
    let skip = job("skip", "* * * * *", json!({"catchup": {"policy": "skip"}}));
    h.lead(1, &[all, latest, skip]);
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    let c = sec(-5 * 60);
    h.cursors(&[("all", c), ("latest", c), ("skip", c)]);
    let a = h.expect();
    let mut got = sent(&a);
    got.sort();
    let mut want: Vec<(String, _)> = (1..=5)
        .map(|m| ("all".into(), sec(-5 * 60 + m * 60)))
        .collect();
    want.push(("latest".into(), sec(0)));
    want.sort();
    assert_eq!(got, want);
    h.all_enqueued(6);
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::CatchUp {
            planned: 6,
            skipped: 9,
            ..
        }
    )));
}

#[test]
fn a_fence_above_the_token_blocks_the_term_until_an_operator_resets_it() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.leadership(leader(7));
    h.jobs(1, vec![upsert(&every, 1)]);
    assert!(matches!(h.expect(), Action::RaiseFence { token: 7 }));
    h.answer(Outcome::FenceRaised(Ok(900)));
    assert_eq!(
        h.leader.status(),
        Status::FenceBlocked {
            token: 7,
            since: t0(),
            fence: 900
        }
    );
    assert!(h.events.contains(&Event::FenceBlocked {
        token: 7,
        fence: 900
    }));
    // Blocked: nothing at all, however long, and a manual run is refused with the reason.
    h.at(sec(3600));
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), None);
    let run = h.command(Command::ManualRun {
        job: every.clone(),
        fire: cron_core::Fire::scheduled("every".into(), sec(3600), cron_core::FireKind::Manual),
    });
    assert!(h.next().is_none());
    assert_eq!(
        h.reply_to(run),
        Some(Reply::ManualRun(Err(CommandError::FenceBlocked {
            fence: 900,
            token: 7
        })))
    );
    // The operator's reset: the fence is set to the token, and the term goes on.
    let reset = h.command(Command::ResetFence);
    assert!(matches!(h.expect(), Action::ResetFence { token: 7 }));
    h.answer(Outcome::FenceReset(Ok(())));
    assert!(matches!(h.expect(), Action::ReadStaged));
    assert_eq!(h.reply_to(reset), Some(Reply::FenceReset(Ok(7))));
    assert_eq!(
        h.leader.status(),
        Status::Leading {
            token: 7,
            since: t0()
        }
    );
}

#[test]
fn a_script_refusing_the_token_deposes_the_term_until_the_election_moves_on() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.lead(7, &[every]);
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("every", sec(0))]);
    assert!(is_stage(&h.expect()));
    h.answer(Outcome::Sent(Err(Refused::Fenced { fence: 9 })));
    assert!(h.events.contains(&Event::TermEnded {
        token: 7,
        end: TermEnd::Deposed { fence: 9 }
    }));
    assert_eq!(h.leader.status(), Status::Follower);
    // The election has not noticed yet and still says token 7: no second term with it.
    h.leadership(leader(7));
    assert!(h.next().is_none());
    assert_eq!(h.leader.status(), Status::Follower);
    // A command meanwhile is refused.
    let run = h.command(Command::ResetFence);
    h.next();
    assert_eq!(
        h.reply_to(run),
        Some(Reply::FenceReset(Err(CommandError::NotLeader)))
    );
    // Once the election moves on, a new term starts with its own token.
    h.leadership(Leadership::Follower);
    h.leadership(leader(12));
    assert!(matches!(h.expect(), Action::RaiseFence { token: 12 }));
}

#[test]
fn a_call_of_an_ended_term_is_answered_before_the_next_term_calls_and_its_answer_is_dropped() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.lead(7, std::slice::from_ref(&every));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("every", sec(0))]);
    assert!(is_stage(&h.expect()));
    // Leadership lost and regained while the stage is in flight.
    h.leadership(Leadership::Follower);
    assert!(h.events.contains(&Event::TermEnded {
        token: 7,
        end: TermEnd::Lost
    }));
    h.leadership(leader(8));
    h.jobs(2, vec![upsert(&every, 1)]);
    // Still one call at a time: the new term waits for the old call's answer…
    assert!(h.next().is_none());
    h.answer(Outcome::Sent(Ok(vec![FireOutcome::Enqueued; 2])));
    // …which is not taken for an answer to anything of the new term.
    assert!(matches!(h.expect(), Action::RaiseFence { token: 8 }));
}

#[test]
fn a_manual_run_is_enqueued_with_the_fire_it_came_with_and_not_retried_on_error() {
    let mut h = H::new();
    let every = job("every", "@hourly", json!({}));
    h.lead(7, std::slice::from_ref(&every));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("every", sec(0))]);
    let fire = cron_core::Fire::scheduled("every".into(), at(1234), cron_core::FireKind::Manual);
    let id = h.command(Command::ManualRun {
        job: every.clone(),
        fire: fire.clone(),
    });
    match h.expect() {
        Action::Enqueue {
            fires, token: 7, ..
        } => assert_eq!(fires[0].fire, fire),
        other => panic!("{other:?}"),
    }
    h.all_enqueued(1);
    h.next();
    match h.reply_to(id) {
        Some(Reply::ManualRun(Ok(done))) => assert!(done.enqueued && done.token == 7),
        other => panic!("{other:?}"),
    }
    let id = h.command(Command::ManualRun {
        job: every,
        fire: cron_core::Fire::scheduled("every".into(), at(2000), cron_core::FireKind::Manual),
    });
    assert!(is_enqueue(&h.expect()));
    h.answer(Outcome::Sent(Err(lost())));
    h.next();
    assert_eq!(
        h.reply_to(id),
        Some(Reply::ManualRun(Err(CommandError::Redis(
            "connection reset by peer".into()
        ))))
    );
    // Nothing is sent again for it.
    h.at(sec(10));
    while let Some(a) = h.next() {
        if let Action::Enqueue { fires, .. } = &a {
            assert!(fires
                .iter()
                .all(|p| p.fire.kind != cron_core::FireKind::Manual));
        }
        h.answer(ok(&a));
    }
}

#[test]
fn what_an_earlier_leader_staged_is_released_at_its_slot_and_overdue_slots_at_once() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.leadership(leader(7));
    h.jobs(10, vec![upsert(&every, 3)]);
    assert!(matches!(h.expect(), Action::RaiseFence { .. }));
    h.answer(Outcome::FenceRaised(Ok(7)));
    assert!(matches!(h.expect(), Action::ReadStaged));
    let staged = |s| StagedFire {
        slot: sec(s),
        fire_id: scheduled("every", sec(s)).fire_id,
        job_id: "every".into(),
        version: 3,
    };
    h.answer(Outcome::StagedRead(Ok(StagedRead {
        slots: vec![sec(-1), sec(1)],
        fires: vec![staged(-1), staged(1)],
        unrecorded: false,
    })));
    h.job_index();
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::TakenOver {
            slots: 2,
            fires: 2,
            ..
        }
    )));
    // The overdue slot is released before anything else (same spec: nothing to amend).
    assert!(matches!(h.expect(), Action::Release { until, .. } if until == t0()));
    h.released(&[(sec(-1), 1)]);
    // The other waits for its slot; the one after it is the planner's (the cursor says 1).
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("every", sec(1))]);
    let a = h.expect();
    assert!(is_stage(&a));
    assert_eq!(sent(&a), vec![("every".into(), sec(2))]);
    h.all_enqueued(1);
    h.at(sec(1));
    assert!(matches!(h.expect(), Action::Release { until, .. } if until == sec(1)));
}
