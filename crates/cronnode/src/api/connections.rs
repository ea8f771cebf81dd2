//! The API's connections: how many are kept, how long a client may take to say what it wants,
//! and which connection goes when the limit is reached.
//!
//! A hostile or careless client must not be able to take the API away from everyone else by
//! holding connections open. So:
//!
//! - every connection is accepted at once (none waits in the kernel's backlog, where a client
//!   cannot be told apart from an attacker and `/health` would time out);
//! - a connection that is not answering a request ("waiting": just accepted, between two
//!   requests, or in the middle of a request's headers) costs nothing to close, since no answer
//!   is lost: above [`MAX_CONNECTIONS`] one waiting connection of the peer address that holds
//!   the most connections is closed, the one that has waited longest. So a slow or idle client
//!   loses its own oldest connections, not other clients' (from another address), and a
//!   client that sends its request at once is served. Clients behind one address (a proxy)
//!   share its fate: there, the longest-waiting connection goes;
//! - timeouts bound how long a connection may wait: [`IDLE_TIMEOUT`] without a byte of a
//!   request, [`HEADER_READ_TIMEOUT`] for a request's headers (hyper's own timer), and
//!   `super::body::BODY_READ_TIMEOUT` for a body, which only a route that takes one reads,
//!   after the token.
//!
//! A connection that is answering a request ("busy": from the end of its headers until its
//! answer is handed to hyper) is never closed here; only a client with the token can keep one
//! busy for long, and only as long as its handler's own timeouts allow.
//!
//! Must not: read requests or know routes (`mod.rs` and the router do).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Connections kept open at once. Above it, the connection waiting longest for a request is
/// closed (see the module header); the number is also kept below the process's file
/// descriptor limit ([`connection_limit`]).
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections accepted beyond the limit while every connection is busy answering: new
/// clients are still served (`/health` answers) while the busy ones finish. Past it, a new
/// connection is closed at once.
pub const CONNECTION_HEADROOM: usize = 64;
/// From the moment a connection waits for a request (accepted, or its last answer sent) to
/// the end of that request's headers. A half-sent request is closed then.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may wait without sending a byte of a request (keep-alive idle time,
/// and a fresh connection that sends nothing).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// File descriptors kept for everything else the process opens (Consul, Redis, logs).
const FD_RESERVE: u64 = 256;

/// The number of connections this process can keep: [`MAX_CONNECTIONS`], or fewer when the
/// file descriptor limit is low. Raises the soft limit to the hard one first (as Go's runtime
/// does): the soft default, 1024 on many systems, would be reached before the API's limit.
pub fn connection_limit() -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit (RLIMIT_NOFILE)");
            return MAX_CONNECTIONS;
        }
    };
    let fit = usize::try_from(soft.saturating_sub(FD_RESERVE + CONNECTION_HEADROOM as u64))
        .unwrap_or(usize::MAX);
    if fit < MAX_CONNECTIONS {
        tracing::warn!(
            open_file_limit = soft,
            "the open-file limit allows {fit} API connections instead of {MAX_CONNECTIONS}; raise it (LimitNOFILE=, ulimit -n)"
        );
    }
    fit.clamp(1, MAX_CONNECTIONS)
}

/// Which waiting connection goes first: the smallest rank (its peer's connection count,
/// larger first; then when it started waiting, earlier first).
type EvictionRank = (Reverse<usize>, u64);

/// The connections being served, and the choice of which to close.
pub struct Connections {
    limit: usize,
    epoch: Instant,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    slots: HashMap<u64, Arc<Slot>>,
    /// Open connections per peer address.
    per_peer: HashMap<IpAddr, usize>,
}

/// One connection's state, shared by its task, its request guard and the table.
pub struct Slot {
    /// The client's address.
    peer: IpAddr,
    /// Answering a request: never closed by the limit.
    busy: AtomicBool,
    /// Asked to close by the limit; not asked twice.
    closing: AtomicBool,
    /// When it last started waiting for a request (milliseconds since `epoch`).
    waiting_since: AtomicU64,
    /// Bytes read from the client so far, and that count when it last started waiting: equal
    /// means not a byte of the next request has come.
    bytes_in: AtomicU64,
    bytes_at_wait: AtomicU64,
    /// Wakes the connection's task: asked to close, or started waiting again.
    wake: Notify,
    epoch: Instant,
}

/// Removes its slot from the table when the connection's task ends.
pub struct Admitted {
    connections: Arc<Connections>,
    id: u64,
    /// The connection's state.
    pub slot: Arc<Slot>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self
            .connections
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        table.slots.remove(&self.id);
        let peer = self.slot.peer;
        if let Some(n) = table.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                table.per_peer.remove(&peer);
            }
        }
    }
}

impl Connections {
    /// A table that keeps at most `limit` connections (plus [`CONNECTION_HEADROOM`] while every
    /// one is busy).
    pub fn new(limit: usize) -> Arc<Connections> {
        Arc::new(Connections {
            limit: limit.max(1),
            epoch: Instant::now(),
            table: Mutex::new(Table::default()),
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().slots.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a new connection from `peer` in; `None` when it must be closed at once (every
    /// connection busy and the headroom used). Above the limit, asks one waiting connection
    /// to close: of the peer that holds the most connections, the one waiting longest.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let now = self.millis(Instant::now());
        let mut table = self.lock();
        *table.per_peer.entry(peer).or_default() += 1;
        let open = table.slots.len() + 1;
        if open > self.limit {
            let per_peer = &table.per_peer;
            let mut closing = 0;
            let mut victim: Option<(&Arc<Slot>, EvictionRank)> = None;
            for s in table.slots.values() {
                if s.closing.load(Ordering::Acquire) {
                    // On its way out: already makes room.
                    closing += 1;
                    continue;
                }
                if s.busy.load(Ordering::Acquire) {
                    continue;
                }
                let held = per_peer.get(&s.peer).copied().unwrap_or(0);
                let key = (Reverse(held), s.waiting_since.load(Ordering::Acquire));
                if victim.as_ref().is_none_or(|(_, best)| key < *best) {
                    victim = Some((s, key));
                }
            }
            if open - closing > self.limit {
                if let Some((v, _)) = victim {
                    v.close();
                    closing += 1;
                }
            }
            if open - closing > self.limit + CONNECTION_HEADROOM {
                if let Some(n) = table.per_peer.get_mut(&peer) {
                    *n -= 1;
                }
                table.per_peer.retain(|_, n| *n > 0);
                return None;
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let slot = Arc::new(Slot {
            peer,
            busy: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            waiting_since: AtomicU64::new(now),
            bytes_in: AtomicU64::new(0),
            bytes_at_wait: AtomicU64::new(0),
            wake: Notify::new(),
            epoch: self.epoch,
        });
        table.slots.insert(id, slot.clone());
        Some(Admitted {
            connections: self.clone(),
            id,
            slot,
        })
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

/// What a connection's task does after [`Slot::woken`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep serving; look again at this instant (`None`: when woken).
    Serve(Option<Instant>),
    /// Close it now: no answer is lost.
    Close,
}

impl Slot {
    /// Asks the connection's task to close it (it does so unless it became busy).
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Resolves when the slot's state changed (asked to close, started waiting again).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// What the connection's task should do at `now`.
    pub fn verdict(&self, now: Instant) -> Verdict {
        if self.busy.load(Ordering::Acquire) {
            // Busy connections are not closed here; a request to close is dropped, and the
            // slot may be chosen again once it waits.
            self.closing.store(false, Ordering::Release);
            return Verdict::Serve(None);
        }
        if self.closing.load(Ordering::Acquire) {
            return Verdict::Close;
        }
        if self.bytes_in.load(Ordering::Acquire) != self.bytes_at_wait.load(Ordering::Acquire) {
            // A request has begun: hyper's header timeout bounds it from here.
            return Verdict::Serve(None);
        }
        let since = Duration::from_millis(self.waiting_since.load(Ordering::Acquire));
        let deadline = self.epoch + since + IDLE_TIMEOUT;
        if now >= deadline {
            Verdict::Close
        } else {
            Verdict::Serve(Some(deadline))
        }
    }

    /// Marks the start of an answer; the answer's guard marks its end.
    pub fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.busy.store(true, Ordering::Release);
        RequestGuard(self.clone())
    }

    fn read(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::AcqRel);
    }
}

/// Held by an answer until hyper has taken its body: the connection is busy until then.
pub struct RequestGuard(Arc<Slot>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let slot = &self.0;
        let now = Instant::now().duration_since(slot.epoch).as_millis();
        slot.waiting_since
            .store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Release);
        slot.bytes_at_wait
            .store(slot.bytes_in.load(Ordering::Acquire), Ordering::Release);
        slot.busy.store(false, Ordering::Release);
        slot.wake.notify_one();
    }
}

/// A client's stream that counts the bytes it sends (to tell an idle connection from one in
/// the middle of a request).
pub struct CountedIo<S> {
    inner: S,
    slot: Arc<Slot>,
}

impl<S> CountedIo<S> {
    /// Wraps `inner`, counting into `slot`.
    pub fn new(inner: S, slot: Arc<Slot>) -> CountedIo<S> {
        CountedIo { inner, slot }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            this.slot.read(n);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[tokio::test(start_paused = true)]
    async fn idle_connections_close_after_the_idle_timeout_unless_a_request_began() {
        let c = Connections::new(10);
        let a = c.admit(A).unwrap();
        let start = Instant::now();
        assert_eq!(
            a.slot.verdict(start),
            Verdict::Serve(Some(start + IDLE_TIMEOUT))
        );
        assert_eq!(a.slot.verdict(start + IDLE_TIMEOUT), Verdict::Close);
        // One byte of a request: the header timeout (hyper's) takes over.
        a.slot.read(1);
        assert_eq!(a.slot.verdict(start + IDLE_TIMEOUT), Verdict::Serve(None));
        // Answering: never closed; then waiting again from the end of the answer.
        let guard = a.slot.begin_request();
        assert_eq!(
            a.slot.verdict(start + IDLE_TIMEOUT * 9),
            Verdict::Serve(None)
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(guard);
        let end = Instant::now();
        assert_eq!(
            a.slot.verdict(end),
            Verdict::Serve(Some(end + IDLE_TIMEOUT))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn above_the_limit_the_longest_waiting_connection_is_closed_never_a_busy_one() {
        let c = Connections::new(2);
        let oldest = c.admit(A).unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        let busy_guard;
        let busy = {
            let b = c.admit(A).unwrap();
            busy_guard = b.slot.begin_request();
            b
        };
        tokio::time::advance(Duration::from_millis(10)).await;
        let newer = c.admit(A).unwrap();
        let now = Instant::now();
        assert_eq!(oldest.slot.verdict(now), Verdict::Close, "longest waiting");
        assert_eq!(busy.slot.verdict(now), Verdict::Serve(None));
        assert!(matches!(newer.slot.verdict(now), Verdict::Serve(Some(_))));
        drop(oldest);
        assert_eq!(c.len(), 2);

        // Every connection busy: the headroom takes new ones, then they are closed at once.
        let _newer_guard = newer.slot.begin_request();
        let mut extra = Vec::new();
        for _ in 0..CONNECTION_HEADROOM {
            let a = c.admit(A).expect("within the headroom");
            let g = a.slot.begin_request();
            extra.push((a, g));
        }
        assert!(c.admit(A).is_none(), "past the headroom");
        assert!(c.admit(B).is_none(), "whoever asks");
        drop(busy_guard);
        // Once one waits again, a newcomer closes it instead.
        let fresh = c.admit(A).expect("a waiting one is closed for it");
        assert_eq!(busy.slot.verdict(Instant::now()), Verdict::Close);
        drop(fresh);
    }

    #[tokio::test(start_paused = true)]
    async fn the_peer_holding_the_most_loses_its_own_connections() {
        let c = Connections::new(3);
        // B's connection is the oldest of all.
        let b = c.admit(B).unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        let a1 = c.admit(A).unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        let a2 = c.admit(A).unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        let a3 = c.admit(A).unwrap();
        let now = Instant::now();
        assert!(
            matches!(b.slot.verdict(now), Verdict::Serve(_)),
            "not the biggest holder"
        );
        assert_eq!(a1.slot.verdict(now), Verdict::Close, "A's longest waiting");
        assert!(matches!(a2.slot.verdict(now), Verdict::Serve(_)));
        assert!(matches!(a3.slot.verdict(now), Verdict::Serve(_)));
        drop(a1);
        assert_eq!(c.len(), 3);
        assert_eq!(c.lock().per_peer[&A], 2);
    }
}
