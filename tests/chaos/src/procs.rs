//! Child processes the harness owns: start, signal, kill, restart, with their output in a log
//! file of the run directory.
//!
//! Signals other than SIGKILL go through the `kill` command rather than `libc::kill`: the
//! workspace forbids `unsafe`, and a process spawn per injected fault costs nothing. Every
//! process is killed when its [`Proc`] is dropped, so a failing run leaves nothing behind.
//! This module must only ever signal pids it spawned itself.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::process::{Child, Command};

/// How long a gracefully stopped process may take before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// Environment variables removed from every child: cronnode's and the Consul client's settings
/// (`CONSUL_HTTP_TOKEN` is kept, so an external agent with ACLs can be reached).
const LEAKY_ENV_PREFIXES: &[&str] = &["CRONNODE_", "CONSUL_HTTP_ADDR", "CONSUL_DEV_", "REDIS_URL"];

/// One program the harness runs, restartable with the same arguments.
pub struct Proc {
    /// Shown in logs and fault lines.
    pub name: String,
    program: PathBuf,
    args: Vec<OsString>,
    /// stdout and stderr of every incarnation, appended.
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Describes a process; nothing runs until [`Proc::start`].
    pub fn new(name: &str, program: &Path, args: Vec<OsString>, log_dir: &Path) -> Proc {
        Proc {
            name: name.to_string(),
            program: program.to_path_buf(),
            args,
            log: log_dir.join(format!("{name}.log")),
            child: None,
        }
    }

    /// Starts (or restarts) the process.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let mut command = Command::new(&self.program);
        // The operator's own settings must not leak into the cluster under test (a config
        // file, an API token, another Consul or Redis): everything comes from the arguments.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if LEAKY_ENV_PREFIXES.iter().any(|p| key_text.starts_with(p)) {
                command.env_remove(&key);
            }
        }
        let child = command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The pid of the running incarnation.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether an incarnation was started and has not been reaped.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Sends `signal` (a name such as `STOP`, `CONT`, `TERM`) to the running incarnation.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("{} is not running", self.name))?;
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -s {signal} {pid} ({}) failed: {status}", self.name);
        }
        Ok(())
    }

    /// SIGKILL, then reap.
    pub async fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill().ok();
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM, then wait up to [`STOP_GRACE`]; SIGKILL after that. Returns whether the process
    /// exited by itself in time.
    pub async fn stop(&mut self) -> Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(true);
        };
        if let Some(pid) = child.id() {
            std::process::Command::new("kill")
                .args(["-s", "TERM", &pid.to_string()])
                .status()
                .context("cannot run kill")?;
        }
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(status) => {
                status?;
                Ok(true)
            }
            Err(_) => {
                child.start_kill().ok();
                child.wait().await?;
                Ok(false)
            }
        }
    }

    /// Waits for the running incarnation to exit by itself (after a signal sent elsewhere).
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<bool> {
        let Some(child) = self.child.as_mut() else {
            return Ok(true);
        };
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => {
                status?;
                self.child = None;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// The log file of this process.
    pub fn log(&self) -> &Path {
        &self.log
    }
}

/// A loopback port that was free a moment ago (the usual small race is accepted: the harness
/// starts its processes one at a time).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}
