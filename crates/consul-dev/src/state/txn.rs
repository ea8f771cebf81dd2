//! `/v1/txn` KV operations: every verb applied at one index, in place, under the KV table's undo
//! journal, which is rolled back when any operation failed.
//!
//! Must not know the JSON shape (`crate::http::txn` decodes and encodes it).

use std::time::Instant;

use std::collections::BTreeMap;

use super::{Kv, KvEntry, Session, Store};

/// Operations per transaction (Consul ≥ 1.14; 64 before).
pub const MAX_TXN_OPS: usize = 128;

/// One KV operation.
#[derive(Debug, Clone, Default)]
pub struct TxnOp {
    /// Verb (`set`, `cas`, `lock`, ...).
    pub verb: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: Vec<u8>,
    /// Flags.
    pub flags: u64,
    /// Index for `cas`, `delete-cas`, `check-index`.
    pub index: u64,
    /// Session for `lock`, `unlock`, `check-session`.
    pub session: String,
}

/// One result: an entry, with its value only for reads.
#[derive(Debug, Clone)]
pub struct TxnResult {
    /// The entry.
    pub entry: KvEntry,
    /// Whether the value is reported (reads) or blanked (writes, checks).
    pub with_value: bool,
}

/// The outcome of a transaction: results, or every operation's error (nothing applied).
#[derive(Debug, Clone)]
pub enum TxnOutcome {
    /// Applied (or read) in full.
    Done(Vec<TxnResult>),
    /// Rolled back; `(operation index, message)` in Consul's words.
    Failed(Vec<(usize, String)>),
}

const READ_VERBS: [&str; 6] = [
    "get",
    "get-or-empty",
    "get-tree",
    "check-index",
    "check-session",
    "check-not-exists",
];

/// Whether every operation only reads (such a transaction takes no index).
pub fn read_only(ops: &[TxnOp]) -> bool {
    ops.iter().all(|o| READ_VERBS.contains(&o.verb.as_str()))
}

impl Store {
    /// Applies `ops` atomically. Lock-delays are checked first, as Consul's endpoint does
    /// before the state store sees the transaction.
    pub fn apply_txn(&mut self, ops: &[TxnOp], now: Instant) -> TxnOutcome {
        let pre: Vec<(usize, String)> = ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.verb == "lock" && self.lock_delayed(&o.key, now))
            .map(|(i, o)| {
                (
                    i,
                    format!("failed to lock key {:?} due to lock delay", o.key),
                )
            })
            .collect();
        if !pre.is_empty() {
            return TxnOutcome::Failed(pre);
        }
        let idx = self.next_index();
        self.kv.begin();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match apply_op(&mut self.kv, &self.sessions, op, idx) {
                Ok(mut r) => results.append(&mut r),
                Err(e) => errors.push((i, e)),
            }
        }
        if !errors.is_empty() {
            self.kv.rollback();
            return TxnOutcome::Failed(errors);
        }
        self.kv.commit();
        if self.kv.table_index == idx {
            self.index = idx;
        }
        TxnOutcome::Done(results)
    }
}

/// One operation at `idx`; the caller's journal undoes it if another one fails.
fn apply_op(
    kv: &mut Kv,
    sessions: &BTreeMap<String, Session>,
    op: &TxnOp,
    idx: u64,
) -> Result<Vec<TxnResult>, String> {
    let key = op.key.as_str();
    // A write's result has no value: copying it would only be thrown away.
    let written = |kv: &Kv| -> Vec<TxnResult> {
        kv.get(key)
            .map(|e| TxnResult {
                entry: KvEntry {
                    key: e.key.clone(),
                    value: Vec::new(),
                    flags: e.flags,
                    lock_index: e.lock_index,
                    session: e.session.clone(),
                    create_index: e.create_index,
                    modify_index: e.modify_index,
                },
                with_value: false,
            })
            .into_iter()
            .collect()
    };
    match op.verb.as_str() {
        "set" => {
            kv.set(key, op.value.clone(), op.flags, idx);
            Ok(written(kv))
        }
        "cas" => {
            if kv.cas(key, op.value.clone(), op.flags, op.index, idx) {
                Ok(written(kv))
            } else {
                Err(format!("failed to set key {key:?}, index is stale"))
            }
        }
        "lock" => {
            if op.session.is_empty() {
                return Err("missing session".to_string());
            }
            if let Some(e) = super::session::lookup_error(&op.session) {
                return Err(e);
            }
            if !sessions.contains_key(&op.session) {
                return Err(format!("invalid session {:?}", op.session));
            }
            if kv.lock(key, op.value.clone(), op.flags, &op.session, idx) {
                Ok(written(kv))
            } else {
                Err(format!("failed to lock key {key:?}, lock is already held"))
            }
        }
        "unlock" => {
            if op.session.is_empty() {
                return Err("missing session".to_string());
            }
            if kv.unlock(key, op.value.clone(), op.flags, &op.session, idx) {
                Ok(written(kv))
            } else {
                Err(format!(
                    "failed to unlock key {key:?}, lock isn't held, or is held by another session"
                ))
            }
        }
        "delete" => {
            kv.delete(key, idx);
            Ok(Vec::new())
        }
        "delete-tree" => {
            kv.delete_tree(key, idx);
            Ok(Vec::new())
        }
        "delete-cas" => {
            if kv.delete_cas(key, op.index, idx) {
                Ok(Vec::new())
            } else {
                Err(format!("failed to delete key {key:?}, index is stale"))
            }
        }
        "get" => match kv.get(key) {
            Some(e) => Ok(vec![TxnResult {
                entry: e.clone(),
                with_value: true,
            }]),
            None => Err(format!("key {key:?} doesn't exist")),
        },
        "get-or-empty" => {
            let entry = kv.get(key).cloned().unwrap_or_else(|| KvEntry {
                key: key.to_string(),
                value: Vec::new(),
                flags: 0,
                lock_index: 0,
                session: None,
                create_index: 0,
                modify_index: 0,
            });
            Ok(vec![TxnResult {
                entry,
                with_value: true,
            }])
        }
        "get-tree" => Ok(kv
            .list(key)
            .map(|e| TxnResult {
                entry: e.clone(),
                with_value: true,
            })
            .collect()),
        "check-index" => match kv.get(key) {
            None => Err(format!("key {key:?} doesn't exist")),
            Some(e) if e.modify_index != op.index => Err(format!(
                "failed index check for key {key:?}, current modify index {} != {}",
                e.modify_index, op.index
            )),
            Some(_) => Ok(written(kv)),
        },
        "check-session" => match kv.get(key) {
            None => Err(format!("key {key:?} doesn't exist")),
            Some(e) if e.session.as_deref().unwrap_or("") != op.session => Err(format!(
                "failed session check for key {key:?}, current session {:?} != {:?}",
                e.session.as_deref().unwrap_or(""),
                op.session
            )),
            Some(_) => Ok(written(kv)),
        },
        "check-not-exists" => match kv.get(key) {
            Some(_) => Err(format!("key {key:?} exists")),
            None => Ok(Vec::new()),
        },
        other => Err(format!("unknown KV verb {other:?}")),
    }
}
