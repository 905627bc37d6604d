//! Graceful-drain support shared by the inbounds: a count of in-flight calls that a stopping
//! inbound waits on, and a response body that keeps its call counted until it has been sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// Counts the calls an inbound is serving.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    /// Tasks in [`InFlight::idle`]: the last guard wakes them only when there are any, so a
    /// call that ends with nothing else in flight (on a lightly loaded inbound, most calls) does
    /// not lock the [`Notify`]'s waiter list for no one.
    waiting: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    /// A new, idle counter.
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Counts one more call until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// The calls in flight now.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Resolves once no call is in flight.
    pub(crate) async fn idle(&self) {
        // Counted before the count is read (all `SeqCst`): a guard that the read below sees in
        // flight sees this waiter when it is dropped.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before checking, so a guard dropped in between still wakes us.
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Uncounts a task from [`InFlight::waiting`] when its `idle` future ends or is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keeps one call counted as in flight while it lives.
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1
            && self.0.waiting.load(Ordering::SeqCst) > 0
        {
            self.0.idle.notify_waiters();
        }
    }
}

/// A response body that keeps its call in flight until the body is sent (or dropped).
pub(crate) struct GuardedBody<B> {
    body: B,
    _guard: InFlightGuard,
}

impl<B> GuardedBody<B> {
    pub(crate) fn new(body: B, guard: InFlightGuard) -> Self {
        GuardedBody {
            body,
            _guard: guard,
        }
    }
}

impl<B: Body + Unpin> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_guard() {
        let in_flight = InFlight::new();
        in_flight.idle().await;
        let a = in_flight.enter();
        let b = in_flight.enter();
        assert_eq!(in_flight.count(), 2);
        let waiter = {
            let in_flight = in_flight.clone();
            tokio::spawn(async move { in_flight.idle().await })
        };
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("idle once the last guard is dropped")
            .unwrap();
        assert_eq!(in_flight.waiting.load(Ordering::SeqCst), 0);
    }

    /// Waiters that start while guards are entered and dropped on other threads all see the
    /// end of the calls, and a waiter that is dropped unfinished is uncounted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_sees_the_last_guard_dropped_on_another_thread() {
        for _ in 0..200 {
            let in_flight = InFlight::new();
            let guards: Vec<_> = (0..4).map(|_| in_flight.enter()).collect();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let in_flight = in_flight.clone();
                    tokio::spawn(async move { in_flight.idle().await })
                })
                .collect();
            let dropper = tokio::spawn(async move {
                for guard in guards {
                    tokio::task::yield_now().await;
                    drop(guard);
                }
            });
            for waiter in waiters {
                tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                    .await
                    .expect("every waiter sees the calls end")
                    .unwrap();
            }
            dropper.await.unwrap();
            assert_eq!(in_flight.waiting.load(Ordering::SeqCst), 0);
        }
        let in_flight = InFlight::new();
        let _guard = in_flight.enter();
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), in_flight.idle()).await;
        assert!(gave_up.is_err());
        assert_eq!(in_flight.waiting.load(Ordering::SeqCst), 0);
    }
}
