//! The job model: the spec users write, and its validation into a [`Job`].
//!
//! The form proposed for IronFunctions is accepted as it is:
//!
//! ```json
//! {"id": "report", "function": {"app": "app", "path": "/fn",
//!   "headers": ["Content-Type: application/json"], "body": "...."},
//!  "frequency": "*/10 * * * *"}
//! ```
//!
//! Extensions: `function.image`, `function.priority` (0-2), `function.timeout`, `timezone`,
//! `paused`, `catchup` (`policy`, `window`), `jitter`, `start_at`, `end_at` (their rules:
//! [`crate::life`]), `description`, `tags`. Unknown fields are rejected by
//! name. Every text field has a length limit (the `MAX_*` constants), and what reaches the
//! task's URL, headers or image name has no control character (`check_function`); a new
//! field gets its check in `check_function` or `check_labels`, or beside them. [`JobSpec`] is the stored form (Consul KV `<prefix>/jobs/<id>`); [`Job`] is a spec that
//! passed [`JobSpec::validate`], with its schedule parsed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::schedule::{Schedule, ScheduleError};

/// A job as written by users and stored in Consul.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// `[A-Za-z0-9_.-]{1,128}`, not starting with `.`, no `..`.
    pub id: String,
    /// The function call to make at every slot.
    pub function: FunctionCall,
    /// The schedule expression (see [`crate::schedule`]).
    pub frequency: String,
    /// IANA time zone of the schedule; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A paused job keeps its spec but makes no calls.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// What a new leader (or a resume) does with slots that were missed.
    #[serde(default)]
    pub catchup: CatchUp,
    /// Each slot runs this much later at most (a duration such as `5m`), by an offset that is
    /// a pure function of (job id, slot); see [`crate::life`]. Boxed: most jobs have none, and
    /// a leader holds a million specs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Box<str>>,
    /// No slot before this instant (RFC 3339 with an offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Box<str>>,
    /// No slot after this instant (RFC 3339 with an offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<Box<str>>,
    /// Free text for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free labels for operators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Set by the job store when the job is created; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Set by the job store on every write; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The function call of a job: an IronFunctions app and route, and what to send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionCall {
    /// The IronFunctions app.
    pub app: String,
    /// The route path, starting with `/`.
    pub path: String,
    /// Request headers as `Name: value` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// The request body (the function's stdin); at most 256 KiB.
    #[serde(default)]
    pub body: String,
    /// The container image; falls back to the daemon's default image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Queue priority 0-2 (2 is served first).
    #[serde(default)]
    pub priority: u8,
    /// Run timeout in seconds, 1-3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// Seconds the task waits in the platform's delayed set before it is queued (0-86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u32>,
}

/// The catch-up policy of a job and its window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatchUp {
    /// Which missed slots to enqueue.
    #[serde(default)]
    pub policy: CatchUpPolicy,
    /// How far back to look for missed slots (a duration such as `1h`); at most 7 days.
    #[serde(default = "default_window")]
    pub window: String,
}

/// The default catch-up window.
pub const DEFAULT_CATCHUP_WINDOW: &str = "1h";

fn default_window() -> String {
    DEFAULT_CATCHUP_WINDOW.to_string()
}

impl Default for CatchUp {
    fn default() -> Self {
        CatchUp {
            policy: CatchUpPolicy::default(),
            window: default_window(),
        }
    }
}

/// Which missed slots a catch-up enqueues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUpPolicy {
    /// None of them.
    Skip,
    /// Only the most recent one.
    Latest,
    /// Every one inside the window (capped per job; the rest are counted as skipped).
    #[default]
    All,
}

/// A validated job: the spec, its parsed schedule and catch-up window.
#[derive(Debug, Clone)]
pub struct Job {
    /// The spec as stored.
    pub spec: JobSpec,
    /// The compiled schedule (the expression as written is `spec.frequency`).
    pub schedule: Schedule,
    /// The parsed catch-up window.
    pub catchup_window: Duration,
    /// The parsed `jitter`, `start_at` and `end_at`; `None` when the spec has none of them
    /// (one pointer for the many jobs without).
    pub(crate) life: Option<Box<crate::life::Life>>,
}

/// Why a job spec was refused. Every variant names the field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The JSON did not parse, or had an unknown or missing field (serde's message names it).
    #[error("invalid job JSON: {0}")]
    Json(String),
    /// A field has a value outside what is allowed.
    #[error("{field}: {message}")]
    Field {
        /// The field's path, e.g. `function.priority`.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The frequency or time zone did not parse.
    #[error("frequency: {0}")]
    Schedule(#[from] ScheduleError),
}

impl JobSpec {
    /// Parses a spec from JSON, naming unknown or missing fields.
    pub fn from_json(bytes: &[u8]) -> Result<JobSpec, JobError> {
        // The direct parse accepts exactly what the checked one below does (unknown fields are
        // refused either way), without building a JSON tree first: a leader parses a million
        // specs, and the tree's freed nodes are left as holes between the jobs it keeps. On
        // error, the checked parse names the object the bad field is in.
        if let Ok(spec) = serde_json::from_slice::<JobSpec>(bytes) {
            return Ok(spec);
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| JobError::Json(e.to_string()))?;
        // serde names an unknown field but not the object it is in: say `function: ...`.
        check_keys(&value, "job", TOP_FIELDS)?;
        check_keys(&value["function"], "function", FUNCTION_FIELDS)?;
        check_keys(&value["catchup"], "catchup", CATCHUP_FIELDS)?;
        serde_json::from_value(value).map_err(|e| JobError::Json(e.to_string()))
    }

    /// Checks every field and parses the schedule.
    pub fn validate(self) -> Result<Job, JobError> {
        crate::job::validate(self)
    }
}

const TOP_FIELDS: &[&str] = &[
    "id",
    "function",
    "frequency",
    "timezone",
    "paused",
    "catchup",
    "jitter",
    "start_at",
    "end_at",
    "description",
    "tags",
    "created_at",
    "updated_at",
];
const FUNCTION_FIELDS: &[&str] = &[
    "app", "path", "headers", "body", "image", "priority", "timeout", "delay",
];
const CATCHUP_FIELDS: &[&str] = &["policy", "window"];

fn check_keys(
    value: &serde_json::Value,
    object: &'static str,
    known: &[&str],
) -> Result<(), JobError> {
    let Some(map) = value.as_object() else {
        // Not an object (or absent): serde reports the type error.
        return Ok(());
    };
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(field(
            object,
            format!("unknown field {k:?} (allowed: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Longest job id.
pub const MAX_ID_LEN: usize = 128;
/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest app name, in bytes.
pub const MAX_APP_LEN: usize = 255;
/// Longest route path, in bytes.
pub const MAX_PATH_LEN: usize = 2048;
/// Longest image reference, in bytes (a Docker reference: name, tag and digest).
pub const MAX_IMAGE_LEN: usize = 512;
/// Most request headers.
pub const MAX_HEADERS: usize = 64;
/// Longest header line (`Name: value`), in bytes.
pub const MAX_HEADER_LEN: usize = 8 * 1024;
/// Longest schedule expression, in bytes.
pub const MAX_FREQUENCY_LEN: usize = 1024;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Most tags.
pub const MAX_TAGS: usize = 64;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 128;
/// Highest queue priority.
pub const MAX_PRIORITY: u8 = 2;
/// Run timeout bounds, in seconds.
pub const TIMEOUT_RANGE_SECS: std::ops::RangeInclusive<u32> = 1..=3600;
/// Largest delay, in seconds (one day).
pub const MAX_DELAY_SECS: u32 = 86_400;
/// Longest catch-up window.
pub const MAX_CATCHUP_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) fn field(field: &'static str, message: impl Into<String>) -> JobError {
    JobError::Field {
        field,
        message: message.into(),
    }
}

/// `[A-Za-z0-9_.-]{1,128}`, not starting with `.`, no `..`: safe as a Consul key segment.
pub fn check_id(id: &str) -> Result<(), JobError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(field(
            "id",
            format!("must be 1-{MAX_ID_LEN} characters, got {}", id.len()),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(field(
            "id",
            format!("{id:?} has {c:?}; allowed: A-Z a-z 0-9 _ . -"),
        ));
    }
    if id.starts_with('.') {
        return Err(field("id", format!("{id:?} must not start with '.'")));
    }
    if id.contains("..") {
        return Err(field("id", format!("{id:?} must not contain '..'")));
    }
    Ok(())
}

/// RFC 9110 token characters: what a header name may contain.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn check_header(h: &str) -> Result<(), JobError> {
    let Some((name, value)) = h.split_once(':') else {
        return Err(field(
            "function.headers",
            format!("{h:?} is not `Name: value`"),
        ));
    };
    if name.is_empty() || !name.chars().all(is_tchar) {
        return Err(field(
            "function.headers",
            format!("{name:?} is not a valid HTTP header name"),
        ));
    }
    // A field value: visible characters, spaces and tabs; never CR or LF (header injection).
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(field(
            "function.headers",
            format!("the value of {name:?} has a control character"),
        ));
    }
    Ok(())
}

/// Checks a text field's length and characters; `allowed` names what may be in it.
fn check_text(
    name: &'static str,
    value: &str,
    max_len: usize,
    ok: fn(char) -> bool,
    allowed: &str,
) -> Result<(), JobError> {
    if value.len() > max_len {
        return Err(field(
            name,
            format!("{} bytes is over the limit of {max_len}", value.len()),
        ));
    }
    match value.chars().find(|c| !ok(*c)) {
        Some(c) => Err(field(name, format!("{c:?} is not allowed: {allowed}"))),
        None => Ok(()),
    }
}

/// An app name goes into `REQUEST_URL` as one path segment: no control character or space,
/// and nothing that would add a segment, a query, a fragment or a percent-escape.
fn app_char(c: char) -> bool {
    !(c.is_control() || c.is_whitespace() || matches!(c, '/' | '?' | '#' | '%' | '\\'))
}

/// A route path: no control character or space (they would end or split `REQUEST_URL`), no
/// `?` or `#` (a query or fragment of the functions server's URL).
fn path_char(c: char) -> bool {
    !(c.is_control() || c.is_whitespace() || c == '?' || c == '#')
}

/// An image reference is printable ASCII without spaces.
fn image_char(c: char) -> bool {
    c.is_ascii_graphic()
}

/// Free text for operators: anything but control characters (a description may have lines).
fn label_char(c: char) -> bool {
    !c.is_control()
}

fn description_char(c: char) -> bool {
    !c.is_control() || c == '\n' || c == '\t'
}

fn validate(spec: JobSpec) -> Result<Job, JobError> {
    check_id(&spec.id)?;
    check_function(&spec.function)?;
    check_labels(&spec)?;
    // The zone is its own field in errors, so a user knows which one to fix.
    crate::schedule::parse_zone(spec.timezone.as_deref())
        .map_err(|e| field("timezone", e.to_string()))?;
    check_text(
        "frequency",
        &spec.frequency,
        MAX_FREQUENCY_LEN,
        label_char,
        "a schedule expression has no control characters",
    )?;
    let schedule = Schedule::parse(&spec.frequency, spec.timezone.as_deref())?;
    let catchup_window = crate::schedule::parse_duration(&spec.catchup.window)
        .map_err(|e| field("catchup.window", e.to_string()))?;
    if catchup_window > MAX_CATCHUP_WINDOW {
        return Err(field(
            "catchup.window",
            format!(
                "{} is longer than the limit of 7 days (168h)",
                spec.catchup.window
            ),
        ));
    }
    let life = crate::life::Life::parse(&spec, &schedule)?;
    Ok(Job {
        spec,
        schedule,
        catchup_window,
        life,
    })
}

/// The function call: what reaches the task's URL, headers, image and queue.
fn check_function(f: &FunctionCall) -> Result<(), JobError> {
    if f.app.trim().is_empty() {
        return Err(field("function.app", "must not be empty"));
    }
    check_text(
        "function.app",
        &f.app,
        MAX_APP_LEN,
        app_char,
        "an app name is one URL path segment: no control characters, spaces, '/', '?', '#', '%' or '\\'",
    )?;
    if !f.path.starts_with('/') {
        return Err(field(
            "function.path",
            format!("{:?} must start with '/'", f.path),
        ));
    }
    check_text(
        "function.path",
        &f.path,
        MAX_PATH_LEN,
        path_char,
        "a route path has no control characters, spaces, '?' or '#'",
    )?;
    if f.headers.len() > MAX_HEADERS {
        return Err(field(
            "function.headers",
            format!(
                "{} headers is over the limit of {MAX_HEADERS}",
                f.headers.len()
            ),
        ));
    }
    for h in &f.headers {
        if h.len() > MAX_HEADER_LEN {
            return Err(field(
                "function.headers",
                format!(
                    "a header of {} bytes is over the limit of {MAX_HEADER_LEN}",
                    h.len()
                ),
            ));
        }
        check_header(h)?;
    }
    if f.body.len() > MAX_BODY_BYTES {
        return Err(field(
            "function.body",
            format!(
                "{} bytes is over the limit of {MAX_BODY_BYTES} (256 KiB)",
                f.body.len()
            ),
        ));
    }
    if f.priority > MAX_PRIORITY {
        return Err(field(
            "function.priority",
            format!("{} is out of range 0-{MAX_PRIORITY}", f.priority),
        ));
    }
    if let Some(t) = f.timeout {
        if !TIMEOUT_RANGE_SECS.contains(&t) {
            return Err(field(
                "function.timeout",
                format!(
                    "{t} is out of range {}-{} seconds",
                    TIMEOUT_RANGE_SECS.start(),
                    TIMEOUT_RANGE_SECS.end()
                ),
            ));
        }
    }
    if let Some(d) = f.delay {
        if d > MAX_DELAY_SECS {
            return Err(field(
                "function.delay",
                format!("{d} is out of range 0-{MAX_DELAY_SECS} seconds"),
            ));
        }
    }
    if let Some(image) = &f.image {
        if image.trim().is_empty() {
            return Err(field("function.image", "must not be empty when given"));
        }
        check_text(
            "function.image",
            image,
            MAX_IMAGE_LEN,
            image_char,
            "an image reference is printable ASCII without spaces",
        )?;
    }
    Ok(())
}

/// What operators write for themselves: a description and tags, bounded.
fn check_labels(spec: &JobSpec) -> Result<(), JobError> {
    if let Some(d) = &spec.description {
        check_text(
            "description",
            d,
            MAX_DESCRIPTION_LEN,
            description_char,
            "no control characters but new lines and tabs",
        )?;
    }
    if spec.tags.len() > MAX_TAGS {
        return Err(field(
            "tags",
            format!("{} tags is over the limit of {MAX_TAGS}", spec.tags.len()),
        ));
    }
    for t in &spec.tags {
        if t.is_empty() {
            return Err(field("tags", "a tag must not be empty"));
        }
        check_text("tags", t, MAX_TAG_LEN, label_char, "no control characters")?;
    }
    Ok(())
}
