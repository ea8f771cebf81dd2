//! The queue consumer: plays the platform's async runner (RPOP queue2, queue1, queue0) and
//! Celery's worker (RPOP `celery`), and records for every task when it arrived, its slot and
//! its enqueue instant.
//!
//! Two instants per task bound its arrival in the queue from above: when it was popped, which
//! includes the time spent draining the tasks ahead of it, and when an `LLEN` answer first
//! counted it (`seen_us`): the consumer asks a list's length, then pops exactly that many, the
//! oldest, which were all in the list when the length was answered (it is the only consumer, and
//! producers push at the other end). The second is within one round trip of the arrival, whatever
//! the burst, so lateness goals are judged on it.
//!
//! The same consumer reads both systems' tasks, so their lateness is measured alike. It records
//! and never judges: the scenarios turn records into figures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use base64::Engine as _;
use chrono::DateTime;
use serde_json::Value;
use tokio::sync::watch;

/// Tasks taken per RPOP.
const RPOP_BATCH: usize = 1000;
/// Wait of the blocking pop when every list is empty (seconds).
const BRPOP_WAIT: f64 = 0.05;
/// The IronFunctions queues, served highest priority first, and Celery's default queue.
const LISTS: [&str; 4] = ["queue2", "queue1", "queue0", "celery"];

/// One task as the consumer saw it.
#[derive(Debug, Clone)]
pub struct Rec {
    /// The job id (cronnode: `cron.job_id`; Celery: the task's first argument).
    pub job: String,
    /// The scheduled instant, ms since the epoch (cronnode only; Celery tasks carry none).
    pub slot_ms: Option<i64>,
    /// The producer's enqueue instant, ms (cronnode: `created_at`).
    pub created_ms: Option<i64>,
    /// When the consumer popped it, µs since the epoch (an upper bound of the enqueue instant).
    pub recv_us: i64,
    /// When an `LLEN` answer first counted it in the queue, µs since the epoch (a tighter upper
    /// bound; equal to `recv_us` for a task taken by the blocking pop).
    pub seen_us: i64,
    /// The fencing token (cronnode).
    pub token: u64,
    /// `scheduled`, `catchup`, `manual` (cronnode) or `celery`.
    pub kind: String,
    /// The task payload (cronnode: the job's body).
    pub payload: String,
    /// Size of the task as pushed, bytes.
    pub bytes: usize,
}

impl Rec {
    /// When it was known to be in the queue, ms since the epoch: the instant lateness is judged
    /// on (a staged task's `created_at` is its slot, whenever it was released).
    pub fn queued_ms(&self) -> i64 {
        self.seen_us / 1000
    }
}

/// µs since the epoch now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn parse_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn parse(raw: &[u8], list: &str, seen_us: i64, recv_us: i64) -> Option<Rec> {
    let v: Value = serde_json::from_slice(raw).ok()?;
    if list == "celery" {
        let body = v.get("body")?.as_str()?;
        let body = base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()?;
        let body: Value = serde_json::from_slice(&body).ok()?;
        let job = body.get(0)?.get(0)?.as_str()?.to_string();
        return Some(Rec {
            job,
            slot_ms: None,
            created_ms: None,
            recv_us,
            seen_us,
            token: 0,
            kind: "celery".into(),
            payload: String::new(),
            bytes: raw.len(),
        });
    }
    let cron = v.get("cron")?;
    Some(Rec {
        job: cron.get("job_id")?.as_str()?.to_string(),
        slot_ms: cron.get("slot").and_then(Value::as_str).and_then(parse_ms),
        created_ms: v
            .get("created_at")
            .and_then(Value::as_str)
            .and_then(parse_ms),
        recv_us,
        seen_us,
        token: cron.get("token").and_then(Value::as_u64).unwrap_or(0),
        kind: cron
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        payload: v
            .get("payload")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        bytes: raw.len(),
    })
}

/// A running consumer.
pub struct Consumer {
    recs: Arc<Mutex<Vec<Rec>>>,
    bad: Arc<Mutex<u64>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

impl Consumer {
    /// Connects to `url` and starts popping.
    pub async fn start(url: &str) -> Result<Consumer> {
        let client = redis::Client::open(url)?;
        let mut con = client.get_multiplexed_async_connection().await?;
        let recs = Arc::new(Mutex::new(Vec::new()));
        let bad = Arc::new(Mutex::new(0u64));
        let (stop, mut stopped) = watch::channel(false);
        let (r, b) = (recs.clone(), bad.clone());
        let task = tokio::spawn(async move {
            loop {
                if *stopped.borrow_and_update() {
                    return;
                }
                let mut got = 0usize;
                for list in LISTS {
                    // What is in the list now, then exactly that many of its oldest tasks.
                    loop {
                        let len: usize =
                            match redis::cmd("LLEN").arg(list).query_async(&mut con).await {
                                Ok(n) => n,
                                Err(_) => {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    break;
                                }
                            };
                        let seen = now_us();
                        if len == 0 {
                            break;
                        }
                        let mut left = len;
                        while left > 0 {
                            let items: Option<Vec<Vec<u8>>> = redis::cmd("RPOP")
                                .arg(list)
                                .arg(left.min(RPOP_BATCH))
                                .query_async(&mut con)
                                .await
                                .unwrap_or(None);
                            let Some(items) = items.filter(|i| !i.is_empty()) else {
                                break;
                            };
                            let t = now_us();
                            left = left.saturating_sub(items.len());
                            got += items.len();
                            let parsed: Vec<Rec> = items
                                .iter()
                                .filter_map(|i| parse(i, list, seen, t))
                                .collect();
                            let nbad = items.len() - parsed.len();
                            if let Ok(mut v) = r.lock() {
                                v.extend(parsed);
                            }
                            if nbad > 0 {
                                if let Ok(mut n) = b.lock() {
                                    *n += nbad as u64;
                                }
                            }
                        }
                    }
                }
                if got == 0 {
                    // Block until something is pushed, then drain in batches again.
                    let popped: Option<(String, Vec<u8>)> = redis::cmd("BRPOP")
                        .arg(&LISTS[..])
                        .arg(BRPOP_WAIT)
                        .query_async(&mut con)
                        .await
                        .unwrap_or(None);
                    if let Some((list, item)) = popped {
                        let t = now_us();
                        match parse(&item, &list, t, t) {
                            Some(rec) => {
                                if let Ok(mut v) = r.lock() {
                                    v.push(rec);
                                }
                            }
                            None => {
                                if let Ok(mut n) = b.lock() {
                                    *n += 1;
                                }
                            }
                        }
                    }
                }
            }
        });
        Ok(Consumer {
            recs,
            bad,
            stop,
            task,
        })
    }

    /// Tasks that could not be parsed.
    pub fn bad(&self) -> u64 {
        self.bad.lock().map(|n| *n).unwrap_or(0)
    }

    /// Waits until `pred(records)` holds or `timeout` passes; `true` if it held.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Rec]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ok = self.recs.lock().map(|v| pred(&v)).unwrap_or(false);
            if ok {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Copies the records matching `f`.
    pub fn select(&self, f: impl Fn(&Rec) -> bool) -> Vec<Rec> {
        self.recs
            .lock()
            .map(|v| v.iter().filter(|r| f(r)).cloned().collect())
            .unwrap_or_default()
    }
}
