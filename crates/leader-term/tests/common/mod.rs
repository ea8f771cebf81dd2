//! A test driver for the machine: explicit instants, answers written by the test.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cron_core::{Fire, FireKind, Job, JobSpec};
use leader_term::{
    Action, AmendOutcome, Command, CommandId, Config, Event, FireOutcome, JobEvent, JobUpdate,
    Leader, Leadership, Outcome, Refused, ReleasedSlot, Reply, StagedRead,
};

/// 2026-11-26 12:00:00 UTC, the tests' origin.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

/// `t0` plus `ms` milliseconds.
pub fn at(ms: i64) -> DateTime<Utc> {
    t0() + Duration::milliseconds(ms)
}

/// `t0` plus `s` seconds.
pub fn sec(s: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(s)
}

/// A job firing on `frequency`, created 10 minutes before `t0`, with extra spec fields.
pub fn job(id: &str, frequency: &str, extra: serde_json::Value) -> Arc<Job> {
    let mut spec = serde_json::json!({
        "id": id,
        "function": {"app": "a", "path": "/p", "image": "i"},
        "frequency": frequency,
        "created_at": (t0() - Duration::minutes(10)).to_rfc3339(),
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    Arc::new(
        JobSpec::from_json(spec.to_string().as_bytes())
            .unwrap()
            .validate()
            .unwrap(),
    )
}

/// The same job with a changed field.
pub fn changed(j: &Job, change: impl FnOnce(&mut JobSpec)) -> Arc<Job> {
    let mut spec = j.spec.clone();
    change(&mut spec);
    Arc::new(spec.validate().unwrap())
}

pub fn upsert(job: &Arc<Job>, version: u64) -> JobEvent {
    JobEvent::Upsert {
        job: job.clone(),
        version,
    }
}

pub fn scheduled(job: &str, slot: DateTime<Utc>) -> Fire {
    Fire::scheduled(job.into(), slot, FireKind::Scheduled)
}

/// The tests' settings: the defaults, a release prepared 500 ms ahead.
pub fn config() -> Config {
    Config {
        prepare_ahead: std::time::Duration::from_millis(500),
        ..Config::default()
    }
}

/// The machine, a clock, and what it said.
pub struct H {
    pub leader: Leader,
    pub now: DateTime<Utc>,
    pub events: Vec<Event>,
    pub replies: Vec<(CommandId, Reply)>,
    next_id: u64,
}

impl H {
    /// The machine with the default settings, but preparing a release half a second ahead
    /// (the instants the tests were written with).
    pub fn new() -> H {
        H {
            leader: Leader::new(config()),
            now: t0(),
            events: Vec::new(),
            replies: Vec::new(),
            next_id: 0,
        }
    }

    /// Moves the clock (never backwards unless a test means it).
    pub fn at(&mut self, now: DateTime<Utc>) -> &mut H {
        self.now = now;
        self
    }

    /// The next Redis action (replies are collected on the way), events drained.
    pub fn next(&mut self) -> Option<Action> {
        loop {
            let a = self.leader.poll_action(self.now);
            self.drain_events();
            match a {
                Some(Action::Reply { id, reply }) => self.replies.push((id, reply)),
                other => return other,
            }
        }
    }

    /// The next action, which must exist.
    pub fn expect(&mut self) -> Action {
        match self.next() {
            Some(a) => a,
            None => panic!("no action at {}", self.now),
        }
    }

    pub fn drain_events(&mut self) {
        while let Some(e) = self.leader.poll_event() {
            self.events.push(e);
        }
    }

    pub fn leadership(&mut self, l: Leadership) {
        self.leader.handle_leadership(self.now, l);
        self.drain_events();
    }

    pub fn answer(&mut self, outcome: Outcome) {
        self.leader.handle_outcome(self.now, outcome);
        self.drain_events();
    }

    pub fn command(&mut self, command: Command) -> CommandId {
        self.next_id += 1;
        let id = CommandId(self.next_id);
        self.leader.handle_command(self.now, id, command);
        id
    }

    pub fn reply_to(&mut self, id: CommandId) -> Option<Reply> {
        self.replies
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| r.clone())
    }

    pub fn jobs(&mut self, index: u64, events: Vec<JobEvent>) {
        self.leader
            .handle_jobs(self.now, JobUpdate { index, events });
    }

    /// Leads with `token`, the fence at `token`, nothing staged, these jobs (versions 1..).
    pub fn lead(&mut self, token: u64, jobs: &[Arc<Job>]) {
        self.leader.handle_leadership(
            self.now,
            Leadership::Leader {
                token,
                since: self.now,
            },
        );
        let events = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| upsert(j, i as u64 + 1))
            .collect();
        self.jobs(jobs.len() as u64 + 1, events);
        assert!(matches!(self.expect(), Action::RaiseFence { token: t } if t == token));
        self.answer(Outcome::FenceRaised(Ok(token)));
        assert!(matches!(self.expect(), Action::ReadStaged));
        self.answer(Outcome::StagedRead(Ok(StagedRead::default())));
        self.job_index();
    }

    /// Answers the term's `ReadJobIndex` with 1 (a view read at any index is new enough).
    pub fn job_index(&mut self) {
        assert!(matches!(self.expect(), Action::ReadJobIndex));
        self.answer(Outcome::JobIndex(Ok(1)));
    }

    /// Answers a `ReadCursors` with these cursors.
    pub fn cursors(&mut self, cursors: &[(&str, DateTime<Utc>)]) {
        let map: HashMap<String, DateTime<Utc>> =
            cursors.iter().map(|(j, c)| (j.to_string(), *c)).collect();
        self.answer(Outcome::Cursors(Ok(map)));
    }

    /// Every fire of a send answered `Enqueued`.
    pub fn all_enqueued(&mut self, n: usize) {
        self.answer(Outcome::Sent(Ok(vec![FireOutcome::Enqueued; n])));
    }

    pub fn released(&mut self, slots: &[(DateTime<Utc>, u64)]) {
        let slots = slots
            .iter()
            .map(|(slot, tasks)| ReleasedSlot {
                slot: *slot,
                tasks: *tasks,
            })
            .collect();
        self.answer(Outcome::Released(Ok(slots)));
    }

    pub fn amended(&mut self, outcomes: &[AmendOutcome]) {
        self.answer(Outcome::Amended(Ok(outcomes.to_vec())));
    }
}

/// A call whose answer was lost.
pub fn lost() -> Refused {
    Refused::Failed("connection reset by peer".into())
}

/// The fires of a send action, as (job, slot).
pub fn sent(action: &Action) -> Vec<(String, DateTime<Utc>)> {
    let fires = match action {
        Action::Enqueue { fires, .. } | Action::Stage { fires, .. } => fires,
        other => panic!("not a send: {other:?}"),
    };
    fires
        .iter()
        .map(|p| (p.fire.job_id.to_string(), p.fire.slot))
        .collect()
}

/// A successful answer to any call: every fire enqueued, every withdrawal and restage done,
/// nothing released or staged, no cursor.
pub fn ok(a: &Action) -> Outcome {
    match a {
        Action::RaiseFence { token } => Outcome::FenceRaised(Ok(*token)),
        Action::ResetFence { .. } => Outcome::FenceReset(Ok(())),
        Action::ReadStaged => Outcome::StagedRead(Ok(StagedRead::default())),
        Action::ReadJobIndex => Outcome::JobIndex(Ok(0)),
        Action::ReadCursors { .. } => Outcome::Cursors(Ok(Default::default())),
        Action::Enqueue { fires, .. } | Action::Stage { fires, .. } => {
            Outcome::Sent(Ok(vec![FireOutcome::Enqueued; fires.len()]))
        }
        Action::Amend {
            withdraw, restage, ..
        } => Outcome::Amended(Ok([
            vec![AmendOutcome::Withdrawn; withdraw.len()],
            vec![AmendOutcome::Replaced; restage.len()],
        ]
        .concat())),
        Action::PrepareRelease { .. } => Outcome::Prepared { ready: true },
        Action::Release { .. } => Outcome::Released(Ok(vec![])),
        Action::RecordHistory { .. } => Outcome::Recorded(Ok(false)),
        Action::Reply { .. } => panic!("a reply has no outcome"),
    }
}

pub fn is_stage(a: &Action) -> bool {
    matches!(a, Action::Stage { .. })
}

pub fn is_enqueue(a: &Action) -> bool {
    matches!(a, Action::Enqueue { .. })
}
