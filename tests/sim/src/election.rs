//! A node's side of the election, as consul-lock's `election.rs` and `node.rs` play it, written
//! as a small state machine over the simulated clock.
//!
//! The rules it keeps (see consul-lock's module docs): the service is registered and its TTL
//! check passed every TTL/2 (retried every second); a session bound to that check and to
//! `serfHealth`, renewed every TTL/2 (every second after an error); a blocking read of the lock
//! key, then a txn `lock` whose ModifyIndex is the token; a lock-delay refusal is retried after
//! 250 ms; a key found held by our own session (an acquire whose answer was lost) is ours.
//! Leading, a consistent read watches the key (at most TTL/2 each); leadership ends, and is
//! published first, on a renew answered 404, the key lost, or no renew or read proving the
//! session within TTL − TTL/20 of when it was *sent*. After a loss the session is released and
//! destroyed in the background and the node waits lock-delay + 2 s before contending again.
//!
//! consul-lock's election is async code and not this one: this is its model, and where the two
//! differ the simulation proves nothing about the difference (RELIABILITY.md). Must not touch
//! Consul's state itself: it asks for calls (`Out::Call`) and hears their answers.

use crate::consul::Refusal;
use crate::world::{Micros, MS, SEC};

/// What a call is for; an answer goes back to the part that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Registering the service or passing its check.
    Check,
    /// Renewing the session.
    Renew,
    /// Creating a session, reading the key to contend, acquiring.
    Elect,
    /// The leader's consistent read of the key.
    Monitor,
    /// Releasing and destroying a lost session (answers ignored).
    Cleanup,
}

/// One call to Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Req {
    /// Register the service and its check.
    Register,
    /// Pass the check.
    Pass,
    /// Create the lock session.
    Create,
    /// Renew this session.
    Renew(String),
    /// Read the lock key; block while its index is `index` (0: answer at once), at most `wait`.
    Read {
        /// The index seen last.
        index: u64,
        /// The longest wait.
        wait: Micros,
    },
    /// Acquire the lock key with this session.
    Lock(String),
    /// Release the lock key held by this session.
    Release(String),
    /// Destroy this session.
    Destroy(String),
}

/// Consul's answer (or the client's error: refused, timed out, lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rep {
    /// The service is registered.
    Registered,
    /// The check was passed (`false`: the agent does not know it).
    Passed(bool),
    /// The session, or `None` when Consul refused to create it (its check is critical).
    Created(Option<String>),
    /// Renewed (`false`: 404, the session is gone).
    Renewed(bool),
    /// The key's holder and index.
    Read {
        /// The holding session.
        holder: Option<String>,
        /// The index to block on next.
        index: u64,
    },
    /// The acquire's answer.
    Locked(Result<u64, Refusal>),
    /// A release or destroy was done.
    Done,
    /// No answer: the call failed, or its answer was lost.
    Failed,
}

/// What the election asks of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Make this call (the answer comes back with the same purpose and epoch).
    Call(Purpose, u64, Req),
    /// Leadership changed: `Some(token)` leading, `None` following.
    Lead(Option<u64>),
}

#[derive(Debug, Clone)]
enum State {
    /// Waiting until `until` before creating a session.
    Idle { until: Micros },
    /// The create is in flight.
    Creating,
    /// Reading the key (`busy`) or waiting until `retry`, with the index seen last.
    Contending {
        index: u64,
        busy: bool,
        retry: Micros,
    },
    /// Holding the lock.
    Leading { token: u64 },
}

/// Consul's settings for a node.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The session TTL (also the check's TTL).
    pub ttl: Micros,
    /// The session's lock-delay.
    pub lock_delay: Micros,
}

/// One node's election.
#[derive(Debug, Clone)]
pub struct Election {
    s: Settings,
    state: State,
    /// Bumped with every new session: answers of an older one are ignored.
    epoch: u64,
    session: Option<String>,
    registered: bool,
    check_busy: bool,
    check_at: Micros,
    renew_busy: bool,
    renew_at: Micros,
    /// When the last successful proof (create, renew, acquire, consistent read) was sent.
    last_proof: Micros,
    monitor_busy: bool,
    monitor_at: Micros,
    monitor_index: u64,
    /// Consecutive failures of the session's create, reads or acquire (the backoff).
    failures: u32,
    out: Vec<Out>,
}

/// consul-lock's pause between acquire attempts under a lock-delay.
const LOCK_DELAY_RETRY: Micros = 250 * MS;
/// Retry of a failed renew, check or watch read.
const RETRY: Micros = SEC;
/// Added to the lock-delay before contending again after a loss.
const REJOIN_PAUSE: Micros = 2 * SEC;
/// A follower's blocking read waits at most this.
const FOLLOW_WAIT: Micros = 60 * SEC;

impl Election {
    /// A node that just started (it registers its service first).
    pub fn new(s: Settings, now: Micros) -> Election {
        Election {
            s,
            state: State::Idle { until: now },
            epoch: 0,
            session: None,
            registered: false,
            check_busy: false,
            check_at: now,
            renew_busy: false,
            renew_at: Micros::MAX,
            last_proof: 0,
            monitor_busy: false,
            monitor_at: Micros::MAX,
            monitor_index: 0,
            failures: 0,
            out: Vec::new(),
        }
    }

    /// The token while leading.
    pub fn token(&self) -> Option<u64> {
        match self.state {
            State::Leading { token } => Some(token),
            _ => None,
        }
    }

    /// What to do now; the election's outputs.
    pub fn wake(&mut self, now: Micros) -> Vec<Out> {
        if !self.check_busy && now >= self.check_at {
            self.check_busy = true;
            let req = if self.registered {
                Req::Pass
            } else {
                Req::Register
            };
            self.call(Purpose::Check, req);
        }
        if let Some(session) = self.session.clone() {
            if !self.renew_busy && now >= self.renew_at {
                self.renew_busy = true;
                self.call(Purpose::Renew, Req::Renew(session));
            }
        }
        match self.state.clone() {
            State::Idle { until } if now >= until && self.registered => {
                self.state = State::Creating;
                self.call(Purpose::Elect, Req::Create);
            }
            State::Contending {
                index,
                busy: false,
                retry,
            } if now >= retry => {
                self.state = State::Contending {
                    index,
                    busy: true,
                    retry,
                };
                let wait = if index == 0 { 0 } else { FOLLOW_WAIT };
                self.call(Purpose::Elect, Req::Read { index, wait });
            }
            State::Leading { .. } => {
                if now >= self.proof_deadline() {
                    self.lose(now);
                } else if !self.monitor_busy && now >= self.monitor_at {
                    self.monitor_busy = true;
                    let (index, wait) = (self.monitor_index, self.s.ttl / 2);
                    self.call(Purpose::Monitor, Req::Read { index, wait });
                }
            }
            _ => {}
        }
        std::mem::take(&mut self.out)
    }

    /// When the election must be woken next.
    pub fn next_wake(&self) -> Micros {
        let mut t = Micros::MAX;
        if !self.check_busy {
            t = t.min(self.check_at);
        }
        if self.session.is_some() && !self.renew_busy {
            t = t.min(self.renew_at);
        }
        match self.state {
            State::Idle { until } if self.registered => t = t.min(until),
            State::Contending {
                busy: false, retry, ..
            } => t = t.min(retry),
            State::Leading { .. } => {
                t = t.min(self.proof_deadline());
                if !self.monitor_busy {
                    t = t.min(self.monitor_at);
                }
            }
            _ => {}
        }
        t
    }

    fn proof_deadline(&self) -> Micros {
        self.last_proof + self.s.ttl - self.s.ttl / 20
    }

    fn call(&mut self, purpose: Purpose, req: Req) {
        self.out.push(Out::Call(purpose, self.epoch, req));
    }

    fn backoff(&mut self) -> Micros {
        self.failures = (self.failures + 1).min(6);
        ((200 * MS) << (self.failures - 1)).min(5 * SEC)
    }

    /// The answer to a call sent at `sent`.
    pub fn answer(
        &mut self,
        purpose: Purpose,
        epoch: u64,
        rep: Rep,
        sent: Micros,
        now: Micros,
    ) -> Vec<Out> {
        if purpose == Purpose::Check {
            self.check_busy = false;
            match rep {
                Rep::Registered => {
                    self.registered = true;
                    self.check_at = now + self.s.ttl / 2;
                }
                Rep::Passed(true) => self.check_at = sent + self.s.ttl / 2,
                Rep::Passed(false) => {
                    self.registered = false;
                    self.check_at = now;
                }
                _ => self.check_at = now + RETRY,
            }
            return self.wake(now);
        }
        if epoch != self.epoch || purpose == Purpose::Cleanup {
            return self.wake(now);
        }
        match (purpose, rep) {
            (Purpose::Renew, rep) => {
                self.renew_busy = false;
                match rep {
                    Rep::Renewed(true) => {
                        self.last_proof = self.last_proof.max(sent);
                        self.renew_at = sent + self.s.ttl / 2;
                    }
                    Rep::Renewed(false) => self.session_gone(now),
                    _ => self.renew_at = now + RETRY,
                }
            }
            (Purpose::Monitor, rep) => {
                self.monitor_busy = false;
                match rep {
                    Rep::Read { holder, index } => {
                        if holder.is_some() && holder == self.session {
                            self.last_proof = self.last_proof.max(sent);
                            self.monitor_index = index;
                            self.monitor_at = now;
                        } else if self.token().is_some() {
                            self.lose(now);
                        }
                    }
                    _ => self.monitor_at = now + RETRY,
                }
            }
            (Purpose::Elect, rep) => self.elect(rep, sent, now),
            _ => {}
        }
        self.wake(now)
    }

    fn elect(&mut self, rep: Rep, sent: Micros, now: Micros) {
        match (self.state.clone(), rep) {
            (State::Creating, Rep::Created(Some(id))) => {
                self.failures = 0;
                self.session = Some(id);
                self.last_proof = sent;
                self.renew_busy = false;
                self.renew_at = sent + self.s.ttl / 2;
                self.state = State::Contending {
                    index: 0,
                    busy: false,
                    retry: now,
                };
            }
            (State::Creating, _) => {
                let pause = self.backoff();
                self.state = State::Idle { until: now + pause };
            }
            (State::Contending { .. }, Rep::Read { holder, index }) => {
                self.failures = 0;
                match holder {
                    // Ours already: an acquire whose answer was lost.
                    Some(h) if Some(&h) == self.session.as_ref() => self.lead(index, sent),
                    Some(_) => {
                        self.state = State::Contending {
                            index,
                            busy: false,
                            retry: now,
                        }
                    }
                    None => {
                        let session = self.session.clone().unwrap_or_default();
                        self.state = State::Contending {
                            index,
                            busy: true,
                            retry: now,
                        };
                        self.call(Purpose::Elect, Req::Lock(session));
                    }
                }
            }
            (State::Contending { .. }, Rep::Locked(Ok(token))) => self.lead(token, sent),
            (State::Contending { .. }, Rep::Locked(Err(Refusal::InvalidSession))) => {
                self.session_gone(now)
            }
            (State::Contending { .. }, Rep::Locked(Err(Refusal::LockDelay))) => {
                self.state = State::Contending {
                    index: 0,
                    busy: false,
                    retry: now + LOCK_DELAY_RETRY,
                }
            }
            (State::Contending { .. }, Rep::Locked(Err(Refusal::Held))) => {
                self.state = State::Contending {
                    index: 0,
                    busy: false,
                    retry: now,
                }
            }
            (State::Contending { .. }, _) => {
                let pause = self.backoff();
                self.state = State::Contending {
                    index: 0,
                    busy: false,
                    retry: now + pause,
                }
            }
            _ => {}
        }
    }

    fn lead(&mut self, token: u64, sent: Micros) {
        self.last_proof = self.last_proof.max(sent);
        self.state = State::Leading { token };
        self.monitor_busy = false;
        self.monitor_at = sent;
        self.monitor_index = 0;
        self.out.push(Out::Lead(Some(token)));
    }

    /// The session is gone (a renew or an acquire said so).
    fn session_gone(&mut self, now: Micros) {
        if self.token().is_some() {
            self.lose(now);
            return;
        }
        self.drop_session();
        self.state = State::Idle { until: now + RETRY };
    }

    /// Releases the key and destroys the session (answers ignored), and forgets it.
    fn let_go(&mut self) {
        if let Some(s) = self.session.clone() {
            let (epoch, release) = (self.epoch, Req::Release(s.clone()));
            self.out.push(Out::Call(Purpose::Cleanup, epoch, release));
            self.out
                .push(Out::Call(Purpose::Cleanup, epoch, Req::Destroy(s)));
        }
        self.drop_session();
    }

    fn drop_session(&mut self) {
        self.session = None;
        self.epoch += 1;
        self.renew_busy = false;
        self.monitor_busy = false;
        self.monitor_at = Micros::MAX;
    }

    /// Leadership ends: published first, then the session is cleaned up in the background.
    fn lose(&mut self, now: Micros) {
        self.out.push(Out::Lead(None));
        self.let_go();
        self.state = State::Idle {
            until: now + self.s.lock_delay + REJOIN_PAUSE,
        };
    }

    /// A graceful stop: release the key, then destroy the session.
    pub fn resign(&mut self) -> Vec<Out> {
        if self.token().is_some() {
            self.out.push(Out::Lead(None));
        }
        self.let_go();
        std::mem::take(&mut self.out)
    }
}
