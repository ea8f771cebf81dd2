//! A hostile client for the connection tests and the connection benchmark: it holds many
//! connections open to one port, sending one byte of a request header per connection per
//! second, and opens a new connection for each one the server closes. It connects from
//! [`SLOW_SOURCE`], its own loopback address: it is another host as far as the server can
//! tell. It needs only std, socket2 and rlimit, so that the benchmark can include this file
//! alone.
//!
//! Bounded: it runs until its [`SlowClients`] handle is dropped, and it only ever connects to
//! the loopback port it was given.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One byte a second of this, over and over: a request that never ends.
const TRICKLE: &[u8] = b"GET /v1/cronjobs HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
/// The slow client's own address (any 127.0.0.0/8 address is this machine's loopback).
pub const SLOW_SOURCE: [u8; 4] = [127, 0, 0, 2];
/// How long a connect may take before the attempt is counted as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Counts of what the server did to the slow client.
#[derive(Debug, Default)]
pub struct SlowStats {
    /// Connections opened (first ones and replacements).
    pub opened: AtomicU64,
    /// Connections the server closed.
    pub closed_by_server: AtomicU64,
    /// Connects that failed or timed out.
    pub connect_failures: AtomicU64,
}

/// The running slow client.
pub struct SlowClients {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// What happened so far.
    pub stats: Arc<SlowStats>,
}

struct Conn {
    stream: TcpStream,
    sent: usize,
}

/// A connection from [`SLOW_SOURCE`] to `addr`.
fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SockAddr::from(SocketAddr::from((SLOW_SOURCE, 0))))?;
    socket.connect_timeout(&SockAddr::from(addr), CONNECT_TIMEOUT)?;
    Ok(socket.into())
}

fn open(addr: SocketAddr, stats: &SlowStats) -> Option<Conn> {
    match connect(addr) {
        Ok(stream) => {
            stream.set_nonblocking(true).ok()?;
            stats.opened.fetch_add(1, Ordering::Relaxed);
            Some(Conn { stream, sent: 0 })
        }
        Err(_) => {
            stats.connect_failures.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Sends the next byte; `false` when the server has closed the connection.
fn trickle(c: &mut Conn) -> bool {
    let mut buf = [0u8; 512];
    match c.stream.read(&mut buf) {
        Ok(0) => return false,
        // An answer (a 408 or 400) ends the request too.
        Ok(_) => return false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(_) => return false,
    }
    let byte = TRICKLE.get(c.sent).copied().unwrap_or(b'x');
    match c.stream.write(&[byte]) {
        Ok(1) => {
            c.sent += 1;
            true
        }
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => true,
        Err(_) => false,
    }
}

impl SlowClients {
    /// Opens `count` connections to `127.0.0.1:port` and keeps them open, one byte a second.
    /// Returns once the first round of connections is open.
    pub fn start(port: u16, count: usize) -> SlowClients {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SlowStats::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            let stats = stats.clone();
            std::thread::spawn(move || {
                let mut conns: Vec<Option<Conn>> = (0..count).map(|_| open(addr, &stats)).collect();
                let _ = ready_tx.send(());
                while !stop.load(Ordering::Relaxed) {
                    let round = Instant::now();
                    for slot in conns.iter_mut() {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let alive = slot.as_mut().is_some_and(trickle);
                        if !alive {
                            if slot.is_some() {
                                stats.closed_by_server.fetch_add(1, Ordering::Relaxed);
                            }
                            *slot = open(addr, &stats);
                        }
                    }
                    let rest = Duration::from_secs(1).saturating_sub(round.elapsed());
                    std::thread::sleep(rest);
                }
            })
        };
        let _ = ready_rx.recv();
        SlowClients {
            stop,
            thread: Some(thread),
            stats,
        }
    }
}

impl Drop for SlowClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Raises this process's open-file limit to at least `n` (the hard limit too, as root), so
/// that it can hold that many sockets.
pub fn raise_open_files(n: u64) {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
    if soft >= n {
        return;
    }
    let hard = hard.max(n);
    if rlimit::setrlimit(rlimit::Resource::NOFILE, n, hard).is_err() {
        // Not root: as far as the hard limit allows.
        let _ = rlimit::increase_nofile_limit(n);
    }
}
