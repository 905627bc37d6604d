//! Running a handler under a call's deadline, shared by every inbound.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use crate::error::{Error, Result};

/// Runs `call` under `deadline`: a call already past its deadline is refused without running
/// the handler; one that passes it is dropped (cancelling the handler); either way the result is
/// `expired()`. A panicking handler becomes `internal`.
///
/// Most calls finish on their first poll, so the timer is armed only when that poll returns
/// `Pending` (then the call is polled once more, under the timer): a call that finishes at once
/// creates and cancels no timer at all.
pub(crate) async fn run_handler<T>(
    deadline: Option<Instant>,
    call: impl Future<Output = Result<T>>,
    expired: impl FnOnce() -> Error,
) -> Result<T> {
    // Pinned where it is, so the (possibly large) call future is moved once, not per step.
    let call = std::pin::pin!(Caught { call });
    run_pinned(deadline, call, expired).await
}

/// Awaits a unary pipeline's call from inside a transport's future. Without middleware the
/// handler's own box is awaited as it is (see `RpcService::is_leaf`); otherwise the outermost
/// middleware's future, inline ([`RpcService::invoke_inline`]). A macro, not a function, so that
/// the future is awaited where the caller pinned its state, not moved into another one.
///
/// [`RpcService::invoke_inline`]: crate::middleware::RpcService::invoke_inline
macro_rules! invoke_pipeline {
    ($service:expr, $request:expr) => {{
        let service = $service;
        let request = $request;
        if service.is_leaf() {
            service.invoke(request).await
        } else {
            service.invoke_inline(request).await
        }
    }};
}
pub(crate) use invoke_pipeline;

pin_project_lite::pin_project! {
    /// A handler call caught for panics, pinned by its caller: it gives `Err` with the panic's
    /// payload when polling `call` panics.
    ///
    /// Build it as a struct literal around the call's `async` block, inside `std::pin::pin!`
    /// (`pin!(Caught { call: async { .. } })`), and hand it to [`run_pinned`]: the block is then
    /// made where it stays, where passing it through a function (as `FutureExt::catch_unwind`
    /// takes it) first makes it on the stack and copies all of it (816 bytes for the HTTP
    /// inbound's unary call) into the caller's state.
    pub(crate) struct Caught<F> {
        #[pin]
        pub(crate) call: F,
    }
}

impl<F: Future> Future for Caught<F> {
    type Output = std::result::Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let call = self.project().call;
        match std::panic::catch_unwind(AssertUnwindSafe(|| call.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// [`run_handler`] for a call its caller already pinned (see [`Caught`]): the call future stays
/// where the caller put it, so a large one is not copied into this future's state. The clock is
/// read when this is called, not when the future is first polled: await it at once.
pub(crate) fn run_pinned<T, F: Future<Output = Result<T>>>(
    deadline: Option<Instant>,
    call: Pin<&mut Caught<F>>,
    expired: impl FnOnce() -> Error,
) -> impl Future<Output = Result<T>> {
    let passed = deadline.is_some_and(|deadline| deadline <= Instant::now());
    run_started(deadline, passed, call, expired)
}

/// [`run_pinned`] for a caller that knows whether the deadline had `passed` when the call
/// arrived, without reading the clock again: one that computed the deadline from the clock on
/// arrival, a moment ago, knows it had passed exactly when the TTL was zero.
pub(crate) async fn run_started<T, F: Future<Output = Result<T>>>(
    deadline: Option<Instant>,
    passed: bool,
    mut call: Pin<&mut Caught<F>>,
    expired: impl FnOnce() -> Error,
) -> Result<T> {
    if passed {
        return Err(expired());
    }
    let outcome = match deadline {
        None => call.await,
        Some(deadline) => {
            match std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => tokio::time::timeout_at(deadline.into(), call)
                    .await
                    .map_err(|_| expired())?,
            }
        }
    };
    outcome.unwrap_or_else(|_| Err(Error::internal("the handler panicked")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::Code;

    #[tokio::test]
    async fn refuses_work_already_past_its_deadline() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let past = Instant::now() - Duration::from_millis(1);
        let err = run_handler(
            Some(past),
            async move {
                flag.store(true, Ordering::SeqCst);
                Ok(())
            },
            || Error::deadline_exceeded("late"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn finishes_at_once_or_after_waiting_within_the_deadline() {
        let deadline = Some(Instant::now() + Duration::from_secs(3600));
        let now = run_handler(deadline, async { Ok(1) }, || Error::unknown("late"))
            .await
            .unwrap();
        assert_eq!(now, 1);
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let waiting = run_handler(deadline, async move { Ok(rx.await.unwrap_or(0)) }, || {
            Error::unknown("late")
        });
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            let _ = tx.send(7);
        });
        assert_eq!(waiting.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_waiting_call_past_its_deadline_expires() {
        let deadline = Some(Instant::now() + Duration::from_millis(50));
        let err = run_handler::<()>(deadline, futures::future::pending(), || {
            Error::deadline_exceeded("late")
        })
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert_eq!(err.message(), "late");
    }

    #[tokio::test]
    async fn a_panic_on_the_first_poll_becomes_internal() {
        let deadline = Some(Instant::now() + Duration::from_secs(3600));
        let err = run_handler::<()>(deadline, async { panic!("boom") }, || Error::unknown("x"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }

    #[tokio::test]
    async fn panics_become_internal() {
        let err = run_handler::<()>(None, async { panic!("boom") }, || Error::unknown("x"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }

    /// A call that waits first and panics when polled again is caught too, with and without a
    /// deadline (the second poll then runs under the timer).
    #[tokio::test]
    async fn a_panic_after_waiting_becomes_internal() {
        for deadline in [None, Some(Instant::now() + Duration::from_secs(3600))] {
            let err = run_handler::<()>(
                deadline,
                async {
                    tokio::task::yield_now().await;
                    panic!("boom")
                },
                || Error::unknown("x"),
            )
            .await
            .unwrap_err();
            assert_eq!(err.code(), Code::Internal, "{deadline:?}");
        }
        // And a call that waits and then answers gives its answer.
        let ok = run_handler(
            None,
            async {
                tokio::task::yield_now().await;
                Ok(7)
            },
            || Error::unknown("x"),
        )
        .await;
        assert_eq!(ok.unwrap(), 7);
    }
}
