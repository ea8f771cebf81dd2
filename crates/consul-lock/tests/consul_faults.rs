//! The election under the faults of a real Consul cluster that a single agent hides, over real
//! HTTP against consul-dev:
//! - a frozen Raft leader (consul-dev's `frozen-leader`): reads and writes in flight hang until
//!   it wakes; a successor must not wait for that;
//! - the leader's own agent lost (killed, or frozen): the leader steps down long before its
//!   session TTL, before Consul could declare its node failed and give the lock away.
//!
//! Bounds are generous (tens of seconds against the old behaviour's minute) so that a loaded
//! machine cannot make them flake.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use consul_lock::{leader_info, Consul, ConsulConfig, LockSettings, Node, AGENT_LOST_AFTER};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The Raft leader freezes for 40 s; its replacement is elected 5 s in and then declares the
/// node of the cronnode leader failed (its session invalidated, as serf would for a node on
/// the frozen server). The followers' reads were hung behind the frozen leader: a successor
/// must lead long before the old one wakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_successor_does_not_wait_for_a_frozen_raft_leader() {
    let agent = agent().await;
    let consul = client(&agent);
    let handles: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::start(consul.clone(), settings(n)))
        .collect();
    let watch = LeaderWatch::new(handles.iter().map(|h| h.leadership()).collect());
    let (first, token, _) = watch
        .wait_leader(None, Duration::from_secs(10))
        .await
        .unwrap();
    let session = leader_info(&consul, "cronnode")
        .await
        .unwrap()
        .unwrap()
        .session;
    // Let the followers' blocking reads be in flight.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let froze = Instant::now();
    let freeze = Duration::from_secs(40);
    let (status, body) = put(&agent, "/_dev/fault/frozen-leader?duration=40s&election=5s").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, body) = put(&agent, &format!("/_dev/session/expire/{session}")).await;
    assert_eq!(status, 200, "{body}");
    let (next, next_token, seen) = watch
        .wait_leader(Some(first), freeze)
        .await
        .expect("no successor while the Raft leader was frozen");
    assert!(
        seen - froze < freeze - Duration::from_secs(10),
        "the successor came {:?} after the freeze, as if it waited for the old leader",
        seen - froze
    );
    assert_ne!(next, first);
    assert!(next_token > token);
    watch.assert_never_two();
    put(&agent, "/_dev/fault/clear").await;
    for h in handles {
        h.shutdown().await;
    }
}

/// What the proxy in front of a node's "agent" does with its connections.
const PASS: u8 = 0;
/// Connections are cut and new ones refused: the agent process died.
const KILLED: u8 = 1;
/// Connections are accepted and held, nothing answered: the agent is frozen.
const FROZEN: u8 = 2;

/// A node's own agent: a TCP relay in front of the dev agent that the test can kill or freeze,
/// while the other nodes keep talking to the dev agent directly.
struct OwnAgent {
    addr: SocketAddr,
    state: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl OwnAgent {
    async fn start(target: SocketAddr) -> OwnAgent {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(AtomicU8::new(PASS));
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(target).await else {
                            return;
                        };
                        let relay = tokio::io::copy_bidirectional(&mut client, &mut server);
                        let cut = async {
                            loop {
                                if state.load(Ordering::SeqCst) != PASS {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        };
                        tokio::select! {
                            _ = relay => return,
                            _ = cut => {}
                        }
                        if state.load(Ordering::SeqCst) == FROZEN {
                            // Hold the connection, answer nothing.
                            std::future::pending::<()>().await;
                        }
                    });
                }
            }
        });
        OwnAgent { addr, state, task }
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for OwnAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Node `a` leads through its own agent, `b` follows; a's agent is lost (`how`). With a TTL of
/// a minute the TTL rule cannot act for 57 s: `a` must step down on its own, within seconds,
/// and only then does the test let Consul invalidate its session (as serf would) for `b`.
async fn agent_lost(how: u8) {
    let agent = agent().await;
    let direct = client(&agent);
    let own = OwnAgent::start(agent.addr()).await;
    let through_own = Consul::new(ConsulConfig::new(own.url())).unwrap();
    let long = |n: &str| LockSettings {
        session_ttl: Duration::from_secs(60),
        ..settings(n)
    };
    let a = Node::start(through_own, long("a"));
    let mut rx = a.leadership();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| l.is_leader()))
        .await
        .expect("a did not lead")
        .unwrap();
    let b = Node::start(direct.clone(), long("b"));
    let watch = LeaderWatch::new(vec![a.leadership(), b.leadership()]);
    let session = leader_info(&direct, "cronnode")
        .await
        .unwrap()
        .unwrap()
        .session;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lost = Instant::now();
    own.set(how);
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|l| !l.is_leader()))
        .await
        .unwrap_or_else(|_| panic!("a kept leading {how}: its agent lost for 30 s"))
        .unwrap();
    let down = lost.elapsed();
    assert!(
        down >= AGENT_LOST_AFTER - Duration::from_secs(1),
        "{down:?}"
    );
    // Consul declares a's node failed: b takes over.
    let (status, body) = put(&agent, &format!("/_dev/session/expire/{session}")).await;
    assert_eq!(status, 200, "{body}");
    watch
        .wait_leader(Some(0), Duration::from_secs(30))
        .await
        .expect("b did not take over");
    watch.assert_never_two();
    b.shutdown().await;
    a.abandon();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_whose_agent_dies_or_freezes_steps_down_before_its_ttl() {
    tokio::join!(agent_lost(KILLED), agent_lost(FROZEN));
}
