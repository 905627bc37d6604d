//! Rate limiting: [`RateLimitMiddleware`] admits calls at a [`Quota`] and fails the rest at once
//! with `resource-exhausted`.
//!
//! The limiter is [`governor`]'s GCRA (generic cell rate algorithm): a quota of `n` per period
//! with a burst of `b` admits up to `b` calls at once, then one more every `period / n`. A
//! call that finds no permit is not queued: it fails immediately with
//!
//! ```text
//! resource-exhausted: rate limit exceeded for procedure '<procedure>' (retry after <n> ms)
//! ```
//!
//! where the retry-after hint is the time until the limiter would admit the next call (the
//! hint is in the message because YARPC-HTTP and gRPC carry no structured retry information for
//! an arbitrary error; over YARPC-HTTP the status is `429`).
//!
//! # Scope: which calls share a limiter
//!
//! * [`RateLimitScope::PerProcedure`] (the default): each procedure has its own limiter. Inbound,
//!   the limiter is built per procedure when the pipeline is composed. Outbound, one pipeline
//!   serves every procedure of the remote service, so the limiter is keyed by the request's
//!   procedure name.
//! * [`RateLimitScope::Shared`]: one limiter for every call the middleware sees, across
//!   procedures and shapes (and directions, when the same value is registered in both).
//! * [`RateLimitScope::Keyed`]: one limiter per key that a selector computes from the
//!   [`RequestMeta`] (e.g. per caller with [`RateLimitMiddleware::per_caller`]), shared across
//!   procedures; a selector returning `None` exempts the call. Keys idle for longer than a full
//!   burst takes to replenish are forgotten now and then (every 4096 calls), so the key table
//!   does not grow without bound.
//!
//! # Streams
//!
//! The rate is of calls, not messages: opening a server stream, client stream or duplex stream
//! takes one permit, and the messages it carries take none.
//!
//! ```
//! use std::num::NonZeroU32;
//! use omnirelay::Dispatcher;
//! use omnirelay::middleware::rate_limit::{Quota, RateLimitMiddleware};
//!
//! let hundred = NonZeroU32::new(100).unwrap();
//! let dispatcher = Dispatcher::builder("echo")
//!     // Each procedure: 100 calls a second, up to 100 at once.
//!     .middleware(RateLimitMiddleware::new(Quota::per_second(hundred)))
//!     .build()
//!     .unwrap();
//! # let _ = dispatcher;
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{Either, Ready, ready};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil};
use tower::Service;

use super::service::RpcService;
use super::stack::{Middleware, ShapeWrap, Target};
use crate::error::{Error, Result};
use crate::meta::{Request, RequestMeta};
use crate::name::Name;
use crate::procedure::BoxFuture;

/// A rate: how many calls per period, and how many may come at once. Re-exported from
/// [`governor`]: build one with `Quota::per_second(n)`, `Quota::per_minute(n)`,
/// `Quota::per_hour(n)` or `Quota::with_period(d)`, and set the burst with `allow_burst(b)`
/// (the burst defaults to the per-period count).
pub use governor::Quota;

/// Picks the key a call is limited under; `None` exempts the call.
pub type KeySelector = Arc<dyn Fn(&RequestMeta) -> Option<String> + Send + Sync>;

/// Which calls share a limiter (see the [module docs](self)).
#[derive(Clone, Default)]
pub enum RateLimitScope {
    /// One limiter per procedure (the default).
    #[default]
    PerProcedure,
    /// One limiter for every call.
    Shared,
    /// One limiter per key the selector returns; `None` exempts the call.
    Keyed(KeySelector),
}

impl fmt::Debug for RateLimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RateLimitScope::PerProcedure => "PerProcedure",
            RateLimitScope::Shared => "Shared",
            RateLimitScope::Keyed(_) => "Keyed",
        })
    }
}

/// The `rate-limit` middleware: admits calls at a [`Quota`], failing the rest at once with
/// `resource-exhausted` (see the [module docs](self)). Covers all five shapes, inbound and
/// outbound; a stream takes its permit when it is opened.
///
/// Quotas governor cannot represent are clamped by [`RateLimitMiddleware::new`] (see there), so
/// building a dispatcher with any quota never panics.
#[derive(Clone, Debug)]
pub struct RateLimitMiddleware {
    quota: Quota,
    scope: RateLimitScope,
}

impl RateLimitMiddleware {
    /// Limits calls to `quota`, one limiter per procedure.
    ///
    /// governor keeps time in nanoseconds in a `u64` and panics on a quota it cannot represent,
    /// so `quota` is clamped first (what [`quota`](Self::quota) then returns):
    ///
    /// * the replenish interval (the time one permit takes to come back) is at most
    ///   [`MAX_QUOTA_SPAN`] (about 146 years; `Quota::with_period(Duration::MAX)` would panic);
    /// * the burst is at most what replenishes in [`MAX_QUOTA_SPAN`], so `interval × burst`
    ///   stays within it (`Quota::per_hour(1).allow_burst(u32::MAX)`, whose full burst would
    ///   take 490,000 years to come back, gets a burst of about 1.28 million).
    ///
    /// Quotas within those bounds, every quota a real service would configure, are unchanged.
    pub fn new(quota: Quota) -> Self {
        RateLimitMiddleware {
            quota: clamp_quota(quota),
            scope: RateLimitScope::PerProcedure,
        }
    }

    /// Sets which calls share a limiter.
    pub fn scope(mut self, scope: RateLimitScope) -> Self {
        self.scope = scope;
        self
    }

    /// One limiter per procedure (the default).
    pub fn per_procedure(self) -> Self {
        self.scope(RateLimitScope::PerProcedure)
    }

    /// One limiter shared by every call.
    pub fn shared(self) -> Self {
        self.scope(RateLimitScope::Shared)
    }

    /// One limiter per key `selector` returns for a call; `None` exempts the call.
    pub fn keyed_by(
        self,
        selector: impl Fn(&RequestMeta) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.scope(RateLimitScope::Keyed(Arc::new(selector)))
    }

    /// One limiter per caller (the request's `caller`), shared across procedures.
    pub fn per_caller(self) -> Self {
        self.keyed_by(|meta| Some(meta.caller.to_string()))
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }
}

/// The longest time a clamped [`Quota`] may take to replenish its whole burst (and so also its
/// longest replenish interval): `u64::MAX / 4` nanoseconds, about 146 years. A quarter of what
/// governor's nanosecond clock holds, so its sums of the current time, the interval and the
/// burst's span cannot overflow either.
pub const MAX_QUOTA_SPAN: Duration = Duration::from_nanos(u64::MAX / 4);

/// `quota` clamped to what governor can represent (see [`RateLimitMiddleware::new`]).
fn clamp_quota(quota: Quota) -> Quota {
    let span = MAX_QUOTA_SPAN.as_nanos();
    // governor treats a zero interval as one nanosecond.
    let given = quota.replenish_interval().as_nanos();
    let interval = given.clamp(1, span);
    let max_burst = u32::try_from(span / interval).unwrap_or(u32::MAX).max(1);
    let burst = quota.burst_size().get().min(max_burst);
    if given <= span && burst == quota.burst_size().get() {
        return quota;
    }
    let interval = Duration::from_nanos(u64::try_from(interval).unwrap_or(u64::MAX));
    match (Quota::with_period(interval), NonZeroU32::new(burst)) {
        (Some(clamped), Some(burst)) => clamped.allow_burst(burst),
        // Unreachable: the interval and the burst are at least 1.
        _ => quota,
    }
}

/// How often (in calls) a keyed limiter forgets idle keys.
const RETAIN_EVERY: u64 = 4096;

/// A keyed limiter that forgets idle keys now and then.
struct Keyed<K: Clone + Eq + std::hash::Hash = String> {
    limiter: DefaultKeyedRateLimiter<K>,
    calls: AtomicU64,
}

impl<K: Clone + Eq + std::hash::Hash> Keyed<K> {
    fn new(quota: Quota) -> Self {
        Keyed {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            calls: AtomicU64::new(0),
        }
    }

    fn check(&self, key: &K) -> std::result::Result<(), Duration> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| wait(&not_until, self.limiter.clock()))
    }
}

fn wait(not_until: &NotUntil<<DefaultClock as Clock>::Instant>, clock: &DefaultClock) -> Duration {
    not_until.wait_time_from(clock.now())
}

/// The limiter one pipeline checks.
#[derive(Clone)]
enum Limiter {
    /// One limiter for everything this pipeline sees.
    Direct(Arc<DefaultDirectRateLimiter>),
    /// Keyed by the request's procedure (per-procedure scope, outbound).
    ByProcedure(Arc<Keyed<Name>>),
    /// Keyed by a selector.
    Keyed(Arc<Keyed>, KeySelector),
}

impl Limiter {
    fn check(&self, meta: &RequestMeta) -> Result<()> {
        let outcome = match self {
            Limiter::Direct(limiter) => limiter
                .check()
                .map_err(|not_until| wait(&not_until, limiter.clock())),
            Limiter::ByProcedure(keyed) => keyed.check(&meta.procedure),
            Limiter::Keyed(keyed, selector) => match selector(meta) {
                Some(key) => keyed.check(&key),
                None => Ok(()),
            },
        };
        outcome.map_err(|retry_after| exceeded(&meta.procedure, retry_after))
    }
}

/// The error a call without a permit fails with.
fn exceeded(procedure: &str, retry_after: Duration) -> Error {
    // Round up so that "retry after 0 ms" never appears for a wait under a millisecond.
    let ms = retry_after.as_nanos().div_ceil(1_000_000);
    Error::resource_exhausted(format!(
        "rate limit exceeded for procedure '{procedure}' (retry after {ms} ms)"
    ))
}

/// The state the middleware shares between the pipelines it is composed into.
struct Plan {
    quota: Quota,
    shared: Option<Limiter>,
}

impl Plan {
    fn new(config: RateLimitMiddleware) -> Self {
        let shared = match config.scope {
            RateLimitScope::PerProcedure => None,
            RateLimitScope::Shared => Some(Limiter::Direct(Arc::new(
                DefaultDirectRateLimiter::direct(config.quota),
            ))),
            RateLimitScope::Keyed(selector) => {
                Some(Limiter::Keyed(Arc::new(Keyed::new(config.quota)), selector))
            }
        };
        Plan {
            quota: config.quota,
            shared,
        }
    }

    /// The limiter for the pipeline of `target`: built here, once per pipeline, for the
    /// per-procedure scope.
    fn limiter_for(&self, target: &Target<'_>) -> Limiter {
        match (&self.shared, target.procedure) {
            (Some(shared), _) => shared.clone(),
            (None, Some(_)) => {
                Limiter::Direct(Arc::new(DefaultDirectRateLimiter::direct(self.quota)))
            }
            (None, None) => Limiter::ByProcedure(Arc::new(Keyed::new(self.quota))),
        }
    }
}

/// A service that takes a permit before calling `inner`.
#[derive(Clone)]
struct Limited<S> {
    limiter: Limiter,
    inner: S,
}

impl<T, Resp> Service<Request<T>> for Limited<RpcService<Request<T>, Resp>>
where
    T: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Error = Error;
    type Future = Either<Ready<Result<Resp>>, BoxFuture<Result<Resp>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<T>) -> Self::Future {
        match self.limiter.check(&request.meta) {
            Ok(()) => Either::Right(self.inner.invoke(request)),
            Err(error) => Either::Left(ready(Err(error))),
        }
    }
}

impl ShapeWrap for Plan {
    fn wrap<T, Resp>(
        &self,
        target: &Target<'_>,
        inner: RpcService<Request<T>, Resp>,
    ) -> RpcService<Request<T>, Resp>
    where
        T: Send + 'static,
        Resp: Send + 'static,
    {
        RpcService::new(Limited {
            limiter: self.limiter_for(target),
            inner,
        })
    }
}

impl From<RateLimitMiddleware> for Middleware {
    fn from(config: RateLimitMiddleware) -> Middleware {
        Middleware::every_shape("rate-limit", Plan::new(config))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::Code;
    use crate::meta::Response;
    use crate::middleware::{Direction, UnaryService};
    use crate::procedure::Kind;

    fn echo() -> UnaryService {
        RpcService::new(tower::service_fn(|r: Request<Bytes>| async move {
            Ok::<_, Error>(Response::new(r.body))
        }))
    }

    fn target(procedure: Option<&str>) -> Target<'_> {
        Target {
            direction: if procedure.is_some() {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
            kind: Kind::Unary,
            service: "svc",
            procedure,
            peers: &[],
        }
    }

    fn request(caller: &str, procedure: &str) -> Request<Bytes> {
        Request::new(
            RequestMeta::new(caller, "svc", procedure),
            Bytes::from_static(b"x"),
        )
    }

    fn two_per_minute() -> Quota {
        Quota::per_minute(NonZeroU32::new(2).unwrap())
    }

    async fn outcomes(
        service: &UnaryService,
        caller: &str,
        procedure: &str,
        n: usize,
    ) -> Vec<bool> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(service.invoke(request(caller, procedure)).await.is_ok());
        }
        out
    }

    #[tokio::test]
    async fn per_procedure_inbound_limits_each_procedure_alone() {
        let m: Middleware = RateLimitMiddleware::new(two_per_minute()).into();
        let a = m.wrap_unary(&target(Some("a")), echo());
        let b = m.wrap_unary(&target(Some("b")), echo());
        assert_eq!(outcomes(&a, "c", "a", 3).await, [true, true, false]);
        assert_eq!(outcomes(&b, "c", "b", 2).await, [true, true]);
        let err = a.invoke(request("c", "a")).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(
            err.message()
                .starts_with("rate limit exceeded for procedure 'a' (retry after "),
            "{}",
            err.message()
        );
    }

    #[tokio::test]
    async fn per_procedure_outbound_keys_by_the_request_procedure() {
        let m: Middleware = RateLimitMiddleware::new(two_per_minute()).into();
        let out = m.wrap_unary(&target(None), echo());
        assert_eq!(outcomes(&out, "c", "x", 3).await, [true, true, false]);
        assert_eq!(outcomes(&out, "c", "y", 3).await, [true, true, false]);
    }

    #[tokio::test]
    async fn shared_scope_spans_procedures() {
        let m: Middleware = RateLimitMiddleware::new(two_per_minute()).shared().into();
        let a = m.wrap_unary(&target(Some("a")), echo());
        let b = m.wrap_unary(&target(Some("b")), echo());
        assert_eq!(outcomes(&a, "c", "a", 1).await, [true]);
        assert_eq!(outcomes(&b, "c", "b", 2).await, [true, false]);
    }

    #[tokio::test]
    async fn keyed_scope_isolates_keys_and_none_exempts() {
        let m: Middleware = RateLimitMiddleware::new(two_per_minute())
            .keyed_by(|meta| (meta.caller != "admin").then(|| meta.caller.to_string()))
            .into();
        let a = m.wrap_unary(&target(Some("a")), echo());
        let b = m.wrap_unary(&target(Some("b")), echo());
        assert_eq!(outcomes(&a, "alice", "a", 1).await, [true]);
        assert_eq!(outcomes(&b, "alice", "b", 2).await, [true, false]);
        assert_eq!(outcomes(&a, "bob", "a", 3).await, [true, true, false]);
        assert_eq!(outcomes(&a, "admin", "a", 5).await, [true; 5]);
    }

    #[test]
    fn retry_hint_rounds_up_to_a_millisecond() {
        let e = exceeded("p", Duration::from_nanos(1));
        assert_eq!(
            e.message(),
            "rate limit exceeded for procedure 'p' (retry after 1 ms)"
        );
    }

    #[tokio::test]
    async fn unrepresentable_quotas_are_clamped_and_never_panic() {
        let huge_period = Quota::with_period(Duration::MAX).unwrap();
        let huge_burst = Quota::per_hour(NonZeroU32::new(1).unwrap()).allow_burst(NonZeroU32::MAX);
        let tiny_interval = Quota::per_second(NonZeroU32::MAX).allow_burst(NonZeroU32::MAX);
        for quota in [huge_period, huge_burst, tiny_interval] {
            let config = RateLimitMiddleware::new(quota);
            let clamped = config.quota();
            let span =
                clamped.replenish_interval().as_nanos() * u128::from(clamped.burst_size().get());
            assert!(
                span <= MAX_QUOTA_SPAN.as_nanos(),
                "{quota:?} -> {clamped:?}"
            );
            // Building the limiters (each scope) and checking them does not panic.
            for procedure in [Some("a"), None] {
                for m in [
                    config.clone(),
                    config.clone().shared(),
                    config.clone().per_caller(),
                ] {
                    let m: Middleware = m.into();
                    let service = m.wrap_unary(&target(procedure), echo());
                    assert!(service.invoke(request("c", "a")).await.is_ok());
                }
            }
        }
        // A period of `Duration::MAX`: one permit, back in about 146 years.
        let clamped = RateLimitMiddleware::new(huge_period).quota();
        assert_eq!(clamped.replenish_interval(), MAX_QUOTA_SPAN);
        assert_eq!(clamped.burst_size().get(), 1);
        // One an hour with a burst of `u32::MAX`: the hour stays, the burst shrinks.
        let clamped = RateLimitMiddleware::new(huge_burst).quota();
        assert_eq!(clamped.replenish_interval(), Duration::from_secs(3600));
        let max_burst = MAX_QUOTA_SPAN.as_nanos() / Duration::from_secs(3600).as_nanos();
        assert_eq!(u128::from(clamped.burst_size().get()), max_burst);
        // Ordinary quotas are unchanged.
        assert_eq!(
            RateLimitMiddleware::new(two_per_minute()).quota(),
            two_per_minute()
        );
        let day = Quota::with_period(Duration::from_secs(86_400))
            .unwrap()
            .allow_burst(NonZeroU32::new(10).unwrap());
        assert_eq!(RateLimitMiddleware::new(day).quota(), day);
    }
}
