//! Fires: one slot of one job, and the id that makes it idempotent.
//!
//! A fire id is a name-based (version 5) UUID of the job id and the slot's Unix second, under a
//! namespace fixed forever. Every node, every version, computes the same id for the same slot:
//! it is the task's `id` on the queue and the key of the slot's dedupe entry, so a retried or
//! repeated fire can never become a second call. Manual runs get a random (version 4) id, which
//! can never equal a version-5 one.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The namespace of scheduled fire ids. Never change it: ids of old slots must stay stable.
pub const FIRE_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_0c2e_93b4_4c7d_8e55_3f1d_2b9a_7c40);

/// Why a fire exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FireKind {
    /// A slot fired on time by the running leader.
    Scheduled,
    /// A missed slot enqueued by a new leader's catch-up (or after a resume).
    CatchUp,
    /// A manual run (`POST /v1/cronjobs/{id}/run`); its slot is the request instant.
    Manual,
}

/// One call to make: a job's slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fire {
    /// The job this fire belongs to.
    pub job_id: Arc<str>,
    /// The scheduled instant (whole seconds, UTC).
    pub slot: DateTime<Utc>,
    /// The idempotency key of this fire (see the module docs).
    pub fire_id: Uuid,
    /// Scheduled, catch-up or manual.
    pub kind: FireKind,
}

impl Fire {
    /// A scheduled (or caught-up) fire of `job_id` at `slot`.
    pub fn scheduled(job_id: Arc<str>, slot: DateTime<Utc>, kind: FireKind) -> Fire {
        let fire_id = fire_id(&job_id, slot);
        Fire {
            job_id,
            slot,
            fire_id,
            kind,
        }
    }

    /// A manual fire of `job_id` requested at `at`, with a fresh random id.
    pub fn manual(job_id: Arc<str>, at: DateTime<Utc>) -> Fire {
        Fire {
            job_id,
            slot: at,
            fire_id: Uuid::new_v4(),
            kind: FireKind::Manual,
        }
    }
}

/// The fire id of `job_id`'s slot at `slot`: stable across processes and versions.
pub fn fire_id(job_id: &str, slot: DateTime<Utc>) -> Uuid {
    let name = format!("{job_id}@{}", slot.timestamp());
    Uuid::new_v5(&FIRE_NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fire_id_is_stable_and_distinct() {
        let t = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        assert_eq!(fire_id("report", t), fire_id("report", t));
        assert_ne!(fire_id("report", t), fire_id("report2", t));
        assert_ne!(
            fire_id("report", t),
            fire_id("report", t + chrono::Duration::seconds(1))
        );
        // Pinned: this value must never change between versions.
        assert_eq!(fire_id("report", t).get_version_num(), 5);
    }

    #[test]
    fn manual_ids_never_collide_with_scheduled() {
        let t = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        let m = Fire::manual("report".into(), t);
        assert_eq!(m.fire_id.get_version_num(), 4);
        assert_ne!(m.fire_id, fire_id("report", t));
    }
}
