//! The job store's watch against consul-dev over real HTTP, counted on the wire by a proxy:
//! at rest one blocking read and nothing else, a change re-reads only its shard, unchanged
//! jobs and shards are shared between publications, `changes_since` names exactly what
//! changed, bursts are coalesced.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::proxy::CountingProxy;
use common::*;
use consul_lock::{shard_of, Consul, ConsulConfig, JobChange, JobSet, JobStore};
use tokio::sync::watch;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(20);

async fn until(rx: &mut watch::Receiver<JobSet>, what: impl Fn(&JobSet) -> bool) -> JobSet {
    tokio::time::timeout(WAIT, rx.wait_for(|s| what(s)))
        .await
        .expect("the watch did not deliver in time")
        .unwrap()
        .clone()
}

/// The shard folders read by `requests` (`GET /v1/kv/cronnode/jobs/<xx>/?recurse`).
fn shard_reads(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| r.split_whitespace().nth(1))
        .filter_map(|p| p.strip_prefix("/v1/kv/cronnode/jobs/"))
        .filter_map(|p| p.split_once("/?recurse").map(|(s, _)| s.to_string()))
        .collect()
}

fn changes(new: &JobSet, old: &JobSet) -> Vec<String> {
    new.changes_since(old)
        .map(|c| match c {
            JobChange::Added(j) => format!("added {}", j.id()),
            JobChange::Removed(j) => format!("removed {}", j.id()),
            JobChange::Changed { old, new } => {
                assert!(new.version > old.version);
                format!("changed {}", new.id())
            }
        })
        .collect()
}

#[tokio::test]
async fn a_change_re_reads_only_its_shard_and_shares_the_rest() {
    let agent = agent().await;
    let proxy = CountingProxy::start(agent.addr()).await;
    let writer = JobStore::new(client(&agent), "cronnode");
    let watched = JobStore::new(
        Consul::new(ConsulConfig::new(proxy.url())).unwrap(),
        "cronnode",
    );
    for i in 0..40 {
        writer
            .create(spec(&format!("job-{i}"), "@hourly"))
            .await
            .unwrap();
    }
    let mut rx = watched.watch();
    let first = until(&mut rx, |s| s.len() == 40).await;
    // The first pass: the stamps, every shard once, and the stray-key check.
    let requests = proxy.take();
    assert_eq!(shard_reads(&requests).len(), 256, "{requests:?}");
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/v1/kv/cronnode/jobs/?keys&separator=/")),
        "{requests:?}"
    );

    // At rest: one blocking read of the stamps outstanding, nothing else.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = proxy.take();
    assert!(requests.len() <= 1, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("GET /v1/kv/cronnode/job-shards/?recurse&index=")),
        "{requests:?}"
    );

    // One update: its shard is read, no other.
    let target = "job-7";
    let old_version = first.get(target).unwrap().version;
    let updated = writer
        .update(spec(target, "@daily"), Some(old_version))
        .await
        .unwrap();
    let second = until(&mut rx, |s| {
        s.get(target).is_some_and(|j| j.version == updated.version)
    })
    .await;
    let reads = shard_reads(&proxy.take());
    assert_eq!(reads, vec![format!("{:02x}", shard_of(target))]);
    assert_eq!(changes(&second, &first), vec![format!("changed {target}")]);
    // Every other job is the very same allocation (reused, not decoded again).
    for j in first.jobs().filter(|j| j.id() != target) {
        let now = second.get(j.id()).unwrap();
        assert!(
            Arc::ptr_eq(&j.job, &now.job),
            "{} was decoded again",
            j.id()
        );
    }
    assert_eq!(second.get(target).unwrap().job.spec.frequency, "@daily");
    assert!(second.index() > first.index());

    // A delete and a create are seen as such, each re-reading its own shard.
    assert!(writer.delete("job-3").await.unwrap());
    let third = until(&mut rx, |s| s.get("job-3").is_none()).await;
    assert_eq!(changes(&third, &second), vec!["removed job-3".to_string()]);
    writer.create(spec("newcomer", "@daily")).await.unwrap();
    let fourth = until(&mut rx, |s| s.get("newcomer").is_some()).await;
    assert_eq!(changes(&fourth, &third), vec!["added newcomer".to_string()]);
    let mut expected = vec![
        format!("{:02x}", shard_of("job-3")),
        format!("{:02x}", shard_of("newcomer")),
    ];
    expected.dedup();
    let mut reads = shard_reads(&proxy.take());
    reads.dedup();
    assert_eq!(reads, expected);
    assert_eq!(fourth.len(), 40);
    // Across all of it, from the first set: one change per job touched, in shard order.
    let mut all = changes(&fourth, &first);
    all.sort();
    assert_eq!(
        all,
        vec![
            "added newcomer".to_string(),
            format!("changed {target}"),
            "removed job-3".to_string()
        ]
    );
}

#[tokio::test]
async fn the_watch_delivers_changes_and_coalesces_bursts() {
    let agent = agent().await;
    let store = JobStore::new(client(&agent), "cronnode");
    let mut rx = store.watch();

    // The first read of an empty store is delivered.
    let first = until(&mut rx, |s| s.index() > 0).await;
    assert!(first.is_empty());

    store.create(spec("one", "@hourly")).await.unwrap();
    let set = until(&mut rx, |s| s.get("one").is_some()).await;
    assert_eq!(set.len(), 1);

    // A burst of 60 writes over ~3 s: a pass starts at most once a second.
    rx.borrow_and_update();
    let counter = {
        let mut rx = rx.clone();
        tokio::spawn(async move {
            let mut deliveries = 0;
            while rx.changed().await.is_ok() {
                deliveries += 1;
                if rx.borrow_and_update().len() == 61 {
                    break;
                }
            }
            deliveries
        })
    };
    let started = Instant::now();
    for i in 0..60 {
        store
            .create(spec(&format!("burst-{i}"), "@daily"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deliveries = tokio::time::timeout(WAIT, counter).await.unwrap().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        (deliveries as f64) <= elapsed + 2.0,
        "{deliveries} deliveries in {elapsed:.1}s"
    );

    // Deletes show too, and paused jobs are counted.
    store.delete("one").await.unwrap();
    let mut paused = spec("burst-0", "@daily");
    paused.paused = true;
    store.update(paused, None).await.unwrap();
    let set = until(&mut rx, |s| s.get("one").is_none() && s.paused_count() == 1).await;
    assert_eq!(set.len(), 60);
}
