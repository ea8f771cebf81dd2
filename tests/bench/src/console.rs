//! Scenario 8: the web console's first page of jobs with 100,000 jobs in the store.
//!
//! One node; the jobs bulk-loaded (yearly schedules, so nothing fires while measuring). A
//! round is what a browser asks for when the console opens on its Jobs page: the page and
//! every file it loads (found by following the page's references and the modules' imports,
//! so the bench follows the console as it changes), fetched one after the other (a browser
//! fetches them in parallel: this is an upper bound), then the first page of the list at the
//! console's page size (read from the served `jobs.js`). Also timed on their own: that list
//! request, and two filtered first pages (a state nothing has, an id nothing contains), which
//! walk the store up to the page's scan budget: the worst a search can cost per request.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cluster::{job_spec, Cluster};
use crate::procs::Bins;
use crate::stats::{summary, Summary};

/// Rounds measured (after [`WARMUP`] unmeasured ones).
const ROUNDS: usize = 100;
/// Rounds before measuring (connections, caches).
const WARMUP: usize = 5;
/// Rounds of the filtered pages (each walks the scan budget).
const FILTERED_ROUNDS: usize = 20;

/// The figures.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Jobs in the store.
    pub jobs: usize,
    /// Files the page loads (the page included).
    pub files: usize,
    /// Their bytes.
    pub bytes: usize,
    /// The console's page size.
    pub page_size: usize,
    /// The whole first page: every file, then the list, ms.
    pub first_page: Summary,
    /// The list request alone, ms.
    pub list: Summary,
    /// `state=paused` (no job is): the filtered page's worst case, ms.
    pub by_state: Summary,
    /// `id_contains=` a text no id has, ms.
    pub by_id: Summary,
}

/// A yearly schedule spread over the year by `i`.
fn yearly(i: usize) -> String {
    format!(
        "{} {} {} {} *",
        i % 60,
        (i / 60) % 24,
        1 + (i / 1440) % 28,
        1 + (i / 40_320) % 12
    )
}

/// Loads `jobs` jobs into a one-node cluster and measures.
pub async fn run(bins: &Bins, jobs: usize) -> Result<Outcome> {
    let cluster = Cluster::start(bins, 1).await?;
    cluster.wait_leader(Duration::from_secs(60)).await?;
    let specs = (0..jobs)
        .map(|i| job_spec(&format!("console-{i:06}"), &yearly(i), "{}"))
        .collect();
    cluster.put_jobs(specs).await?;
    cluster.wait_jobs(0, jobs, Duration::from_secs(300)).await?;
    cluster.wait_idle(0, Duration::from_secs(120)).await?;
    let api = cluster.nodes[0].api();

    let files = page_files(&cluster, &api).await?;
    let bytes = {
        let mut n = 0;
        for f in &files {
            n += cluster.http.get(&format!("{api}{f}")).await?.len();
        }
        n
    };
    let jobs_js = cluster.http.get(&format!("{api}/ui/jobs.js")).await?;
    let page_size = page_size(&String::from_utf8_lossy(&jobs_js))?;
    let list_url = format!("{api}/v1/cronjobs?limit={page_size}");
    let first = cluster.http.get(&list_url).await?;
    let first: serde_json::Value = serde_json::from_slice(&first)?;
    let shown = first["jobs"].as_array().map_or(0, Vec::len);
    if shown != page_size {
        bail!("the first page holds {shown} jobs, not {page_size}");
    }

    let mut whole = Vec::new();
    let mut list = Vec::new();
    for round in 0..WARMUP + ROUNDS {
        let t = Instant::now();
        for f in &files {
            cluster.http.get(&format!("{api}{f}")).await?;
        }
        let l = Instant::now();
        cluster.http.get(&list_url).await?;
        if round >= WARMUP {
            list.push(ms(l));
            whole.push(ms(t));
        }
    }
    let by_state = time(&cluster, &format!("{list_url}&state=paused")).await?;
    let by_id = time(&cluster, &format!("{list_url}&id_contains=no-such-id")).await?;
    Ok(Outcome {
        jobs,
        files: files.len(),
        bytes,
        page_size,
        first_page: summary(whole),
        list: summary(list),
        by_state,
        by_id,
    })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

async fn time(cluster: &Cluster, url: &str) -> Result<Summary> {
    let mut v = Vec::new();
    for _ in 0..FILTERED_ROUNDS {
        let t = Instant::now();
        cluster.http.get(url).await?;
        v.push(ms(t));
    }
    Ok(summary(v))
}

/// The page and every file it loads: references to `/ui/...` and relative module imports
/// (`"./x.js"`), followed from `/ui/`.
async fn page_files(cluster: &Cluster, api: &str) -> Result<Vec<String>> {
    let mut files = vec!["/ui/".to_string()];
    let mut i = 0;
    while i < files.len() {
        let text = cluster.http.get(&format!("{api}{}", files[i])).await?;
        let text = String::from_utf8_lossy(&text);
        for (mark, prefix) in [("\"/ui/", "/ui/"), ("\"./", "/ui/")] {
            for (at, _) in text.match_indices(mark) {
                let rest = &text[at + mark.len()..];
                let Some(end) = rest.find('"') else { continue };
                let file = format!("{prefix}{}", &rest[..end]);
                if !files.contains(&file) {
                    files.push(file);
                }
            }
        }
        i += 1;
    }
    Ok(files)
}

/// `export const PAGE_SIZE = 50;` in jobs.js.
fn page_size(jobs_js: &str) -> Result<usize> {
    let rest = jobs_js
        .split_once("PAGE_SIZE = ")
        .context("jobs.js has no PAGE_SIZE")?
        .1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .context("jobs.js's PAGE_SIZE is not a number")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yearly_slots_are_valid_fields() {
        for i in [0, 59, 1439, 40_319, 99_999, 483_839] {
            let f = yearly(i);
            let parts: Vec<u32> = f
                .split_whitespace()
                .take(4)
                .map(|p| p.parse().unwrap_or(99))
                .collect();
            assert!(parts[0] < 60 && parts[1] < 24, "{f}");
            assert!(
                (1..=28).contains(&parts[2]) && (1..=12).contains(&parts[3]),
                "{f}"
            );
        }
        assert_eq!(page_size("export const PAGE_SIZE = 50;").ok(), Some(50));
    }
}
