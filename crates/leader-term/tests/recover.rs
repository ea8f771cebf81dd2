//! `handle_catch_up`: a job whose fires were answered `Invalid` for a while (its route was
//! gone) is caught up from its cursor by its policy once the driver says it can fire again.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use leader_term::{Action, FireOutcome, Outcome};

#[test]
fn fires_refused_as_invalid_are_caught_up_by_policy_when_the_job_can_fire_again() {
    let (mut h, _every) = every_second();
    // Slots 1..=5 come out and are refused (the driver could not make their tasks).
    let mut refused = 0;
    for s in 1..=5 {
        h.at(sec(s));
        while let Some(a) = h.next() {
            let n = match &a {
                Action::Enqueue { fires, .. } | Action::Stage { fires, .. } => fires.len(),
                _ => {
                    h.answer(ok(&a));
                    continue;
                }
            };
            refused += n;
            h.answer(Outcome::Sent(Ok(vec![FireOutcome::Invalid; n])));
        }
    }
    assert!(refused >= 5, "{refused}");
    // At 10 s it can fire again: the cursor (still 0: nothing reached Redis) is read, and
    // policy `all` sends every slot since.
    h.at(sec(10));
    h.leader.handle_catch_up(sec(10), "every");
    let mut a = h.expect();
    while !matches!(a, Action::ReadCursors { .. }) {
        h.answer(ok(&a));
        a = h.expect();
    }
    h.cursors(&[("every", sec(0))]);
    let a = h.expect();
    assert!(is_enqueue(&a), "{a:?}");
    let slots: Vec<i64> = sent(&a)
        .iter()
        .map(|(_, s)| s.timestamp() - sec(0).timestamp())
        .collect();
    assert_eq!(
        slots,
        (1..=10).collect::<Vec<_>>(),
        "slots 1..=10 by policy all"
    );

    // Unknown or paused jobs: nothing.
    h.leader.handle_catch_up(sec(10), "nobody");
}
