//! A real three-server Consul cluster owned by the harness, for the faults a single agent
//! cannot show (`CHAOS_CONSUL_BIN`: a Consul binary the operator built or installed; nothing
//! here downloads or builds one).
//!
//! Three `consul agent -server -bootstrap-expect 3` on loopback, each with its own ports and
//! data directory under the run directory; node `n<i>` of cronnode talks to server `i`, as a
//! node talks to its local agent. The harness may kill, freeze and restart these processes
//! because it started them, and no others. Start at [`Servers::start`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::http::Http;
use crate::procs::{free_port, Proc};

/// Environment variable: the servers' `performance.raft_multiplier` (default 1, Consul's
/// recommendation for production; Consul's own default, 5, is for small development machines
/// and makes every Raft election five times slower).
pub const RAFT_MULTIPLIER_ENV: &str = "CHAOS_CONSUL_RAFT_MULTIPLIER";

/// How long the cluster may take to elect its first leader.
const ELECTION_LIMIT: Duration = Duration::from_secs(60);
/// Poll interval while waiting on the cluster.
const POLL: Duration = Duration::from_millis(200);

/// One server.
pub struct Server {
    /// The process (`consul-s<i>`).
    pub proc: Proc,
    /// Its HTTP API, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its Raft/RPC address, as `/v1/status/leader` names it.
    pub rpc_addr: String,
    /// Stopped with SIGSTOP and not yet continued.
    pub frozen: bool,
    /// Killed and not yet restarted.
    pub down: bool,
}

/// The three servers.
pub struct Servers {
    /// In node order: server `i` is node `n<i+1>`'s agent.
    pub servers: Vec<Server>,
    /// What `consul version` says.
    pub version: String,
    /// The servers' `performance.raft_multiplier`.
    pub raft_multiplier: u32,
}

impl Servers {
    /// Starts three servers of `binary` and waits until they have elected a leader.
    pub async fn start(binary: &Path, run_dir: &Path, http: &Http) -> Result<Servers> {
        let version = std::process::Command::new(binary)
            .arg("version")
            .output()
            .with_context(|| format!("cannot run {} version", binary.display()))?;
        let version = String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let ports: Vec<[u16; 4]> = (0..3)
            .map(|_| Ok([free_port()?, free_port()?, free_port()?, free_port()?]))
            .collect::<Result<_>>()?;
        let raft_multiplier = match std::env::var(RAFT_MULTIPLIER_ENV) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|m| (1..=10).contains(m))
                .ok_or_else(|| anyhow!("{RAFT_MULTIPLIER_ENV}={v}: expected 1 to 10"))?,
            _ => 1,
        };
        let joins: Vec<String> = ports
            .iter()
            .map(|p| format!("127.0.0.1:{}", p[2]))
            .collect();
        let mut servers = Vec::new();
        for (i, [http_port, rpc, lan, wan]) in ports.iter().copied().enumerate() {
            let name = format!("consul-s{}", i + 1);
            let data = run_dir.join(&name);
            std::fs::create_dir_all(&data)?;
            let config = json!({
                "node_name": name,
                "datacenter": "dc1",
                "data_dir": data,
                "server": true,
                "bootstrap_expect": 3,
                "bind_addr": "127.0.0.1",
                "client_addr": "127.0.0.1",
                "retry_join": joins,
                "ports": {"http": http_port, "dns": -1, "server": rpc, "serf_lan": lan,
                          "serf_wan": wan},
                "leave_on_terminate": false,
                "performance": {"raft_multiplier": raft_multiplier},
                "disable_update_check": true,
                "log_level": "INFO",
            });
            let file: PathBuf = run_dir.join(format!("{name}.json"));
            std::fs::write(&file, serde_json::to_vec_pretty(&config)?)?;
            let mut proc = Proc::new(
                &name,
                binary,
                vec!["agent".into(), "-config-file".into(), file.into()],
                run_dir,
            );
            proc.start()?;
            servers.push(Server {
                proc,
                url: format!("http://127.0.0.1:{http_port}"),
                rpc_addr: format!("127.0.0.1:{rpc}"),
                frozen: false,
                down: false,
            });
        }
        let cluster = Servers {
            servers,
            version,
            raft_multiplier,
        };
        cluster.wait_raft_leader(http, ELECTION_LIMIT).await?;
        Ok(cluster)
    }

    /// The index of the server that leads Raft now, as a live server sees it.
    pub async fn raft_leader(&self, http: &Http) -> Result<Option<usize>> {
        for i in self.live() {
            let url = format!("{}/v1/status/leader", self.servers[i].url);
            let Ok(r) = http.get(&url).await else {
                continue;
            };
            let Ok(Value::String(addr)) = r.json() else {
                continue;
            };
            return Ok(self.servers.iter().position(|s| s.rpc_addr == addr));
        }
        Ok(None)
    }

    /// Waits until a live server names a leader.
    pub async fn wait_raft_leader(&self, http: &Http, limit: Duration) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            for s in &self.servers {
                if s.frozen || s.down {
                    continue;
                }
                let url = format!("{}/v1/status/leader", s.url);
                if let Ok(r) = http.get(&url).await {
                    if let Ok(Value::String(addr)) = r.json() {
                        if let Some(i) = self.servers.iter().position(|s| s.rpc_addr == addr) {
                            return Ok(i);
                        }
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the Consul servers elected no leader within {limit:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The servers running and not frozen.
    pub fn live(&self) -> Vec<usize> {
        (0..self.servers.len())
            .filter(|&i| !self.servers[i].frozen && !self.servers[i].down)
            .collect()
    }

    /// The URL of a live server (the harness's reads and writes go there).
    pub fn any_url(&self) -> Result<String> {
        let live = self.live();
        live.first()
            .map(|&i| self.servers[i].url.clone())
            .ok_or_else(|| anyhow!("no Consul server is up"))
    }

    /// SIGSTOP.
    pub fn freeze(&mut self, i: usize) -> Result<()> {
        self.servers[i].proc.signal("STOP")?;
        self.servers[i].frozen = true;
        Ok(())
    }

    /// SIGCONT.
    pub fn thaw(&mut self, i: usize) -> Result<()> {
        self.servers[i].proc.signal("CONT")?;
        self.servers[i].frozen = false;
        Ok(())
    }

    /// kill -9.
    pub async fn kill(&mut self, i: usize) -> Result<()> {
        self.servers[i].down = true;
        self.servers[i].proc.kill9().await
    }

    /// Starts server `i` again on its ports and data.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.servers[i].proc.start()?;
        self.servers[i].down = false;
        Ok(())
    }

    /// The log files.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.servers
            .iter()
            .map(|s| s.proc.log().to_path_buf())
            .collect()
    }

    /// Continues every frozen server and stops them all.
    pub async fn stop_all(&mut self) {
        for i in 0..self.servers.len() {
            if self.servers[i].frozen {
                self.thaw(i).ok();
            }
            self.servers[i].proc.stop().await.ok();
        }
    }
}
