//! Running a handler under a call's deadline, shared by every inbound.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;

use crate::error::{Error, Result};

/// Runs `call` under `deadline`: a call already past its deadline is refused without running
/// the handler; one that passes it is dropped (cancelling the handler); either way the result is
/// `expired()`. A panicking handler becomes `internal`.
pub(crate) async fn run_handler<T>(
    deadline: Option<Instant>,
    call: impl Future<Output = Result<T>>,
    expired: impl FnOnce() -> Error,
) -> Result<T> {
    let call = AssertUnwindSafe(call).catch_unwind();
    let outcome = match deadline {
        None => call.await,
        Some(deadline) if deadline <= Instant::now() => return Err(expired()),
        Some(deadline) => tokio::time::timeout_at(deadline.into(), call)
            .await
            .map_err(|_| expired())?,
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
    async fn panics_become_internal() {
        let err = run_handler::<()>(None, async { panic!("boom") }, || Error::unknown("x"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }
}
