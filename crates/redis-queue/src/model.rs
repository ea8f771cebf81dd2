//! What a task is made of: the node's settings, the IronFunctions routes it resolved, and the
//! rules that turn a job's spec and its route into a task's fields (the image, the priority,
//! the variables, the timeouts, the kind's wire name).
//!
//! The rules are IronFunctions' own for an async call (`api/server/runner.go`, `serve`): the
//! image is the route's; the variables are `METHOD`, `ROUTE`, `REQUEST_URL`, then the app's
//! config, then the route's config, then the request's headers as `HEADER_*` (a later one wins
//! over an earlier one of the same name; names upper-cased with `-` → `_`; a header given
//! twice joined with a space). Where cronnode differs, on purpose: a job's `function.image`
//! overrides the route's image, `REQUEST_URL` is well-formed (`http://`, IronFunctions writes
//! `http//`), the `User-Agent` is always cronnode's, and the route's `timeout` and
//! `idle_timeout` are carried (IronFunctions' async path drops them).
//!
//! The bottom layer of the crate: pure, and importing nothing of it. Both ways of writing a
//! task (`task::build_task`, the serde reference, and `encode::write_task`, the hot path) take
//! their field values from here, so they cannot disagree on a rule. It must not fetch a
//! route: [`Routes`] is a snapshot the caller resolved beforehand, looked up without
//! allocating.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use cron_core::{FireKind, Job};

/// The functions base URL used in `REQUEST_URL` when none is configured.
pub const DEFAULT_FUNCTIONS_URL: &str = "http://127.0.0.1:8080";
/// The run timeout (seconds) sent when the job names none: the runner's own default.
pub const DEFAULT_TIMEOUT_SECS: u32 = 30;
/// The hot-function idle timeout (seconds) sent with every task: the runner's default.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u32 = 30;
/// The highest priority the runners poll (queue0..queue2).
pub const MAX_PRIORITY: u8 = 2;

/// Node-wide settings that go into every task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSettings {
    /// The functions server's base URL; `REQUEST_URL` is this plus `/r/<app><path>`.
    pub functions_url: String,
    /// The image used for a job that names none. Without it such a job is refused.
    pub default_image: Option<String>,
    /// This node's name, recorded in the task's `cron` object and in the history.
    pub node: String,
    /// The IronFunctions routes, resolved off the fire path: `Some` when tasks are built from
    /// the route (a job whose route is not in it cannot become a task), `None` when route
    /// resolution is off (the job's image or `default_image`, no config variables).
    pub routes: Option<Arc<Routes>>,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            functions_url: DEFAULT_FUNCTIONS_URL.to_string(),
            default_image: None,
            node: String::new(),
            routes: None,
        }
    }
}

/// What a task takes from an IronFunctions app and route, prepared once per refresh so that
/// building a task copies bytes and allocates nothing for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTask {
    /// The route's image.
    pub image: String,
    /// The app's config, then the route's (later wins), as variables: names upper-cased with
    /// `-` → `_`, sorted by name, one entry per name.
    pub config_env: Vec<(String, String)>,
    /// The route's run timeout in seconds (0: none given, the runner's default).
    pub timeout: u32,
    /// The route's hot-function idle timeout in seconds (0: none given).
    pub idle_timeout: u32,
}

impl RouteTask {
    /// The route's task part from the app's and the route's config, in IronFunctions' order.
    pub fn new<'a>(
        image: String,
        app_config: impl IntoIterator<Item = (&'a str, &'a str)>,
        route_config: impl IntoIterator<Item = (&'a str, &'a str)>,
        timeout: u32,
        idle_timeout: u32,
    ) -> RouteTask {
        let mut env: std::collections::BTreeMap<String, String> = Default::default();
        for (k, v) in app_config.into_iter().chain(route_config) {
            env.insert(env_name(k), v.to_string());
        }
        RouteTask {
            image,
            config_env: env.into_iter().collect(),
            timeout,
            idle_timeout,
        }
    }
}

/// A name as IronFunctions makes a variable of it (`toEnvName`): `-` → `_`, upper case.
pub fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// Where a route stands in a [`Routes`] snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteState {
    /// IronFunctions has it.
    Found(Arc<RouteTask>),
    /// IronFunctions answered that the app or the route does not exist (its message).
    Missing(String),
}

/// A snapshot of resolved routes, by app then path (two `&str` lookups, no key to build).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routes {
    apps: HashMap<String, HashMap<String, RouteState>>,
}

impl Routes {
    /// Records what IronFunctions said of `app`'s route `path`.
    pub fn insert(&mut self, app: &str, path: &str, state: RouteState) {
        self.apps
            .entry(app.to_string())
            .or_default()
            .insert(path.to_string(), state);
    }

    /// What is known of `app`'s route `path` (`None`: never resolved).
    pub fn get(&self, app: &str, path: &str) -> Option<&RouteState> {
        self.apps.get(app)?.get(path)
    }

    /// How many routes the snapshot holds.
    pub fn len(&self) -> usize {
        self.apps.values().map(HashMap::len).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.apps.values().all(HashMap::is_empty)
    }
}

/// Why a job cannot be turned into a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// Neither the job nor the node names a container image; the runner needs one.
    #[error(
        "job {job}: function.image is required: the job names no image and no default image \
         is configured (set one, or give the job a function.image)"
    )]
    NoImage {
        /// The job id.
        job: String,
    },
    /// A priority the runners never poll.
    #[error("job {job}: function.priority {priority} is not allowed (0, 1 or 2)")]
    Priority {
        /// The job id.
        job: String,
        /// The refused priority.
        priority: u8,
    },
    /// Route resolution is on and the job's route is not one IronFunctions has (or has not
    /// been resolved yet): a task built without it would lack the route's image and config.
    #[error("job {job}: app {app:?} route {path:?}: {reason}")]
    NoRoute {
        /// The job id.
        job: String,
        /// The job's app.
        app: String,
        /// The job's route path.
        path: String,
        /// IronFunctions' answer, or "not resolved yet".
        reason: String,
    },
    /// A header line that is not `Name: value`.
    #[error("job {job}: function.headers: {line:?} is not a `Name: value` line")]
    Header {
        /// The job id.
        job: String,
        /// The refused line.
        line: String,
    },
}

impl TaskSettings {
    /// Checks that every task of `job` can be built (an image, a polled priority, headers that
    /// parse). Call it when a job is created or updated, so a bad job is refused up front.
    pub fn check_job(&self, job: &Job) -> Result<(), TaskError> {
        let route = self.route_for(job)?;
        self.image_for(job, route)?;
        Self::check_spec(job)
    }

    /// The checks that need no route and no image: a polled priority, headers that parse.
    pub fn check_spec(job: &Job) -> Result<(), TaskError> {
        check_priority(job)?;
        headers_env(job)?;
        Ok(())
    }

    /// The job's resolved route: `None` when resolution is off, an error when it is on and
    /// the route is missing or not resolved yet.
    pub fn route_for<'a>(&'a self, job: &Job) -> Result<Option<&'a RouteTask>, TaskError> {
        let Some(routes) = &self.routes else {
            return Ok(None);
        };
        let f = &job.spec.function;
        let missing = |reason: &str| TaskError::NoRoute {
            job: job.spec.id.clone(),
            app: f.app.clone(),
            path: f.path.clone(),
            reason: reason.to_string(),
        };
        match routes.get(&f.app, &f.path) {
            Some(RouteState::Found(r)) => Ok(Some(r)),
            Some(RouteState::Missing(why)) => Err(missing(why)),
            None => Err(missing("not resolved yet")),
        }
    }

    /// The image: the job's, else the route's, else the node's default.
    pub(crate) fn image_for<'a>(
        &'a self,
        job: &'a Job,
        route: Option<&'a RouteTask>,
    ) -> Result<&'a str, TaskError> {
        let nonempty = |s: &&str| !s.is_empty();
        let named = job.spec.function.image.as_deref().filter(nonempty);
        named
            .or(route.map(|r| r.image.as_str()).filter(nonempty))
            .or(self.default_image.as_deref().filter(nonempty))
            .ok_or_else(|| TaskError::NoImage {
                job: job.spec.id.clone(),
            })
    }
}

/// The run timeout: the job's, else the route's, else the runner's default.
pub(crate) fn timeout_for(job: &Job, route: Option<&RouteTask>) -> u32 {
    job.spec
        .function
        .timeout
        .or(route.map(|r| r.timeout).filter(|t| *t > 0))
        .unwrap_or(DEFAULT_TIMEOUT_SECS)
}

/// The idle timeout: the route's, else the runner's default.
pub(crate) fn idle_timeout_for(route: Option<&RouteTask>) -> u32 {
    route
        .map(|r| r.idle_timeout)
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS)
}

pub(crate) fn check_priority(job: &Job) -> Result<u8, TaskError> {
    let priority = job.spec.function.priority;
    if priority > MAX_PRIORITY {
        return Err(TaskError::Priority {
            job: job.spec.id.clone(),
            priority,
        });
    }
    Ok(priority)
}

/// `HEADER_<NAME>` variables, as the functions server makes them from a request: the name
/// upper-cased with `-` → `_`; a name given twice joined with a space (IronFunctions'
/// `strings.Join(value, " ")`).
pub(crate) fn headers_env(job: &Job) -> Result<Vec<(String, String)>, TaskError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in &job.spec.function.headers {
        let bad = || TaskError::Header {
            job: job.spec.id.clone(),
            line: line.clone(),
        };
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        let key = format!("HEADER_{}", env_name(name));
        let value = value.trim().to_string();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push(' ');
                v.push_str(&value);
            }
            None => out.push((key, value)),
        }
    }
    Ok(out)
}

/// `REQUEST_URL`: the functions server's base, `/r/`, the app and the path (well-formed:
/// IronFunctions' own writes `http//host...`).
pub(crate) fn request_url(settings: &TaskSettings, job: &Job) -> String {
    let f = &job.spec.function;
    let base = settings.functions_url.trim_end_matches('/');
    format!("{base}/r/{}{}", f.app, f.path)
}

/// `HEADER_USER_AGENT` of every task: cronnode's, naming the job.
pub(crate) fn user_agent(job: &Job) -> String {
    format!(
        "cronnode/{} (job {})",
        env!("CARGO_PKG_VERSION"),
        job.spec.id
    )
}

/// The stable name of a fire kind on the wire (task and history).
pub fn kind_name(kind: FireKind) -> &'static str {
    match kind {
        FireKind::Scheduled => "scheduled",
        FireKind::CatchUp => "catchup",
        FireKind::Manual => "manual",
        FireKind::Backfill => "backfill",
    }
}

pub(crate) fn kind_from_name(name: &str) -> Option<FireKind> {
    match name {
        "scheduled" => Some(FireKind::Scheduled),
        "catchup" => Some(FireKind::CatchUp),
        "manual" => Some(FireKind::Manual),
        "backfill" => Some(FireKind::Backfill),
        _ => None,
    }
}

/// An instant as the task writes it (RFC3339, milliseconds, `Z`).
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cron_core::JobSpec;

    fn job(function: serde_json::Value) -> Job {
        let spec =
            serde_json::json!({"id": "report", "function": function, "frequency": "@hourly"});
        JobSpec::from_json(spec.to_string().as_bytes())
            .unwrap()
            .validate()
            .unwrap()
    }

    #[test]
    fn bad_jobs_are_refused_with_the_reason() {
        let s = TaskSettings::default();
        let no_image = job(serde_json::json!({"app": "a", "path": "/p"}));
        assert!(matches!(
            s.check_job(&no_image),
            Err(TaskError::NoImage { .. })
        ));
        // cron-core refuses such a job too; the encoder must not trust that.
        let mut bad_header = job(serde_json::json!({"app": "a", "path": "/p", "image": "i"}));
        bad_header.spec.function.headers = vec!["no colon here".into()];
        let err = s.check_job(&bad_header).unwrap_err();
        assert!(err.to_string().contains("no colon here"), "{err}");
        let mut high = job(serde_json::json!({"app": "a", "path": "/p", "image": "i"}));
        high.spec.function.priority = 3;
        assert!(matches!(
            s.check_job(&high),
            Err(TaskError::Priority { priority: 3, .. })
        ));
    }
}
