//! `JobStore::list_page` against consul-dev over real HTTP: (shard, id) order, pages that
//! join up to the whole set with no job twice, the filters (app, a part of the id, the state),
//! invalid entries reported once.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use consul_lock::{
    shard_of, EntryState, JobPage, JobStore, PageFilter, StoreError, MAX_PAGE_LIMIT,
};

const ALL: PageFilter<'static> = PageFilter {
    app: None,
    id_contains: None,
    state: None,
};

async fn all_pages(store: &JobStore, limit: usize, filter: &PageFilter<'_>) -> Vec<JobPage> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_page(after.as_deref(), limit, filter)
            .await
            .unwrap();
        after = page.next.clone();
        pages.push(page);
        if after.is_none() {
            return pages;
        }
        assert!(pages.len() < 1000, "paging does not end");
    }
}

#[tokio::test]
async fn pages_join_up_in_shard_then_id_order() {
    let agent = agent().await;
    let consul = client(&agent);
    let store = JobStore::new(consul.clone(), "cronnode");

    // Empty store: one empty page, no cursor.
    let page = store.list_page(None, 10, &ALL).await.unwrap();
    assert!(page.jobs.is_empty() && page.invalid.is_empty() && page.next.is_none());

    for i in 0..45 {
        let app = if i % 3 == 0 { "red" } else { "blue" };
        store
            .create(spec_of(&format!("job-{i}"), app, "@hourly"))
            .await
            .unwrap();
    }
    // One invalid entry in a shard folder, one stray key of the old layout.
    let bad = store.key("broken").unwrap();
    consul.kv_cas(&bad, b"{not json", 0).await.unwrap();
    consul
        .kv_cas("cronnode/jobs/old-style", b"{}", 0)
        .await
        .unwrap();

    let whole = store.list().await.unwrap();
    let expected: Vec<String> = whole.jobs().map(|j| j.id().to_string()).collect();
    assert_eq!(expected.len(), 45);

    let pages = all_pages(&store, 7, &ALL).await;
    let got: Vec<String> = pages
        .iter()
        .flat_map(|p| p.jobs.iter().map(|j| j.id().to_string()))
        .collect();
    assert_eq!(got, expected, "pages in (shard, id) order, each job once");
    for p in &pages[..pages.len() - 1] {
        assert_eq!(p.jobs.len(), 7);
    }
    let keys: Vec<(u8, &str)> = got.iter().map(|id| (shard_of(id), id.as_str())).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let invalid: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.invalid.iter().map(|i| i.key.as_str()))
        .collect();
    let mut sorted = invalid.clone();
    sorted.sort();
    assert_eq!(sorted, want_invalid(&bad));

    // Filtered: only the red ones, in the same order, whatever the page size.
    let red: Vec<String> = whole
        .jobs()
        .filter(|j| j.job.spec.function.app == "red")
        .map(|j| j.id().to_string())
        .collect();
    assert_eq!(red.len(), 15);
    for limit in [1, 4, MAX_PAGE_LIMIT] {
        let red_only = PageFilter {
            app: Some("red"),
            ..ALL
        };
        let pages = all_pages(&store, limit, &red_only).await;
        let got: Vec<String> = pages
            .iter()
            .flat_map(|p| p.jobs.iter().map(|j| j.id().to_string()))
            .collect();
        assert_eq!(got, red, "limit {limit}");
        assert!(pages.iter().all(|p| p.jobs.len() <= limit));
    }

    // One big page holds everything; no cursor.
    let one = store.list_page(None, 0, &ALL).await.unwrap();
    assert_eq!(one.jobs.len(), 1, "a limit of 0 is taken as 1");
    let all = store.list_page(None, MAX_PAGE_LIMIT, &ALL).await.unwrap();
    assert_eq!(all.jobs.len(), 45);
    assert!(all.next.is_none());

    // Resuming from a cursor with another page size gives the rest, no job twice.
    let first = store.list_page(None, 20, &ALL).await.unwrap();
    let cursor = first.next.clone().unwrap();
    let rest = all_pages_from(&store, &cursor).await;
    let seen: BTreeSet<String> = first
        .jobs
        .iter()
        .chain(rest.iter())
        .map(|j| j.id().to_string())
        .collect();
    assert_eq!(seen.len(), 45);

    // By state and by a part of the id (case ignored), across pages.
    for i in [4, 7, 30] {
        let id = format!("job-{i}");
        let mut spec = store.get(&id).await.unwrap().unwrap().job.spec.clone();
        spec.paused = true;
        store.update(spec, None).await.unwrap();
    }
    let ids_of = |pages: &[JobPage]| -> BTreeSet<String> {
        pages
            .iter()
            .flat_map(|p| p.jobs.iter().map(|j| j.id().to_string()))
            .collect()
    };
    let paused = PageFilter {
        state: Some(EntryState::Paused),
        ..ALL
    };
    let pages = all_pages(&store, 2, &paused).await;
    let want: BTreeSet<String> = ["job-4", "job-7", "job-30"].map(String::from).into();
    assert_eq!(ids_of(&pages), want);
    assert!(
        pages.iter().all(|p| p.invalid.is_empty()),
        "no invalid entry among paused"
    );
    let active = PageFilter {
        state: Some(EntryState::Active),
        ..ALL
    };
    assert_eq!(ids_of(&all_pages(&store, 5, &active).await).len(), 42);
    let invalid = PageFilter {
        state: Some(EntryState::Invalid),
        ..ALL
    };
    let pages = all_pages(&store, 5, &invalid).await;
    assert!(ids_of(&pages).is_empty());
    let mut keys: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.invalid.iter().map(|i| i.key.as_str()))
        .collect();
    keys.sort();
    assert_eq!(keys, want_invalid(&bad));
    let threes = PageFilter {
        id_contains: Some("JOB-3"),
        ..ALL
    };
    let want: BTreeSet<String> = ["job-3", "job-30", "job-31", "job-32", "job-33"]
        .iter()
        .chain(&["job-34", "job-35", "job-36", "job-37", "job-38", "job-39"])
        .map(|s| s.to_string())
        .collect();
    let pages = all_pages(&store, 3, &threes).await;
    assert_eq!(ids_of(&pages), want);
    assert!(pages.iter().all(|p| p.invalid.is_empty()));
    let broken = PageFilter {
        id_contains: Some("brok"),
        ..ALL
    };
    let pages = all_pages(&store, 3, &broken).await;
    let keys: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.invalid.iter().map(|i| i.key.as_str()))
        .collect();
    assert_eq!(keys, [bad.as_str()]);
    let red_paused = PageFilter {
        app: Some("red"),
        state: Some(EntryState::Paused),
        ..ALL
    };
    let want: BTreeSet<String> = ["job-30"].map(String::from).into();
    assert_eq!(ids_of(&all_pages(&store, 10, &red_paused).await), want);

    match store.list_page(Some("a/b"), 10, &ALL).await {
        Err(StoreError::BadId { .. }) => {}
        other => panic!("expected a bad id, got {other:?}"),
    }
}

async fn all_pages_from(store: &JobStore, after: &str) -> Vec<consul_lock::StoredJob> {
    let mut jobs = Vec::new();
    let mut after = Some(after.to_string());
    while let Some(a) = after {
        let page = store.list_page(Some(&a), 9, &ALL).await.unwrap();
        jobs.extend(page.jobs);
        after = page.next;
    }
    jobs
}

/// The two invalid entries the test writes, sorted.
fn want_invalid(bad: &str) -> Vec<&str> {
    let mut want = vec!["cronnode/jobs/old-style", bad];
    want.sort();
    want
}
