//! The IronFunctions task: what one fire becomes on the platform's queue, and the history
//! entry it leaves.
//!
//! Owns the JSON an async runner reserves (see docs/ironfunctions-mq.md): `id` is the fire id,
//! `image` is required, `created_at` is always an RFC3339 string, and `env_vars` mimic an HTTP
//! POST to the route. An extra `cron` object tells where the call came from; runners ignore
//! unknown fields. [`build_task`] is the reference form (serde); [`encode_task`] the exact
//! bytes pushed (the hot path in `encode.rs`, tested against it here). Also owns the history
//! entry's wire form, built here so the scripts do no JSON work.
//!
//! Must not do I/O: everything here is a pure function of its arguments (time is `now`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cron_core::{Fire, FireKind, Job};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::encode::write_task;
use crate::model::{
    check_priority, headers_env, idle_timeout_for, kind_from_name, request_url, rfc3339,
    timeout_for, user_agent,
};
pub use crate::model::{
    env_name, kind_name, RouteState, RouteTask, Routes, TaskError, TaskSettings,
    DEFAULT_FUNCTIONS_URL, DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_TIMEOUT_SECS, MAX_PRIORITY,
};

/// The task as the runner reads it. Field names are the wire format; do not rename.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The fire id (the call id).
    pub id: String,
    /// The app.
    pub app_name: String,
    /// The route path.
    pub path: String,
    /// The container image to run.
    pub image: String,
    /// 0, 1 or 2.
    pub priority: u8,
    /// The function's stdin (the job's body).
    pub payload: String,
    /// Run timeout in seconds.
    pub timeout: u32,
    /// Hot-function idle timeout in seconds.
    pub idle_timeout: u32,
    /// Seconds the task waited in the delayed set (absent for immediate tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u32>,
    /// When the task was made (RFC3339 with milliseconds; never null).
    pub created_at: String,
    /// The call's environment: `METHOD`, `ROUTE`, `REQUEST_URL`, `HEADER_*`.
    pub env_vars: BTreeMap<String, String>,
    /// Where the call came from (ignored by runners).
    pub cron: CronMeta,
}

/// The `cron` object of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronMeta {
    /// The job id.
    pub job_id: String,
    /// The scheduled instant (RFC3339).
    pub slot: String,
    /// The leader's fencing token.
    pub token: u64,
    /// `scheduled`, `catchup` or `manual`.
    pub kind: String,
    /// The node that enqueued it.
    pub node: String,
}

/// Builds the task of `fire` (a slot of `job`) as the runner will read it.
pub fn build_task(
    job: &Job,
    fire: &Fire,
    token: u64,
    settings: &TaskSettings,
    now: DateTime<Utc>,
) -> Result<Task, TaskError> {
    let f = &job.spec.function;
    let route = settings.route_for(job)?;
    let image = settings.image_for(job, route)?.to_string();
    let priority = check_priority(job)?;
    // IronFunctions' order (model.rs): a later variable wins over an earlier one of its name.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("METHOD".into(), "POST".into());
    env.insert("ROUTE".into(), f.path.clone());
    env.insert("REQUEST_URL".into(), request_url(settings, job));
    for (k, v) in route.map_or(&[][..], |r| &r.config_env[..]) {
        env.insert(k.clone(), v.clone());
    }
    env.extend(headers_env(job)?);
    // Ours wins over a job's own User-Agent: the platform must be able to tell cron calls apart.
    env.insert("HEADER_USER_AGENT".into(), user_agent(job));
    Ok(Task {
        id: fire.fire_id.to_string(),
        app_name: f.app.clone(),
        path: f.path.clone(),
        image,
        priority,
        payload: f.body.clone(),
        timeout: timeout_for(job, route),
        idle_timeout: idle_timeout_for(route),
        delay: f.delay.filter(|d| *d > 0),
        created_at: rfc3339(now),
        env_vars: env,
        cron: CronMeta {
            job_id: job.spec.id.clone(),
            slot: rfc3339(fire.slot),
            token,
            kind: kind_name(fire.kind).to_string(),
            node: settings.node.clone(),
        },
    })
}

/// The task JSON of `fire`, exactly as it is pushed onto the queue.
pub fn encode_task(
    job: &Job,
    fire: &Fire,
    token: u64,
    settings: &TaskSettings,
    now: DateTime<Utc>,
) -> Result<String, TaskError> {
    let mut out = Vec::with_capacity(512);
    write_task(
        &mut out,
        job,
        fire,
        token,
        settings,
        &rfc3339(now),
        &rfc3339(fire.slot),
    )?;
    // Built only from &str pieces and ASCII, so always UTF-8.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// One enqueued fire, as kept in the job's capped history (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The scheduled instant.
    pub slot: DateTime<Utc>,
    /// When its task reached the queue, by Redis's clock: the instant of the enqueue script
    /// for a fire enqueued directly, of its slot's release for a staged one.
    pub enqueued_at: DateTime<Utc>,
    /// The fire id (the task's `id`).
    pub fire_id: Uuid,
    /// The fencing token it was enqueued under.
    pub token: u64,
    /// The node that enqueued it.
    pub node: String,
    /// Scheduled, catch-up or manual.
    pub kind: FireKind,
    /// Set when the slot was not fired: why (its job's IronFunctions route was gone). Its
    /// `enqueued_at` is then the instant the leader gave it up.
    pub not_fired: Option<String>,
}

/// The stored form of a [`HistoryEntry`].
#[derive(Serialize, Deserialize)]
/// Instants as unix seconds and milliseconds: about half the bytes of RFC3339 strings, and
/// the script copies every entry.
struct HistoryWire {
    #[serde(with = "chrono::serde::ts_seconds")]
    slot: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    enqueued_at: DateTime<Utc>,
    fire_id: Uuid,
    token: u64,
    node: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_fired: Option<String>,
}

impl HistoryEntry {
    /// The entry recorded when `fire` is enqueued.
    pub fn new(fire: &Fire, token: u64, node: &str, now: DateTime<Utc>) -> HistoryEntry {
        HistoryEntry {
            slot: fire.slot,
            enqueued_at: now,
            fire_id: fire.fire_id,
            token,
            node: node.to_string(),
            kind: fire.kind,
            not_fired: None,
        }
    }

    /// The entry of a slot not fired, and why.
    pub fn not_fired(fire: &Fire, node: &str, now: DateTime<Utc>, reason: &str) -> HistoryEntry {
        HistoryEntry {
            not_fired: Some(reason.to_string()),
            token: 0,
            ..HistoryEntry::new(fire, 0, node, now)
        }
    }

    /// The stored JSON.
    pub fn to_json(&self) -> String {
        let wire = HistoryWire {
            slot: self.slot,
            enqueued_at: self.enqueued_at,
            fire_id: self.fire_id,
            token: self.token,
            node: self.node.clone(),
            kind: kind_name(self.kind).to_string(),
            not_fired: self.not_fired.clone(),
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Parses a stored entry; `None` when it is not one of ours.
    pub fn from_json(bytes: &[u8]) -> Option<HistoryEntry> {
        let wire: HistoryWire = serde_json::from_slice(bytes).ok()?;
        Some(HistoryEntry {
            slot: wire.slot,
            enqueued_at: wire.enqueued_at,
            fire_id: wire.fire_id,
            token: wire.token,
            node: wire.node,
            kind: kind_from_name(&wire.kind)?,
            not_fired: wire.not_fired,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use cron_core::JobSpec;
    use std::sync::Arc;

    fn job(function: serde_json::Value) -> Job {
        let spec =
            serde_json::json!({"id": "report", "function": function, "frequency": "@hourly"});
        JobSpec::from_json(spec.to_string().as_bytes())
            .unwrap()
            .validate()
            .unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
    }

    #[test]
    fn headers_become_env_vars_like_the_functions_server_makes_them() {
        let j = job(serde_json::json!({"app": "a", "path": "/p", "image": "i",
            "headers": ["Content-Type: application/json", "x-multi: 1", "X-Multi: 2",
                        "User-Agent: mine", "X-Empty:"]}));
        let fire = Fire::scheduled("report".into(), at(), FireKind::CatchUp);
        let t = build_task(&j, &fire, 9, &TaskSettings::default(), at()).unwrap();
        assert_eq!(t.env_vars["HEADER_CONTENT_TYPE"], "application/json");
        // IronFunctions joins a repeated header with a space (strings.Join(value, " ")).
        assert_eq!(t.env_vars["HEADER_X_MULTI"], "1 2");
        assert_eq!(t.env_vars["HEADER_X_EMPTY"], "");
        assert!(t.env_vars["HEADER_USER_AGENT"].starts_with("cronnode/"));
        assert_eq!(t.env_vars["REQUEST_URL"], "http://127.0.0.1:8080/r/a/p");
        assert_eq!(t.cron.kind, "catchup");
        assert_eq!(t.created_at, "2026-03-29T01:00:00.000Z");
        assert_eq!(t.id, fire.fire_id.to_string());
    }

    #[test]
    fn the_fast_encoder_writes_the_same_bytes_as_serde() {
        let now = at() + chrono::Duration::milliseconds(1234);
        let jobs = [
            job(serde_json::json!({"app": "a", "path": "/p", "image": "i"})),
            job(
                serde_json::json!({"app": "a\"pp", "path": "/p/\u{e9}t\u{e9}", "image": "i\\x",
                "body": "{\"x\":\"line\nbreak\ttab\u{1}\u{7f}\"}", "priority": 2, "timeout": 5,
                "delay": 90, "headers": ["User-Agent: mine", "Zed: last", "A-B: 1", "a-b: 2",
                "X-Quote: say \"hi\"", "Accept: */*"]}),
            ),
            job(serde_json::json!({"app": "a", "path": "/p", "image": "i", "delay": 0})),
        ];
        let settings = [
            TaskSettings {
                functions_url: "http://fn.test:8080//".into(),
                default_image: None,
                node: "node \"a\"\n".into(),
                routes: None,
            },
            TaskSettings::default(),
            // Resolved routes: config names that collide with each other, with METHOD and
            // with a header, and odd characters in values.
            TaskSettings {
                routes: Some(Arc::new(routes_of(&[
                    (
                        "a",
                        "/p",
                        route(
                            &[("method", "GET"), ("zz", "a\"pp")],
                            &[("ZZ", "r")],
                            45,
                            20,
                        ),
                    ),
                    (
                        "a\"pp",
                        "/p/\u{e9}t\u{e9}",
                        route(&[("header-zed", "cfg\n")], &[], 0, 0),
                    ),
                ]))),
                ..TaskSettings::default()
            },
        ];
        for j in &jobs {
            for s in &settings {
                for fire in [
                    Fire::scheduled("report".into(), at(), FireKind::Scheduled),
                    Fire::scheduled("report".into(), at(), FireKind::CatchUp),
                    Fire::manual("report".into(), now),
                ] {
                    let want =
                        serde_json::to_string(&build_task(j, &fire, 77, s, now).unwrap()).unwrap();
                    assert_eq!(encode_task(j, &fire, 77, s, now).unwrap(), want);
                }
            }
        }
    }

    fn route(app: &[(&str, &str)], route: &[(&str, &str)], timeout: u32, idle: u32) -> RouteTask {
        RouteTask::new(
            "acme/hello:7".into(),
            app.iter().copied(),
            route.iter().copied(),
            timeout,
            idle,
        )
    }

    fn routes_of(list: &[(&str, &str, RouteTask)]) -> Routes {
        let mut r = Routes::default();
        for (app, path, t) in list {
            r.insert(app, path, RouteState::Found(Arc::new(t.clone())));
        }
        r
    }

    #[test]
    fn a_resolved_route_makes_the_task_ironfunctions_serve_makes() {
        let routes = routes_of(&[(
            "myapp",
            "/hello",
            route(
                &[
                    ("APP_SETTING", "a1"),
                    ("db-url", "postgres://x"),
                    ("shared", "app"),
                ],
                &[("ROUTE_SETTING", "r1"), ("shared", "route")],
                45,
                20,
            ),
        )]);
        let s = TaskSettings {
            routes: Some(Arc::new(routes)),
            ..TaskSettings::default()
        };
        let j = job(serde_json::json!({"app": "myapp", "path": "/hello",
            "headers": ["Content-Type: application/json", "X-Custom: yes"], "body": "{}"}));
        let fire = Fire::scheduled("report".into(), at(), FireKind::Scheduled);
        let t = build_task(&j, &fire, 1, &s, at()).unwrap();
        assert_eq!(t.image, "acme/hello:7");
        assert_eq!((t.timeout, t.idle_timeout), (45, 20));
        let env = |k: &str| t.env_vars.get(k).map(String::as_str);
        assert_eq!(env("APP_SETTING"), Some("a1"));
        assert_eq!(env("DB_URL"), Some("postgres://x"));
        assert_eq!(env("ROUTE_SETTING"), Some("r1"));
        assert_eq!(
            env("SHARED"),
            Some("route"),
            "the route's config wins over the app's"
        );
        assert_eq!(env("HEADER_X_CUSTOM"), Some("yes"));
        assert_eq!(
            env("REQUEST_URL"),
            Some("http://127.0.0.1:8080/r/myapp/hello")
        );

        // The job's image and timeout still win over the route's.
        let own = job(serde_json::json!({"app": "myapp", "path": "/hello",
            "image": "mine:1", "timeout": 5}));
        let t = build_task(&own, &fire, 1, &s, at()).unwrap();
        assert_eq!(
            (t.image.as_str(), t.timeout, t.idle_timeout),
            ("mine:1", 5, 20)
        );

        // A route IronFunctions lacks, or one not resolved yet, cannot become a task.
        let mut with_missing = Routes::default();
        with_missing.insert(
            "myapp",
            "/gone",
            RouteState::Missing("Route not found".into()),
        );
        let s = TaskSettings {
            routes: Some(Arc::new(with_missing)),
            ..TaskSettings::default()
        };
        for path in ["/gone", "/never-seen"] {
            let j = job(serde_json::json!({"app": "myapp", "path": path, "image": "i"}));
            let err = s.check_job(&j).unwrap_err();
            assert!(
                matches!(&err, TaskError::NoRoute { app, .. } if app == "myapp"),
                "{err}"
            );
            assert!(encode_task(&j, &fire, 1, &s, at()).is_err());
        }
    }

    /// What IronFunctions itself cannot survive (docs/ironfunctions-mq.md): an empty id (its
    /// runner drops the task), no image (its runner panics), a delayed task without priority
    /// (its delay ticker panics), `created_at` not RFC 3339 with `Z` or `+hh:mm` (undecodable,
    /// and in the delayed set it blocks every later task). None of them can be written.
    #[test]
    fn no_task_carries_an_ironfunctions_hazard() {
        let empty_image = TaskSettings {
            default_image: Some(String::new()),
            ..TaskSettings::default()
        };
        let j = job(serde_json::json!({"app": "a", "path": "/p", "image": "i"}));
        let mut blank = j.clone();
        blank.spec.function.image = Some(String::new());
        assert!(matches!(
            empty_image.check_job(&blank),
            Err(TaskError::NoImage { .. })
        ));
        let blank_route = TaskSettings {
            routes: Some(Arc::new(routes_of(&[("a", "/p", RouteTask::default())]))),
            ..TaskSettings::default()
        };
        let mut no_image = j.clone();
        no_image.spec.function.image = None;
        assert!(matches!(
            blank_route.check_job(&no_image),
            Err(TaskError::NoImage { .. })
        ));

        let rfc3339 = |s: &str| {
            DateTime::parse_from_rfc3339(s).is_ok()
                && (s.ends_with('Z') || s.as_bytes()[s.len() - 6] == b'+')
        };
        let delayed = job(serde_json::json!({"app": "a", "path": "/p", "image": "i",
            "delay": 30, "priority": 0}));
        for j in [&j, &delayed] {
            for fire in [
                Fire::scheduled("report".into(), at(), FireKind::Scheduled),
                Fire::manual("report".into(), at()),
            ] {
                let raw = encode_task(j, &fire, 1, &TaskSettings::default(), at()).unwrap();
                let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
                assert!(v["id"].as_str().is_some_and(|id| !id.is_empty()), "{raw}");
                assert!(v["image"].as_str().is_some_and(|i| !i.is_empty()), "{raw}");
                assert!(v["priority"].is_u64(), "{raw}");
                assert!(v["created_at"].as_str().is_some_and(rfc3339), "{raw}");
                for never_null in ["started_at", "completed_at"] {
                    assert!(v.get(never_null).is_none(), "{raw}");
                }
            }
        }
    }

    #[test]
    fn history_entries_round_trip() {
        let fire = Fire::manual("report".into(), at());
        let e = HistoryEntry::new(&fire, 42, "node-a", at());
        assert_eq!(HistoryEntry::from_json(e.to_json().as_bytes()), Some(e));
        let n = HistoryEntry::not_fired(&fire, "node-a", at(), "route gone");
        assert_eq!(HistoryEntry::from_json(n.to_json().as_bytes()), Some(n));
        assert_eq!(HistoryEntry::from_json(b"not json"), None);
    }
}
