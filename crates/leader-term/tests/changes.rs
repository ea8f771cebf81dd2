//! A pause, a delete or a change honoured for every slot not yet in the queue: staged tasks
//! withdrawn or restaged, the API answered only once they are, a successor applying what its
//! predecessor could not, and stale news (the watch after the API) ignored.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use cron_core::Job;
use leader_term::{
    Action, AmendOutcome, ChangeApplied, Command, CommandError, JobEvent, Leadership, Outcome,
    Reply, StagedFire, StagedRead,
};
use serde_json::json;
use std::sync::Arc;

/// Leads with `every` (version 1, every second), slots 1 and 2 staged at t0.
fn staged() -> (H, Arc<Job>) {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.lead(7, std::slice::from_ref(&every));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("every", sec(0))]);
    let a = h.expect();
    assert_eq!(
        sent(&a),
        vec![("every".into(), sec(1)), ("every".into(), sec(2))]
    );
    h.all_enqueued(2);
    (h, every)
}

fn change(h: &mut H, event: JobEvent) -> leader_term::CommandId {
    h.command(Command::JobChanged(event))
}

type Slot = chrono::DateTime<chrono::Utc>;

fn amend(a: &Action) -> (Vec<Slot>, Vec<(Slot, u64)>) {
    match a {
        Action::Amend {
            withdraw, restage, ..
        } => (
            withdraw.iter().map(|f| f.slot).collect(),
            restage.iter().map(|p| (p.fire.slot, p.version)).collect(),
        ),
        other => panic!("not an amend: {other:?}"),
    }
}

#[test]
fn a_pause_withdraws_the_staged_tasks_and_is_answered_once_they_are() {
    let (mut h, every) = staged();
    h.at(at(300));
    let paused = changed(&every, |s| s.paused = true);
    let id = change(&mut h, upsert(&paused, 2));
    let a = h.expect();
    assert_eq!(amend(&a), (vec![sec(1), sec(2)], vec![]));
    assert_eq!(
        h.reply_to(id),
        None,
        "answered before the tasks were withdrawn"
    );
    h.amended(&[AmendOutcome::Withdrawn; 2]);
    assert!(h.next().is_none());
    assert_eq!(
        h.reply_to(id),
        Some(Reply::JobChanged(Ok(ChangeApplied {
            withdrawn: 2,
            restaged: 0
        })))
    );
    // The watch brings the same change later: stale, nothing to do.
    h.jobs(3, vec![upsert(&paused, 2)]);
    assert!(h.next().is_none());
    // Nothing of the job is staged again while it is paused.
    for s in 1..5 {
        h.at(sec(s));
        while let Some(a) = h.next() {
            assert!(
                !matches!(a, Action::Stage { .. } | Action::Enqueue { .. }),
                "{a:?}"
            );
            h.answer(ok(&a));
        }
    }
}

#[test]
fn a_changed_body_restages_the_staged_tasks_with_the_new_spec() {
    let (mut h, every) = staged();
    let fixed = changed(&every, |s| s.function.body = "fixed".into());
    let id = change(&mut h, upsert(&fixed, 5));
    let a = h.expect();
    assert_eq!(amend(&a), (vec![], vec![(sec(1), 5), (sec(2), 5)]));
    if let Action::Amend { restage, .. } = &a {
        assert!(restage.iter().all(|p| p.job.spec.function.body == "fixed"));
    }
    h.amended(&[AmendOutcome::Replaced; 2]);
    h.next();
    assert_eq!(
        h.reply_to(id),
        Some(Reply::JobChanged(Ok(ChangeApplied {
            withdrawn: 0,
            restaged: 2
        })))
    );
    // The next slots are staged with it too.
    h.at(sec(1));
    assert!(matches!(h.expect(), Action::Release { .. }));
    h.released(&[(sec(1), 1)]);
    match h.expect() {
        Action::Stage { fires, .. } => {
            assert_eq!(fires[0].fire.slot, sec(3));
            assert_eq!(
                (fires[0].job.spec.function.body.as_str(), fires[0].version),
                ("fixed", 5)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_new_schedule_withdraws_the_slots_it_lacks_and_stages_those_it_adds() {
    let mut h = H::new();
    let five = job("five", "*/5 * * * * *", json!({}));
    h.lead(7, std::slice::from_ref(&five));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("five", sec(0))]);
    assert!(h.next().is_none());
    h.at(sec(3));
    let a = h.expect();
    assert_eq!(sent(&a), vec![("five".into(), sec(5))]);
    h.all_enqueued(1);
    // At 3.5 s it becomes every second: 5 is kept (restaged with the new spec), 4 is added
    // although the planner had already given out 5.
    h.at(at(3500));
    let every = changed(&five, |s| s.frequency = "* * * * * *".into());
    change(&mut h, upsert(&every, 2));
    assert_eq!(amend(&h.expect()), (vec![], vec![(sec(5), 2)]));
    h.amended(&[AmendOutcome::Replaced]);
    let a = h.expect();
    assert!(is_stage(&a));
    assert_eq!(sent(&a), vec![("five".into(), sec(4))]);
    h.all_enqueued(1);
    // Then every 7 s: 4 and 5 are not slots of it any more.
    let seven = changed(&five, |s| s.frequency = "*/7 * * * * *".into());
    change(&mut h, upsert(&seven, 3));
    assert_eq!(amend(&h.expect()), (vec![sec(4), sec(5)], vec![]));
    h.amended(&[AmendOutcome::Withdrawn; 2]);
    // Its next slot is 7, staged at 5.
    let mut staged = Vec::new();
    for ms in [4000, 5000] {
        h.at(at(ms));
        while let Some(a) = h.next() {
            if matches!(a, Action::Stage { .. }) {
                staged.extend(sent(&a));
            }
            h.answer(ok(&a));
        }
    }
    assert_eq!(staged, vec![("five".into(), sec(7))]);
}

#[test]
fn a_delete_withdraws_and_a_stale_spec_arriving_afterwards_does_not_bring_the_job_back() {
    let (mut h, every) = staged();
    let id = change(
        &mut h,
        JobEvent::Remove {
            id: "every".into(),
            version: 1,
        },
    );
    assert_eq!(amend(&h.expect()), (vec![sec(1), sec(2)], vec![]));
    h.amended(&[AmendOutcome::Withdrawn; 2]);
    h.next();
    assert!(matches!(h.reply_to(id), Some(Reply::JobChanged(Ok(_)))));
    // The watch, behind, still has the job at version 1.
    h.jobs(1, vec![upsert(&every, 1)]);
    h.at(sec(3));
    while let Some(a) = h.next() {
        assert!(
            !matches!(a, Action::Stage { .. } | Action::ReadCursors { .. }),
            "{a:?}"
        );
        h.answer(ok(&a));
    }
    // Created again (a newer version): it is a new job, caught up from its cursor.
    h.jobs(9, vec![upsert(&every, 9)]);
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
}

#[test]
fn a_change_reaching_a_due_slot_is_applied_before_the_slot_is_released() {
    let (mut h, every) = staged();
    h.at(sec(1));
    let paused = changed(&every, |s| s.paused = true);
    change(&mut h, upsert(&paused, 2));
    // The due slot's task is withdrawn first, then the slot released, then the rest.
    assert_eq!(amend(&h.expect()), (vec![sec(1)], vec![]));
    h.amended(&[AmendOutcome::Withdrawn]);
    assert!(matches!(h.expect(), Action::Release { .. }));
    h.released(&[(sec(1), 0)]);
    assert_eq!(amend(&h.expect()), (vec![sec(2)], vec![]));
}

#[test]
fn the_answer_waits_for_a_call_made_with_the_old_spec() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.lead(7, std::slice::from_ref(&every));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("every", sec(-1))]);
    // A catch-up fire goes out with the old spec…
    assert!(is_enqueue(&h.expect()));
    // …and the pause arrives while it is in flight: nothing is staged, yet the answer must
    // not come before that call has landed.
    let id = change(&mut h, upsert(&changed(&every, |s| s.paused = true), 2));
    assert!(h.next().is_none());
    assert_eq!(h.reply_to(id), None);
    h.all_enqueued(1);
    assert!(h.next().is_none());
    assert_eq!(
        h.reply_to(id),
        Some(Reply::JobChanged(Ok(ChangeApplied::default())))
    );
}

#[test]
fn a_restage_that_finds_nothing_staged_stages_the_fire_again() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.lead(7, std::slice::from_ref(&every));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("every", sec(0))]);
    assert!(is_stage(&h.expect()));
    // The stage's answer is lost (and it was not applied); the job changes meanwhile.
    h.answer(Outcome::Sent(Err(lost())));
    let v2 = changed(&every, |s| s.function.body = "v2".into());
    let id = change(&mut h, upsert(&v2, 2));
    h.at(at(100));
    // Remembered as maybe staged with the old spec: restaged first; Redis has no trace.
    assert_eq!(amend(&h.expect()), (vec![], vec![(sec(1), 2), (sec(2), 2)]));
    h.amended(&[AmendOutcome::NotStaged { queued: false }; 2]);
    let a = h.expect();
    assert!(is_stage(&a));
    if let Action::Stage { fires, .. } = &a {
        assert!(fires
            .iter()
            .all(|p| p.version == 2 && p.job.spec.function.body == "v2"));
        assert_eq!(fires.len(), 2);
    }
    h.all_enqueued(2);
    h.next();
    assert!(matches!(h.reply_to(id), Some(Reply::JobChanged(Ok(_)))));
}

#[test]
fn a_lost_amend_is_retried_and_the_api_still_waits() {
    let (mut h, every) = staged();
    let id = change(&mut h, upsert(&changed(&every, |s| s.paused = true), 2));
    let first = h.expect();
    h.answer(Outcome::Amended(Err(lost())));
    h.at(at(100));
    let again = h.expect();
    assert_eq!(amend(&again), amend(&first));
    assert_eq!(h.reply_to(id), None);
    h.amended(&[AmendOutcome::Withdrawn; 2]);
    h.next();
    assert!(h.reply_to(id).is_some());
}

#[test]
fn a_job_given_a_delay_has_its_staged_tasks_withdrawn_and_is_enqueued_at_its_slot() {
    let (mut h, every) = staged();
    let delayed = changed(&every, |s| s.function.delay = Some(60));
    change(&mut h, upsert(&delayed, 2));
    assert_eq!(amend(&h.expect()), (vec![sec(1), sec(2)], vec![]));
    h.amended(&[AmendOutcome::Withdrawn; 2]);
    h.at(sec(1));
    let mut direct = Vec::new();
    while let Some(a) = h.next() {
        if is_enqueue(&a) {
            direct.extend(sent(&a));
        }
        h.answer(ok(&a));
    }
    assert_eq!(direct, vec![("every".into(), sec(1))]);
}

#[test]
fn a_change_a_dead_leader_did_not_apply_is_applied_by_its_successor_before_the_release() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    let gone = job("gone", "* * * * * *", json!({}));
    let unseen = job("unseen", "* * * * * *", json!({}));
    let v5 = changed(&every, |s| s.function.body = "v5".into());
    h.leadership(Leadership::Leader {
        token: 9,
        since: t0(),
    });
    // The successor's view: `every` at version 5, `gone` deleted; the view was read at index
    // 10, but `unseen` was staged with version 12 (created after the view was read).
    h.jobs(10, vec![upsert(&v5, 5)]);
    assert!(matches!(h.expect(), Action::RaiseFence { .. }));
    h.answer(Outcome::FenceRaised(Ok(9)));
    assert!(matches!(h.expect(), Action::ReadStaged));
    let staged = |j: &str, v| StagedFire {
        slot: sec(1),
        fire_id: scheduled(j, sec(1)).fire_id,
        job_id: j.into(),
        version: v,
    };
    h.answer(Outcome::StagedRead(Ok(StagedRead {
        slots: vec![sec(1)],
        fires: vec![staged("every", 3), staged("gone", 4), staged("unseen", 12)],
        unrecorded: false,
    })));
    h.job_index();
    let _ = (gone, unseen.clone());
    match h.expect() {
        Action::Amend {
            withdraw, restage, ..
        } => {
            assert_eq!(
                withdraw.iter().map(|f| &*f.job_id).collect::<Vec<_>>(),
                ["gone"]
            );
            assert_eq!(restage.len(), 1);
            assert_eq!((restage[0].fire.slot, restage[0].version), (sec(1), 5));
            assert_eq!(restage[0].job.spec.function.body, "v5");
        }
        other => panic!("{other:?}"),
    }
    h.amended(&[AmendOutcome::Withdrawn, AmendOutcome::Replaced]);
    // `unseen` is newer than the view: kept. The view catches up and has it: it stays.
    h.jobs(13, vec![upsert(&unseen, 12)]);
    let a = h.expect();
    assert!(matches!(a, Action::ReadCursors { .. }), "{a:?}");
}

#[test]
fn a_staged_fire_of_a_job_the_view_lacks_is_withdrawn_once_the_view_is_newer_than_its_stage() {
    let mut h = H::new();
    h.leadership(Leadership::Leader {
        token: 9,
        since: t0(),
    });
    h.jobs(10, vec![]);
    h.expect();
    h.answer(Outcome::FenceRaised(Ok(9)));
    h.expect();
    h.answer(Outcome::StagedRead(Ok(StagedRead {
        slots: vec![sec(2)],
        fires: vec![StagedFire {
            slot: sec(2),
            fire_id: scheduled("late", sec(2)).fire_id,
            job_id: "late".into(),
            version: 12,
        }],
        unrecorded: false,
    })));
    h.job_index();
    // The view (index 10) is older than the stage (12): nothing to say yet.
    assert!(h.next().is_none());
    // A newer view without the job: it was deleted after the stage; withdrawn.
    h.jobs(15, vec![]);
    assert_eq!(amend(&h.expect()), (vec![sec(2)], vec![]));
}

#[test]
fn a_change_to_a_job_waiting_for_its_cursor_is_planned_with_the_new_spec() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.lead(7, std::slice::from_ref(&every));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    let v2 = changed(&every, |s| s.function.body = "v2".into());
    change(&mut h, upsert(&v2, 2));
    h.cursors(&[("every", sec(-1))]);
    match h.expect() {
        Action::Enqueue { fires, .. } => {
            assert!(fires
                .iter()
                .all(|p| p.version == 2 && p.job.spec.function.body == "v2"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_resumed_job_is_caught_up_from_its_cursor_by_policy() {
    let (mut h, every) = staged();
    let paused = changed(&every, |s| s.paused = true);
    change(&mut h, upsert(&paused, 2));
    h.expect();
    h.amended(&[AmendOutcome::Withdrawn; 2]);
    // Resumed at 10 s; the withdrawals moved the cursor back to 0 (Redis's doing).
    h.at(sec(10));
    h.jobs(3, vec![upsert(&changed(&every, |s| s.paused = false), 3)]);
    let mut a = h.expect();
    while !matches!(a, Action::ReadCursors { .. }) {
        h.answer(ok(&a));
        a = h.expect();
    }
    h.cursors(&[("every", sec(0))]);
    let a = h.expect();
    assert!(is_enqueue(&a));
    assert_eq!(
        sent(&a).len(),
        10,
        "slots 1..=10 missed while paused, policy all"
    );
}

#[test]
fn a_command_while_fence_blocked_is_applied_to_the_view_and_refused() {
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.leadership(Leadership::Leader {
        token: 7,
        since: t0(),
    });
    h.jobs(1, vec![upsert(&every, 1)]);
    h.expect();
    h.answer(Outcome::FenceRaised(Ok(99)));
    let id = change(&mut h, upsert(&changed(&every, |s| s.paused = true), 2));
    h.next();
    assert_eq!(
        h.reply_to(id),
        Some(Reply::JobChanged(Err(CommandError::FenceBlocked {
            fence: 99,
            token: 7
        })))
    );
}

#[test]
fn a_term_plans_nothing_before_its_view_holds_every_write_answered_before_it_began() {
    // The store's watch lags: it still has `every` active at index 5, though the job was
    // paused at index 11 (answered while no leader was there to be told).
    let mut h = H::new();
    let every = job("every", "* * * * * *", json!({}));
    h.leadership(Leadership::Leader {
        token: 20,
        since: t0(),
    });
    h.jobs(5, vec![upsert(&every, 3)]);
    h.expect();
    h.answer(Outcome::FenceRaised(Ok(20)));
    h.expect();
    h.answer(Outcome::StagedRead(Ok(StagedRead::default())));
    assert!(matches!(h.expect(), Action::ReadJobIndex));
    h.answer(Outcome::JobIndex(Ok(11)));
    // Nothing on a view older than the term's start, however long.
    h.at(sec(5));
    assert!(h.next().is_none());
    assert_eq!(h.leader.poll_timeout(), None);
    // The watch catches up: the pause is in the first view the term plans on.
    h.jobs(11, vec![upsert(&changed(&every, |s| s.paused = true), 11)]);
    assert!(h.next().is_none(), "a paused job has nothing to plan");
    h.jobs(12, vec![upsert(&every, 12)]);
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
}

#[test]
fn slots_due_before_a_change_that_the_new_schedule_also_has_are_not_lost() {
    let mut h = H::new();
    let two = job("two", "*/2 * * * * *", json!({}));
    h.lead(7, std::slice::from_ref(&two));
    assert!(matches!(h.expect(), Action::ReadCursors { .. }));
    h.cursors(&[("two", sec(0))]);
    let a = h.expect();
    assert_eq!(sent(&a), vec![("two".into(), sec(2))]);
    h.all_enqueued(1);
    h.at(sec(2));
    let mut a = h.expect();
    while !matches!(a, Action::Release { .. }) {
        h.answer(ok(&a));
        a = h.expect();
    }
    // The release hangs (Redis slow to answer) until 10 s; at 9 s the job becomes */4.
    h.at(sec(9));
    change(
        &mut h,
        upsert(&changed(&two, |s| s.frequency = "*/4 * * * * *".into()), 2),
    );
    h.at(sec(10));
    h.released(&[(sec(2), 1)]);
    let mut direct = Vec::new();
    while let Some(a) = h.next() {
        if is_enqueue(&a) {
            direct.extend(sent(&a));
        }
        h.answer(ok(&a));
    }
    // 4 and 8 were due under both schedules and never enqueued: they go out now (late);
    // 6 and 10 are not slots of the new schedule.
    assert_eq!(direct, vec![("two".into(), sec(4)), ("two".into(), sec(8))]);
}

#[test]
fn the_same_inputs_give_the_same_actions() {
    let run = || {
        let mut h = H::new();
        let jobs: Vec<_> = (0..20)
            .map(|i| job(&format!("j{i}"), "*/2 * * * * *", json!({})))
            .collect();
        h.lead(7, &jobs);
        let mut log = Vec::new();
        for ms in (0..6000).step_by(250) {
            h.at(at(ms));
            if ms == 2500 {
                change(&mut h, upsert(&changed(&jobs[3], |s| s.paused = true), 50));
                change(
                    &mut h,
                    upsert(&changed(&jobs[5], |s| s.function.body = "x".into()), 51),
                );
            }
            while let Some(a) = h.next() {
                log.push(format!("{a:?}"));
                h.answer(match &a {
                    Action::ReadCursors { .. } => Outcome::Cursors(Ok(Default::default())),
                    other => ok(other),
                });
            }
        }
        log.push(format!("{:?}", h.replies));
        log
    };
    let (a, b) = (run(), run());
    assert!(a.len() > 10);
    assert_eq!(a, b);
}
