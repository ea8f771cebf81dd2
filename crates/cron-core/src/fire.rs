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
    /// A past slot fired on an operator's request (`POST /v1/cronjobs/{id}/backfill`); its
    /// fire id is the slot's, so a slot already enqueued is never enqueued again.
    Backfill,
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
    // The name is `<job id>@<Unix seconds>`. Built on the stack: the planner makes a million
    // of these a minute, and the bytes must stay exactly these forever.
    let mut buf = [0u8; NAME_BUF];
    let id = job_id.as_bytes();
    let mut digits = [0u8; 20];
    let ts = slot.timestamp();
    let mut n = ts.unsigned_abs();
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let sign: &[u8] = if ts < 0 { b"-" } else { b"" };
    let len = id.len() + 1 + sign.len() + digits.len() - k;
    if len > NAME_BUF {
        let name = format!("{job_id}@{ts}");
        return Uuid::new_v5(&FIRE_NAMESPACE, name.as_bytes());
    }
    let mut at = 0;
    for part in [id, b"@", sign, &digits[k..]] {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Uuid::new_v5(&FIRE_NAMESPACE, &buf[..len])
}

/// Room for a job id of up to 128 bytes, `@` and a signed 64-bit number.
const NAME_BUF: usize = 160;

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
        // Checked independently: Python's uuid.uuid5(FIRE_NAMESPACE, "report@1774746000").
        assert_eq!(
            fire_id("report", t).to_string(),
            "a2b5fc06-a00f-57d2-a180-5ff49e714b51"
        );
        for (id, ts) in [
            ("report", 1_774_746_000i64),
            ("a", -5),
            ("x", 0),
            ("long", i64::MAX),
        ] {
            let slot = DateTime::from_timestamp(ts, 0).unwrap_or(t);
            let name = format!("{id}@{}", slot.timestamp());
            assert_eq!(
                fire_id(id, slot),
                Uuid::new_v5(&FIRE_NAMESPACE, name.as_bytes())
            );
        }
        let long = "x".repeat(200);
        assert_eq!(
            fire_id(&long, t),
            Uuid::new_v5(
                &FIRE_NAMESPACE,
                format!("{long}@{}", t.timestamp()).as_bytes()
            )
        );
    }

    #[test]
    fn manual_ids_never_collide_with_scheduled() {
        let t = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        let m = Fire::manual("report".into(), t);
        assert_eq!(m.fire_id.get_version_num(), 4);
        assert_ne!(m.fire_id, fire_id("report", t));
    }
}
