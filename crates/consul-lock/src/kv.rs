//! Consul KV: reads (plain, `?consistent`, blocking, recursive) and the writes the lock and the
//! job store need (txn `lock` and `cas`, `?release`, delete).
//!
//! Reads, transactions, acquires and deletes go through [`Consul::call`] (see `http.rs` for
//! why); `?release` through rs-consul. Consul's refusals (`lock is already held`, `due to lock
//! delay`, ...) become a [`Refusal`] here, once: nobody above this module reads their text. Keys are passed as they are stored: callers build them only from
//! the prefix and validated ids, so no escaping is needed (the alphabet is `[A-Za-z0-9_.-/]`).
//!
//! Start at [`Consul::kv_get`]; the blocking-query client rules of consul-api.md §3 are in
//! [`Query`].

use std::time::Duration;

use base64::Engine;
use hyper::Method;
use serde::Deserialize;

use crate::error::ConsulError;
use crate::http::{rs_call, Consul, REQUEST_TIMEOUT};

/// The official lock flag of Consul's `api/lock.go`, so `consul lock` and other clients
/// recognise our lock key.
pub const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

/// Longest wait Consul honours for a blocking query.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// Margin above Consul's jitter (wait/16) for a blocking request's HTTP deadline: enough for an
/// answer on a LAN, short enough that a read hung behind a frozen Raft leader is given up soon
/// after its wait (and sent again, through the new leader).
const BLOCKING_MARGIN: Duration = Duration::from_secs(2);

/// One KV entry as Consul returns it, with the value decoded from base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The full key.
    pub key: String,
    /// The raw value (empty when Consul says null).
    pub value: Vec<u8>,
    /// The entry's flags.
    pub flags: u64,
    /// The session holding the key, if any.
    pub session: Option<String>,
    /// Times the key was acquired (reset by a plain PUT or a delete: no good as a fence).
    pub lock_index: u64,
    /// The Raft index of the entry's creation.
    pub create_index: u64,
    /// The Raft index of the entry's last change: the fencing token right after an acquire,
    /// the job store's version.
    pub modify_index: u64,
}

/// An entry as listed, its value still base64: the job store decodes only the values of
/// entries whose ModifyIndex it has not seen.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RawEntry {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    flags: u64,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    lock_index: u64,
    #[serde(default)]
    create_index: u64,
    #[serde(default)]
    pub(crate) modify_index: u64,
}

impl RawEntry {
    /// The value's bytes (empty when Consul says null).
    pub(crate) fn value_bytes(&self) -> Result<Vec<u8>, String> {
        match &self.value {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| format!("key {}: value is not base64: {e}", self.key)),
            None => Ok(Vec::new()),
        }
    }

    fn decode(self) -> Result<KvEntry, String> {
        let value = self.value_bytes()?;
        Ok(KvEntry {
            key: self.key,
            value,
            flags: self.flags,
            session: self.session.filter(|s| !s.is_empty()),
            lock_index: self.lock_index,
            create_index: self.create_index,
            modify_index: self.modify_index,
        })
    }
}

/// How to read: consistency and blocking.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query {
    /// Block until the index passes this (0: answer at once).
    pub index: u64,
    /// How long Consul may block (capped at [`MAX_WAIT`]).
    pub wait: Duration,
    /// `?consistent`: the leader confirms it still leads before answering.
    pub consistent: bool,
}

impl Query {
    /// A non-blocking read.
    pub fn now() -> Query {
        Query::default()
    }

    /// A non-blocking `?consistent` read.
    pub fn consistent() -> Query {
        Query {
            consistent: true,
            ..Query::default()
        }
    }

    /// A blocking read from `index` for at most `wait`.
    pub fn blocking(index: u64, wait: Duration) -> Query {
        Query {
            index,
            wait,
            consistent: false,
        }
    }

    fn params(&self) -> (String, Duration) {
        let mut q = String::new();
        let mut timeout = REQUEST_TIMEOUT;
        if self.consistent {
            q.push_str("&consistent");
        }
        if self.index > 0 {
            let wait = self.wait.min(MAX_WAIT).max(Duration::from_millis(1));
            q.push_str(&format!(
                "&index={}&wait={}ms",
                self.index,
                wait.as_millis()
            ));
            // Consul adds up to wait/16 of jitter: the deadline must be above wait × 17/16.
            timeout = wait + wait / 16 + BLOCKING_MARGIN;
        }
        (q, timeout)
    }
}

/// Client rule of consul-api.md §3: an index that went backwards restarts from 0, and an index
/// is never sent below 1 (done by [`Query::params`] sending none for 0).
pub fn next_index(previous: u64, answered: u64) -> u64 {
    if answered < previous {
        0
    } else {
        answered
    }
}

/// The answer to a txn write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Written: the entry as it is after the write (ModifyIndex = the write's index).
    Written(KvEntry),
    /// Refused as an expected outcome.
    Refused(Refusal),
}

/// Why Consul refused a lock or check-and-set write: its answer's text, read once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another session holds the key (txn: `lock is already held`).
    Held,
    /// The key is under a lock-delay (txn: `due to lock delay`).
    LockDelay,
    /// A KV `?acquire` answered `false`: held by another session, or under a lock-delay (the
    /// KV endpoint does not say which; a read does).
    HeldOrDelayed,
    /// The session is unknown to Consul: it expired or was invalidated (`invalid session`).
    InvalidSession,
    /// A check-and-set met another index (`index is stale`).
    Stale,
    /// Any other refusal: Consul's message.
    Other(String),
}

impl Refusal {
    /// Reads Consul's message (a txn error's `What`, or a KV write's error body).
    pub(crate) fn from_message(what: &str) -> Refusal {
        if what.contains("lock is already held") {
            Refusal::Held
        } else if what.contains("due to lock delay") {
            Refusal::LockDelay
        } else if what.contains("invalid session") {
            Refusal::InvalidSession
        } else if what.contains("index is stale") {
            Refusal::Stale
        } else {
            Refusal::Other(what.to_string())
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Held => f.write_str("the lock is held by another session"),
            Refusal::LockDelay => f.write_str("the key is under a lock-delay"),
            Refusal::HeldOrDelayed => {
                f.write_str("the lock is held by another session or under a lock-delay")
            }
            Refusal::InvalidSession => f.write_str("the session is unknown to Consul"),
            Refusal::Stale => f.write_str("the key's index moved"),
            Refusal::Other(what) => f.write_str(what),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnAnswer {
    #[serde(default)]
    results: Option<Vec<TxnResult>>,
    #[serde(default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResult {
    #[serde(rename = "KV")]
    kv: Option<RawEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnError {
    #[serde(default)]
    what: String,
}

impl Consul {
    /// Reads one key. A missing key is `None`; the index is `X-Consul-Index` (for a missing key
    /// too, so it can be watched).
    pub async fn kv_get(&self, key: &str, q: Query) -> Result<(Option<KvEntry>, u64), ConsulError> {
        self.kv_get_within(key, q, None).await
    }

    /// [`Consul::kv_get`] with a deadline of the caller's for a read that does not block
    /// (`None`: [`REQUEST_TIMEOUT`]); a blocking read's deadline always follows its wait.
    pub(crate) async fn kv_get_within(
        &self,
        key: &str,
        q: Query,
        timeout: Option<Duration>,
    ) -> Result<(Option<KvEntry>, u64), ConsulError> {
        let (params, mut deadline) = q.params();
        if q.index == 0 {
            deadline = timeout.unwrap_or(deadline);
        }
        let timeout = deadline;
        let path = format!("/v1/kv/{key}?{}", params.trim_start_matches('&'));
        let (entries, index) = self.kv_read(&path, timeout).await?;
        Ok((entries.into_iter().next(), index))
    }

    /// Reads every key under `prefix` (sorted by key). Entries whose value is not base64 are
    /// impossible from Consul and fail the read.
    pub async fn kv_list(
        &self,
        prefix: &str,
        q: Query,
    ) -> Result<(Vec<KvEntry>, u64), ConsulError> {
        let (params, timeout) = q.params();
        let path = format!("/v1/kv/{prefix}?recurse{params}");
        self.kv_read(&path, timeout).await
    }

    /// Like [`Consul::kv_list`], the values left in base64.
    pub(crate) async fn kv_list_raw(
        &self,
        prefix: &str,
        q: Query,
    ) -> Result<(Vec<RawEntry>, u64), ConsulError> {
        let (params, timeout) = q.params();
        let path = format!("/v1/kv/{prefix}?recurse{params}");
        self.kv_read_as(&path, timeout).await
    }

    /// The keys under `prefix`, each cut after the first `separator` past the prefix
    /// (`?keys&separator=`): one level of a folder tree. An empty prefix answers no keys.
    pub(crate) async fn kv_keys(
        &self,
        prefix: &str,
        separator: &str,
    ) -> Result<Vec<String>, ConsulError> {
        let path = format!("/v1/kv/{prefix}?keys&separator={separator}");
        let (keys, _) = self.kv_read_as(&path, REQUEST_TIMEOUT).await?;
        Ok(keys)
    }

    async fn kv_read(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<(Vec<KvEntry>, u64), ConsulError> {
        let endpoint = crate::http::endpoint(&Method::GET, path);
        let (raw, index) = self.kv_read_as::<RawEntry>(path, timeout).await?;
        let entries = raw
            .into_iter()
            .map(RawEntry::decode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| ConsulError::Decode { endpoint, message })?;
        Ok((entries, index))
    }

    /// A KV read whose 200 answer is a JSON array of `T`; a 404 is an empty list.
    async fn kv_read_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<(Vec<T>, u64), ConsulError> {
        let endpoint = crate::http::endpoint(&Method::GET, path);
        let answer = self.call(Method::GET, path, None, timeout).await?;
        if answer.filtered_by_acls {
            // Consul drops what the token may not read from a list: a partial job set would
            // look like deleted jobs, so it is an error.
            return Err(ConsulError::Denied {
                endpoint,
                message: "X-Consul-Results-Filtered-By-ACLs: the answer left out keys the \
                          token may not read (it needs key:read on the whole prefix)"
                    .to_string(),
            });
        }
        match answer.status {
            404 => Ok((Vec::new(), answer.index)),
            200 => {
                let items: Vec<T> =
                    serde_json::from_slice(&answer.body).map_err(|e| ConsulError::Decode {
                        endpoint: endpoint.clone(),
                        message: e.to_string(),
                    })?;
                Ok((items, answer.index))
            }
            status => Err(ConsulError::from_status(&endpoint, status, &answer.body)),
        }
    }

    /// Acquires `key` for `session` with a txn `lock` within `timeout`, which answers with
    /// the write's ModifyIndex (the fencing token) in the same round trip. Consul before 1.7
    /// rounds `flags` here (see `version.rs`): use [`Consul::kv_acquire`] there.
    pub async fn kv_lock(
        &self,
        key: &str,
        value: &[u8],
        flags: u64,
        session: &str,
        timeout: Duration,
    ) -> Result<TxnOutcome, ConsulError> {
        let op = serde_json::json!({"KV": {
            "Verb": "lock", "Key": key, "Flags": flags, "Session": session,
            "Value": base64::engine::general_purpose::STANDARD.encode(value),
        }});
        self.txn_one(op, timeout).await
    }

    /// Acquires `key` for `session` with `PUT /v1/kv/<key>?acquire=&flags=` within `timeout`:
    /// `Ok(())` when acquired (the answer carries no index: read the key for the token).
    pub async fn kv_acquire(
        &self,
        key: &str,
        value: &[u8],
        flags: u64,
        session: &str,
        timeout: Duration,
    ) -> Result<Result<(), Refusal>, ConsulError> {
        let path = format!(
            "/v1/kv/{key}?acquire={}&flags={flags}",
            crate::http::encode_query(session)
        );
        let endpoint = crate::http::endpoint(&Method::PUT, &path);
        let answer = self
            .call(Method::PUT, &path, Some(value.to_vec()), timeout)
            .await?;
        if answer.status != 200 {
            let e = ConsulError::from_status(&endpoint, answer.status, &answer.body);
            // An unknown session is a 500 on this endpoint, and an expected outcome.
            return match e.message().map(Refusal::from_message) {
                Some(Refusal::InvalidSession) => Ok(Err(Refusal::InvalidSession)),
                _ => Err(e),
            };
        }
        match serde_json::from_slice::<bool>(&answer.body) {
            Ok(true) => Ok(Ok(())),
            Ok(false) => Ok(Err(Refusal::HeldOrDelayed)),
            Err(e) => Err(ConsulError::Decode {
                endpoint,
                message: e.to_string(),
            }),
        }
    }

    /// Writes `key` only if its ModifyIndex is `index` (0: only if it does not exist).
    pub async fn kv_cas(
        &self,
        key: &str,
        value: &[u8],
        index: u64,
    ) -> Result<TxnOutcome, ConsulError> {
        let op = serde_json::json!({"KV": {
            "Verb": "cas", "Key": key, "Index": index,
            "Value": base64::engine::general_purpose::STANDARD.encode(value),
        }});
        self.txn_one(op, REQUEST_TIMEOUT).await
    }

    async fn txn_one(
        &self,
        op: serde_json::Value,
        timeout: Duration,
    ) -> Result<TxnOutcome, ConsulError> {
        let (endpoint, status, body) = self.txn_send(&[op], timeout).await?;
        parse_txn(&endpoint, status, &body)
    }

    /// Runs `ops` as one transaction (all applied at one Raft index, or none).
    pub(crate) async fn kv_txn(&self, ops: &[KvOp<'_>]) -> Result<TxnResults, ConsulError> {
        let ops: Vec<serde_json::Value> = ops.iter().map(|op| op.to_json()).collect();
        let (endpoint, status, body) = self.txn_send(&ops, REQUEST_TIMEOUT).await?;
        parse_txn_all(&endpoint, status, &body)
    }

    async fn txn_send(
        &self,
        ops: &[serde_json::Value],
        timeout: Duration,
    ) -> Result<(String, u16, bytes::Bytes), ConsulError> {
        const PATH: &str = "/v1/txn";
        let endpoint = crate::http::endpoint(&Method::PUT, PATH);
        let body = serde_json::to_vec(ops).map_err(|e| ConsulError::Decode {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?;
        let answer = self.call(Method::PUT, PATH, Some(body), timeout).await?;
        Ok((endpoint, answer.status, answer.body))
    }

    /// Releases `key` held by `session`, writing back `value` and `flags` (a release overwrites
    /// both). `false` when the session did not hold it.
    pub async fn kv_release(
        &self,
        key: &str,
        value: &[u8],
        flags: u64,
        session: &str,
    ) -> Result<bool, ConsulError> {
        let endpoint = format!("PUT /v1/kv/{key} (release)");
        let req = rs_consul::CreateOrUpdateKeyRequest {
            key,
            flags,
            release: session,
            ..Default::default()
        };
        let (ok, _) = rs_call(
            &endpoint,
            self.rs().create_or_update_key(req, value.to_vec()),
        )
        .await?;
        Ok(ok)
    }

    /// Deletes `key` (true also when it was missing, as Consul answers).
    ///
    /// Not through rs-consul: its `delete_key` always sends `?recurse=<bool>`, and Consul reads
    /// the mere presence of `recurse` as "delete the tree", so deleting job `a` would also
    /// delete job `ab`.
    pub async fn kv_delete(&self, key: &str) -> Result<bool, ConsulError> {
        let path = format!("/v1/kv/{key}");
        let answer = self
            .call_ok(Method::DELETE, &path, None, REQUEST_TIMEOUT)
            .await?;
        serde_json::from_slice(&answer.body).map_err(|e| ConsulError::Decode {
            endpoint: format!("DELETE {path}"),
            message: e.to_string(),
        })
    }
}

/// One write of a KV transaction (the job store's verbs).
#[derive(Debug, Clone, Copy)]
pub(crate) enum KvOp<'a> {
    /// `cas`: write only if the key's ModifyIndex is `index` (0: only if it does not exist).
    Cas {
        key: &'a str,
        value: &'a [u8],
        index: u64,
    },
    /// `set`: write whatever is there.
    Set { key: &'a str, value: &'a [u8] },
    /// `delete-cas`: delete only if the key's ModifyIndex is `index` (or it is missing).
    DeleteCas { key: &'a str, index: u64 },
    /// `check-index`: fail the txn unless the key exists with ModifyIndex `index`.
    CheckIndex { key: &'a str, index: u64 },
}

impl KvOp<'_> {
    fn to_json(self) -> serde_json::Value {
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        match self {
            KvOp::Cas { key, value, index } => serde_json::json!({"KV": {
                "Verb": "cas", "Key": key, "Index": index, "Value": b64(value)}}),
            KvOp::Set { key, value } => serde_json::json!({"KV": {
                "Verb": "set", "Key": key, "Value": b64(value)}}),
            KvOp::DeleteCas { key, index } => serde_json::json!({"KV": {
                "Verb": "delete-cas", "Key": key, "Index": index}}),
            KvOp::CheckIndex { key, index } => serde_json::json!({"KV": {
                "Verb": "check-index", "Key": key, "Index": index}}),
        }
    }
}

/// The answer to a multi-operation txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxnResults {
    /// Applied: the entries written, in operation order (deletes have none).
    Applied(Vec<KvEntry>),
    /// Refused as an expected outcome (a check-and-set lost): Consul's message.
    Refused(String),
}

fn parse_txn(endpoint: &str, status: u16, body: &[u8]) -> Result<TxnOutcome, ConsulError> {
    match parse_txn_all(endpoint, status, body)? {
        TxnResults::Refused(what) => Ok(TxnOutcome::Refused(Refusal::from_message(&what))),
        TxnResults::Applied(entries) => entries
            .into_iter()
            .next()
            .map(TxnOutcome::Written)
            .ok_or_else(|| ConsulError::Decode {
                endpoint: endpoint.to_string(),
                message: format!("status {status} without a KV result"),
            }),
    }
}

fn parse_txn_all(endpoint: &str, status: u16, body: &[u8]) -> Result<TxnResults, ConsulError> {
    match status {
        200 | 409 => {}
        _ => return Err(ConsulError::from_status(endpoint, status, body)),
    }
    let answer: TxnAnswer = serde_json::from_slice(body).map_err(|e| ConsulError::Decode {
        endpoint: endpoint.to_string(),
        message: format!("{e} (status {status})"),
    })?;
    if let Some(err) = answer.errors.and_then(|e| e.into_iter().next()) {
        return if status == 409 {
            Ok(TxnResults::Refused(err.what))
        } else {
            Err(ConsulError::Status {
                endpoint: endpoint.to_string(),
                status,
                message: err.what,
            })
        };
    }
    let entries = answer
        .results
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.kv)
        .map(RawEntry::decode)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| ConsulError::Decode {
            endpoint: endpoint.to_string(),
            message,
        })?;
    Ok(TxnResults::Applied(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_lock_answer_carries_modify_index() {
        let body = br#"{"Results":[{"KV":{"LockIndex":3,"Key":"cronnode/leader","Flags":3304740253564472344,"Value":null,"Session":"s1","CreateIndex":10,"ModifyIndex":42}}],"Errors":null}"#;
        let Ok(TxnOutcome::Written(e)) = parse_txn("PUT /v1/txn", 200, body) else {
            panic!("not written");
        };
        assert_eq!(e.modify_index, 42);
        assert_eq!(e.flags, LOCK_FLAG);
        assert_eq!(e.session.as_deref(), Some("s1"));
        assert!(e.value.is_empty());
    }

    #[test]
    fn txn_conflict_is_a_value_other_errors_are_errors() {
        let body = br#"{"Results":null,"Errors":[{"OpIndex":0,"What":"failed to lock key \"k\" due to lock delay"}]}"#;
        assert_eq!(
            parse_txn("PUT /v1/txn", 409, body).unwrap(),
            TxnOutcome::Refused(Refusal::LockDelay)
        );
        let e = parse_txn("PUT /v1/txn", 403, b"ACL not found").unwrap_err();
        assert_eq!(e.status(), Some(403));
        let e = parse_txn("PUT /v1/txn", 500, b"No cluster leader").unwrap_err();
        assert!(e.to_string().contains("No cluster leader"));
    }

    #[test]
    fn refusals_are_read_once_into_an_enum() {
        let r = Refusal::from_message;
        assert_eq!(
            r("failed to lock key \"k\", lock is already held"),
            Refusal::Held
        );
        assert_eq!(
            r("failed to lock key \"k\" due to lock delay"),
            Refusal::LockDelay
        );
        assert_eq!(r("invalid session \"9f1c\""), Refusal::InvalidSession);
        assert_eq!(r("failed to set key \"k\", index is stale"), Refusal::Stale);
        assert_eq!(
            r("failed session check for key \"k\""),
            Refusal::Other("failed session check for key \"k\"".to_string())
        );
    }

    #[test]
    fn kv_entries_decode() {
        let raw: Vec<RawEntry> = serde_json::from_slice(
            br#"[{"LockIndex":0,"Key":"p/jobs/a","Flags":0,"Value":"eyJ4IjoxfQ==","CreateIndex":5,"ModifyIndex":7}]"#,
        )
        .unwrap();
        let e = raw.into_iter().next().unwrap().decode().unwrap();
        assert_eq!(e.value, br#"{"x":1}"#);
        assert_eq!(e.session, None);
        assert_eq!(e.modify_index, 7);
    }

    #[test]
    fn blocking_deadline_above_wait_and_jitter() {
        let wait = Duration::from_secs(16);
        let (q, timeout) = Query::blocking(9, wait).params();
        assert_eq!(q, "&index=9&wait=16000ms");
        assert!(timeout > wait * 17 / 16);
        let (q, _) = Query::consistent().params();
        assert_eq!(q, "&consistent");
        assert_eq!(next_index(10, 4), 0);
        assert_eq!(next_index(10, 12), 12);
    }
}
