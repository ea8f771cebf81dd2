//! A counting TCP proxy: sits between one cronnode and consul-dev and counts the HTTP requests
//! the node sends (by method and path, query left out), so the Consul load of each node can be
//! told apart.
//!
//! It reads the client-to-Consul bytes as they pass and counts request lines
//! (`METHOD /path HTTP/1.1`); bodies are job JSON, which never holds such a line. It does not
//! change or delay anything beyond a copy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request line the scanner keeps looking at.
const MAX_LINE: usize = 4096;
const MARK: &[u8] = b" HTTP/1.1\r\n";

/// Requests seen, by `METHOD /path`.
#[derive(Clone, Default)]
pub struct Counts(Arc<Mutex<BTreeMap<String, u64>>>);

impl Counts {
    fn add(&self, key: String) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(key).or_default() += 1;
        }
    }

    /// A copy of the counts now.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// The difference of two snapshots, and its total.
pub fn diff(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> (u64, BTreeMap<String, u64>) {
    let mut out = BTreeMap::new();
    let mut total = 0;
    for (k, v) in after {
        let d = v - before.get(k).copied().unwrap_or(0);
        if d > 0 {
            out.insert(k.clone(), d);
            total += d;
        }
    }
    (total, out)
}

/// A running proxy.
pub struct Proxy {
    /// Its port.
    pub port: u16,
    /// What it counted.
    pub counts: Counts,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Listens on a free port and forwards to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Counts::default();
        let c = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        pipe(client, server, c).await;
                    }
                });
            }
        });
        Ok(Proxy { port, counts, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn pipe(client: TcpStream, server: TcpStream, counts: Counts) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut scan = Vec::new();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            scan.extend_from_slice(&buf[..n]);
            count_lines(&mut scan, &counts);
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Counts every complete request line in `scan` and keeps only the unscanned tail.
fn count_lines(scan: &mut Vec<u8>, counts: &Counts) {
    let mut consumed = 0;
    while let Some(pos) = find(&scan[consumed..], MARK) {
        let end = consumed + pos;
        let start = scan[..end]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1)
            .max(consumed);
        let line = String::from_utf8_lossy(&scan[start..end]);
        let mut parts = line.split(' ');
        if let (Some(m), Some(target)) = (parts.next(), parts.next()) {
            let path = target.split('?').next().unwrap_or("");
            // Only Consul's API is counted: on a shared machine a stray client of some
            // earlier test (polling `/metrics` of a node whose port this proxy now holds)
            // once showed up here.
            if path.starts_with("/v1/") {
                counts.add(format!("{m} {}", normalise(path)));
            }
        }
        consumed = end + MARK.len();
    }
    scan.drain(..consumed);
    if scan.len() > MAX_LINE {
        let cut = scan.len() - MAX_LINE;
        scan.drain(..cut);
    }
}

/// Job keys and shard folders are folded into one bucket each so the table stays short:
/// `.../jobs/<shard>/` (a shard's listing) and `.../jobs/<shard>/<id>` (one job).
fn normalise(path: &str) -> String {
    let Some(i) = path.find("/jobs/") else {
        return path.to_string();
    };
    let (head, rest) = path.split_at(i + "/jobs/".len());
    match rest.split_once('/') {
        _ if rest.is_empty() => path.to_string(),
        None => format!("{head}<id>"),
        Some((_, "")) => format!("{head}<shard>/"),
        Some(_) => format!("{head}<shard>/<id>"),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_counted_across_chunks() {
        let counts = Counts::default();
        let mut scan = b"GET /v1/kv/cronnode/jobs/?recurse=&index=5 HTTP/1.".to_vec();
        count_lines(&mut scan, &counts);
        scan.extend_from_slice(b"1\r\nHost: x\r\n\r\nPUT /v1/session/renew/abc HTTP/1.1\r\n\r\n");
        count_lines(&mut scan, &counts);
        let s = counts.snapshot();
        assert_eq!(s.get("GET /v1/kv/cronnode/jobs/"), Some(&1));
        assert_eq!(s.get("PUT /v1/session/renew/abc"), Some(&1));
        let mut stray = b"GET /metrics HTTP/1.1\r\n\r\n".to_vec();
        count_lines(&mut stray, &counts);
        assert_eq!(counts.snapshot().len(), 2, "only Consul's API is counted");
        assert_eq!(normalise("/v1/kv/p/jobs/3a/"), "/v1/kv/p/jobs/<shard>/");
        assert_eq!(
            normalise("/v1/kv/p/jobs/3a/report"),
            "/v1/kv/p/jobs/<shard>/<id>"
        );
        assert_eq!(normalise("/v1/kv/p/jobs/report"), "/v1/kv/p/jobs/<id>");
        assert_eq!(normalise("/v1/kv/p/job-shards/"), "/v1/kv/p/job-shards/");
    }
}
