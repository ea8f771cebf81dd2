//! Harness of the end-to-end tests: real processes on free loopback ports.
//!
//! - [`Consul`]: the `consul-dev` binary (built on demand when `cargo test -p cronnode` did not
//!   build it);
//! - Redis: dev-harness's `RedisServer` (a real redis-server);
//! - [`Node`]: the `cronnode` binary under test (`cronnode run`), logs in a temp file that a
//!   failing assertion prints;
//! - [`http`]: a tiny blocking HTTP/1.1 client (raw bytes, so tests can send broken input);
//! - [`slow`]: a hostile client that holds thousands of connections open, a byte a second.
//!
//! Every process is killed when its handle drops. Waits poll with generous deadlines: the
//! suite must pass on a loaded 2-core machine.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::Value;

pub mod slow;

/// Timing-sensitive tests (lateness, failover) run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub use dev_harness::wait_for;

fn consul_dev_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_BIN_EXE_cronnode"))
            .parent()
            .unwrap()
            .to_path_buf();
        let bin = dir.join("consul-dev");
        // `cargo test -p cronnode` builds only our binary: build consul-dev's once.
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "consul-dev", "--bin", "consul-dev"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build -p consul-dev");
        assert!(status.success(), "building consul-dev failed");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// A consul-dev agent process.
pub struct Consul {
    child: Child,
    pub port: u16,
}

impl Consul {
    pub fn start() -> Consul {
        Consul::start_with(&[])
    }

    /// With extra flags (`--acl-token T`).
    pub fn start_with(extra: &[&str]) -> Consul {
        let bin = consul_dev_binary();
        let port = dev_harness::free_port().unwrap();
        let child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--node", "e2e"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn consul-dev");
        let c = Consul { child, port };
        wait_for("consul-dev to answer", Duration::from_secs(30), || {
            http::get(c.port, "/v1/status/leader", None).ok()
        });
        c
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET path` on the agent, as JSON (`Null` for a 404).
    pub fn get_json(&self, path: &str) -> Value {
        let r = http::get(self.port, path, None).unwrap();
        if r.status == 404 {
            return Value::Null;
        }
        assert_eq!(r.status, 200, "consul {path}: {}", r.text());
        r.json()
    }
}

impl Drop for Consul {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `cronnode run` process.
pub struct Node {
    child: Option<Child>,
    pub name: String,
    pub port: u16,
    log: tempfile::NamedTempFile,
}

impl Node {
    /// Starts `cronnode run` named `name`, waiting until its API answers.
    pub fn start(name: &str, consul: &Consul, redis_url: &str, extra: &[&str]) -> Node {
        Node::start_env(name, consul, redis_url, extra, &[])
    }

    /// [`Node::start`] with environment variables (`CRONNODE_API_TOKEN`, ...).
    pub fn start_env(
        name: &str,
        consul: &Consul,
        redis_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        let port = dev_harness::free_port().unwrap();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cronnode"))
            .arg("run")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--node", name])
            .args(["--consul", &consul.url()])
            .args(["--redis", redis_url])
            .args(["--lock-delay", "1s"])
            .args(extra)
            .env_remove("CONSUL_HTTP_ADDR")
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("REDIS_URL")
            .env_remove("CRONNODE_API_TOKEN")
            .env("RUST_LOG", "info,cronnode=debug")
            .env("NO_COLOR", "1")
            // No IronFunctions API unless a test starts the stand-in and says so.
            .env("CRONNODE_RESOLVE_ROUTES", "false")
            .env_remove("MQ_URL")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("spawn cronnode");
        let node = Node {
            child: Some(child),
            name: name.to_string(),
            port,
            log,
        };
        wait_for(&format!("{name}'s API"), Duration::from_secs(30), || {
            http::get(node.port, "/health", None)
                .ok()
                .filter(|r| r.status == 200)
        });
        node
    }

    /// The node's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let status =
            dev_harness::poll("the node to exit", timeout, || child.try_wait().unwrap()).ok()?;
        self.child = None;
        status.code()
    }

    pub fn get(&self, path: &str) -> http::Response {
        http::get(self.port, path, None).unwrap()
    }

    pub fn post_json(&self, path: &str, body: &Value) -> http::Response {
        http::request(
            self.port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .unwrap()
    }

    /// Waits until this node names a leader; its name.
    pub fn wait_leader(&self) -> String {
        wait_for("a leader", Duration::from_secs(30), || self.leader())
    }

    /// Runs the `cronnode` CLI with `args` against this node's API, with `token` as
    /// `CRONNODE_API_TOKEN` (none when `None`): its exit status, stdout and stderr.
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> (Option<i32>, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cronnode"));
        cmd.args(args)
            .args(["--api", &format!("http://127.0.0.1:{}", self.port)]);
        match token {
            Some(t) => cmd.env("CRONNODE_API_TOKEN", t),
            None => cmd.env_remove("CRONNODE_API_TOKEN"),
        };
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The node named leader by `GET /v1/leader`, if any.
    pub fn leader(&self) -> Option<String> {
        let r = http::get(self.port, "/v1/leader", None).ok()?;
        if r.status != 200 {
            return None;
        }
        r.json()
            .pointer("/leader/node")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A job spec for the tests.
pub fn job(id: &str, frequency: &str) -> Value {
    serde_json::json!({
        "id": id,
        "function": {"app": "e2e", "path": "/tick", "image": "iron/hello",
                     "headers": ["Content-Type: application/json"], "body": "{\"n\":1}"},
        "frequency": frequency,
    })
}

/// The tasks on `queue0`, oldest first (the queue is an LPUSH list).
pub fn queue(redis_url: &str) -> Vec<Value> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg("queue0")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    raw.iter()
        .rev()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect()
}

/// The tasks of `job_id` on `queue0`, oldest first.
pub fn tasks_of(redis_url: &str, job_id: &str) -> Vec<Value> {
    queue(redis_url)
        .into_iter()
        .filter(|t| t.pointer("/cron/job_id").and_then(Value::as_str) == Some(job_id))
        .collect()
}

/// A task's slot, as Unix seconds.
pub fn slot_of(task: &Value) -> i64 {
    let s = task.pointer("/cron/slot").and_then(Value::as_str).unwrap();
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

/// Checks the IronFunctions task format (ironfunctions-mq.md) and returns the lateness in ms
/// (`created_at` minus the slot).
pub fn check_task(task: &Value) -> i64 {
    for field in ["id", "image", "app_name", "path", "payload", "created_at"] {
        let v = task.get(field).and_then(Value::as_str);
        assert!(
            v.is_some_and(|s| !s.is_empty() || field == "payload"),
            "task field {field} missing or empty: {task}"
        );
    }
    let prio = task.get("priority").and_then(Value::as_u64).unwrap();
    assert!(prio <= 2, "{task}");
    assert_eq!(
        task.pointer("/env_vars/METHOD").and_then(Value::as_str),
        Some("POST"),
        "{task}"
    );
    assert!(task.pointer("/env_vars/ROUTE").is_some(), "{task}");
    for null_forbidden in ["created_at", "started_at", "completed_at"] {
        assert!(
            !task.get(null_forbidden).is_some_and(Value::is_null),
            "{null_forbidden} is null: {task}"
        );
    }
    let created =
        chrono::DateTime::parse_from_rfc3339(task["created_at"].as_str().unwrap()).unwrap();
    let slot = chrono::DateTime::parse_from_rfc3339(
        task.pointer("/cron/slot").and_then(Value::as_str).unwrap(),
    )
    .unwrap();
    (created - slot).num_milliseconds()
}

/// A blocking HTTP/1.1 client over a raw socket: tests need to send exactly what they mean.
pub mod http {
    use super::*;

    /// A response.
    #[derive(Debug)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
        }
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        /// `(code, message)` of an error body.
        pub fn error(&self) -> (String, String) {
            let v = self.json();
            (
                v.pointer("/error/code")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        }
    }

    pub fn get(port: u16, path: &str, token: Option<&str>) -> std::io::Result<Response> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        request(port, "GET", path, &headers, b"")
    }

    /// Sends one request (`Connection: close`) and reads the whole answer.
    pub fn request(
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        // The server may answer (413, 401) and close before reading a large body: keep going
        // and read the answer anyway.
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        parse(&raw).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad HTTP answer: {:?}", String::from_utf8_lossy(&raw)),
            )
        })
    }

    fn parse(raw: &[u8]) -> Option<Response> {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..split]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        if chunked {
            body = dechunk(&body)?;
        }
        Some(Response {
            status,
            headers,
            body,
        })
    }

    fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let eol = b.windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(
                std::str::from_utf8(&b[..eol])
                    .ok()?
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            b = &b[eol + 2..];
            if size == 0 {
                return Some(out);
            }
            out.extend_from_slice(b.get(..size)?);
            b = b.get(size + 2..)?;
        }
    }
}
