//! `--data-dir` (issue: state and the index survive a restart; without it, memory only).
//! Dev-agent only: restarting an external agent is outside the suite's reach.

use consul_dev::DevConfig;
use hyper::StatusCode;
use serde_json::json;

use crate::common::{skip_external, Target};

/// State survives a restart with the same data dir, and the index never goes backwards.
#[tokio::test]
async fn state_and_index_survive_restart() {
    if skip_external("restarts an in-process agent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = DevConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..DevConfig::default()
    };
    let t = Target::start_with(config.clone()).await;
    t.put("/v1/kv/keep/me?flags=5", "v").await.ok();
    let s = t.session(r#"{"TTL":"60s"}"#).await;
    t.put(&format!("/v1/kv/keep/lock?acquire={s}"), "")
        .await
        .ok();
    let before = t.get("/v1/kv/keep/me").await.ok().index();
    let before_all = t.get("/v1/kv/?recurse").await.ok().index();
    t.agent.unwrap().shutdown().await;

    let t = Target::start_with(config).await;
    let e = t.entry("keep/me").await;
    assert_eq!(e["Flags"], json!(5));
    assert_eq!(t.get("/v1/kv/keep/me").await.ok().index(), before);
    assert_eq!(
        t.entry("keep/lock").await["Session"],
        json!(s),
        "session kept"
    );
    t.put("/v1/kv/keep/next", "").await.ok();
    assert!(t.get("/v1/kv/keep/next").await.ok().index() > before_all);
}

/// Without a data dir a new agent starts empty.
#[tokio::test]
async fn memory_only_without_data_dir() {
    if skip_external("restarts an in-process agent") {
        return;
    }
    let t = Target::start().await;
    t.put("/v1/kv/gone", "").await.ok();
    t.agent.unwrap().shutdown().await;
    let t = Target::start().await;
    assert_eq!(t.get("/v1/kv/gone").await.status, StatusCode::NOT_FOUND);
}
