//! One served connection of the HTTP inbound: the stop signal it shares with the inbound's other
//! connections, and the header-read watchdog of HTTP/1 connections.
//!
//! Both live in [`Served`], the future the connection's task runs, and neither adds a future
//! that is polled on every wake-up of the connection. That is the point of this module: hyper's
//! own header-read timeout arms a boxed timer for every request head and polls it while the
//! next head is awaited (about 1,750 instructions per call on a keep-alive connection, measured
//! with `benches/profile.sh callgrind omnirelay-http`), and hyper-util's graceful-shutdown
//! wrapper polls a `watch` future on every wake-up (about 500 more). Here the same work is a
//! few atomic operations and one clock read per call, and one timer per connection that fires
//! once per timeout: the echo call went from 29,400 to 27,900 instructions.
//!
//! The watchdog's rule (what hyper's header-read timeout does, without a timer per request): a
//! connection on which no call is in progress and no request head has completed for the
//! timeout is closed. That covers a head sent slowly or never finished (slowloris) and an idle
//! keep-alive connection. A call in progress (its body being read, its handler running, its
//! response or event stream being written) keeps the connection open however long it takes:
//! its own deadline bounds it. An HTTP/2 connection is watched only until its first request:
//! HTTP/2 multiplexes and pings on its own, so idling there is the client's choice.
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
use std::time::Duration;

use http::Version;
use hyper_util::server::graceful::GracefulConnection;
use tokio::time::{Instant, Sleep};

use crate::name::{LastName, Name};

/// Tells every connection of an inbound to finish its calls and close (HTTP/1: after the
/// response in progress; HTTP/2: `GOAWAY`).
#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// The waker of each connection's task, by connection id.
    wakers: Mutex<HashMap<u64, Waker>>,
}

impl StopSignal {
    /// A signal not given yet.
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Gives the signal: every connection, now and later, starts its graceful shutdown.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Taken after the flag is set: a connection that registers after this sees the flag.
        let wakers = std::mem::take(&mut *self.lock());
        for waker in wakers.into_values() {
            waker.wake();
        }
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waker>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place in a [`StopSignal`]: its task's waker, replaced only when the task's
/// waker changes (a tokio task keeps one), removed when the connection ends.
struct StopRegistration {
    signal: Arc<StopSignal>,
    id: u64,
    waker: Option<Waker>,
}

impl StopRegistration {
    fn new(signal: Arc<StopSignal>) -> Self {
        let id = signal.next_id.fetch_add(1, Ordering::Relaxed);
        StopRegistration {
            signal,
            id,
            waker: None,
        }
    }

    /// Makes sure `waker` is the one the signal wakes; then tells whether it was given.
    fn check(&mut self, waker: &Waker) -> bool {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.signal.lock().insert(self.id, waker.clone());
            self.waker = Some(waker.clone());
        }
        self.signal.is_stopping()
    }
}

impl Drop for StopRegistration {
    fn drop(&mut self) {
        if self.waker.is_some() {
            self.signal.lock().remove(&self.id);
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

/// The watchdog's state: one tokio timer, polled only when it is due or the task's waker
/// changed.
struct Watchdog {
    timeout: Duration,
    /// The waker the timer was last polled with.
    waker: Option<Waker>,
}

pin_project_lite::pin_project! {
    /// A connection served until it ends, the inbound stops it, or its watchdog closes it.
    pub(crate) struct Served<C> {
        #[pin]
        connection: C,
        #[pin]
        timer: Sleep,
        stop: StopRegistration,
        shutting_down: bool,
        activity: Arc<Activity>,
        watchdog: Option<Watchdog>,
    }
}

impl<C> Served<C> {
    /// Serves `connection`; with a `header_read_timeout`, closes it once it has been idle (no
    /// call in progress) that long.
    pub(crate) fn new(
        connection: C,
        stop: Arc<StopSignal>,
        activity: Arc<Activity>,
        header_read_timeout: Option<Duration>,
    ) -> Self {
        let due = header_read_timeout.map_or(activity.epoch, |t| activity.epoch + t);
        Served {
            connection,
            timer: tokio::time::sleep_until(due),
            stop: StopRegistration::new(stop),
            shutting_down: false,
            watchdog: header_read_timeout.map(|timeout| Watchdog {
                timeout,
                waker: None,
            }),
            activity,
        }
    }
}

/// What the watchdog found.
enum Verdict {
    /// Look again then.
    Wait(Instant),
    /// Idle too long.
    Close,
}

impl Watchdog {
    fn verdict(&self, activity: &Activity, now: Instant) -> Verdict {
        match activity.idle_since() {
            None => Verdict::Wait(now + self.timeout),
            Some(since) if now >= since + self.timeout => Verdict::Close,
            Some(since) => Verdict::Wait(since + self.timeout),
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
        if !*this.shutting_down && this.stop.check(cx.waker()) {
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
        if let Some(watchdog) = this.watchdog.as_mut() {
            if this.activity.http2.load(Ordering::Relaxed) {
                *this.watchdog = None;
            } else if !watchdog
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
                || this.timer.is_elapsed()
            {
                // Polled once after each (re)arming, so the timer wakes this task when due.
                while this.timer.as_mut().poll(cx).is_ready() {
                    match watchdog.verdict(this.activity, Instant::now()) {
                        Verdict::Close => {
                            tracing::debug!(
                                timeout = ?watchdog.timeout,
                                "closing an idle HTTP connection: no request head within \
                                 the header read timeout"
                            );
                            return Poll::Ready(Ok(()));
                        }
                        Verdict::Wait(at) => this.timer.as_mut().reset(at),
                    }
                }
                watchdog.waker = Some(cx.waker().clone());
            }
        }
        this.connection.poll(cx)
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

    #[tokio::test(start_paused = true)]
    async fn idle_since_follows_the_calls() {
        let activity = Activity::new();
        assert_eq!(activity.idle_since(), Some(activity.epoch));
        let first = activity.begin(Version::HTTP_11);
        let second = activity.begin(Version::HTTP_11);
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(first);
        assert_eq!(activity.idle_since(), None, "one call is still in progress");
        tokio::time::advance(Duration::from_secs(2)).await;
        drop(second);
        assert_eq!(
            activity.idle_since(),
            Some(activity.epoch + Duration::from_secs(5))
        );
        assert!(!activity.http2.load(Ordering::Relaxed));
        drop(activity.begin(Version::HTTP_2));
        assert!(activity.http2.load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn the_verdict_waits_for_the_timeout_after_the_last_call() {
        let activity = Activity::new();
        let watchdog = Watchdog {
            timeout: Duration::from_secs(10),
            waker: None,
        };
        let start = activity.epoch;
        assert!(
            matches!(watchdog.verdict(&activity, start + Duration::from_secs(4)), Verdict::Wait(at) if at == start + Duration::from_secs(10))
        );
        assert!(matches!(
            watchdog.verdict(&activity, start + Duration::from_secs(10)),
            Verdict::Close
        ));
        let call = activity.begin(Version::HTTP_11);
        let now = start + Duration::from_secs(12);
        assert!(
            matches!(watchdog.verdict(&activity, now), Verdict::Wait(at) if at == now + Duration::from_secs(10))
        );
        tokio::time::advance(Duration::from_secs(7)).await;
        drop(call);
        assert!(
            matches!(watchdog.verdict(&activity, start + Duration::from_secs(9)), Verdict::Wait(at) if at == start + Duration::from_secs(17))
        );
    }

    #[test]
    fn a_stop_wakes_registered_connections_once() {
        let signal = StopSignal::new();
        let woken = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let waker = Waker::from(Arc::new(Count(woken.clone())));
        let mut first = StopRegistration::new(signal.clone());
        let mut second = StopRegistration::new(signal.clone());
        assert!(!first.check(&waker));
        assert!(!first.check(&waker), "the same waker registers once");
        assert!(!second.check(&waker));
        assert_eq!(signal.lock().len(), 2);
        drop(second);
        assert_eq!(signal.lock().len(), 1);
        signal.stop();
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert!(first.check(&waker));
        let mut late = StopRegistration::new(signal);
        assert!(
            late.check(&waker),
            "a connection accepted after the stop sees it"
        );
    }
}
