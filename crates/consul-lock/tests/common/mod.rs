//! Shared test helpers: a consul-dev agent per scenario, node settings, a continuous
//! two-leaders detector, and a raw HTTP PUT for the agent's check and `/_dev/` fault endpoints.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod proxy;

use consul_dev::{DevAgent, DevConfig};
use consul_lock::{Consul, ConsulConfig, Leadership, LockSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// The session TTL of the tests: Consul's minimum.
pub const TTL: Duration = Duration::from_secs(10);
/// The lock-delay of the tests (the default).
pub const LOCK_DELAY: Duration = Duration::from_secs(1);

pub async fn agent() -> DevAgent {
    DevAgent::start(DevConfig::default()).await.unwrap()
}

pub fn client(agent: &DevAgent) -> Consul {
    Consul::new(ConsulConfig::new(agent.url())).unwrap()
}

pub fn settings(node: &str) -> LockSettings {
    LockSettings {
        prefix: "cronnode".to_string(),
        session_ttl: TTL,
        lock_delay: LOCK_DELAY,
        node: node.to_string(),
        api_addr: "127.0.0.1:8080".to_string(),
        version: "test".to_string(),
        meta: Default::default(),
    }
}

/// `PUT path` on the agent; returns the status and the body.
pub async fn put(agent: &DevAgent, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(agent.addr()).await.unwrap();
    let req = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        agent.addr()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Watches every node's leadership channel continuously: whenever a node turns `Leader`, every
/// other node's channel is read as it is at that moment (not as a lagging copy), and a second
/// leader is recorded as a violation. A closed channel (an abandoned node) counts as not leading.
pub struct LeaderWatch {
    rxs: Arc<Vec<watch::Receiver<Leadership>>>,
    state: Arc<Mutex<WatchState>>,
}

struct WatchState {
    violations: Vec<String>,
    /// When each node was last seen turning from leader to follower.
    stepped_down: Vec<Option<Instant>>,
}

fn leading(rx: &watch::Receiver<Leadership>) -> Option<u64> {
    if rx.has_changed().is_err() {
        return None;
    }
    rx.borrow().token()
}

impl LeaderWatch {
    pub fn new(rxs: Vec<watch::Receiver<Leadership>>) -> LeaderWatch {
        let state = Arc::new(Mutex::new(WatchState {
            violations: Vec::new(),
            stepped_down: vec![None; rxs.len()],
        }));
        let shared = Arc::new(rxs.clone());
        for (i, mut rx) in rxs.into_iter().enumerate() {
            let state = state.clone();
            let all = shared.clone();
            tokio::spawn(async move {
                let mut was = None;
                loop {
                    let token = rx.borrow_and_update().token();
                    if token.is_some() {
                        let others: Vec<(usize, u64)> = all
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| *j != i)
                            .filter_map(|(j, o)| leading(o).map(|t| (j, t)))
                            .collect();
                        if !others.is_empty() {
                            state.lock().unwrap().violations.push(format!(
                                "node {i} leads with token {token:?} while {others:?} lead"
                            ));
                        }
                    } else if was.is_some() {
                        state.lock().unwrap().stepped_down[i] = Some(Instant::now());
                    }
                    was = token;
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            });
        }
        LeaderWatch { rxs: shared, state }
    }

    pub fn assert_never_two(&self) {
        let s = self.state.lock().unwrap();
        assert!(s.violations.is_empty(), "{:?}", s.violations);
    }

    /// When node `i` was last seen stepping down.
    pub fn stepped_down(&self, i: usize) -> Option<Instant> {
        self.state.lock().unwrap().stepped_down[i]
    }

    /// The node leading now, with its token.
    pub fn leader(&self) -> Option<(usize, u64)> {
        self.rxs
            .iter()
            .enumerate()
            .find_map(|(i, rx)| leading(rx).map(|t| (i, t)))
    }

    /// Waits until some node other than `not` leads; returns it and when it was seen.
    pub async fn wait_leader(
        &self,
        not: Option<usize>,
        timeout: Duration,
    ) -> Option<(usize, u64, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((i, t)) = self.leader() {
                if Some(i) != not {
                    return Some((i, t, Instant::now()));
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until nobody leads.
    pub async fn wait_no_leader(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.leader().is_none() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A job spec of app `app`.
pub fn spec_of(id: &str, app: &str, frequency: &str) -> cron_core::JobSpec {
    cron_core::JobSpec::from_json(
        format!(
            r#"{{"id":"{id}","function":{{"app":"{app}","path":"/fn","body":"x"}},"frequency":"{frequency}"}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

/// A job spec of app "app".
pub fn spec(id: &str, frequency: &str) -> cron_core::JobSpec {
    spec_of(id, "app", frequency)
}
