//! The KV table: entries, tombstones, and the write verbs of `/v1/kv` and `/v1/txn`.
//!
//! Every mutation takes the index it writes at and says whether it changed anything. A
//! transaction applies its verbs in place with an undo journal ([`Kv::begin`], [`Kv::commit`],
//! [`Kv::rollback`]): a write costs the keys it touches, never a copy of the table. Every
//! changed key is noted ([`Kv::take_changes`]) so that only the blocking queries it concerns
//! are woken. It must not check sessions' existence or lock-delays (the callers do, as Consul's
//! endpoints do before the state store sees the write).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ordered::{entries_map, range_under, Slot};

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

/// What a key looked like before a transaction's first touch of it: its entry and tombstone.
type Undo = (String, Option<KvEntry>, Option<u64>);

/// The open transaction's journal: enough to put the table back as it was.
#[derive(Debug, Clone, Default)]
struct Journal {
    table_index: u64,
    undo: Vec<Undo>,
    changes_len: usize,
}

/// The KV table with its tombstones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Kv {
    /// Live entries, sorted by key (persisted as a map from key to entry).
    #[serde(with = "entries_map")]
    entries: BTreeSet<Slot>,
    /// Deleted keys and the index of their deletion, so prefix indexes never go backwards.
    pub tombstones: BTreeMap<String, u64>,
    /// Highest index among reaped tombstones: prefix indexes stay at least this high.
    pub reaped_floor: u64,
    /// Index of the last KV write (Consul's max of the `kvs` and `tombstones` table indexes).
    pub table_index: u64,
    /// Tombstones by deletion index, oldest first, so reaping one is O(log n). Rebuilt on load.
    #[serde(skip)]
    tomb_order: BTreeSet<(u64, String)>,
    /// Keys written since the last [`Kv::take_changes`] (blocking queries' wake-ups).
    #[serde(skip)]
    changes: Vec<String>,
    /// The open transaction, if any.
    #[serde(skip)]
    journal: Option<Journal>,
}

impl Kv {
    /// Rebuilds what a snapshot does not hold (the tombstones' order), after loading one.
    pub fn rebuild(&mut self) {
        self.tomb_order = self
            .tombstones
            .iter()
            .map(|(k, i)| (*i, k.clone()))
            .collect();
    }

    /// The entry at `key`.
    pub fn get(&self, key: &str) -> Option<&KvEntry> {
        self.entries.get(key).map(|s| &s.0)
    }

    /// Entries whose key starts with `prefix`, sorted: a range of the ordered map, so it costs
    /// what it yields, not the size of the table.
    pub fn list<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KvEntry> + 'a {
        let (range, bounded) = range_under(&self.entries, prefix);
        range
            .take_while(move |s| bounded || s.0.key.starts_with(prefix))
            .map(|s| &s.0)
    }

    fn tombs<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = u64> + 'a {
        let (range, bounded) = range_under(&self.tombstones, prefix);
        range
            .take_while(move |(k, _)| bounded || k.starts_with(prefix))
            .map(|(_, i)| *i)
    }

    /// Whether anything, an entry or a tombstone, lies under `prefix` (O(log n)).
    pub fn has_records(&self, prefix: &str) -> bool {
        self.list(prefix).next().is_some() || self.tombs(prefix).next().is_some()
    }

    /// Index of a single-key read: its ModifyIndex, or the table index when missing.
    pub fn key_index(&self, key: &str) -> u64 {
        self.get(key).map_or(self.table_index, |e| e.modify_index)
    }

    /// Index of a prefix read: the highest index under the prefix, entries and tombstones
    /// (Consul's kvsListTxn); the table index for the root or an empty prefix.
    pub fn prefix_index(&self, prefix: &str) -> u64 {
        if prefix.is_empty() {
            return self.table_index;
        }
        let live = self.list(prefix).map(|e| e.modify_index).max().unwrap_or(0);
        let dead = self.tombs(prefix).max().unwrap_or(0);
        let idx = live.max(dead);
        if idx == 0 {
            self.table_index
        } else {
            idx.max(self.reaped_floor)
        }
    }

    /// Opens a transaction: until [`Kv::commit`] or [`Kv::rollback`], every write journals the
    /// keys it touches, and reaping waits (so that a rollback has nothing else to undo).
    pub fn begin(&mut self) {
        self.journal = Some(Journal {
            table_index: self.table_index,
            undo: Vec::new(),
            changes_len: self.changes.len(),
        });
    }

    /// Keeps the transaction's writes.
    pub fn commit(&mut self) {
        self.journal = None;
        self.reap();
    }

    /// Puts back every key the transaction touched, newest first, so each ends as it began.
    pub fn rollback(&mut self) {
        let Some(j) = self.journal.take() else {
            return;
        };
        for (key, entry, tomb) in j.undo.into_iter().rev() {
            match entry {
                Some(e) => {
                    self.entries.replace(Slot(e));
                }
                None => {
                    self.entries.remove(key.as_str());
                }
            }
            match tomb {
                Some(i) => self.put_tomb(&key, i),
                None => self.remove_tomb(&key),
            }
        }
        self.table_index = j.table_index;
        self.changes.truncate(j.changes_len);
    }

    /// The keys written since the last call (each write of a key once per write call).
    pub fn take_changes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.changes)
    }

    /// Journals `key` as it is now, before a write changes it.
    fn save(&mut self, key: &str) {
        if let Some(j) = &mut self.journal {
            j.undo.push((
                key.to_string(),
                self.entries.get(key).map(|s| s.0.clone()),
                self.tombstones.get(key).copied(),
            ));
        }
    }

    /// Notes that `key` was written at `idx`.
    fn mark(&mut self, key: &str, idx: u64) {
        self.changes.push(key.to_string());
        self.table_index = self.table_index.max(idx);
    }

    fn put_tomb(&mut self, key: &str, idx: u64) {
        if let Some(old) = self.tombstones.insert(key.to_string(), idx) {
            self.tomb_order.remove(&(old, key.to_string()));
        }
        self.tomb_order.insert((idx, key.to_string()));
    }

    fn remove_tomb(&mut self, key: &str) {
        if let Some(old) = self.tombstones.remove(key) {
            self.tomb_order.remove(&(old, key.to_string()));
        }
    }

    /// Plain set: keeps Session and CreateIndex, resets LockIndex to 0 (Consul's kvsSetTxn).
    pub fn set(&mut self, key: &str, value: Vec<u8>, flags: u64, idx: u64) {
        let (create_index, session) = match self.get(key) {
            // Consul (kvsSetTxn) skips a set that changes nothing: the entry keeps its
            // ModifyIndex and no blocking query wakes. A plain set carries LockIndex 0, so an
            // entry that was ever locked is always rewritten (its LockIndex resets).
            Some(e) if e.value == value && e.flags == flags && e.lock_index == 0 => return,
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
        self.mark(key, idx);
    }

    fn insert(&mut self, e: KvEntry) {
        self.save(&e.key);
        self.remove_tomb(&e.key);
        self.entries.replace(Slot(e));
    }

    /// Check-and-set: `cas == 0` only creates; otherwise ModifyIndex must equal `cas`.
    pub fn cas(&mut self, key: &str, value: Vec<u8>, flags: u64, cas: u64, idx: u64) -> bool {
        let ok = match self.get(key) {
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
        let (lock_index, create_index) = match self.get(key) {
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
        self.mark(key, idx);
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
        match self.get(key) {
            Some(e) if e.session.as_deref() == Some(session) => {}
            _ => return false,
        }
        self.save(key);
        if let Some(Slot(mut e)) = self.entries.take(key) {
            e.session = None;
            e.value = value;
            e.flags = flags;
            e.modify_index = idx;
            self.entries.insert(Slot(e));
        }
        self.mark(key, idx);
        true
    }

    /// Deletes `key`; a missing key is no write.
    pub fn delete(&mut self, key: &str, idx: u64) -> bool {
        if !self.entries.contains(key) {
            return false;
        }
        self.save(key);
        self.entries.remove(key);
        self.put_tomb(key, idx);
        self.mark(key, idx);
        self.reap();
        true
    }

    /// Deletes every key under `prefix`; returns whether any was.
    pub fn delete_tree(&mut self, prefix: &str, idx: u64) -> bool {
        let keys: Vec<String> = self.list(prefix).map(|e| e.key.clone()).collect();
        for k in &keys {
            self.save(k);
            self.entries.remove(k.as_str());
            self.put_tomb(k, idx);
            self.mark(k, idx);
        }
        if keys.is_empty() {
            return false;
        }
        self.reap();
        true
    }

    /// Delete-CAS: true when the key is missing or its ModifyIndex equals `cas` (then deleted).
    pub fn delete_cas(&mut self, key: &str, cas: u64, idx: u64) -> bool {
        match self.get(key) {
            None => true,
            Some(e) if e.modify_index == cas => self.delete(key, idx),
            Some(_) => false,
        }
    }

    /// Clears `session` from `key` at `idx` (session invalidation, `release` behaviour).
    pub fn clear_session(&mut self, key: &str, idx: u64) {
        if !self.entries.contains(key) {
            return;
        }
        self.save(key);
        if let Some(Slot(mut e)) = self.entries.take(key) {
            e.session = None;
            e.modify_index = idx;
            self.entries.insert(Slot(e));
        }
        self.mark(key, idx);
    }

    /// Keys held by `session`.
    pub fn held_by(&self, session: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|s| s.0.session.as_deref() == Some(session))
            .map(|s| s.0.key.clone())
            .collect()
    }

    /// Drops the oldest tombstones beyond [`MAX_TOMBSTONES`] (not inside a transaction).
    fn reap(&mut self) {
        if self.journal.is_some() {
            return;
        }
        while self.tombstones.len() > MAX_TOMBSTONES {
            let Some((i, k)) = self.tomb_order.pop_first() else {
                break;
            };
            self.tombstones.remove(&k);
            self.reaped_floor = self.reaped_floor.max(i);
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
    fn unchanged_set_is_not_a_write() {
        let mut kv = Kv::default();
        kv.set("k", b"a".to_vec(), 7, 3);
        let _ = kv.take_changes();
        kv.set("k", b"a".to_vec(), 7, 4);
        assert_eq!(kv.get("k").map(|e| e.modify_index), Some(3));
        assert!(kv.take_changes().is_empty(), "nothing to wake");
        kv.set("k", b"a".to_vec(), 8, 5);
        assert_eq!(kv.get("k").map(|e| e.modify_index), Some(5));
    }

    #[test]
    fn rollback_restores_every_touched_key() {
        let mut kv = Kv::default();
        kv.set("a/1", b"one".to_vec(), 0, 3);
        assert!(kv.delete("a/1", 4));
        kv.set("a/2", b"two".to_vec(), 0, 5);
        let _ = kv.take_changes();
        let entries = |kv: &Kv| kv.list("").cloned().collect::<Vec<_>>();
        let before = (entries(&kv), kv.tombstones.clone(), kv.table_index);
        kv.begin();
        kv.set("a/1", b"again".to_vec(), 0, 6);
        kv.set("a/1", b"twice".to_vec(), 0, 6);
        assert!(kv.delete_tree("a/", 6));
        kv.set("a/3", b"new".to_vec(), 0, 6);
        kv.rollback();
        assert_eq!(
            (entries(&kv), kv.tombstones.clone(), kv.table_index),
            before
        );
        assert!(kv.take_changes().is_empty());
        assert_eq!(kv.tomb_order.len(), kv.tombstones.len());
    }

    #[test]
    fn reaping_takes_the_oldest_tombstone() {
        let mut kv = Kv::default();
        for i in 0..=MAX_TOMBSTONES as u64 {
            kv.set(&format!("k/{i}"), vec![], 0, 10 + i);
        }
        for i in (0..=MAX_TOMBSTONES as u64).rev() {
            assert!(kv.delete(&format!("k/{i}"), 20_000 + i));
        }
        assert_eq!(kv.tombstones.len(), MAX_TOMBSTONES);
        assert!(!kv.tombstones.contains_key("k/0"));
        assert_eq!(kv.reaped_floor, 20_000);
    }

    #[test]
    fn listing_bounds_match_a_prefix_scan() {
        let mut kv = Kv::default();
        let keys = [
            "a", "a/", "a/b", "a/b/c", "a0", "a\u{7f}", "a\u{7f}x", "ab", "b", "é", "éa",
        ];
        for (i, k) in keys.iter().enumerate() {
            kv.set(k, vec![], 0, i as u64 + 1);
        }
        for p in ["", "a", "a/", "a/b", "a\u{7f}", "é", "z"] {
            let got: Vec<&str> = kv.list(p).map(|e| e.key.as_str()).collect();
            let mut want: Vec<&str> = keys.iter().copied().filter(|k| k.starts_with(p)).collect();
            want.sort();
            assert_eq!(got, want, "prefix {p:?}");
        }
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
