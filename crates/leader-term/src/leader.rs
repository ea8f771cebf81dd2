//! [`Leader`]: one node, following, leading a term, or deposed; the one Redis call in flight;
//! the one backoff.
//!
//! Must not: decide anything about fires (the term does), or wait for anything.

use chrono::{DateTime, Utc};

use crate::backoff::Backoff;
use crate::input::{Command, CommandId, JobUpdate, Leadership};
use crate::outcome::Outcome;
use crate::output::{Action, CommandError, Event, Reply, Status, TermEnd};
use crate::term::{Call, Phase, Term};
use crate::{Config, Out};

enum State {
    Following,
    Leading(Box<Term>),
    /// A script refused our token: we do not lead with it again, whatever the election says,
    /// until the election moves on.
    Deposed {
        token: u64,
    },
}

/// One node's leader logic. See the crate docs for the order to call things.
pub struct Leader {
    config: Config,
    state: State,
    /// The Redis call made and not yet answered, with the token of the term that made it.
    in_flight: Option<(u64, Call)>,
    backoff: Backoff,
    out: Out,
}

impl Leader {
    /// A follower.
    pub fn new(config: Config) -> Leader {
        let backoff = Backoff::new(config.backoff_start, config.backoff_max);
        Leader {
            config,
            state: State::Following,
            in_flight: None,
            backoff,
            out: Out::default(),
        }
    }

    /// The election's view changed (call it on every change; repeating one is harmless).
    pub fn handle_leadership(&mut self, _now: DateTime<Utc>, leadership: Leadership) {
        let token = match (&self.state, leadership) {
            (State::Leading(t), Leadership::Leader { token, .. }) if t.token == token => return,
            (State::Deposed { token: d }, Leadership::Leader { token, .. }) if *d == token => {
                return
            }
            (_, Leadership::Leader { token, since }) => Some((token, since)),
            (_, Leadership::Follower) => None,
        };
        self.end_term(TermEnd::Lost);
        self.state = match token {
            Some((token, since)) => {
                self.backoff.reset();
                self.out.event(Event::TermStarted { token, since });
                let lookahead =
                    chrono::Duration::from_std(self.config.lookahead).unwrap_or_default();
                State::Leading(Box::new(Term::new(token, since, lookahead)))
            }
            None => State::Following,
        };
    }

    /// The job set changed. While leading, the first update after `Leader{..}` must hold every
    /// job; followers ignore updates.
    pub fn handle_jobs(&mut self, now: DateTime<Utc>, update: JobUpdate) {
        if let State::Leading(term) = &mut self.state {
            term.jobs(now, update, &mut self.out);
        }
    }

    /// A job whose fires the driver could not make for a while (answered `Invalid`) can be
    /// made again: while leading, its slots since its cursor are planned once more by its
    /// catch-up policy (as a resumed job's are). Nothing for an unknown or paused job.
    pub fn handle_catch_up(&mut self, now: DateTime<Utc>, job: &str) {
        if let State::Leading(term) = &mut self.state {
            term.recover(now, job);
        }
    }

    /// An API request; its answer comes as an [`Action::Reply`] with the same `id`.
    pub fn handle_command(&mut self, now: DateTime<Utc>, id: CommandId, command: Command) {
        match &mut self.state {
            State::Leading(term) => term.command(now, id, command, &mut self.out),
            State::Following | State::Deposed { .. } => {
                let e = CommandError::NotLeader;
                let reply = match command {
                    Command::ManualRun { .. } => Reply::ManualRun(Err(e)),
                    Command::ResetFence => Reply::FenceReset(Err(e)),
                    Command::JobChanged(_) => Reply::JobChanged(Err(e)),
                    Command::Backfill { .. } => Reply::Backfill(Err(e)),
                };
                self.out.reply(id, reply);
            }
        }
    }

    /// The answer of the last Redis call.
    pub fn handle_outcome(&mut self, now: DateTime<Utc>, outcome: Outcome) {
        let Some((token, call)) = self.in_flight.take() else {
            return;
        };
        let State::Leading(term) = &mut self.state else {
            return;
        };
        if term.token != token {
            return;
        }
        if let Some(end) = term.outcome(now, call, outcome, &mut self.backoff, &mut self.out) {
            self.end_term(end);
            if let TermEnd::Deposed { .. } = end {
                self.state = State::Deposed { token };
            }
        }
    }

    /// The next thing to do at `now`, if any. Call until `None`.
    pub fn poll_action(&mut self, now: DateTime<Utc>) -> Option<Action> {
        loop {
            if let Some((id, reply)) = self.out.replies.pop_front() {
                return Some(Action::Reply { id, reply });
            }
            if self.in_flight.is_some() || !self.backoff.ready(now) {
                return None;
            }
            let State::Leading(term) = &mut self.state else {
                return None;
            };
            match term.poll(now, &self.config, &mut self.out) {
                Some((action, call)) => {
                    if call.fenced() {
                        term.proof_sent();
                    }
                    self.in_flight = Some((term.token, call));
                    return Some(action);
                }
                None if self.out.replies.is_empty() => return None,
                None => {}
            }
        }
    }

    /// When to poll again if no input comes (`None`: only an input can give work).
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        if self.in_flight.is_some() {
            return None;
        }
        let State::Leading(term) = &self.state else {
            return None;
        };
        let work = term
            .next_work(chrono::Duration::from_std(self.config.prepare_ahead).unwrap_or_default())?;
        Some(self.backoff.until().map_or(work, |u| u.max(work)))
    }

    /// The next event to log or count.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// What the node is doing, for the API.
    pub fn status(&self) -> Status {
        match &self.state {
            State::Leading(t) => match t.phase {
                Phase::Blocked { fence } => Status::FenceBlocked {
                    token: t.token,
                    since: t.since,
                    fence,
                },
                _ => Status::Leading {
                    token: t.token,
                    since: t.since,
                },
            },
            State::Following | State::Deposed { .. } => Status::Follower,
        }
    }

    /// Whether a Redis call was made and its outcome not yet handled.
    pub fn awaits_outcome(&self) -> bool {
        self.in_flight.is_some()
    }

    fn end_term(&mut self, end: TermEnd) {
        let State::Leading(term) = &mut self.state else {
            return;
        };
        let error = match end {
            TermEnd::Lost => CommandError::NotLeader,
            TermEnd::Deposed { fence } => CommandError::Fenced(fence),
        };
        // A manual run in flight is answered now; its late outcome is then discarded.
        if let Some((
            token,
            Call::Send {
                manual: Some(id), ..
            },
        )) = &self.in_flight
        {
            if *token == term.token {
                self.out.reply(*id, Reply::ManualRun(Err(error.clone())));
            }
        }
        if let Some((token, Call::ResetFence { replies })) = &mut self.in_flight {
            if *token == term.token {
                for id in replies.drain(..) {
                    self.out.reply(id, Reply::FenceReset(Err(error.clone())));
                }
            }
        }
        term.end(&error, &mut self.out);
        self.out.event(Event::TermEnded {
            token: term.token,
            end,
        });
        self.state = State::Following;
    }
}
