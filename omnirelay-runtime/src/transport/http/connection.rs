//! One served connection of the HTTP inbound: the set of connections it belongs to (for the
//! inbound's stop signal), and the header-read watchdog of HTTP/1 connections.
//!
//! Both live in [`Served`], the future the connection's task runs, and neither adds a future
//! that is polled on every wake-up of the connection. That is the point of this module: hyper's
//! own header-read timeout arms a boxed timer for every request head and polls it while the
//! next head is awaited (about 1,750 instructions per call on a keep-alive connection, measured
//! with `benches/profile.sh callgrind omnirelay-http`), and hyper-util's graceful-shutdown
//! wrapper polls a `watch` future on every wake-up (about 500 more). Here the same work is a
//! few atomic operations and one clock read per call.
//!
//! The watchdog's rule (what hyper's header-read timeout does, without a timer per request): a
//! connection on which no call is in progress and no request head has completed for the
//! timeout is closed. That covers a head sent slowly or never finished (slowloris) and an idle
//! keep-alive connection. A call in progress (its body being read, its handler running, its
//! response or event stream being written) keeps the connection open however long it takes:
//! its own deadline bounds it. An HTTP/2 connection is watched only until its first request:
//! HTTP/2 multiplexes and pings on its own, so idling there is the client's choice.
//!
//! **No tokio timer.** The watchdog's clock is a thread of the inbound's own, the
//! [`Sweeper`], which looks at every watched connection once per tick (an eighth of the
//! timeout, at most a second: a connection is closed between one timeout and one tick after it
//! became idle) and wakes those idle too long; each decides in its own task whether it still
//! is. A tokio timer per connection (what this module had before) is never idle: there is
//! always one due, so every time a worker thread of the runtime waits for work, it asks the
//! kernel for a timed wait (`epoll_wait` with a timeout, which arms and cancels a kernel
//! timer) instead of an untimed one. On this project's benchmark VM that cost about 9 us of
//! system time per call on a connection served one call at a time (`benches/cpu-split.sh 24 3
//! 1`: 32.4 against 23.5 us, and 0.68x the calls per second; see BENCHMARKS.md). The sweeper
//! runs on the real clock (`std::time::Instant`), not tokio's, so a paused tokio clock does not
//! move it.
//!
//! A response hyper has taken from its body but not yet written (a large one read slowly) keeps
//! the connection busy too: [`Watched`] counts a blocked write as a call in progress.
//!
//! On stop, every connection starts hyper's graceful shutdown, and an HTTP/1 connection without
//! a call in progress is closed at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::Version;
use hyper_util::server::graceful::GracefulConnection;

use crate::name::{LastName, Name};

/// The connections of one inbound: the stop signal they share (HTTP/1: finish the response in
/// progress and close; HTTP/2: `GOAWAY`), and what the [`Sweeper`] looks at.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// Every served connection, by id.
    entries: Mutex<HashMap<u64, Entry>>,
}

/// One connection in [`Connections`].
#[derive(Debug)]
struct Entry {
    /// Its task's waker, once the task has been polled.
    waker: Option<Waker>,
    /// What its calls did, when the watchdog watches it.
    watched: Option<Arc<Activity>>,
}

impl Connections {
    /// A set with no connection, not stopping.
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Adds a connection accepted now; with `watched`, the watchdog looks at its activity.
    pub(crate) fn register(self: &Arc<Self>, watched: Option<Arc<Activity>>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id,
            Entry {
                waker: None,
                watched,
            },
        );
        Registration {
            set: self.clone(),
            id,
            waker: None,
        }
    }

    /// Gives the stop signal: every connection, now and later, starts its graceful shutdown.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Taken after the flag is set: a connection that registers after this sees the flag.
        self.wake_where(|_| true);
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// One look of the watchdog at `now`: marks every watched HTTP/1 connection that has been
    /// idle for `timeout` and wakes its task, which checks again itself (a call may have begun
    /// since). Returns how many it woke.
    fn sweep(&self, timeout: Duration, now: Instant) -> usize {
        self.wake_where(|entry| {
            let Some(activity) = &entry.watched else {
                return false;
            };
            if activity.http2.load(Ordering::Relaxed) || !activity.idle_for(timeout, now) {
                return false;
            }
            activity.due.store(true, Ordering::Release);
            true
        })
    }

    /// Wakes the tasks of the entries `pick` chooses (those polled at least once, so with a
    /// waker), outside the lock: a woken task may register a new waker at once. Returns how
    /// many it woke.
    fn wake_where(&self, mut pick: impl FnMut(&Entry) -> bool) -> usize {
        let wakers: Vec<Waker> = self
            .lock()
            .values()
            .filter(|entry| pick(entry))
            .filter_map(|entry| entry.waker.clone())
            .collect();
        let woken = wakers.len();
        for waker in wakers {
            waker.wake();
        }
        woken
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place in [`Connections`]: its task's waker, replaced only when the task's
/// waker changes (a tokio task keeps one), removed when the connection ends.
pub(crate) struct Registration {
    set: Arc<Connections>,
    id: u64,
    waker: Option<Waker>,
}

impl Registration {
    /// Makes sure `waker` is the one the set wakes; then tells whether the stop was given.
    fn check(&mut self, waker: &Waker) -> bool {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            if let Some(entry) = self.set.lock().get_mut(&self.id) {
                entry.waker = Some(waker.clone());
            }
            self.waker = Some(waker.clone());
        }
        self.set.is_stopping()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.set.lock().remove(&self.id);
    }
}

/// The watchdog's clock: a thread that [sweeps](Connections::sweep) an inbound's connections
/// once per tick, until this handle is dropped (the inbound's accept loop holds it).
pub(crate) struct Sweeper {
    thread: Option<std::thread::Thread>,
    ended: Arc<AtomicBool>,
}

impl Sweeper {
    /// The thread's name: `omnirelay-watch`, within the 15 bytes Linux keeps of a thread's
    /// name (what `ps -L`, `top -H` and `/proc/<pid>/task/*/comm` show).
    pub(crate) const THREAD_NAME: &'static str = "omnirelay-watch";

    /// How often the connections are looked at for `timeout`: an eighth of it, between 1 ms and
    /// 1 s. A connection is closed at most one tick late.
    pub(crate) fn tick(timeout: Duration) -> Duration {
        (timeout / 8).clamp(Duration::from_millis(1), Duration::from_secs(1))
    }

    /// Starts sweeping `set` for connections idle for `timeout`. Without a thread (the system
    /// refused one) the sweeps run on a tokio task instead, with a tokio timer, and a warning is
    /// logged.
    pub(crate) fn start(set: Arc<Connections>, timeout: Duration) -> Sweeper {
        let ended = Arc::new(AtomicBool::new(false));
        let tick = Sweeper::tick(timeout);
        let (for_thread, set_for_thread) = (ended.clone(), set.clone());
        let spawned = std::thread::Builder::new()
            .name(Sweeper::THREAD_NAME.into())
            .spawn(move || {
                while !for_thread.load(Ordering::Acquire) {
                    std::thread::park_timeout(tick);
                    if for_thread.load(Ordering::Acquire) {
                        break;
                    }
                    set_for_thread.sweep(timeout, Instant::now());
                }
            });
        match spawned {
            Ok(handle) => Sweeper {
                thread: Some(handle.thread().clone()),
                ended,
            },
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    "cannot start the HTTP inbound's watchdog thread; sweeping on a tokio task"
                );
                let for_task = ended.clone();
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(tick);
                    while !for_task.load(Ordering::Acquire) {
                        ticks.tick().await;
                        set.sweep(timeout, Instant::now());
                    }
                });
                Sweeper {
                    thread: None,
                    ended,
                }
            }
        }
    }
}

/// Ends the thread without waiting for it: it is unparked and returns at once (tens of
/// microseconds), and the handle is dropped on one of the runtime's worker threads, which a
/// join would block.
impl Drop for Sweeper {
    fn drop(&mut self) {
        self.ended.store(true, Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}

/// What the calls of one connection did, for its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    /// When the connection was accepted.
    epoch: Instant,
    /// Calls begun and not yet finished (their response bodies not yet sent or dropped).
    calls: AtomicUsize,
    /// When the last call finished, in nanoseconds since `epoch` (0: none has).
    last_end: AtomicU64,
    /// A request came over HTTP/2.
    http2: AtomicBool,
    /// The [`Sweeper`] found the connection idle too long (its task checks again, and clears
    /// it).
    due: AtomicBool,
    /// The caller the connection's last call named.
    caller: LastName,
}

impl Activity {
    /// The activity of a connection accepted now.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            epoch: Instant::now(),
            calls: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            due: AtomicBool::new(false),
            caller: LastName::default(),
        })
    }

    /// Counts a call whose request head arrived with `version`, until the mark is dropped.
    pub(crate) fn begin(self: &Arc<Self>, version: Version) -> CallMark {
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        CallMark(self.clone())
    }

    /// When the connection became idle, if it is: no call in progress, the last one finished
    /// then (or the connection was accepted then).
    fn idle_since(&self) -> Option<Instant> {
        // `Acquire` pairs with the mark's `Release`: a finished call's end time is seen.
        if self.calls.load(Ordering::Acquire) > 0 {
            return None;
        }
        let nanos = self.last_end.load(Ordering::Relaxed);
        Some(self.epoch + Duration::from_nanos(nanos))
    }

    /// Whether, at `now`, the connection has been idle for `timeout` or longer.
    fn idle_for(&self, timeout: Duration, now: Instant) -> bool {
        self.idle_since()
            .is_some_and(|since| now.saturating_duration_since(since) >= timeout)
    }
}

/// Keeps a call counted on its connection while it lives (it rides in the response body).
#[derive(Debug)]
pub(crate) struct CallMark(Arc<Activity>);

impl CallMark {
    /// `caller` as a [`Name`], shared with the connection's previous call when it named the
    /// same caller.
    pub(crate) fn caller(&self, caller: &str) -> Name {
        self.0.caller.get(caller)
    }

    /// The connection's previous caller, when `bytes` name it again (no UTF-8 check needed).
    pub(crate) fn known_caller(&self, bytes: &[u8]) -> Option<Name> {
        self.0.caller.matching(bytes)
    }
}

impl Drop for CallMark {
    fn drop(&mut self) {
        let activity = &self.0;
        let nanos = u64::try_from(activity.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        activity.last_end.fetch_max(nanos, Ordering::Relaxed);
        activity.calls.fetch_sub(1, Ordering::Release);
    }
}

/// The most bytes a vectored write of several buffers is copied together for, so that the
/// kernel gets one buffer (see [`Watched`]). hyper writes an HTTP/1 response as two buffers, its
/// encoded head and the body, with one `writev`; handing the kernel one buffer instead took
/// 0.2-0.5 us of system time off a 100-byte echo (`benches/cpu-split.sh`, BENCHMARKS.md), for
/// a copy of a few hundred bytes (into a buffer each worker thread keeps, [`GATHERED`]). Larger
/// writes go out vectored, as they are: their bodies are not copied (hyper's `writev(false)`
/// would copy every body into its write buffer and keep that buffer at the largest size it
/// reached, for the connection's life).
pub(crate) const GATHER_LIMIT: usize = 4096;

/// A connection's socket, for its watchdog: while a write is blocked (the client is not reading
/// a response hyper has already taken from its body) the connection counts as busy, as a call
/// does, so a large response read slowly is not cut off. Hyper's own header-read timeout never
/// ran while a response was still being flushed.
///
/// It also hands the kernel small vectored writes as one buffer (see [`GATHER_LIMIT`]), copied
/// into the worker thread's [`GATHERED`] buffer.
pub(crate) struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
    /// Held while the last write returned `Pending`.
    blocked: Option<CallMark>,
}

thread_local! {
    /// Where this thread gathers a small vectored write for the kernel (at most
    /// [`GATHER_LIMIT`] bytes). One buffer per thread rather than one per connection: it is in
    /// the cache from the thread's last write, where a connection's own buffer has left it
    /// by the time that connection writes again, and a thousand idle connections keep none.
    /// It holds the bytes only for the duration of one `send`.
    static GATHERED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes `bufs` to `io` as one buffer, gathered in [`GATHERED`], when there are several and
/// they come to at most [`GATHER_LIMIT`] bytes; `None` when they are to go out as they are.
fn poll_write_gathered<IO: tokio::io::AsyncWrite + Unpin>(
    io: &mut IO,
    cx: &mut Context<'_>,
    bufs: &[std::io::IoSlice<'_>],
) -> Option<Poll<std::io::Result<usize>>> {
    if bufs.len() < 2 || bufs.iter().map(|b| b.len()).sum::<usize>() > GATHER_LIMIT {
        return None;
    }
    GATHERED
        .try_with(|gathered| {
            // Not borrowed elsewhere: the write below does not come back here.
            let mut gathered = gathered.try_borrow_mut().ok()?;
            gathered.clear();
            gathered.reserve(GATHER_LIMIT);
            for b in bufs {
                gathered.extend_from_slice(b);
            }
            Some(Pin::new(io).poll_write(cx, &gathered))
        })
        .ok()
        .flatten()
}

impl<IO> Watched<IO> {
    pub(crate) fn new(io: IO, activity: Arc<Activity>) -> Self {
        Watched {
            io,
            activity,
            blocked: None,
        }
    }

    fn note<T>(&mut self, poll: Poll<T>) -> Poll<T> {
        match poll {
            Poll::Pending if self.blocked.is_none() => {
                self.blocked = Some(self.activity.begin(Version::HTTP_11));
            }
            Poll::Ready(_) if self.blocked.is_some() => self.blocked = None,
            _ => {}
        }
        poll
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.note(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = match poll_write_gathered(&mut this.io, cx, bufs) {
            Some(poll) => poll,
            None => Pin::new(&mut this.io).poll_write_vectored(cx, bufs),
        };
        this.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.note(poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

pin_project_lite::pin_project! {
    /// A connection served until it ends, the inbound stops it, or its watchdog closes it.
    pub(crate) struct Served<C> {
        #[pin]
        connection: C,
        registration: Registration,
        shutting_down: bool,
        activity: Arc<Activity>,
        // The header read timeout, while the watchdog watches this connection.
        watchdog: Option<Duration>,
    }
}

impl<C> Served<C> {
    /// Serves `connection`, a member of `set`; with a `header_read_timeout`, closes it once it
    /// has been idle (no call in progress) that long, as the set's [`Sweeper`] finds.
    pub(crate) fn new(
        connection: C,
        set: &Arc<Connections>,
        activity: Arc<Activity>,
        header_read_timeout: Option<Duration>,
    ) -> Self {
        let watched = header_read_timeout.map(|_| activity.clone());
        Served {
            connection,
            registration: set.register(watched),
            shutting_down: false,
            watchdog: header_read_timeout,
            activity,
        }
    }
}

impl<C, E> Future for Served<C>
where
    C: GracefulConnection<Error = E>,
{
    type Output = Result<(), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.shutting_down && this.registration.check(cx.waker()) {
            *this.shutting_down = true;
            this.connection.as_mut().graceful_shutdown();
        }
        // Stopping, an HTTP/1 connection without a call has nothing to finish: closed now. (Hyper's
        // graceful shutdown closes an idle keep-alive connection, but not one that sent part of
        // a head or nothing, which would hold the stop for its whole drain timeout.) HTTP/2
        // connections get their `GOAWAY` and close themselves.
        if *this.shutting_down
            && !this.activity.http2.load(Ordering::Relaxed)
            && this.activity.idle_since().is_some()
        {
            return Poll::Ready(Ok(()));
        }
        // The connection is polled before the watchdog looks: a head that arrived while the
        // sweeper marked the connection (already in the socket's buffer) is read and its call
        // begun, which keeps the connection, instead of being dropped unread.
        let polled = this.connection.poll(cx);
        if polled.is_ready() {
            return polled;
        }
        if let Some(timeout) = *this.watchdog {
            if this.activity.http2.load(Ordering::Relaxed) {
                *this.watchdog = None;
            } else if this.activity.due.load(Ordering::Acquire) {
                // The sweeper found the connection idle; it is closed if it still is (a call
                // begun since keeps it, and the sweeper looks again at its next tick).
                this.activity.due.store(false, Ordering::Relaxed);
                if this.activity.idle_for(timeout, Instant::now()) {
                    tracing::debug!(
                        ?timeout,
                        "closing an idle HTTP connection: no request head within the header \
                         read timeout"
                    );
                    return Poll::Ready(Ok(()));
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `room` bytes a write and records how it was written to.
    #[derive(Default)]
    struct Recorder {
        room: usize,
        writes: Vec<(&'static str, Vec<u8>)>,
    }

    impl tokio::io::AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.room);
            self.get_mut().writes.push(("write", buf[..n].to_vec()));
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(self.room);
            self.get_mut().writes.push(("writev", all[..n].to_vec()));
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Small vectored writes reach the socket as one buffer with the same bytes, partial writes
    /// included; a single buffer and writes over the limit go out as they came.
    #[tokio::test]
    async fn small_vectored_writes_are_gathered_into_one_buffer() {
        use std::io::IoSlice;
        use tokio::io::AsyncWriteExt;
        let recorder = Recorder {
            room: usize::MAX,
            ..Recorder::default()
        };
        let mut watched = Watched::new(recorder, Activity::new());
        assert!(tokio::io::AsyncWrite::is_write_vectored(&watched));
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n".as_slice();
        let n = watched
            .write_vectored(&[IoSlice::new(head), IoSlice::new(b"hello")])
            .await
            .unwrap();
        assert_eq!(n, head.len() + 5);
        let body = vec![7u8; GATHER_LIMIT];
        let n = watched
            .write_vectored(&[IoSlice::new(head), IoSlice::new(&body)])
            .await
            .unwrap();
        assert_eq!(n, head.len() + GATHER_LIMIT);
        let n = watched
            .write_vectored(&[IoSlice::new(b"one")])
            .await
            .unwrap();
        assert_eq!(n, 3);
        let writes = std::mem::take(&mut watched.io.writes);
        assert_eq!(writes[0], ("write", [head, b"hello"].concat()));
        assert_eq!(writes[1], ("writev", [head, &body].concat()));
        assert_eq!(writes[2], ("writev", b"one".to_vec()));
        // The thread's buffer, not the connection's, and no larger than the limit.
        let gathered_at = GATHERED.with(|g| {
            let capacity = g.borrow().capacity();
            assert!(
                (GATHER_LIMIT..=2 * GATHER_LIMIT).contains(&capacity),
                "{capacity}"
            );
            g.borrow().as_ptr()
        });
        let mut other = Watched::new(Recorder::default(), Activity::new());
        other.io.room = usize::MAX;
        let n = other
            .write_vectored(&[IoSlice::new(head), IoSlice::new(b"again")])
            .await
            .unwrap();
        assert_eq!(n, head.len() + 5);
        assert_eq!(other.io.writes[0], ("write", [head, b"again"].concat()));
        assert_eq!(GATHERED.with(|g| g.borrow().as_ptr()), gathered_at);

        // A socket that takes fewer bytes than were gathered: the count is of what it took.
        watched.io.room = 10;
        let n = watched
            .write_vectored(&[IoSlice::new(head), IoSlice::new(b"hello")])
            .await
            .unwrap();
        assert_eq!(n, 10);
        assert_eq!(watched.io.writes[0], ("write", head[..10].to_vec()));
    }

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn idle_since_follows_the_calls() {
        let activity = Activity::new();
        assert_eq!(activity.idle_since(), Some(activity.epoch));
        let first = activity.begin(Version::HTTP_11);
        let second = activity.begin(Version::HTTP_11);
        std::thread::sleep(Duration::from_millis(2));
        drop(first);
        assert_eq!(activity.idle_since(), None, "one call is still in progress");
        drop(second);
        let since = activity.idle_since().expect("idle once both calls ended");
        assert!(
            since >= activity.epoch + Duration::from_millis(2),
            "{since:?}"
        );
        assert!(since <= Instant::now());
        assert!(!activity.http2.load(Ordering::Relaxed));
        drop(activity.begin(Version::HTTP_2));
        assert!(activity.http2.load(Ordering::Relaxed));
    }

    #[test]
    fn idle_for_counts_from_the_last_call_and_not_during_one() {
        let activity = Activity::new();
        let start = activity.epoch;
        let timeout = Duration::from_secs(10);
        assert!(!activity.idle_for(timeout, start + Duration::from_secs(4)));
        assert!(activity.idle_for(timeout, start + timeout));
        assert!(
            !activity.idle_for(timeout, start),
            "a clock read before the epoch"
        );
        let call = activity.begin(Version::HTTP_11);
        assert!(!activity.idle_for(timeout, start + Duration::from_secs(100)));
        std::thread::sleep(Duration::from_millis(5));
        drop(call);
        // Idle since the call ended, a few ms after the epoch: not yet at epoch + timeout.
        assert!(!activity.idle_for(timeout, start + timeout));
        assert!(activity.idle_for(timeout, start + timeout + Duration::from_millis(50)));
    }

    /// A sweep marks and wakes the watched HTTP/1 connections idle for the timeout, and only
    /// those: not one with a call in progress, one that spoke HTTP/2, one not watched, or one
    /// idle for less.
    #[test]
    fn a_sweep_wakes_only_connections_idle_too_long() {
        let set = Connections::new();
        let timeout = Duration::from_secs(10);
        let idle = Activity::new();
        let busy = Activity::new();
        let _call = busy.begin(Version::HTTP_11);
        let http2 = Activity::new();
        drop(http2.begin(Version::HTTP_2));
        let unwatched = Activity::new();
        let mut registered = Vec::new();
        let mut counts = Vec::new();
        for watched in [Some(&idle), Some(&busy), Some(&http2), None] {
            let mut registration = set.register(watched.cloned());
            let (count, waker) = counting();
            assert!(!registration.check(&waker));
            registered.push(registration);
            counts.push(count);
        }
        let _ = &unwatched;
        assert_eq!(
            set.sweep(timeout, Instant::now()),
            0,
            "none idle for 10 s yet"
        );
        assert!(!idle.due.load(Ordering::SeqCst));
        let later = Instant::now() + timeout + Duration::from_secs(1);
        assert_eq!(set.sweep(timeout, later), 1);
        assert!(idle.due.load(Ordering::SeqCst));
        assert!(!busy.due.load(Ordering::SeqCst));
        assert!(!http2.due.load(Ordering::SeqCst));
        let woken: Vec<usize> = counts.iter().map(|c| c.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, [1, 0, 0, 0]);
        drop(registered);
        assert!(set.lock().is_empty(), "ended connections leave the set");
        assert_eq!(set.sweep(timeout, later), 0);
    }

    /// The sweeper's thread wakes an idle connection on its own, within a few ticks, and stops
    /// when its handle is dropped.
    #[test]
    fn the_sweeper_thread_wakes_an_idle_connection() {
        let set = Connections::new();
        let timeout = Duration::from_millis(8);
        assert_eq!(Sweeper::tick(timeout), Duration::from_millis(1));
        assert_eq!(
            Sweeper::tick(Duration::from_secs(30)),
            Duration::from_secs(1)
        );
        assert_eq!(Sweeper::tick(Duration::ZERO), Duration::from_millis(1));
        // Linux keeps 15 bytes of a thread's name; a longer one shows cut.
        assert!(Sweeper::THREAD_NAME.len() <= 15);
        let activity = Activity::new();
        let mut registration = set.register(Some(activity.clone()));
        let (count, waker) = counting();
        registration.check(&waker);
        let sweeper = Sweeper::start(set.clone(), timeout);
        let start = Instant::now();
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(start.elapsed() < Duration::from_secs(5), "never woken");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            activity.epoch.elapsed() >= timeout,
            "woken before it was idle that long"
        );
        assert!(activity.due.load(Ordering::SeqCst));
        drop(sweeper);
        // Give the thread its last tick, then check it sweeps no more.
        std::thread::sleep(Duration::from_millis(20));
        activity.due.store(false, Ordering::SeqCst);
        let woken = count.0.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            woken,
            "swept after its handle was dropped"
        );
        assert!(!activity.due.load(Ordering::SeqCst));
    }

    /// A request head that is already in the socket's buffer when the sweeper marks the
    /// connection is read and answered, not dropped unread: `Served` polls the connection
    /// before it looks at the mark.
    #[tokio::test]
    async fn a_head_waiting_when_the_sweeper_marks_the_connection_is_answered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (mut client, server) = tokio::io::duplex(4096);
        let set = Connections::new();
        let activity = Activity::new();
        let for_calls = activity.clone();
        let service = hyper::service::service_fn(move |request: http::Request<_>| {
            let mark = for_calls.begin(request.version());
            async move {
                drop(mark);
                let empty = http_body_util::Empty::<bytes::Bytes>::new();
                Ok::<_, std::convert::Infallible>(http::Response::new(empty))
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let timeout = Duration::from_millis(50);
        let served = Served::new(connection, &set, activity.clone(), Some(timeout));
        std::thread::sleep(timeout + Duration::from_millis(20));
        // Not polled yet, so there is no task to wake; the mark is what the first poll sees.
        set.sweep(timeout, Instant::now());
        assert!(activity.due.load(Ordering::SeqCst), "idle, so marked");
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let task = tokio::spawn(served);
        let mut answer = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut answer))
            .await
            .expect("answered or closed")
            .unwrap();
        assert!(
            answer[..read].starts_with(b"HTTP/1.1 200"),
            "closed unanswered: {:?}",
            String::from_utf8_lossy(&answer[..read])
        );
        assert!(
            !activity.due.load(Ordering::SeqCst),
            "the mark was looked at"
        );
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }

    #[test]
    fn a_stop_wakes_registered_connections_once() {
        let set = Connections::new();
        let (count, waker) = counting();
        let mut first = set.register(None);
        let mut second = set.register(None);
        assert!(!first.check(&waker));
        assert!(!first.check(&waker), "the same waker registers once");
        assert!(!second.check(&waker));
        assert_eq!(set.lock().len(), 2);
        drop(second);
        assert_eq!(set.lock().len(), 1);
        set.stop();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(first.check(&waker));
        let mut late = set.register(None);
        assert!(
            late.check(&waker),
            "a connection accepted after the stop sees it"
        );
    }
}
