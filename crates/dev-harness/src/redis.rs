//! A private redis-server: for tests, the benchmark, and `cronnode dev` when no Redis answers.
//!
//! [`RedisServer::start`] runs the installed `redis-server` binary as a child process on a free
//! loopback port, with its own temporary directory (or where [`RedisServer::start_at`] is
//! told), and waits until the server on that port says it is our child. It
//! stops (SIGKILL) when dropped, and a temporary directory goes with it. [`RedisServer::kill`]
//! and [`RedisServer::restart`] let fault tests crash the server and bring it back on the same
//! port and directory, so an append-only file written before the crash is loaded again.
//!
//! **Invariant:** it only ever signals the child it spawned (by its handle, never by name or
//! port), so a test can never disturb a Redis it did not start.
//!
//! Synchronous on purpose (std::process, blocking waits): usable from plain and async code (an
//! async caller that must not block its runtime starts it in `spawn_blocking`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take on a loaded CI machine before it is declared failed.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How many fresh ports a start tries when another process took the port first.
const PORT_ATTEMPTS: usize = 5;
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Where the server runs, when the defaults (a free port, a temporary directory) will not do.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// Listen on this port instead of a free one (a test that points a client at a port before
    /// anything listens there). A start on a taken port fails rather than trying another.
    pub port: Option<u16>,
    /// Keep the data, the append-only file and `redis.log` in this directory (kept after the
    /// server stops) instead of a temporary one.
    pub dir: Option<PathBuf>,
}

/// How the server is configured.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `appendonly yes`: writes survive a kill and a restart.
    pub appendonly: bool,
    /// `appendfsync always` (with `appendonly`): every acknowledged write is on disk before the
    /// reply, so a SIGKILL cannot lose a write the client saw succeed.
    pub fsync_always: bool,
    /// `requirepass`: clients must authenticate with this password.
    pub password: Option<String>,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    /// The binary is missing or could not be run.
    #[error("cannot run redis-server ({0}); install it with scripts/install-deps")]
    Spawn(std::io::Error),
    /// Creating the directory or probing a port failed.
    #[error("private redis-server: {0}")]
    Io(#[from] std::io::Error),
    /// The server exited or never answered; the log says why.
    #[error("redis-server on port {port} did not become ready: {reason}; log:\n{log}")]
    NotReady {
        /// The port it was given.
        port: u16,
        /// What went wrong.
        reason: String,
        /// The tail of its log file.
        log: String,
    },
}

/// What a readiness probe found on the port.
enum Probe {
    /// Our child answered.
    Ready,
    /// Nothing answered yet, or the server is still loading.
    NotYet,
    /// Some other process answered: not ours.
    Foreign,
}

/// A redis-server process owned by its starter. Stops when dropped.
#[derive(Debug)]
pub struct RedisServer {
    /// The running child; `None` after [`RedisServer::kill`].
    child: Option<Child>,
    /// Kept across restarts so clients can reconnect to the same address.
    port: u16,
    /// Holds the data (and append-only) files and the log.
    dir: Dir,
    options: ServerOptions,
}

/// Where the server keeps its files.
#[derive(Debug)]
enum Dir {
    /// Ours: removed on drop.
    Temp(tempfile::TempDir),
    /// The caller's ([`ServerOptions::dir`]): left in place.
    Given(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Temp(t) => t.path(),
            Dir::Given(p) => p,
        }
    }
}

impl RedisServer {
    /// Starts a server with default options (no persistence, no password).
    pub fn start() -> Result<RedisServer, RedisServerError> {
        RedisServer::start_with(ServerOptions::default())
    }

    /// Starts a server with `appendonly yes` (everysec fsync).
    pub fn start_appendonly() -> Result<RedisServer, RedisServerError> {
        RedisServer::start_with(ServerOptions {
            appendonly: true,
            ..ServerOptions::default()
        })
    }

    /// Starts a server with the given options on a free loopback port.
    pub fn start_with(options: ServerOptions) -> Result<RedisServer, RedisServerError> {
        RedisServer::start_at(Location::default(), options)
    }

    /// Starts a server with the given options at `location`.
    pub fn start_at(
        location: Location,
        options: ServerOptions,
    ) -> Result<RedisServer, RedisServerError> {
        let attempts = if location.port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last = None;
        for _ in 0..attempts {
            let port = match location.port {
                Some(p) => p,
                None => crate::free_port()?,
            };
            let dir = match &location.dir {
                Some(d) => {
                    std::fs::create_dir_all(d)?;
                    Dir::Given(d.clone())
                }
                None => Dir::Temp(
                    tempfile::Builder::new()
                        .prefix("cronnode-redis")
                        .tempdir()?,
                ),
            };
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                options: options.clone(),
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                // Someone else may have taken the port between probe and bind: try another.
                Err(e @ RedisServerError::NotReady { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| RedisServerError::NotReady {
            port: 0,
            reason: "no free port".into(),
            log: String::new(),
        }))
    }

    /// `redis://127.0.0.1:PORT/` (with the password when one is set).
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The loopback address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The port the server listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (data and append-only files, `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The child's process id (0 after [`RedisServer::kill`]), for /proc readings.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the child is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server with SIGKILL (no shutdown save, no AOF rewrite) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (killing it first if it runs).
    pub fn restart(&mut self) -> Result<(), RedisServerError> {
        self.kill();
        // The old socket may linger briefly; the start retries until the deadline.
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), RedisServerError> {
        let mut cmd = Command::new("redis-server");
        let port = self.port.to_string();
        let dir = self.dir.path().to_string_lossy().into_owned();
        let log = self.log_path().to_string_lossy().into_owned();
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
            .args(["--logfile", &log, "--daemonize", "no", "--save", ""])
            .args(["--protected-mode", "no"]);
        if self.options.appendonly {
            cmd.args(["--appendonly", "yes"]);
            let fsync = if self.options.fsync_always {
                "always"
            } else {
                "everysec"
            };
            cmd.args(["--appendfsync", fsync]);
        }
        if let Some(pw) = &self.options.password {
            cmd.args(["--requirepass", pw]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(RedisServerError::Spawn)?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(self.not_ready(format!("exited with {status}")));
                }
            }
            match self.probe() {
                Probe::Ready => return Ok(()),
                Probe::Foreign => {
                    // Another server holds the port: ours cannot bind, and it is not ours to use.
                    self.kill();
                    return Err(self.not_ready("the port belongs to another server".into()));
                }
                Probe::NotYet => {}
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(self.not_ready(format!("no answer within {START_TIMEOUT:?}")));
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    /// Asks whoever listens on the port for its process id (`INFO server`). Only our own
    /// child counts as ready: another test's server that took the port first is `Foreign`.
    /// Not yet listening, or still loading its data (`-LOADING`), is `NotYet`.
    fn probe(&self) -> Probe {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)) else {
            return Probe::NotYet;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = Vec::new();
        if let Some(pw) = &self.options.password {
            request.extend_from_slice(format!("AUTH {pw}\r\n").as_bytes());
        }
        request.extend_from_slice(b"INFO server\r\n");
        if s.write_all(&request).is_err() {
            return Probe::NotYet;
        }
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(n) if n > 0 => reply.extend_from_slice(&buf[..n]),
                _ => break,
            }
            let text = String::from_utf8_lossy(&reply);
            if text.contains("-LOADING") || text.contains("-ERR") || text.contains("-WRONGPASS") {
                return Probe::NotYet;
            }
            let pid = text
                .lines()
                .find_map(|l| l.strip_prefix("process_id:"))
                .and_then(|v| v.trim().parse::<u32>().ok());
            if let Some(pid) = pid {
                let ours = self.child.as_ref().map(Child::id);
                return if ours == Some(pid) {
                    Probe::Ready
                } else {
                    Probe::Foreign
                };
            }
        }
        Probe::NotYet
    }

    fn not_ready(&self, reason: String) -> RedisServerError {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        RedisServerError::NotReady {
            port: self.port,
            reason,
            log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
