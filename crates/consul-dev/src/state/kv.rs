//! The KV table: entries, tombstones, and the write verbs of `/v1/kv` and `/v1/txn`.
//!
//! Every mutation takes the index it writes at and says whether it changed anything, so a
//! transaction can apply many verbs at one index on a copy and throw the copy away on error.
//! It must not check sessions' existence or lock-delays (the callers do, as Consul's endpoints
//! do before the state store sees the write).

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

/// Tombstones kept before the oldest are reaped (Consul reaps them on a timer; a bound keeps a
/// long-running dev agent's memory flat under churn).
pub const MAX_TOMBSTONES: usize = 10_000;

/// One KV entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// The raw value.
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    /// Opaque client flags.
    pub flags: u64,
    /// How many times the key has been acquired.
    pub lock_index: u64,
    /// The session holding the lock, if any.
    pub session: Option<String>,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// The KV table with its tombstones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Kv {
    /// Live entries, sorted by key.
    pub entries: BTreeMap<String, KvEntry>,
    /// Deleted keys and the index of their deletion, so prefix indexes never go backwards.
    pub tombstones: BTreeMap<String, u64>,
    /// Highest index among reaped tombstones: prefix indexes stay at least this high.
    pub reaped_floor: u64,
    /// Index of the last KV write (Consul's max of the `kvs` and `tombstones` table indexes).
    pub table_index: u64,
}

impl Kv {
    /// The entry at `key`.
    pub fn get(&self, key: &str) -> Option<&KvEntry> {
        self.entries.get(key)
    }

    /// Entries whose key starts with `prefix`, sorted.
    pub fn list<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KvEntry> + 'a {
        self.entries
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e)
    }

    /// Index of a single-key read: its ModifyIndex, or the table index when missing.
    pub fn key_index(&self, key: &str) -> u64 {
        self.entries
            .get(key)
            .map_or(self.table_index, |e| e.modify_index)
    }

    /// Index of a prefix read: the highest index under the prefix, entries and tombstones
    /// (Consul's kvsListTxn); the table index for the root or an empty prefix.
    pub fn prefix_index(&self, prefix: &str) -> u64 {
        if prefix.is_empty() {
            return self.table_index;
        }
        let live = self.list(prefix).map(|e| e.modify_index).max().unwrap_or(0);
        let dead = self
            .tombstones
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(0);
        let idx = live.max(dead);
        if idx == 0 {
            self.table_index
        } else {
            idx.max(self.reaped_floor)
        }
    }

    fn touch(&mut self, idx: u64) {
        self.table_index = self.table_index.max(idx);
    }

    /// Plain set: keeps Session and CreateIndex, resets LockIndex to 0 (Consul's kvsSetTxn).
    pub fn set(&mut self, key: &str, value: Vec<u8>, flags: u64, idx: u64) {
        let (create_index, session) = match self.entries.get(key) {
            Some(e) => (e.create_index, e.session.clone()),
            None => (idx, None),
        };
        self.insert(KvEntry {
            key: key.to_string(),
            value,
            flags,
            lock_index: 0,
            session,
            create_index,
            modify_index: idx,
        });
        self.touch(idx);
    }

    fn insert(&mut self, e: KvEntry) {
        self.tombstones.remove(&e.key);
        self.entries.insert(e.key.clone(), e);
    }

    /// Check-and-set: `cas == 0` only creates; otherwise ModifyIndex must equal `cas`.
    pub fn cas(&mut self, key: &str, value: Vec<u8>, flags: u64, cas: u64, idx: u64) -> bool {
        let ok = match self.entries.get(key) {
            None => cas == 0,
            Some(e) => cas != 0 && e.modify_index == cas,
        };
        if ok {
            self.set(key, value, flags, idx);
        }
        ok
    }

    /// Acquire for `session` (which the caller has checked exists and is not lock-delayed).
    /// Returns false when another session holds the key. Returns true without a write when the
    /// holder re-acquires with identical value and flags.
    pub fn lock(&mut self, key: &str, value: Vec<u8>, flags: u64, session: &str, idx: u64) -> bool {
        let (lock_index, create_index) = match self.entries.get(key) {
            None => (1, idx),
            Some(e) => match e.session.as_deref() {
                Some(s) if s == session => {
                    if e.value == value && e.flags == flags {
                        return true;
                    }
                    (e.lock_index, e.create_index)
                }
                Some(_) => return false,
                None => (e.lock_index + 1, e.create_index),
            },
        };
        self.insert(KvEntry {
            key: key.to_string(),
            value,
            flags,
            lock_index,
            session: Some(session.to_string()),
            create_index,
            modify_index: idx,
        });
        self.touch(idx);
        true
    }

    /// Release by `session`: false unless it holds the key; overwrites Value and Flags.
    pub fn unlock(
        &mut self,
        key: &str,
        value: Vec<u8>,
        flags: u64,
        session: &str,
        idx: u64,
    ) -> bool {
        let Some(e) = self.entries.get_mut(key) else {
            return false;
        };
        if e.session.as_deref() != Some(session) {
            return false;
        }
        e.session = None;
        e.value = value;
        e.flags = flags;
        e.modify_index = idx;
        self.touch(idx);
        true
    }

    /// Deletes `key`; a missing key is no write.
    pub fn delete(&mut self, key: &str, idx: u64) -> bool {
        if self.entries.remove(key).is_none() {
            return false;
        }
        self.tombstones.insert(key.to_string(), idx);
        self.touch(idx);
        self.reap();
        true
    }

    /// Deletes every key under `prefix`; returns whether any was.
    pub fn delete_tree(&mut self, prefix: &str, idx: u64) -> bool {
        let keys: Vec<String> = self.list(prefix).map(|e| e.key.clone()).collect();
        for k in &keys {
            self.entries.remove(k);
            self.tombstones.insert(k.clone(), idx);
        }
        if keys.is_empty() {
            return false;
        }
        self.touch(idx);
        self.reap();
        true
    }

    /// Delete-CAS: true when the key is missing or its ModifyIndex equals `cas` (then deleted).
    pub fn delete_cas(&mut self, key: &str, cas: u64, idx: u64) -> bool {
        match self.entries.get(key) {
            None => true,
            Some(e) if e.modify_index == cas => self.delete(key, idx),
            Some(_) => false,
        }
    }

    /// Clears `session` from `key` at `idx` (session invalidation, `release` behaviour).
    pub fn clear_session(&mut self, key: &str, idx: u64) {
        if let Some(e) = self.entries.get_mut(key) {
            e.session = None;
            e.modify_index = idx;
            self.touch(idx);
        }
    }

    /// Keys held by `session`.
    pub fn held_by(&self, session: &str) -> Vec<String> {
        self.entries
            .values()
            .filter(|e| e.session.as_deref() == Some(session))
            .map(|e| e.key.clone())
            .collect()
    }

    fn reap(&mut self) {
        while self.tombstones.len() > MAX_TOMBSTONES {
            let oldest = self
                .tombstones
                .iter()
                .min_by_key(|(_, i)| **i)
                .map(|(k, i)| (k.clone(), *i));
            match oldest {
                Some((k, i)) => {
                    self.tombstones.remove(&k);
                    self.reaped_floor = self.reaped_floor.max(i);
                }
                None => break,
            }
        }
    }
}

/// Values persist as base64 text rather than arrays of numbers.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_set_keeps_session_and_resets_lock_index() {
        let mut kv = Kv::default();
        assert!(kv.lock("k", b"a".to_vec(), 0, "s1", 5));
        kv.set("k", b"b".to_vec(), 0, 6);
        let e = kv.get("k").cloned();
        assert_eq!(
            e.as_ref().and_then(|e| e.session.clone()),
            Some("s1".into())
        );
        assert_eq!(e.map(|e| e.lock_index), Some(0));
    }

    #[test]
    fn prefix_index_counts_tombstones() {
        let mut kv = Kv::default();
        kv.set("a/1", vec![], 0, 3);
        kv.set("b/1", vec![], 0, 4);
        assert!(kv.delete("a/1", 5));
        assert_eq!(kv.prefix_index("a/"), 5);
        assert_eq!(kv.prefix_index("b/"), 4);
        assert_eq!(kv.key_index("missing"), 5);
    }
}
