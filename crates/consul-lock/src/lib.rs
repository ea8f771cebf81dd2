//! # consul-lock: cronnode's Consul client
//!
//! Owns everything cronnode says to Consul: the leader lock and its fencing token, the node's
//! service registration and TTL check, and the job store under `<prefix>/jobs/<shard>/<id>`.
//! At steady state a node sends Consul a few requests per session TTL, whatever the number of
//! jobs, and a job change costs a read of its shard (1/256 of the jobs), not of every job.
//!
//! ## Layout
//!
//! - `config.rs`: [`ConsulConfig`], read like Consul's own tools (`CONSUL_HTTP_ADDR`, ...).
//! - `http.rs`: [`Consul`], the client handle: one connection pool shared by rs-consul and the
//!   one thin hyper call for what rs-consul cannot say (its header says what and why).
//! - `kv.rs`, `session.rs`, `agent.rs`: the Consul endpoints (consul-api.md §1-5).
//! - `election.rs`: the leader election (consul-api.md §7) and the fencing token. **Start
//!   here** to understand leadership; [`node`] wires it with the service registration;
//!   `lease.rs` is the rule of when a leader steps down (pure, over instants); `keepalive.rs`
//!   the tasks beside it (renewer, lock watch, agent probe, resign and clean-up).
//! - `version.rs`: the agent's version, [`MIN_CONSUL_VERSION`], and what differs between the
//!   supported versions.
//! - `leader.rs`: [`Leadership`], the lock value, [`leader_info`], [`vouched_leader`] (the
//!   leader's registered instance: where a node may send its API token).
//! - `stored_job.rs`: a job as stored ([`StoredJob`]): the sharded layout (jobs at
//!   `<prefix>/jobs/<xx>/<id>`, `xx` = [`shard_of`]`(id)` in hex), the id check
//!   ([`check_job_id`]) and the decoding of an entry. The store's other files build on it.
//! - `store.rs`: the [`JobStore`] and its writes (a stamp per shard at
//!   `<prefix>/job-shards/<xx>` moved by the same txn as every job write).
//! - `job_set.rs`: [`JobSet`], 256 shared shards (O(1) clone, [`JobSet::changes_since`]).
//! - `store_watch.rs`: [`JobStore::list`] and the watch: the stamps, then only the shards
//!   whose stamp moved.
//! - `store_page.rs`: [`JobStore::list_page`], the API's paged listing, filtered by a
//!   [`PageFilter`].
//! - `settings.rs`: [`LockSettings`], its defaults and bounds, and the check of each setting.
//!
//! **Architecture Invariant:** a [`Leadership::Leader`] token is the lock key's ModifyIndex
//! right after the acquiring write, never the LockIndex (which a delete or a plain PUT resets):
//! Raft indexes never go backwards, so every term's token is larger than every earlier one's.
//!
//! **Architecture Invariant:** losing the lock is published (`Follower`) before anything else
//! is done, and a leader steps down by its own clock once a TTL passed without proof that it
//! still holds the lock. This crate makes no fenced side effect itself: the owner of the
//! leadership channel does, carrying the token.
//!
//! Not here: the HTTP API, the CLI, the scheduler (cronnode); the job model (cron-core).
#![deny(missing_docs)]

mod agent;
mod config;
mod election;
mod error;
mod http;
mod job_set;
mod keepalive;
mod kv;
mod leader;
mod lease;
pub mod node;
mod retry;
mod session;
mod settings;
mod store;
mod store_page;
mod store_watch;
mod stored_job;
mod version;

pub use agent::{check_id, nodes, service_id, NodeStatus, LEADER_TAG, SERVICE_NAME};
pub use config::{
    parse_ssl, ConsulConfig, DEFAULT_ADDR, ENV_ADDR, ENV_CACERT, ENV_CLIENT_CERT, ENV_SSL,
    ENV_TOKEN,
};
pub use election::{LOCK_DELAY_RETRY, MAX_LOCK_READ_WAIT, REJOIN_PAUSE};
pub use error::{ConsulError, StoreError};
pub use http::{Consul, CONNECT_TIMEOUT, REQUEST_TIMEOUT};
pub use job_set::{JobChange, JobSet};
pub use keepalive::{AGENT_PROBE_EVERY, RENEW_RETRY};
pub use kv::{KvEntry, Query, Refusal, TxnOutcome, LOCK_FLAG, MAX_WAIT};
pub use leader::{
    leader_info, vouched_leader, LeaderInfo, LeaderInstance, Leadership, LockValue, VouchedLeader,
};
pub use lease::{AGENT_LOST_AFTER, STEP_DOWN_EARLY_DIVISOR};
pub use node::{Node, NodeHandle};
pub use retry::{BACKOFF_MAX, BACKOFF_MIN};
pub use session::SessionInfo;
pub use settings::{
    check_lock_delay, check_node, check_prefix, check_session_ttl, duration_text, host_name,
    lock_key, LockSettings, SettingsError, DEFAULT_LOCK_DELAY, DEFAULT_PREFIX, DEFAULT_SESSION_TTL,
    MAX_LOCK_DELAY, MAX_NODE_LEN, MAX_PREFIX_LEN, MAX_SESSION_TTL, MIN_SESSION_TTL,
};
pub use store::{JobStore, MAX_JOB_BYTES};
pub use store_page::{
    EntryState, JobPage, PageFilter, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, PAGE_SCAN_BUDGET,
};
pub use store_watch::{COALESCE_INTERVAL, SHARD_READS_IN_FLIGHT, WATCH_WAIT};
pub use stored_job::{check_job_id, shard_of, InvalidEntry, StoredJob, SHARDS};
pub use version::{ConsulVersion, UnsupportedVersion, MIN_CONSUL_VERSION, SPLIT_CHECKS_SINCE};
