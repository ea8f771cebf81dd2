//! Memory held per job by a `JobSet` of the pipeline benchmark's jobs (BENCHMARKS.md, memory):
//! `cargo run --release -p consul-lock --example job_set_memory` (`JOBS=n`, default 100,000).
//!
//! Starts a consul-dev agent in this process, writes the jobs with plain PUTs (the bench's
//! shape: id `j0000123`, a daily 6-field schedule, app `bench`, path `/fn`, body `bench`),
//! then reads them with `JobStore::list` and prints the growth of this process's resident
//! memory while the set is held, per job. The agent's own memory is in place before the first
//! measurement; what is measured is the set and what the allocator kept from reading it (a
//! second set read beside the first shows the held part alone).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use consul_dev::{DevAgent, DevConfig};
use consul_lock::{Consul, ConsulConfig, JobStore};
use http_body_util::Full;
use hyper_util::client::legacy::Client;

/// Writes in flight while loading.
const PARALLEL: usize = 32;

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn spec(i: u64) -> (String, String) {
    let id = format!("j{i:07}");
    let frequency = format!("{} {} {} * * *", i % 60, (i / 60) % 60, (i / 3600) % 24);
    let body = format!(
        r#"{{"id":"{id}","function":{{"app":"bench","path":"/fn","body":"bench"}},"frequency":"{frequency}"}}"#
    );
    (id, body)
}

#[tokio::main]
async fn main() {
    let jobs: u64 = std::env::var("JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let agent = DevAgent::start(DevConfig::default()).await.unwrap();
    let store = JobStore::new(
        Consul::new(ConsulConfig::new(agent.url())).unwrap(),
        "cronnode",
    );
    let http: Client<_, Full<Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let started = std::time::Instant::now();
    let mut next = 0u64;
    while next < jobs {
        let mut set = tokio::task::JoinSet::new();
        for i in next..(next + PARALLEL as u64 * 16).min(jobs) {
            let (id, body) = spec(i);
            let url = format!("{}/v1/kv/{}", agent.url(), store.key(&id).unwrap());
            let http = http.clone();
            set.spawn(async move {
                let req = hyper::Request::put(url)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let resp = http.request(req).await.unwrap();
                assert!(resp.status().is_success());
            });
            if set.len() >= PARALLEL {
                set.join_next().await.unwrap().unwrap();
            }
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        next = (next + PARALLEL as u64 * 16).min(jobs);
    }
    println!("wrote {jobs} jobs in {:.1?}", started.elapsed());

    let before = vm_rss_kib();
    let t = std::time::Instant::now();
    let set = store.list().await.unwrap();
    let read_in = t.elapsed();
    let held = vm_rss_kib();
    assert_eq!(set.len() as u64, jobs, "{:?}", set.invalid().next());
    let clone = set.clone();
    println!(
        "read {} jobs in {read_in:.1?}: RSS {before} KiB before, {held} KiB holding the set: \
         {:.0} B per job",
        set.len(),
        (held.saturating_sub(before) * 1024) as f64 / jobs as f64
    );
    // A second, independent set while the first is held: the pages the first read freed are
    // reused for the second's transient buffers, so this growth is closer to what is held.
    let again = store.list().await.unwrap();
    let second = vm_rss_kib();
    println!(
        "a second set held beside it: RSS {second} KiB: {:.0} B per job",
        (second.saturating_sub(held) * 1024) as f64 / jobs as f64
    );
    println!(
        "of which the store's own: {} B per job (a StoredJob in its shard's Vec); the rest is \
         the job: its Arc allocation of {} B (counts and cron-core's Job) plus the spec's \
         strings and the compiled schedule",
        std::mem::size_of::<consul_lock::StoredJob>(),
        std::mem::size_of::<cron_core::Job>() + 16,
    );
    drop((set, clone, again));
    println!("RSS after dropping the set: {} KiB", vm_rss_kib());
    agent.shutdown().await;
}
