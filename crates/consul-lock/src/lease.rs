//! When a leader must step down, by its own clock: a pure rule over instants (no I/O, no clock
//! of its own), fed by the election's requests and unit-tested with explicit instants.
//!
//! Two deadlines, whichever comes first:
//! - **no proof**: a TTL (less [`STEP_DOWN_EARLY_DIVISOR`]th of it) after the *sending* of the
//!   last request that proved the lock held (a renew, a `?consistent` read, the acquire).
//!   Consul keeps a session at least a TTL after it received a renew, so the leader is gone
//!   before Consul could give the lock away by the TTL.
//! - **agent lost**: [`AGENT_LOST_AFTER`] after the sending of the last request the local agent
//!   answered at all (any status). An agent that stops answering takes the node's `serfHealth`
//!   with it: Consul's gossip declares the node failed and invalidates the session after its
//!   probe interval and suspicion timeout (at least about 5 s on a LAN), then lock-delay runs.
//!   Stepping down first keeps that successor from overlapping this leader. An agent that
//!   answers, even with an error (no cluster leader during a Raft election), is not lost: those
//!   outages are left to the TTL rule, so a Consul election does not make cronnode flap.
//!
//! The fence stays the guarantee; these deadlines only shorten the time two nodes believe they
//! lead.

use std::time::Duration;

use tokio::time::Instant;

/// A leader steps down 1/20 of a TTL early (0.5 s at 10 s): absorbs a difference of clock
/// rates between this host and Consul's servers, and the delay of the step-down itself.
pub const STEP_DOWN_EARLY_DIVISOR: u32 = 20;
/// A leader whose agent has answered nothing sent in this long steps down. Below Consul's
/// earliest failure detection of the node (memberlist: 1 s probe interval, 0.5 s probe
/// timeout, at least 4 s of suspicion), above a pause the agent could take and still be fine.
pub const AGENT_LOST_AFTER: Duration = Duration::from_secs(3);

/// Why the lease ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request proved the lock held for a TTL.
    NoProof,
    /// The local agent answered nothing for [`AGENT_LOST_AFTER`].
    AgentLost,
}

/// What the leader knows of its hold on the lock.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    ttl: Duration,
    /// When the latest request that proved the lock held was sent.
    last_proof: Instant,
    /// When the latest request the agent answered (any status) was sent.
    agent_seen: Instant,
}

impl Lease {
    /// A lease proven by the acquire sent at `acquired`.
    pub fn new(ttl: Duration, acquired: Instant) -> Lease {
        Lease {
            ttl,
            last_proof: acquired,
            agent_seen: acquired,
        }
    }

    /// A request sent at `sent` proved the lock held (and so the agent alive).
    pub fn proved(&mut self, sent: Instant) {
        self.last_proof = self.last_proof.max(sent);
        self.agent_answered(sent);
    }

    /// The agent answered a request sent at `sent`, whatever it said.
    pub fn agent_answered(&mut self, sent: Instant) {
        self.agent_seen = self.agent_seen.max(sent);
    }

    /// When the lease runs out, and why (the earlier deadline; a tie is `NoProof`).
    pub fn expiry(&self) -> (Instant, Expiry) {
        let no_proof = self.last_proof + (self.ttl - self.ttl / STEP_DOWN_EARLY_DIVISOR);
        let agent_lost = self.agent_seen + AGENT_LOST_AFTER;
        if agent_lost < no_proof {
            (agent_lost, Expiry::AgentLost)
        } else {
            (no_proof, Expiry::NoProof)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn a_silent_agent_ends_the_lease_before_the_ttl() {
        let t0 = Instant::now();
        let lease = Lease::new(TTL, t0);
        assert_eq!(lease.expiry(), (t0 + AGENT_LOST_AFTER, Expiry::AgentLost));
    }

    #[test]
    fn an_agent_that_answers_errors_leaves_it_to_the_ttl() {
        let t0 = Instant::now();
        let mut lease = Lease::new(TTL, t0);
        // A Raft election: every renew answered 500, the agent answering all along.
        for s in 1..=9 {
            lease.agent_answered(t0 + Duration::from_secs(s));
        }
        assert_eq!(
            lease.expiry(),
            (t0 + Duration::from_millis(9500), Expiry::NoProof)
        );
    }

    #[test]
    fn proofs_move_both_deadlines_and_never_back() {
        let t0 = Instant::now();
        let mut lease = Lease::new(TTL, t0);
        lease.proved(t0 + Duration::from_secs(5));
        lease.proved(t0 + Duration::from_secs(2)); // a slower answer to an older request
        assert_eq!(
            lease.expiry(),
            (t0 + Duration::from_secs(8), Expiry::AgentLost)
        );
        lease.agent_answered(t0 + Duration::from_secs(7));
        assert_eq!(
            lease.expiry(),
            (t0 + Duration::from_secs(10), Expiry::AgentLost)
        );
        lease.agent_answered(t0 + Duration::from_secs(12));
        assert_eq!(
            lease.expiry(),
            (t0 + Duration::from_millis(14500), Expiry::NoProof)
        );
    }
}
