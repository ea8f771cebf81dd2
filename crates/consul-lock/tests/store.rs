//! The job store against consul-dev over real HTTP: the sharded layout, check-and-set
//! conflicts, hand-written invalid entries and stray keys, and ACL errors. The watch is in
//! `store_watch.rs`, paging in `store_page.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use consul_dev::{DevAgent, DevConfig};
use consul_lock::{shard_of, Consul, ConsulConfig, ConsulError, JobSet, JobStore, StoreError};

fn ids(set: &JobSet) -> Vec<&str> {
    let mut ids: Vec<&str> = set.jobs().map(|j| j.id()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn jobs_live_in_their_shard_folder_and_every_write_moves_the_stamp() {
    let agent = agent().await;
    let consul = client(&agent);
    let store = JobStore::new(consul.clone(), "cronnode");
    let key = store.key("report").unwrap();
    let shard = format!("{:02x}", shard_of("report"));
    assert_eq!(key, format!("cronnode/jobs/{shard}/report"));
    let stamp_key = store.stamp_key("report").unwrap();
    assert_eq!(stamp_key, format!("cronnode/job-shards/{shard}"));
    assert!(store.stamp_key("../x").is_err());

    let stamp = || async {
        let (e, _) = consul
            .kv_get(&stamp_key, consul_lock::Query::now())
            .await
            .unwrap();
        e.map_or(0, |e| e.modify_index)
    };
    let created = store.create(spec("report", "@hourly")).await.unwrap();
    let (entry, _) = consul
        .kv_get(&key, consul_lock::Query::now())
        .await
        .unwrap();
    assert_eq!(entry.unwrap().modify_index, created.version);
    // The job and its stamp are written at one index.
    assert_eq!(stamp().await, created.version);
    let updated = store
        .update(spec("report", "@daily"), Some(created.version))
        .await
        .unwrap();
    assert_eq!(stamp().await, updated.version);
    // A refused write moves nothing.
    assert!(store.create(spec("report", "@daily")).await.is_err());
    assert_eq!(stamp().await, updated.version);
    let before_delete = stamp().await;
    assert!(store.delete("report").await.unwrap());
    assert!(stamp().await > before_delete);
    let after_delete = stamp().await;
    assert!(!store.delete("report").await.unwrap());
    assert_eq!(stamp().await, after_delete);
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
    assert_eq!(ids(&set), vec!["other", "report"]);
    assert_eq!(set.invalid_count(), 0);

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
async fn invalid_hand_written_entries_and_stray_keys_are_reported_while_the_others_load() {
    let agent = agent().await;
    let consul = client(&agent);
    let store = JobStore::new(consul.clone(), "team/cron");
    store.create(spec("a", "@hourly")).await.unwrap();
    store.create(spec("c", "@daily")).await.unwrap();
    // Written by hand in the Consul UI: bad JSON, a bad schedule, an id that does not match.
    let key = |id: &str| store.key(id).unwrap();
    consul.kv_cas(&key("b"), b"{not json", 0).await.unwrap();
    let bad_schedule = br#"{"id":"d","function":{"app":"x","path":"/f"},"frequency":"every day"}"#;
    consul.kv_cas(&key("d"), bad_schedule, 0).await.unwrap();
    let wrong_id = br#"{"id":"zzz","function":{"app":"x","path":"/f"},"frequency":"@daily"}"#;
    consul.kv_cas(&key("e"), wrong_id, 0).await.unwrap();
    // A valid job in another shard's folder, one of the old unsharded layout, a folder that is
    // not a shard, and a key outside the jobs directory (not a job, not reported).
    let ok = |id: &str| {
        format!(r#"{{"id":"{id}","function":{{"app":"x","path":"/f"}},"frequency":"@daily"}}"#)
    };
    let wrong_shard = format!("team/cron/jobs/{:02x}/f", shard_of("f").wrapping_add(1));
    consul
        .kv_cas(&wrong_shard, ok("f").as_bytes(), 0)
        .await
        .unwrap();
    consul
        .kv_cas("team/cron/jobs/old", ok("old").as_bytes(), 0)
        .await
        .unwrap();
    consul
        .kv_cas("team/cron/jobs/misc/x", b"x", 0)
        .await
        .unwrap();
    consul.kv_cas("team/cron/other", b"x", 0).await.unwrap();

    let set = store.list().await.unwrap();
    assert_eq!(ids(&set), vec!["a", "c"]);
    let invalid: std::collections::BTreeMap<&str, &str> = set
        .invalid()
        .map(|i| (i.key.as_str(), i.error.as_str()))
        .collect();
    assert_eq!(set.invalid_count(), invalid.len());
    let expect = |key: &str, needle: &str| {
        let error = invalid
            .get(key)
            .unwrap_or_else(|| panic!("{key} not reported: {invalid:?}"));
        assert!(error.contains(needle), "{key}: {error}");
    };
    expect(&key("b"), "JSON");
    expect(&key("d"), "frequency");
    expect(&key("e"), "does not match");
    expect(
        &wrong_shard,
        &format!("team/cron/jobs/{:02x}/", shard_of("f")),
    );
    expect(
        "team/cron/jobs/old",
        &format!(
            "must be in its shard folder team/cron/jobs/{:02x}/",
            shard_of("old")
        ),
    );
    expect("team/cron/jobs/misc/", "shard folder");
    assert_eq!(invalid.len(), 6, "{invalid:?}");
    assert!(set.index() > 0);

    match store.get("b").await {
        Err(StoreError::Stored { key: k, .. }) => assert_eq!(k, key("b")),
        other => panic!("expected a stored-entry error, got {other:?}"),
    }
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
    let key = store.key("a").unwrap();
    assert!(text.contains(&format!("GET /v1/kv/{key}")), "{text}");
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
    assert_eq!(store.list().await.unwrap().len(), 1);
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
    assert!(text.contains("GET /v1/kv/cronnode/job-shards/"), "{text}");
}
