//! The job store against consul-dev over real HTTP: check-and-set conflicts, hand-written
//! invalid entries, the coalesced watch, and ACL errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use consul_dev::{DevAgent, DevConfig};
use consul_lock::{Consul, ConsulConfig, ConsulError, JobStore, StoreError};
use cron_core::JobSpec;
use tokio::time::Instant;

fn spec(id: &str, frequency: &str) -> JobSpec {
    JobSpec::from_json(
        format!(
            r#"{{"id":"{id}","function":{{"app":"app","path":"/fn","body":"x"}},"frequency":"{frequency}"}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

#[tokio::test]
async fn create_update_delete_with_check_and_set() {
    let agent = agent().await;
    let store = JobStore::new(client(&agent), "cronnode");

    let created = store.create(spec("report", "*/10 * * * *")).await.unwrap();
    let created_at = created.job.spec.created_at.unwrap();
    assert!(created.version > 0);
    match store.create(spec("report", "@hourly")).await {
        Err(StoreError::Conflict { id, .. }) => assert_eq!(id, "report"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    let got = store.get("report").await.unwrap().unwrap();
    assert_eq!(got.version, created.version);
    assert_eq!(got.job.spec.frequency, "*/10 * * * *");

    // Update at the right version; then a stale version is a conflict.
    let updated = store
        .update(spec("report", "@hourly"), Some(created.version))
        .await
        .unwrap();
    assert!(updated.version > created.version);
    assert_eq!(updated.job.spec.created_at, Some(created_at));
    assert!(updated.job.spec.updated_at.unwrap() >= created_at);
    match store
        .update(spec("report", "@daily"), Some(created.version))
        .await
    {
        Err(StoreError::Conflict { message, .. }) => {
            assert!(message.contains("stale"), "{message}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Without a version, the last writer wins.
    let forced = store.update(spec("report", "@daily"), None).await.unwrap();
    assert!(forced.version > updated.version);
    assert!(matches!(
        store.update(spec("nope", "@daily"), None).await,
        Err(StoreError::NotFound(_))
    ));

    // The store sets the timestamps, whatever the caller sent.
    let mut sneaky = spec("other", "@daily");
    sneaky.created_at = Some(chrono::DateTime::UNIX_EPOCH);
    let other = store.create(sneaky).await.unwrap();
    assert!(other.job.spec.created_at.unwrap() > chrono::DateTime::UNIX_EPOCH);

    // An invalid spec or id is refused before anything is written.
    assert!(matches!(
        store.create(spec("bad", "61 * * * *")).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.create(spec("../leader", "@daily")).await,
        Err(StoreError::BadId { .. }) | Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.get("a/b").await,
        Err(StoreError::BadId { .. })
    ));
    // Consul refuses keys with some file extensions: say so before writing.
    match store.create(spec("export.json", "@daily")).await {
        Err(StoreError::BadId { reason, .. }) => assert!(reason.contains(".json"), "{reason}"),
        other => panic!("expected a bad id, got {other:?}"),
    }

    let set = store.list().await.unwrap();
    assert_eq!(set.jobs.keys().collect::<Vec<_>>(), vec!["other", "report"]);
    assert!(set.invalid.is_empty());

    assert!(store.delete("report").await.unwrap());
    assert!(!store.delete("report").await.unwrap());
    assert!(store.get("report").await.unwrap().is_none());
}

/// Consul deletes a whole tree whenever `recurse` is present in the query, even as
/// `recurse=false`: deleting job `report` must not take job `report2` with it.
#[tokio::test]
async fn deleting_a_job_leaves_jobs_whose_id_extends_it() {
    let agent = agent().await;
    let store = JobStore::new(client(&agent), "cronnode");
    store.create(spec("report", "@daily")).await.unwrap();
    store.create(spec("report2", "@daily")).await.unwrap();
    assert!(store.delete("report").await.unwrap());
    assert!(store.get("report").await.unwrap().is_none());
    assert!(store.get("report2").await.unwrap().is_some());
}

#[tokio::test]
async fn invalid_hand_written_entries_are_reported_while_the_others_load() {
    let agent = agent().await;
    let consul = client(&agent);
    let store = JobStore::new(consul.clone(), "team/cron");
    store.create(spec("a", "@hourly")).await.unwrap();
    store.create(spec("c", "@daily")).await.unwrap();
    // Written by hand in the Consul UI: bad JSON, a bad schedule, an id that does not match.
    consul
        .kv_cas("team/cron/jobs/b", b"{not json", 0)
        .await
        .unwrap();
    let bad_schedule = br#"{"id":"d","function":{"app":"x","path":"/f"},"frequency":"every day"}"#;
    consul
        .kv_cas("team/cron/jobs/d", bad_schedule, 0)
        .await
        .unwrap();
    let wrong_id = br#"{"id":"zzz","function":{"app":"x","path":"/f"},"frequency":"@daily"}"#;
    consul
        .kv_cas("team/cron/jobs/e", wrong_id, 0)
        .await
        .unwrap();
    // A key outside the jobs directory is not a job.
    consul.kv_cas("team/cron/other", b"x", 0).await.unwrap();

    let set = store.list().await.unwrap();
    assert_eq!(set.jobs.keys().collect::<Vec<_>>(), vec!["a", "c"]);
    let keys: Vec<_> = set.invalid.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["team/cron/jobs/b", "team/cron/jobs/d", "team/cron/jobs/e"]
    );
    assert!(
        set.invalid[0].error.contains("JSON"),
        "{:?}",
        set.invalid[0]
    );
    assert!(
        set.invalid[1].error.contains("frequency"),
        "{:?}",
        set.invalid[1]
    );
    assert!(
        set.invalid[2].error.contains("does not match"),
        "{:?}",
        set.invalid[2]
    );
    assert!(set.index > 0);

    match store.get("b").await {
        Err(StoreError::Stored { key, .. }) => assert_eq!(key, "team/cron/jobs/b"),
        other => panic!("expected a stored-entry error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_watch_delivers_changes_and_coalesces_bursts() {
    let agent = agent().await;
    let store = JobStore::new(client(&agent), "cronnode");
    let mut rx = store.watch();

    // The first read of an empty prefix (a 404 with an index) is delivered.
    let first = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.index > 0))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(first.jobs.is_empty());

    store.create(spec("one", "@hourly")).await.unwrap();
    let set = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| s.jobs.contains_key("one")),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert_eq!(set.jobs.len(), 1);

    // A burst of 60 writes over ~3 s: the watch reads at most once a second.
    rx.borrow_and_update();
    let counter = {
        let mut rx = rx.clone();
        tokio::spawn(async move {
            let mut deliveries = 0;
            while rx.changed().await.is_ok() {
                deliveries += 1;
                if rx.borrow_and_update().jobs.len() == 61 {
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
    let deliveries = tokio::time::timeout(Duration::from_secs(10), counter)
        .await
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        (deliveries as f64) <= elapsed + 2.0,
        "{deliveries} deliveries in {elapsed:.1}s"
    );

    // Deletes show too.
    store.delete("one").await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| !s.jobs.contains_key("one")),
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test]
async fn a_missing_acl_token_gives_an_error_that_says_so() {
    let agent = DevAgent::start(DevConfig {
        acl_token: Some("s3cret".to_string()),
        ..DevConfig::default()
    })
    .await
    .unwrap();
    let anonymous = Consul::new(ConsulConfig::new(agent.url())).unwrap();
    let store = JobStore::new(anonymous.clone(), "cronnode");
    let err = store.get("a").await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ACL token is missing"), "{text}");
    assert!(text.contains("GET /v1/kv/cronnode/jobs/a"), "{text}");
    assert!(matches!(
        err,
        StoreError::Consul(ConsulError::Denied { .. })
    ));
    let err = store.create(spec("a", "@daily")).await.unwrap_err();
    assert!(err.to_string().contains("ACL token is missing"), "{err}");
    let err = consul_lock::leader_info(&anonymous, "cronnode")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    let err = consul_lock::nodes(&anonymous).await;
    // Consul filters list reads instead of refusing them: an empty list, not an error.
    assert!(err.is_ok() || err.unwrap_err().status() == Some(403));

    // A bare host:port, as CONSUL_HTTP_ADDR is usually written.
    let with_token =
        Consul::new(ConsulConfig::new(agent.addr().to_string()).with_token("s3cret")).unwrap();
    let store = JobStore::new(with_token, "cronnode");
    store.create(spec("a", "@daily")).await.unwrap();
    assert_eq!(store.list().await.unwrap().jobs.len(), 1);
}

#[tokio::test]
async fn an_unreachable_consul_is_named_in_the_error() {
    // A port with nothing listening: take a free one and close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let consul = Consul::new(ConsulConfig::new(format!("127.0.0.1:{port}"))).unwrap();
    let err = JobStore::new(consul, "cronnode").list().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unreachable"), "{text}");
    assert!(text.contains("GET /v1/kv/cronnode/jobs/"), "{text}");
}
