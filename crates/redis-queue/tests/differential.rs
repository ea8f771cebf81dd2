//! The differential test of the simulator's Redis model: random sequences of enqueue, stage,
//! amend (withdraw, restage), release, record and fence calls (seeded) run against the real
//! scripts on a real redis-server and against the model (tests/sim/src/redis_model.rs, included
//! as is), and after every call the answers and the whole state are compared: the fence, the
//! cursors, every dedupe bucket (its fields, and its TTL within two seconds), every staging
//! list, staged record and task copy byte for byte, the staging and released indexes, every
//! history list (an entry's `enqueued_at` is Redis's clock: within two seconds), the platform's
//! queues and delayed set, and the set of keys itself.
//!
//! The simulation's verdict is only worth what the model is: this test is what keeps the model
//! equal to the scripts. A mismatch prints the seed and the call; replay one seed with
//! `DIFFERENTIAL_SEED=N cargo test -p redis-queue --test differential`, or run more with
//! `DIFFERENTIAL_SEEDS=N`.
#![allow(clippy::unwrap_used)]

mod common;
#[allow(dead_code)]
#[path = "../../../tests/sim/src/redis_model.rs"]
mod redis_model;
#[allow(dead_code)]
#[path = "../../../tests/sim/src/rng.rs"]
mod rng;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::t0;
use cron_core::{Fire, FireKind, Job, JobSpec};
use redis::FromRedisValue;
use redis_model::{ModelTask, RedisModel, DEDUPE_BUCKET_SECS};
use redis_queue::test_server::RedisServer;
use redis_queue::{encode_task, HistoryEntry, Queue, QueueConfig, StageFire, TaskSettings};
use rng::Rng;

type Conn = redis::aio::MultiplexedConnection;
type Batch = Vec<(Arc<Job>, Fire)>;

/// Seeds per run (more with `DIFFERENTIAL_SEEDS`), and calls per seed.
const SEEDS: u64 = 16;
const CALLS: usize = 100;
/// The key prefix (the default) and the history length (short, so trimming happens).
const PREFIX: &str = "{cronnode}:";
const HISTORY_LEN: usize = 4;
/// How far an instant of Redis's clock (a TTL, a history entry's `enqueued_at`, a release
/// instant) may be from the model's, which reads the test's clock around the call.
const CLOCK_SLACK_MS: i64 = 2_000;

/// Jobs of every shape the scripts tell apart: priorities, a delayed one, catch-up windows
/// (they set the dedupe TTLs).
fn jobs() -> Vec<Arc<Job>> {
    let spec = |id: &str, function: &str, catchup: &str| {
        let text = format!(
            r#"{{"id":"{id}","frequency":"* * * * * *","function":{{"app":"a","path":"/p","image":"i","body":"{id}"{function}}}{catchup}}}"#
        );
        Arc::new(
            JobSpec::from_json(text.as_bytes())
                .unwrap()
                .validate()
                .unwrap(),
        )
    };
    vec![
        spec("j0", "", ""),
        spec("j1", r#","priority":1"#, ""),
        spec(
            "j2",
            r#","priority":2"#,
            r#","catchup":{"policy":"all","window":"10m"}"#,
        ),
        spec("j3", r#","delay":30"#, ""),
        spec(
            "j4",
            r#","priority":1"#,
            r#","catchup":{"policy":"all","window":"3h"}"#,
        ),
    ]
}

fn settings(node: &str) -> Arc<TaskSettings> {
    Arc::new(TaskSettings {
        functions_url: "http://functions.test:8080/".into(),
        default_image: None,
        node: node.into(),
        routes: None,
    })
}

/// Everything cronnode's calls can leave in Redis, as strings.
#[derive(Debug, PartialEq, Default)]
struct State {
    keys: BTreeSet<String>,
    fence: Option<String>,
    cursors: BTreeMap<String, String>,
    dedupe: BTreeMap<String, BTreeMap<String, String>>,
    staging_index: Vec<(String, String)>,
    staging: BTreeMap<String, Vec<String>>,
    staged_meta: BTreeMap<String, BTreeMap<String, String>>,
    staged_tasks: BTreeMap<String, BTreeMap<String, String>>,
    released_slots: Vec<String>,
    released: BTreeMap<String, BTreeMap<String, String>>,
    queues: BTreeMap<String, Vec<String>>,
    delays: Vec<(String, String)>,
    delayed_jobs: BTreeMap<String, String>,
    delays_counter: Option<String>,
}

/// What kind of value a key holds, by its name.
#[derive(Clone, Copy)]
enum Kind {
    Fence,
    Cursors,
    Dedupe,
    History,
    StagingIndex,
    Staging,
    StagedMeta,
    StagedTasks,
    ReleasedIndex,
    Released,
    Queue,
    Delays,
    DelayedJobs,
    DelaysCounter,
    Other,
}

fn kind(key: &str) -> Kind {
    let under = |p: &str| key.starts_with(&format!("{PREFIX}{p}"));
    if key == format!("{PREFIX}fence") {
        Kind::Fence
    } else if key == format!("{PREFIX}cursors") {
        Kind::Cursors
    } else if under("dedupe:") {
        Kind::Dedupe
    } else if under("history:") {
        Kind::History
    } else if key == format!("{PREFIX}staging") {
        Kind::StagingIndex
    } else if under("staging:") {
        Kind::Staging
    } else if under("staged:") {
        Kind::StagedMeta
    } else if under("staged-tasks:") {
        Kind::StagedTasks
    } else if key == format!("{PREFIX}released") {
        Kind::ReleasedIndex
    } else if under("released:") {
        Kind::Released
    } else if key.starts_with("queue") {
        Kind::Queue
    } else if key == "delays" {
        Kind::Delays
    } else if key == "delayed_jobs" {
        Kind::DelayedJobs
    } else if key == "delays_counter" {
        Kind::DelaysCounter
    } else {
        Kind::Other
    }
}

/// Every key and its value, read in one pipeline.
/// A plain connection for reading the state back, patient with big answers (a debug build
/// decodes megabytes of task copies slowly).
async fn raw(server: &RedisServer) -> Conn {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(120)));
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .unwrap()
}

/// Two histories are the same when every entry is, its `enqueued_at` (Redis's clock in the
/// scripts, the test's in the model) within [`CLOCK_SLACK_MS`].
fn same_history(a: &[HistoryEntry], b: &[HistoryEntry]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            let drift = (a.enqueued_at - b.enqueued_at).num_milliseconds().abs();
            let mut b = b.clone();
            b.enqueued_at = a.enqueued_at;
            *a == b && drift <= CLOCK_SLACK_MS
        })
}

/// What is compared with a tolerance: dedupe TTLs, history entries (their `enqueued_at` is
/// Redis's clock) and the release instants of the released index.
#[derive(Debug, Default)]
struct Clocked {
    ttls: BTreeMap<String, i64>,
    history: BTreeMap<String, Vec<HistoryEntry>>,
    released_at: BTreeMap<String, i64>,
}

async fn real_state(conn: &mut Conn) -> (State, Clocked) {
    let mut s = State::default();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    // In pipelines of a few hundred keys (a big release leaves thousands of history lists).
    let mut values: Vec<redis::Value> = Vec::new();
    for chunk in keys.chunks(200) {
        let mut pipe = redis::pipe();
        for key in chunk {
            match kind(key) {
                Kind::Fence | Kind::DelaysCounter | Kind::Other => pipe.cmd("GET").arg(key),
                Kind::Cursors
                | Kind::DelayedJobs
                | Kind::StagedMeta
                | Kind::StagedTasks
                | Kind::Released => pipe.cmd("HGETALL").arg(key),
                Kind::Dedupe => pipe.cmd("HGETALL").arg(key).cmd("PTTL").arg(key),
                Kind::History | Kind::Staging | Kind::Queue => {
                    pipe.cmd("LRANGE").arg(key).arg(0).arg(-1)
                }
                Kind::StagingIndex | Kind::Delays | Kind::ReleasedIndex => {
                    pipe.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES")
                }
            };
        }
        let mut got: Vec<redis::Value> = pipe
            .query_async(conn)
            .await
            .unwrap_or_else(|e| panic!("reading {} keys: {e}", chunk.len()));
        values.append(&mut got);
    }
    let mut values = values.into_iter();
    let mut next = || values.next().unwrap();
    let mut clocked = Clocked::default();
    for key in &keys {
        let k = key.clone();
        match kind(key) {
            Kind::Fence => s.fence = FromRedisValue::from_redis_value(next()).unwrap(),
            Kind::DelaysCounter => {
                s.delays_counter = FromRedisValue::from_redis_value(next()).unwrap()
            }
            Kind::Other => panic!("a key cronnode does not write: {key}"),
            Kind::Cursors => s.cursors = FromRedisValue::from_redis_value(next()).unwrap(),
            Kind::DelayedJobs => s.delayed_jobs = FromRedisValue::from_redis_value(next()).unwrap(),
            Kind::Dedupe => {
                s.dedupe
                    .insert(k.clone(), FromRedisValue::from_redis_value(next()).unwrap());
                clocked
                    .ttls
                    .insert(k, i64::from_redis_value(next()).unwrap());
            }
            Kind::History => {
                let raw: Vec<String> = FromRedisValue::from_redis_value(next()).unwrap();
                let entries = raw
                    .iter()
                    .map(|e| HistoryEntry::from_json(e.as_bytes()).unwrap())
                    .collect();
                clocked.history.insert(k, entries);
            }
            Kind::StagedMeta => {
                s.staged_meta
                    .insert(k, FromRedisValue::from_redis_value(next()).unwrap());
            }
            Kind::StagedTasks => {
                s.staged_tasks
                    .insert(k, FromRedisValue::from_redis_value(next()).unwrap());
            }
            Kind::Released => {
                s.released
                    .insert(k, FromRedisValue::from_redis_value(next()).unwrap());
            }
            Kind::ReleasedIndex => {
                let z: Vec<(String, i64)> = FromRedisValue::from_redis_value(next()).unwrap();
                s.released_slots = z.iter().map(|(m, _)| m.clone()).collect();
                clocked.released_at = z.into_iter().collect();
            }
            Kind::Staging => {
                s.staging
                    .insert(k, FromRedisValue::from_redis_value(next()).unwrap());
            }
            Kind::Queue => {
                s.queues
                    .insert(k, FromRedisValue::from_redis_value(next()).unwrap());
            }
            Kind::StagingIndex => {
                s.staging_index = FromRedisValue::from_redis_value(next()).unwrap()
            }
            Kind::Delays => s.delays = FromRedisValue::from_redis_value(next()).unwrap(),
        }
    }
    s.keys = keys.into_iter().collect();
    (s, clocked)
}

fn task_json(t: &ModelTask) -> String {
    encode_task(&t.job, &t.fire, t.token, &t.settings, t.created_at).unwrap()
}

/// The model's state rendered as Redis holds it (lists head first: LPUSH puts the newest there).
fn model_state(m: &RedisModel) -> (State, Clocked) {
    let mut s = State {
        fence: m.fence.map(|f| f.to_string()),
        ..State::default()
    };
    let mut keys = BTreeSet::new();
    if s.fence.is_some() {
        keys.insert(format!("{PREFIX}fence"));
    }
    s.cursors = m
        .cursors
        .iter()
        .map(|(j, c)| (j.clone(), c.to_string()))
        .collect();
    if !s.cursors.is_empty() {
        keys.insert(format!("{PREFIX}cursors"));
    }
    let mut clocked = Clocked::default();
    let clock = m.clock.timestamp_millis();
    for (minute, b) in &m.dedupe {
        if b.fires.is_empty() {
            continue;
        }
        let key = format!("{PREFIX}dedupe:{minute}");
        let fields = b
            .fires
            .iter()
            .map(|(id, token)| (id.to_string(), token.to_string()))
            .collect();
        s.dedupe.insert(key.clone(), fields);
        clocked
            .ttls
            .insert(key.clone(), b.expires_ms.map_or(-1, |e| e - clock));
        keys.insert(key);
    }
    for (job, entries) in &m.history {
        let key = format!("{PREFIX}history:{job}");
        clocked.history.insert(key.clone(), entries.clone());
        keys.insert(key);
    }
    for (slot, metas) in &m.staged {
        let key = format!("{PREFIX}staged:{slot}");
        let texts = metas.iter().map(|(id, m)| (id.to_string(), m.text()));
        s.staged_meta.insert(key.clone(), texts.collect());
        keys.insert(key);
        // The copy of each staged fire's task: the task on its staging list.
        let copies: BTreeMap<String, String> = metas
            .iter()
            .filter_map(|(id, meta)| {
                let list = m.staging.get(&(*slot, meta.priority))?;
                let t = list.iter().find(|t| t.fire.fire_id == *id)?;
                Some((id.to_string(), task_json(t)))
            })
            .collect();
        let key = format!("{PREFIX}staged-tasks:{slot}");
        s.staged_tasks.insert(key.clone(), copies);
        keys.insert(key);
    }
    for (slot, metas) in &m.released {
        let key = format!("{PREFIX}released:{slot}");
        let texts = metas.iter().map(|(id, m)| (id.to_string(), m.text()));
        s.released.insert(key.clone(), texts.collect());
        keys.insert(key);
    }
    if !m.released_index.is_empty() {
        let mut z: Vec<(i64, String)> = m
            .released_index
            .iter()
            .map(|(slot, ms)| (*ms, slot.to_string()))
            .collect();
        z.sort();
        s.released_slots = z.iter().map(|(_, slot)| slot.clone()).collect();
        clocked.released_at = z.into_iter().map(|(ms, slot)| (slot, ms)).collect();
        keys.insert(format!("{PREFIX}released"));
    }
    s.staging_index = m
        .staging_index
        .iter()
        .map(|(slot, p)| (format!("{slot}:{p}"), slot.to_string()))
        .collect();
    s.staging_index.sort_by(|a, b| {
        let score = |x: &(String, String)| x.1.parse::<i64>().unwrap();
        score(a).cmp(&score(b)).then(a.0.cmp(&b.0))
    });
    if !s.staging_index.is_empty() {
        keys.insert(format!("{PREFIX}staging"));
    }
    for ((slot, p), tasks) in &m.staging {
        let key = format!("{PREFIX}staging:{slot}:{p}");
        s.staging
            .insert(key.clone(), tasks.iter().rev().map(task_json).collect());
        keys.insert(key);
    }
    for (p, q) in m.queues.iter().enumerate() {
        if !q.is_empty() {
            let key = format!("queue{p}");
            s.queues.insert(
                key.clone(),
                q.iter().rev().map(|x| task_json(&x.task)).collect(),
            );
            keys.insert(key);
        }
    }
    if !m.delayed.is_empty() {
        let mut z: Vec<(String, String)> = m
            .delayed
            .iter()
            .map(|(id, (ready, _))| (id.to_string(), ready.to_string()))
            .collect();
        z.sort_by(|a, b| {
            let score = |x: &(String, String)| x.1.parse::<i64>().unwrap();
            score(a).cmp(&score(b)).then(a.0.cmp(&b.0))
        });
        s.delays = z;
        s.delayed_jobs = m
            .delayed
            .iter()
            .map(|(id, (_, t))| (id.to_string(), task_json(t)))
            .collect();
        keys.insert("delays".into());
        keys.insert("delayed_jobs".into());
    }
    if m.delays_counter > 0 {
        s.delays_counter = Some(m.delays_counter.to_string());
        keys.insert("delays_counter".into());
    }
    s.keys = keys;
    (s, clocked)
}

/// One call, as the generator drew it.
#[derive(Debug, Clone)]
enum Call {
    Enqueue(Vec<(Arc<Job>, Fire)>, u64, usize),
    Stage(Vec<StageFire>, u64, usize),
    Amend {
        token: u64,
        node: usize,
        withdraw: Vec<Fire>,
        restage: Vec<StageFire>,
    },
    Release(u64, DateTime<Utc>),
    Record(u64),
    RaiseFence(u64),
    ResetFence(u64),
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fires = |b: &[(Arc<Job>, Fire)]| {
            b.iter()
                .map(|(_, x)| format!("{}@{}:{:?}", x.job_id, x.slot.format("%M:%S%.3f"), x.kind))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let staged = |b: &[StageFire]| {
            b.iter()
                .map(|s| {
                    let x = &s.fire;
                    format!("{}@{} v{}", x.job_id, x.slot.format("%M:%S"), s.version)
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Call::Enqueue(b, t, n) => write!(f, "enqueue token {t} node {n}: {}", fires(b)),
            Call::Stage(b, t, n) => write!(f, "stage token {t} node {n}: {}", staged(b)),
            Call::Amend {
                token,
                node,
                withdraw,
                restage,
            } => {
                let w: Vec<(Arc<Job>, Fire)> = withdraw
                    .iter()
                    .map(|f| (jobs()[0].clone(), f.clone()))
                    .collect();
                write!(
                    f,
                    "amend token {token} node {node}: withdraw {}; restage {}",
                    fires(&w),
                    staged(restage)
                )
            }
            Call::Record(t) => write!(f, "record_released token {t}"),
            Call::Release(t, now) => write!(f, "release token {t} at {}", now.format("%M:%S%.3f")),
            Call::RaiseFence(t) => write!(f, "raise_fence {t}"),
            Call::ResetFence(t) => write!(f, "reset_fence {t}"),
        }
    }
}

/// Draws calls: fires around a simulated `now` that advances, tokens mostly of the current
/// term, sometimes a newer one, sometimes an older (fenced) one; repeats of earlier fires
/// (duplicates), manual runs, staged slots released later.
struct Generator {
    rng: Rng,
    jobs: Vec<Arc<Job>>,
    now: DateTime<Utc>,
    top: u64,
    recent: Vec<(Arc<Job>, Fire)>,
    /// Fires staged lately (some since released or withdrawn): what amends pick from.
    staged: Vec<StageFire>,
    /// The last spec version given out.
    version: u64,
}

impl Generator {
    fn token(&mut self) -> u64 {
        let r = self.rng.range(0, 100);
        if r < 15 {
            self.top += self.rng.range(1, 4);
        } else if r < 27 && self.top > 2 {
            return self.rng.range(1, self.top);
        }
        self.top
    }

    fn fires(&mut self, ahead: bool) -> Vec<(Arc<Job>, Fire)> {
        let n = self.rng.range(1, 9) as usize;
        let base = Utc.timestamp_opt(self.now.timestamp(), 0).unwrap();
        (0..n)
            .map(|_| {
                if !self.recent.is_empty() && self.rng.chance(0.25) {
                    let i = self.rng.index(self.recent.len());
                    return self.recent[i].clone();
                }
                let job = self.jobs[self.rng.index(self.jobs.len())].clone();
                let id: Arc<str> = Arc::from(job.spec.id.as_str());
                let fire = {
                    let slot = if ahead && self.rng.chance(0.8) {
                        base + Duration::seconds(self.rng.range(1, 4) as i64)
                    } else {
                        base - Duration::seconds(self.rng.range(0, 150) as i64)
                    };
                    let kind = if self.rng.chance(0.3) {
                        FireKind::CatchUp
                    } else {
                        FireKind::Scheduled
                    };
                    Fire::scheduled(id, slot, kind)
                };
                self.recent.push((job.clone(), fire.clone()));
                if self.recent.len() > 40 {
                    self.recent.remove(0);
                }
                (job, fire)
            })
            .collect()
    }

    /// Fires to stage (never of the delayed job: `Queue::stage` refuses those), each with a
    /// fresh spec version.
    fn stage_fires(&mut self) -> Vec<StageFire> {
        let fires: Vec<StageFire> = self
            .fires(true)
            .into_iter()
            .filter(|(j, _)| j.spec.function.delay.unwrap_or(0) == 0)
            .map(|(job, fire)| {
                self.version += 1;
                StageFire {
                    job,
                    fire,
                    version: self.version,
                }
            })
            .collect();
        self.staged.extend(fires.iter().cloned());
        if self.staged.len() > 40 {
            self.staged.drain(..self.staged.len() - 40);
        }
        fires
    }

    /// Withdraw some staged fires, restage others with a changed spec (a new body, sometimes
    /// another priority), and now and then name a fire that was never staged.
    fn amend(&mut self, node: usize) -> Call {
        let (mut withdraw, mut restage) = (Vec::new(), Vec::new());
        for _ in 0..self.rng.range(1, 5) {
            let pick = if self.staged.is_empty() || self.rng.chance(0.15) {
                let (job, fire) = self.fires(true).remove(0);
                self.version += 1;
                StageFire {
                    job,
                    fire,
                    version: self.version,
                }
            } else {
                self.staged[self.rng.index(self.staged.len())].clone()
            };
            if self.rng.chance(0.5) {
                withdraw.push(pick.fire);
            } else if pick.job.spec.function.delay.unwrap_or(0) == 0 {
                let mut spec = pick.job.spec.clone();
                self.version += 1;
                spec.function.body = format!("{}-v{}", spec.id, self.version);
                if self.rng.chance(0.3) {
                    spec.function.priority = (spec.function.priority + 1) % 3;
                }
                let fire = StageFire {
                    job: Arc::new(spec.validate().unwrap()),
                    fire: pick.fire,
                    version: self.version,
                };
                self.staged.push(fire.clone());
                restage.push(fire);
            }
        }
        Call::Amend {
            token: self.token(),
            node,
            withdraw,
            restage,
        }
    }

    fn next(&mut self) -> Call {
        self.now += Duration::milliseconds(self.rng.range(0, 1500) as i64);
        let node = self.rng.index(2);
        if self.rng.chance(0.08) {
            // A manual run: alone and direct, as the leader sends it (its slot is an instant
            // with milliseconds, unlike any scheduled slot).
            let job = self.jobs[self.rng.index(self.jobs.len())].clone();
            let at = self.now + Duration::milliseconds(self.rng.range(0, 999) as i64);
            let fire = Fire::manual(Arc::from(job.spec.id.as_str()), at);
            return Call::Enqueue(vec![(job, fire)], self.token(), node);
        }
        match self.rng.range(0, 100) {
            0..=34 => {
                let (b, t) = (self.fires(false), self.token());
                Call::Enqueue(b, t, node)
            }
            35..=59 => {
                let b = self.stage_fires();
                Call::Stage(b, self.token(), node)
            }
            60..=69 => self.amend(node),
            70..=74 => Call::Record(self.token()),
            75..=91 => {
                let at = self.now + Duration::milliseconds(self.rng.range(0, 4000) as i64);
                Call::Release(self.token(), at)
            }
            92..=97 => Call::RaiseFence(self.token()),
            _ => Call::ResetFence(self.token()),
        }
    }
}

/// The fields and keys where two states differ, each as Redis has it and as the model does.
fn differences(real: &State, want: &State) -> String {
    fn maps<V: PartialEq + std::fmt::Debug>(
        out: &mut Vec<String>,
        what: &str,
        a: &BTreeMap<String, V>,
        b: &BTreeMap<String, V>,
    ) {
        for k in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
            if a.get(k) != b.get(k) {
                out.push(format!(
                    "{what} {k}:\n  redis: {:?}\n  model: {:?}",
                    a.get(k),
                    b.get(k)
                ));
            }
        }
    }
    let mut out = Vec::new();
    if real.keys != want.keys {
        out.push(format!(
            "keys only in redis: {:?}; only in the model: {:?}",
            real.keys.difference(&want.keys).collect::<Vec<_>>(),
            want.keys.difference(&real.keys).collect::<Vec<_>>()
        ));
    }
    let mut other = |what: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{what}:\n  redis: {a}\n  model: {b}"));
        }
    };
    other(
        "fence",
        format!("{:?}", real.fence),
        format!("{:?}", want.fence),
    );
    other(
        "staging index",
        format!("{:?}", real.staging_index),
        format!("{:?}", want.staging_index),
    );
    other(
        "delays",
        format!("{:?}", real.delays),
        format!("{:?}", want.delays),
    );
    other(
        "delays_counter",
        format!("{:?}", real.delays_counter),
        format!("{:?}", want.delays_counter),
    );
    other(
        "released slots",
        format!("{:?}", real.released_slots),
        format!("{:?}", want.released_slots),
    );
    maps(&mut out, "cursor", &real.cursors, &want.cursors);
    maps(&mut out, "dedupe", &real.dedupe, &want.dedupe);
    maps(&mut out, "staging list", &real.staging, &want.staging);
    maps(
        &mut out,
        "staged meta",
        &real.staged_meta,
        &want.staged_meta,
    );
    maps(
        &mut out,
        "staged task copies",
        &real.staged_tasks,
        &want.staged_tasks,
    );
    maps(&mut out, "released meta", &real.released, &want.released);

    maps(&mut out, "queue", &real.queues, &want.queues);
    maps(
        &mut out,
        "delayed job",
        &real.delayed_jobs,
        &want.delayed_jobs,
    );
    out.join("\n")
}

async fn check_state(conn: &mut Conn, model: &RedisModel, seed: u64, i: usize, call: &Call) {
    let (real, real_c) = real_state(conn).await;
    let (want, want_c) = model_state(model);
    let ctx = || format!("seed {seed}, call {i} ({call})");
    if real != want {
        panic!(
            "{}: Redis and the model differ:\n{}",
            ctx(),
            differences(&real, &want)
        );
    }
    for (key, ttl) in &real_c.ttls {
        let w = want_c.ttls.get(key).copied().unwrap_or(-2);
        assert!(
            (ttl - w).abs() <= CLOCK_SLACK_MS,
            "{}: {key} has PTTL {ttl} in Redis, {w} in the model",
            ctx()
        );
    }
    for (slot, at) in &real_c.released_at {
        let w = want_c.released_at.get(slot).copied().unwrap_or(0);
        assert!(
            (at - w).abs() <= CLOCK_SLACK_MS,
            "{}: slot {slot} released at {at} in Redis, {w} in the model",
            ctx()
        );
    }
    let keys: BTreeSet<&String> = real_c.history.keys().chain(want_c.history.keys()).collect();
    for key in keys {
        let (r, w) = (&real_c.history.get(key), &want_c.history.get(key));
        let same = matches!((r, w), (Some(r), Some(w)) if same_history(r, w));
        assert!(
            same,
            "{}: history {key}:\n  redis: {r:?}\n  model: {w:?}",
            ctx()
        );
    }
}

async fn run_seed(server: &RedisServer, seed: u64) {
    let mut conn = raw(server).await;
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let mut rng = Rng::new(seed);
    // Small calls sometimes, so a batch spans several script calls.
    let per_call = [500, 3, 1][rng.index(3)];
    let cfg = QueueConfig {
        history_len: HISTORY_LEN,
        ..QueueConfig::new(server.url())
    };
    let q: Queue = Queue::connect(cfg)
        .await
        .unwrap()
        .with_fires_per_call(per_call);
    let mut model = RedisModel::new(HISTORY_LEN, per_call);
    let nodes = [settings("node-a"), settings("node-b")];
    let mut g = Generator {
        rng: rng.fork(),
        jobs: jobs(),
        now: t0() + Duration::milliseconds(rng.range(0, 60_000) as i64),
        top: 1,
        recent: Vec::new(),
        staged: Vec::new(),
        version: 0,
    };
    for i in 0..CALLS {
        let call = g.next();
        model.clock = Utc::now();
        let ctx = || format!("seed {seed}, call {i} ({call})");
        match &call {
            Call::Enqueue(b, t, n) => {
                let real = q.enqueue(b, *t, &nodes[*n], g.now).await.unwrap();
                let want = model.enqueue(b, *t, &nodes[*n], g.now);
                assert_eq!(real, want, "{}", ctx());
            }
            Call::Stage(b, t, n) => {
                let real = q.stage(b, *t, &nodes[*n], g.now).await.unwrap();
                let want = model.stage(b, *t, &nodes[*n], g.now);
                assert_eq!(real, want, "{}", ctx());
            }
            Call::Amend {
                token,
                node,
                withdraw,
                restage,
            } => {
                let real = q
                    .amend(*token, withdraw, restage, &nodes[*node])
                    .await
                    .unwrap();
                let want = model.amend(*token, withdraw, restage, &nodes[*node]);
                assert_eq!(real, want, "{}", ctx());
            }
            Call::Record(t) => {
                let real = q.record_released(*t).await.unwrap();
                assert_eq!(real, model.record_released(*t), "{}", ctx());
            }
            Call::Release(t, at) => {
                let real = q.release(*t, *at).await.unwrap();
                let want = model.release(*t, *at);
                assert_eq!(real, want, "{}", ctx());
            }
            Call::RaiseFence(t) => {
                let real = q.raise_fence(*t).await.unwrap();
                assert_eq!(real, model.raise_fence(*t), "{}", ctx());
            }
            Call::ResetFence(t) => {
                q.reset_fence(*t).await.unwrap();
                model.reset_fence(*t);
            }
        }
        check_state(&mut conn, &model, seed, i, &call).await;
        if i % 10 != 9 {
            continue;
        }
        // The read-backs, through the crate's own API, now and then.
        let ids: Vec<&str> = g.jobs.iter().map(|j| j.spec.id.as_str()).collect();
        let real = q.cursors(&ids).await.unwrap();
        assert_eq!(real, model.cursors(&ids), "{}", ctx());
        assert_eq!(
            q.staged_slots().await.unwrap(),
            model.staged_slots(),
            "{}",
            ctx()
        );
        assert_eq!(q.fence().await.unwrap(), model.fence(), "{}", ctx());
        for id in &ids {
            let (real, want) = (q.history(id).await.unwrap(), model.history(id));
            assert!(same_history(&real, &want), "{}: history of {id}", ctx());
        }
    }
}

fn seeds() -> Vec<u64> {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    match (var("DIFFERENTIAL_SEED"), var("DIFFERENTIAL_SEEDS")) {
        (Some(seed), _) => vec![seed],
        (None, Some(n)) => (0..n).collect(),
        (None, None) => (0..SEEDS).collect(),
    }
}

#[tokio::test]
async fn the_model_answers_and_leaves_what_the_scripts_do() {
    let server = RedisServer::start().unwrap();
    for seed in seeds() {
        run_seed(&server, seed).await;
    }
}

/// Releases larger than one call's budget (`RELEASE_TASKS_PER_CALL`), behind a backlog and
/// into an empty queue: every way release.lua moves a list (renamed into an empty queue; the
/// backlog appended behind it; its tasks moved onto a longer queue; cut by the budget and
/// finished by the next call) ends as the model says.
#[tokio::test]
async fn big_releases_end_as_the_model_says() {
    let server = RedisServer::start().unwrap();
    let mut conn = raw(&server).await;
    let q = Queue::connect(QueueConfig::new(server.url()))
        .await
        .unwrap();
    let mut model = RedisModel::default();
    let node = settings("node-a");
    let n = redis_queue::RELEASE_TASKS_PER_CALL + 700;
    let jobs: Vec<Arc<Job>> = (0..n)
        .map(|i| {
            let text = format!(
                r#"{{"id":"big-{i}","frequency":"* * * * * *","function":{{"app":"a","path":"/p","image":"i","priority":{}}}}}"#,
                i % 3
            );
            Arc::new(JobSpec::from_json(text.as_bytes()).unwrap().validate().unwrap())
        })
        .collect();
    let slot = |k: i64| t0() + Duration::seconds(k);
    let fires = |k: i64, take: usize| -> Vec<(Arc<Job>, Fire)> {
        jobs.iter()
            .take(take)
            .map(|j| {
                let f = Fire::scheduled(j.spec.id.as_str().into(), slot(k), FireKind::Scheduled);
                (j.clone(), f)
            })
            .collect()
    };
    // A backlog in queue0 only, then staged slots: slot 1 (a third of `n` per priority: onto
    // the backlog, or renamed into the empty queues), slot 2 (small: moved onto the longer
    // queues), slot 3 (as big again: moved onto the longer queues until the budget runs out).
    let backlog: Vec<(Arc<Job>, Fire)> = fires(-5, 300)
        .into_iter()
        .filter(|(j, _)| j.spec.function.priority == 0)
        .collect();
    let steps: Vec<(&str, Batch, DateTime<Utc>)> = vec![
        ("backlog", backlog, slot(-4)),
        ("stage big", fires(1, n), slot(-1)),
        ("stage small", fires(2, 40), slot(-1)),
        ("stage big again", fires(3, n), slot(-1)),
    ];
    for (what, batch, now) in steps {
        model.clock = Utc::now();
        let staged: Vec<StageFire> = batch
            .iter()
            .map(|(job, fire)| StageFire {
                job: job.clone(),
                fire: fire.clone(),
                version: 1,
            })
            .collect();
        let (real, want) = if what == "backlog" {
            let real = q.enqueue(&batch, 5, &node, now).await.unwrap();
            (real, model.enqueue(&batch, 5, &node, now))
        } else {
            let real = q.stage(&staged, 5, &node, now).await.unwrap();
            (real, model.stage(&staged, 5, &node, now))
        };
        assert_eq!(real, want, "{what}");
    }
    let call = Call::Release(5, slot(3));
    for at in [slot(1), slot(3)] {
        model.clock = Utc::now();
        assert_eq!(q.release(5, at).await.unwrap(), model.release(5, at));
        check_state(&mut conn, &model, 0, 0, &call).await;
    }
    assert!(model.staging.is_empty());
    let bucket = slot(1).timestamp().div_euclid(DEDUPE_BUCKET_SECS);
    assert!(model.dedupe.contains_key(&bucket));
}
