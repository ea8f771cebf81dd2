//! A TCP proxy in front of the consul-dev agent that records every HTTP request line, so a
//! test can count what a client really sent over the wire.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct CountingProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingProxy {
    pub async fn start(target: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let log = log.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(target).await {
                            relay(client, server, log).await;
                        }
                    });
                }
            }
        });
        CountingProxy { addr, log, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request line so far (`GET /v1/kv/...?recurse HTTP/1.1`), and forgets them.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

async fn relay(client: TcpStream, server: TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_rd, &mut client_wr).await;
    });
    let mut buf = Vec::new();
    let mut skip = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match client_rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if server_wr.write_all(&chunk[..n]).await.is_err() {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        // Split the stream into requests: headers, then Content-Length bytes of body.
        loop {
            if skip > 0 {
                let k = skip.min(buf.len());
                buf.drain(..k);
                skip -= k;
                if skip > 0 {
                    break;
                }
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.lines();
            if let Some(first) = lines.next() {
                log.lock().unwrap().push(first.to_string());
            }
            skip = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            buf.drain(..end + 4);
        }
    }
    down.abort();
}
