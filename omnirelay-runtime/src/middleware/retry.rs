//! [`RetryMiddleware`]: retries failed unary outbound calls with exponential backoff and jitter,
//! within a retry budget and never past the caller's deadline.
//!
//! # What is retried
//!
//! Only **unary outbound** calls. A unary request is a `Request<Bytes>` whose clone is cheap (the
//! body is a reference-counted [`Bytes`]), so each attempt replays the same buffered request: an
//! attempt sends a copy of the metadata and shares the body.
//! Oneway calls are not retried (the server may already have acted on one that "failed"), and
//! neither are streams (their request bodies cannot be replayed). Registered as *inbound*
//! middleware, the retry middleware does nothing: the procedure's pipeline is left unchanged and
//! a warning is logged when the dispatcher is built.
//!
//! An error is retried when [`RetryMiddleware::should_retry`] says so; by default when its code
//! is `unavailable`, `resource-exhausted`, `aborted`, `internal` or `deadline-exceeded` (see
//! [`is_retryable`]). Whatever the predicate says, a retry is only made when the budget, the
//! attempt limit and the caller's deadline all allow it.
//!
//! # Backoff
//!
//! The wait before retry `n` (the first retry is `n = 1`) is drawn with *equal jitter* from
//! `[b/2, b]`, where `b = min(max_backoff, initial_backoff × multiplier^(n-1))`. Equal jitter keeps
//! a floor under each wait (so a struggling server gets at least half the nominal pause) while
//! still spreading the retries of many callers apart. With the defaults (50 ms, ×2, at most 1 s)
//! the first retry waits 25–50 ms and the second 50–100 ms.
//!
//! # The caller's deadline
//!
//! A request's deadline (`meta.deadline`, or `meta.ttl` counted from the moment the call enters the
//! middleware) bounds every attempt: each attempt is sent with `meta.deadline` set and `meta.ttl`
//! set to the time that remains, and is abandoned with `deadline-exceeded` if it runs to the
//! deadline. A retry is not scheduled when its backoff would end at or after the deadline; the call
//! then fails with the last attempt's error. In particular a `deadline-exceeded` error is only
//! retried while time remains before the caller's deadline.
//!
//! # The budget
//!
//! Retries draw on a budget so that a failing service does not see its load multiplied. Every call
//! entering the middleware **deposits** into the budget once, before its first attempt; every retry
//! **withdraws** once, and a retry whose withdrawal fails is not made (the call fails with the last
//! error). The default budget is tower's [`TpsBudget`] with a 10 s window, a reserve of 10 retries
//! per second and 20 % of calls: over any 10 s, retries stay under about 100 + 0.2 × calls. Unless
//! [`RetryMiddleware::shared_budget`] is set, each outbound the middleware wraps gets its own budget,
//! so a failing service does not use up the retries of the others.
//!
//! # Events
//!
//! Each scheduled retry emits a `DEBUG` tracing event ("retrying outbound call") with the
//! service, procedure, attempt number, backoff and error; a call that stops retrying while its
//! error was still retryable emits an `INFO` event ("outbound call retries exhausted") naming the
//! reason: `attempts`, `budget` or `deadline`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use omnirelay::Dispatcher;
//! use omnirelay::middleware::retry::RetryMiddleware;
//!
//! let dispatcher = Dispatcher::builder("caller")
//!     .outbound_middleware(
//!         RetryMiddleware::new()
//!             .max_attempts(4)
//!             .initial_backoff(Duration::from_millis(20)),
//!     )
//!     .build()
//!     .unwrap();
//! # let _ = dispatcher;
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::service::UnaryService;
use super::stack::{Direction, Middleware, Target};
use crate::error::{Code, Error, Result};
use crate::meta::{Request, Response};

pub use tower::retry::budget::{Budget, TpsBudget};

/// The default number of attempts, the first call included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The default wait before the first retry (before jitter).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// The default factor the backoff grows by after each retry.
pub const DEFAULT_MULTIPLIER: f64 = 2.0;
/// The default longest backoff (before jitter).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Whether an error with this code is retried by default: `unavailable`, `resource-exhausted`,
/// `aborted`, `internal` and `deadline-exceeded` (the last only while the caller's deadline
/// leaves time, which the middleware checks for every retry).
pub fn is_retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
            | Code::DeadlineExceeded
    )
}

type ShouldRetry = Arc<dyn Fn(&Error) -> bool + Send + Sync>;
type SharedBudget = Arc<dyn Budget + Send + Sync>;

/// Which budget the retries of an outbound draw on.
#[derive(Clone)]
enum BudgetChoice {
    /// A fresh [`TpsBudget`] for each outbound the middleware wraps.
    PerOutbound {
        window: Duration,
        min_per_sec: u32,
        retry_ratio: f32,
    },
    /// One budget for every outbound the middleware wraps.
    Shared(SharedBudget),
    /// No budget: only the attempt limit and the deadline bound retries.
    Unlimited,
}

/// Retries failed unary outbound calls: exponential backoff with equal jitter, a retry budget,
/// and never past the caller's deadline (see the [module documentation](self)).
///
/// | option | default |
/// |---|---|
/// | [`max_attempts`](Self::max_attempts) | 3 (the first call and two retries) |
/// | [`initial_backoff`](Self::initial_backoff) | 50 ms |
/// | [`multiplier`](Self::multiplier) | 2 |
/// | [`max_backoff`](Self::max_backoff) | 1 s |
/// | [`budget`](Self::budget) | per outbound: 10 s window, 10 retries/s reserve, 20 % of calls |
/// | [`should_retry`](Self::should_retry) | [`is_retryable`] on the error's code |
///
/// Converts into a [`Middleware`] named `retry` that covers the unary shape only.
#[derive(Clone)]
pub struct RetryMiddleware {
    max_attempts: u32,
    initial_backoff: Duration,
    multiplier: f64,
    max_backoff: Duration,
    budget: BudgetChoice,
    should_retry: Option<ShouldRetry>,
}

impl Default for RetryMiddleware {
    fn default() -> Self {
        RetryMiddleware {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            multiplier: DEFAULT_MULTIPLIER,
            max_backoff: DEFAULT_MAX_BACKOFF,
            budget: BudgetChoice::PerOutbound {
                window: Duration::from_secs(10),
                min_per_sec: 10,
                retry_ratio: 0.2,
            },
            should_retry: None,
        }
    }
}

impl fmt::Debug for RetryMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let budget = match &self.budget {
            BudgetChoice::PerOutbound { .. } => "per outbound",
            BudgetChoice::Shared(_) => "shared",
            BudgetChoice::Unlimited => "none",
        };
        f.debug_struct("RetryMiddleware")
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("multiplier", &self.multiplier)
            .field("max_backoff", &self.max_backoff)
            .field("budget", &budget)
            .field("custom_should_retry", &self.should_retry.is_some())
            .finish()
    }
}

impl RetryMiddleware {
    /// The retry middleware with the defaults in the table above.
    pub fn new() -> Self {
        RetryMiddleware::default()
    }

    /// The number of attempts in all, the first call included (default 3). `0` is taken as `1`:
    /// the call is made once and never retried.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The nominal wait before the first retry (default 50 ms).
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The factor the nominal wait grows by after each retry (default 2). Values below 1, and
    /// NaN, are taken as 1 (a constant backoff).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier >= 1.0 { multiplier } else { 1.0 };
        self
    }

    /// The longest nominal wait between attempts (default 1 s).
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Gives each outbound the middleware wraps its own [`TpsBudget`]: deposits count for
    /// `window` (clamped to 1–60 s), `min_per_sec` retries per second are always allowed, and on
    /// top of those `retry_ratio` retries per call (0.2 = one retry per five calls; clamped to
    /// 0–1000, NaN taken as 0). `budget(Duration::from_secs(1), 0, 0.0)` allows no retry at all.
    pub fn budget(mut self, window: Duration, min_per_sec: u32, retry_ratio: f32) -> Self {
        self.budget = BudgetChoice::PerOutbound {
            window: window.clamp(Duration::from_secs(1), Duration::from_secs(60)),
            min_per_sec: min_per_sec.min(i32::MAX as u32 - 1),
            retry_ratio: if retry_ratio >= 0.0 {
                retry_ratio.min(1000.0)
            } else {
                0.0
            },
        };
        self
    }

    /// Makes every outbound the middleware wraps draw on `budget` (any tower [`Budget`], such as
    /// a [`TpsBudget`] shared with other code).
    pub fn shared_budget(mut self, budget: Arc<dyn Budget + Send + Sync>) -> Self {
        self.budget = BudgetChoice::Shared(budget);
        self
    }

    /// Retries without a budget: only the attempt limit and the deadline bound them. Use with
    /// care; a failing service then sees up to `max_attempts` times its normal load.
    pub fn no_budget(mut self) -> Self {
        self.budget = BudgetChoice::Unlimited;
        self
    }

    /// Decides which errors are retried instead of [`is_retryable`]. The attempt limit, the budget
    /// and the deadline still apply.
    pub fn should_retry(
        mut self,
        predicate: impl Fn(&Error) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.should_retry = Some(Arc::new(predicate));
        self
    }

    fn retryable(&self, error: &Error) -> bool {
        match &self.should_retry {
            Some(predicate) => predicate(error),
            None => is_retryable(error.code()),
        }
    }

    /// The wait before retry number `retry` (1 for the first), given `jitter` in `[0, 1)`.
    fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let nominal = if self.initial_backoff.is_zero() {
            Duration::ZERO
        } else {
            let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
            let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
            Duration::try_from_secs_f64(secs).unwrap_or(self.max_backoff)
        };
        let half = nominal.min(self.max_backoff) / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    fn wrap(self: &Arc<Self>, target: &Target<'_>, inner: UnaryService) -> UnaryService {
        if target.direction == Direction::Inbound {
            tracing::warn!(
                service = target.service,
                procedure = target.procedure.unwrap_or_default(),
                "the retry middleware applies to outbound calls only; ignored on this procedure"
            );
            return inner;
        }
        if self.max_attempts <= 1 {
            return inner;
        }
        let budget = match &self.budget {
            BudgetChoice::PerOutbound {
                window,
                min_per_sec,
                retry_ratio,
            } => {
                Some(Arc::new(TpsBudget::new(*window, *min_per_sec, *retry_ratio)) as SharedBudget)
            }
            BudgetChoice::Shared(budget) => Some(budget.clone()),
            BudgetChoice::Unlimited => None,
        };
        let retry = Arc::new(Retry {
            options: self.clone(),
            budget,
            service: target.service.into(),
            inner,
        });
        UnaryService::new(tower::service_fn(move |request| {
            let retry = retry.clone();
            async move { retry.call(request).await }
        }))
    }
}

impl From<RetryMiddleware> for Middleware {
    fn from(retry: RetryMiddleware) -> Middleware {
        let retry = Arc::new(retry);
        Middleware::new("retry").unary_with(move |target, inner| retry.wrap(target, inner))
    }
}

/// The retry state of one outbound.
struct Retry {
    options: Arc<RetryMiddleware>,
    budget: Option<SharedBudget>,
    service: Arc<str>,
    inner: UnaryService,
}

/// Why a call stopped retrying while its error was still retryable.
#[derive(Clone, Copy)]
enum Stop {
    Attempts,
    Budget,
    Deadline,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Attempts => "attempts",
            Stop::Budget => "budget",
            Stop::Deadline => "deadline",
        }
    }
}

impl Retry {
    async fn call(&self, request: Request<Bytes>) -> Result<Response<Bytes>> {
        let deadline = request.meta.deadline.or_else(|| {
            request
                .meta
                .ttl
                .and_then(|ttl| Instant::now().checked_add(ttl))
        });
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        let max = self.options.max_attempts;
        let mut attempt = 1;
        loop {
            let error = match self.attempt(request.clone(), deadline).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            if !self.options.retryable(&error) {
                return Err(error);
            }
            if attempt >= max {
                return Err(self.exhausted(&request, attempt, error, Stop::Attempts));
            }
            let backoff = self.options.backoff(attempt, fastrand::f64());
            if let Some(deadline) = deadline {
                let fits = Instant::now()
                    .checked_add(backoff)
                    .is_some_and(|end| end < deadline);
                if !fits {
                    return Err(self.exhausted(&request, attempt, error, Stop::Deadline));
                }
            }
            if let Some(budget) = &self.budget
                && !budget.withdraw()
            {
                return Err(self.exhausted(&request, attempt, error, Stop::Budget));
            }
            tracing::debug!(
                service = &*self.service,
                procedure = request.meta.procedure.as_str(),
                attempt,
                backoff_ms = backoff.as_millis() as u64,
                code = error.code().as_str(),
                error = error.message(),
                "retrying outbound call"
            );
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    /// One attempt, bounded by the deadline, with the time that remains as its TTL.
    async fn attempt(
        &self,
        mut request: Request<Bytes>,
        deadline: Option<Instant>,
    ) -> Result<Response<Bytes>> {
        let Some(deadline) = deadline else {
            return self.inner.invoke(request).await;
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(passed_deadline(&request.meta.procedure));
        }
        request.meta.deadline = Some(deadline);
        request.meta.ttl = Some(remaining);
        match tokio::time::timeout_at(deadline.into(), self.inner.invoke(request)).await {
            Ok(result) => result,
            Err(_) => Err(Error::deadline_exceeded(
                "the attempt passed the call's deadline (retry middleware)",
            )),
        }
    }

    fn exhausted(
        &self,
        request: &Request<Bytes>,
        attempts: u32,
        error: Error,
        stop: Stop,
    ) -> Error {
        tracing::info!(
            service = &*self.service,
            procedure = request.meta.procedure.as_str(),
            attempts,
            reason = stop.as_str(),
            code = error.code().as_str(),
            error = error.message(),
            "outbound call retries exhausted"
        );
        error
    }
}

fn passed_deadline(procedure: &str) -> Error {
    Error::deadline_exceeded(format!(
        "call to {procedure:?} passed its deadline (retry middleware)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_equal_jitter_and_is_capped() {
        let r = RetryMiddleware::new();
        assert_eq!(r.backoff(1, 0.0), Duration::from_millis(25));
        assert_eq!(r.backoff(1, 1.0), Duration::from_millis(50));
        assert_eq!(r.backoff(2, 0.0), Duration::from_millis(50));
        assert_eq!(r.backoff(3, 0.5), Duration::from_millis(150));
        // 50 ms × 2^9 > 1 s: capped.
        assert_eq!(r.backoff(10, 1.0), Duration::from_secs(1));
        assert_eq!(r.backoff(10, 0.0), Duration::from_millis(500));
        assert_eq!(r.backoff(u32::MAX, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn odd_options_do_not_panic() {
        let r = RetryMiddleware::new()
            .multiplier(f64::NAN)
            .max_attempts(0)
            .initial_backoff(Duration::MAX)
            .max_backoff(Duration::MAX)
            .budget(Duration::ZERO, u32::MAX, f32::NAN);
        assert_eq!(r.max_attempts, 1);
        assert_eq!(r.multiplier, 1.0);
        let _ = r.backoff(u32::MAX, 0.999);
        let zero = RetryMiddleware::new()
            .initial_backoff(Duration::ZERO)
            .multiplier(f64::INFINITY);
        assert_eq!(zero.backoff(1000, 0.5), Duration::ZERO);
        let m: Middleware = r.into();
        assert_eq!(m.name(), "retry");
        assert!(m.covers(crate::Kind::Unary));
        assert!(!m.covers(crate::Kind::Oneway));
    }

    #[test]
    fn default_retryable_codes() {
        let retryable: Vec<Code> = Code::ALL.into_iter().filter(|c| is_retryable(*c)).collect();
        assert_eq!(
            retryable,
            [
                Code::DeadlineExceeded,
                Code::ResourceExhausted,
                Code::Aborted,
                Code::Internal,
                Code::Unavailable
            ]
        );
        let custom = RetryMiddleware::new().should_retry(|e| e.code() == Code::NotFound);
        assert!(custom.retryable(&Error::not_found("x")));
        assert!(!custom.retryable(&Error::unavailable("x")));
    }
}
