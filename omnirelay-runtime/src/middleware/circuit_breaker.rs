//! [`CircuitBreakerMiddleware`]: stops calling a peer that keeps failing, for a suspension that
//! grows exponentially, then probes it before letting calls through again.
//!
//! # States
//!
//! Each peer's breaker is **closed** (calls go through), **open** (calls fail fast) or
//! **half-open** (a few probe calls go through):
//!
//! - *Closed*: consecutive failures are counted and a call that is not a failure resets the count.
//!   At [`failure_threshold`](CircuitBreakerMiddleware::failure_threshold) failures in a row the
//!   breaker opens.
//! - *Open*: the peer is suspended for `base_delay × 2^(failures − failure_threshold)`, capped at
//!   `max_delay`. Calls fail at once with `unavailable`, naming the peer and the time left, without
//!   touching the network.
//! - *Half-open*: once the suspension is over, up to
//!   [`half_open_max_attempts`](CircuitBreakerMiddleware::half_open_max_attempts) probe calls are
//!   let through at a time (others fail fast). After
//!   [`half_open_success_threshold`](CircuitBreakerMiddleware::half_open_success_threshold)
//!   successful probes the breaker closes and the failure count resets; a failed probe reopens it
//!   with one more failure counted, so the next suspension is twice as long (up to `max_delay`).
//!
//! The open → half-open move happens when the next call arrives (no timer runs). The outcome of a
//! call admitted before the breaker last changed state (a slow call that was in flight when the
//! breaker opened) is ignored, so a burst of in-flight failures opens the breaker once.
//!
//! # What is a failure
//!
//! An error whose [fault](crate::Fault) is the server's: `unknown`, `internal`, `unavailable`
//! (which is also what a refused or broken connection becomes), `deadline-exceeded` and
//! `data-loss`. Caller-fault errors such as `invalid-argument`, `not-found` or
//! `permission-denied` prove the peer is up and answering, and count as successes.
//! `resource-exhausted` is not a failure either: it is also the code of an over-limit message the
//! caller sent, which says nothing about the peer's health. Override with
//! [`is_failure`](CircuitBreakerMiddleware::is_failure).
//!
//! A call whose future is dropped before it finishes (the caller gave up) counts as a failure if
//! the request's deadline had passed by then (the peer was too slow), and otherwise not at all.
//!
//! # Outbound only
//!
//! A breaker guards a peer this dispatcher calls, so it applies to outbound calls only.
//! Registered as *inbound* middleware it does nothing: the procedure's pipeline is left
//! unchanged (calls are never failed fast) and a warning is logged when the dispatcher is built.
//! (An inbound breaker would be keyed by the procedure's service, so one caller's failing calls,
//! say with TTLs too short to be met, would open it for every caller of the service.)
//!
//! # Shapes
//!
//! All five. For the streaming shapes the outcome of *opening* the stream counts; errors later in
//! the stream do not.
//!
//! # Per peer
//!
//! State is kept per peer address (`host:port`, as the outbound reports it in
//! [`Target::peers`]), shared by every outbound that one middleware value wraps: two outbounds
//! to one peer (for example two services on one server) share its breaker. An outbound that
//! reports several peers gets one breaker for the whole list (the outbound picks the peer of
//! each call itself), and one that reports none is keyed `service:<name>`. Use
//! [`CircuitBreakerMiddleware::state`] to read a peer's breaker; clones of the middleware share
//! the state, so keep one before registering it.
//!
//! # With the retry middleware
//!
//! Register [`RetryMiddleware`](super::retry::RetryMiddleware) first (outer) and the breaker
//! after it (inner): each attempt is then counted by the breaker, and once it opens the remaining
//! attempts fail fast instead of reaching the peer. (A fail-fast error is `unavailable`, so the
//! retry middleware still backs off and retries it while its attempts, budget and deadline allow.)
//!
//! # Events
//!
//! Opening emits a `WARN` tracing event ("circuit breaker opened", with the peer, the failure
//! count and the suspension); closing an `INFO` event ("circuit breaker closed").
//!
//! # Defaults
//!
//! As OmniRelay .NET's peer circuit breaker, except the failure threshold: base delay 100 ms,
//! max delay 5 s, **failure threshold 5** (.NET: 1), 1 probe at a time, 1 successful probe to
//! close. With a threshold of 1 a single failed call (one connection reset, one handler bug hit
//! by one request) suspends the peer, and since an outbound here has one peer that fails every
//! caller of the service for the suspension; five failures in a row is a much clearer sign that
//! the peer is down.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use omnirelay::Dispatcher;
//! use omnirelay::middleware::circuit_breaker::CircuitBreakerMiddleware;
//!
//! let breaker = CircuitBreakerMiddleware::new()
//!     .failure_threshold(3)
//!     .base_delay(Duration::from_millis(200));
//! let dispatcher = Dispatcher::builder("caller")
//!     .outbound_middleware(breaker.clone())
//!     .build()
//!     .unwrap();
//! assert!(breaker.state("127.0.0.1:50051").is_none()); // no outbound to it
//! # let _ = dispatcher;
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::service::RpcService;
use super::stack::{Direction, Middleware, ShapeWrap, Target};
use crate::error::{Error, Fault, Result};
use crate::meta::Request;

/// The default suspension at the failure threshold.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(100);
/// The default longest suspension.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(5);
/// The default number of consecutive failures that opens the breaker.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// The default number of probe calls let through at a time while half-open.
pub const DEFAULT_HALF_OPEN_MAX_ATTEMPTS: u32 = 1;
/// The default number of successful probes that closes the breaker.
pub const DEFAULT_HALF_OPEN_SUCCESS_THRESHOLD: u32 = 1;

type IsFailure = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// Where a peer's breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the suspension ends.
    Open,
    /// The suspension is over: probe calls go through.
    HalfOpen,
}

/// A snapshot of one peer's breaker, from [`CircuitBreakerMiddleware::state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerState {
    /// Closed, open or half-open.
    pub phase: Phase,
    /// The consecutive failures counted (reset when the breaker closes or, while closed, by a
    /// call that is not a failure).
    pub failures: u32,
    /// The length of the current suspension (open or half-open after it); `None` while closed.
    pub suspension: Option<Duration>,
    /// The time left in the suspension while open; `None` otherwise.
    pub remaining: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    base_delay: Duration,
    max_delay: Duration,
    failure_threshold: u32,
    half_open_max_attempts: u32,
    half_open_success_threshold: u32,
}

impl Config {
    /// The suspension after `failures` consecutive failures (at least the threshold).
    fn suspension(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(self.failure_threshold);
        let factor = 1u32.checked_shl(exponent).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// Opens a peer's circuit after consecutive server-fault failures, failing calls fast while it is
/// suspended and probing it before closing again (see the [module documentation](self)).
///
/// | option | default |
/// |---|---|
/// | [`base_delay`](Self::base_delay) | 100 ms |
/// | [`max_delay`](Self::max_delay) | 5 s |
/// | [`failure_threshold`](Self::failure_threshold) | 5 |
/// | [`half_open_max_attempts`](Self::half_open_max_attempts) | 1 |
/// | [`half_open_success_threshold`](Self::half_open_success_threshold) | 1 |
/// | [`is_failure`](Self::is_failure) | the error's fault is the server's |
///
/// Converts into a [`Middleware`] named `circuit-breaker` that covers every shape. Applies to
/// outbounds only: registered inbound it leaves the procedure's pipeline unchanged and logs a
/// warning when the dispatcher is built (see [Outbound only](self#outbound-only)).
#[derive(Clone)]
pub struct CircuitBreakerMiddleware {
    config: Config,
    is_failure: Option<IsFailure>,
    peers: Arc<Mutex<HashMap<String, Arc<Breaker>>>>,
}

impl Default for CircuitBreakerMiddleware {
    fn default() -> Self {
        CircuitBreakerMiddleware {
            config: Config {
                base_delay: DEFAULT_BASE_DELAY,
                max_delay: DEFAULT_MAX_DELAY,
                failure_threshold: DEFAULT_FAILURE_THRESHOLD,
                half_open_max_attempts: DEFAULT_HALF_OPEN_MAX_ATTEMPTS,
                half_open_success_threshold: DEFAULT_HALF_OPEN_SUCCESS_THRESHOLD,
            },
            is_failure: None,
            peers: Arc::default(),
        }
    }
}

impl fmt::Debug for CircuitBreakerMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerMiddleware")
            .field("config", &self.config)
            .field("custom_is_failure", &self.is_failure.is_some())
            .field("peers", &self.peers().len())
            .finish()
    }
}

impl CircuitBreakerMiddleware {
    /// A circuit breaker with the defaults in the table above.
    pub fn new() -> Self {
        CircuitBreakerMiddleware::default()
    }

    /// The suspension when the failure threshold is reached (default 100 ms); it doubles with
    /// each further failure, up to [`max_delay`](Self::max_delay).
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.config.base_delay = delay;
        self
    }

    /// The longest suspension (default 5 s).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.config.max_delay = delay;
        self
    }

    /// The consecutive failures that open the breaker (default 5; `0` is taken as `1`).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.config.failure_threshold = failures.max(1);
        self
    }

    /// The probe calls let through at a time while half-open (default 1; `0` is taken as `1`).
    pub fn half_open_max_attempts(mut self, attempts: u32) -> Self {
        self.config.half_open_max_attempts = attempts.max(1);
        self
    }

    /// The successful probes that close the breaker (default 1; `0` is taken as `1`).
    pub fn half_open_success_threshold(mut self, successes: u32) -> Self {
        self.config.half_open_success_threshold = successes.max(1);
        self
    }

    /// Decides which errors count as failures instead of the server-fault rule.
    pub fn is_failure(
        mut self,
        predicate: impl Fn(&Error) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.is_failure = Some(Arc::new(predicate));
        self
    }

    /// The state of `peer`'s breaker (`host:port`, as the outbound reports it), or `None` when no
    /// outbound wrapped by this middleware calls that peer.
    pub fn state(&self, peer: &str) -> Option<BreakerState> {
        let breaker = self.lock().get(peer).cloned()?;
        Some(breaker.snapshot(Instant::now()))
    }

    /// The peers this middleware keeps a breaker for.
    pub fn peers(&self) -> Vec<String> {
        let mut peers: Vec<String> = self.lock().keys().cloned().collect();
        peers.sort();
        peers
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Breaker>>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The breaker for the target's peer, made on first use.
    fn breaker(&self, target: &Target<'_>) -> Arc<Breaker> {
        let key = match target.peers {
            [] => format!("service:{}", target.service),
            [peer] => peer.clone(),
            peers => peers.join(","),
        };
        self.lock()
            .entry(key)
            .or_insert_with_key(|key| Arc::new(Breaker::new(key, self.config)))
            .clone()
    }
}

impl ShapeWrap for CircuitBreakerMiddleware {
    fn wrap<T, Resp>(
        &self,
        target: &Target<'_>,
        inner: RpcService<Request<T>, Resp>,
    ) -> RpcService<Request<T>, Resp>
    where
        T: Send + 'static,
        Resp: Send + 'static,
    {
        if target.direction == Direction::Inbound {
            tracing::warn!(
                service = target.service,
                procedure = target.procedure.unwrap_or_default(),
                rpc_type = target.kind.as_str(),
                "the circuit breaker middleware applies to outbound calls only; ignored on this procedure"
            );
            return inner;
        }
        let guarded = Arc::new(Guarded {
            breaker: self.breaker(target),
            is_failure: self.is_failure.clone(),
            inner,
        });
        RpcService::new(tower::service_fn(move |request| {
            let guarded = guarded.clone();
            async move { guarded.call(request).await }
        }))
    }
}

impl From<CircuitBreakerMiddleware> for Middleware {
    fn from(breaker: CircuitBreakerMiddleware) -> Middleware {
        Middleware::every_shape("circuit-breaker", breaker)
    }
}

/// One outbound shape behind a peer's breaker.
struct Guarded<Req, Resp> {
    breaker: Arc<Breaker>,
    is_failure: Option<IsFailure>,
    inner: RpcService<Req, Resp>,
}

impl<T, Resp> Guarded<Request<T>, Resp>
where
    T: Send + 'static,
    Resp: Send + 'static,
{
    async fn call(&self, request: Request<T>) -> Result<Resp> {
        let permit = self.breaker.acquire(Instant::now())?;
        let mut pending = Pending {
            breaker: &self.breaker,
            permit: Some(permit),
            deadline: request.meta.deadline,
        };
        let result = self.inner.invoke(request).await;
        let outcome = match &result {
            Err(error) if self.failed(error) => Outcome::Failure,
            _ => Outcome::Success,
        };
        pending.finish(outcome);
        result
    }

    fn failed(&self, error: &Error) -> bool {
        match &self.is_failure {
            Some(predicate) => predicate(error),
            None => error.fault() == Fault::Server,
        }
    }
}

/// A call admitted by a breaker, recorded when it finishes or is dropped.
struct Pending<'a> {
    breaker: &'a Breaker,
    permit: Option<Permit>,
    deadline: Option<Instant>,
}

impl Pending<'_> {
    fn finish(&mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            self.breaker.record(permit, outcome, Instant::now());
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let outcome = match self.deadline {
            Some(deadline) if deadline <= now => Outcome::Failure,
            _ => Outcome::Abandoned,
        };
        self.finish(outcome);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    /// Dropped before it finished, with time left: says nothing about the peer.
    Abandoned,
}

/// What a breaker hands an admitted call.
#[derive(Debug)]
struct Permit {
    generation: u64,
}

/// One peer's breaker.
struct Breaker {
    peer: Arc<str>,
    config: Config,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    phase: PhaseState,
    failures: u32,
    /// Bumped on every phase change: outcomes of calls admitted earlier are ignored.
    generation: u64,
    suspension: Duration,
}

#[derive(Debug)]
enum PhaseState {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

impl Breaker {
    fn new(peer: &str, config: Config) -> Self {
        Breaker {
            peer: peer.into(),
            config,
            state: Mutex::new(State {
                phase: PhaseState::Closed,
                failures: 0,
                generation: 0,
                suspension: Duration::ZERO,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a call at `now`, or fails it fast with `unavailable`.
    fn acquire(&self, now: Instant) -> Result<Permit> {
        let mut state = self.lock();
        if let PhaseState::Open { until } = state.phase {
            if now < until {
                let left = until - now;
                return Err(Error::unavailable(format!(
                    "circuit breaker open for peer {}: calls are suspended for another {} ms \
                     (after {} consecutive failures)",
                    self.peer,
                    left.as_millis().max(1),
                    state.failures
                )));
            }
            state.phase = PhaseState::HalfOpen {
                in_flight: 0,
                successes: 0,
            };
            state.generation += 1;
        }
        let generation = state.generation;
        if let PhaseState::HalfOpen { in_flight, .. } = &mut state.phase {
            if *in_flight >= self.config.half_open_max_attempts {
                return Err(Error::unavailable(format!(
                    "circuit breaker half-open for peer {}: its probe calls are in flight, \
                     try again shortly",
                    self.peer
                )));
            }
            *in_flight += 1;
        }
        Ok(Permit { generation })
    }

    /// Records the outcome of a call admitted with `permit`.
    fn record(&self, permit: Permit, outcome: Outcome, now: Instant) {
        let mut guard = self.lock();
        let state = &mut *guard;
        if permit.generation != state.generation {
            return;
        }
        match &mut state.phase {
            PhaseState::Closed => match outcome {
                Outcome::Success => state.failures = 0,
                Outcome::Failure => {
                    state.failures = state.failures.saturating_add(1);
                    if state.failures >= self.config.failure_threshold {
                        self.open(state, now);
                    }
                }
                Outcome::Abandoned => {}
            },
            PhaseState::HalfOpen {
                in_flight,
                successes,
            } => {
                *in_flight = in_flight.saturating_sub(1);
                match outcome {
                    Outcome::Success => {
                        *successes += 1;
                        if *successes >= self.config.half_open_success_threshold {
                            state.phase = PhaseState::Closed;
                            state.failures = 0;
                            state.generation += 1;
                            tracing::info!(peer = &*self.peer, "circuit breaker closed");
                        }
                    }
                    Outcome::Failure => {
                        state.failures = state.failures.saturating_add(1);
                        self.open(state, now);
                    }
                    Outcome::Abandoned => {}
                }
            }
            // Opening bumps the generation: no permit of the current one exists while open.
            PhaseState::Open { .. } => {}
        }
    }

    fn open(&self, state: &mut State, now: Instant) {
        let suspension = self.config.suspension(state.failures);
        // An instant too far away to represent: suspend for as long as can be.
        let until = now
            .checked_add(suspension)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        state.phase = PhaseState::Open { until };
        state.suspension = suspension;
        state.generation += 1;
        tracing::warn!(
            peer = &*self.peer,
            failures = state.failures,
            suspension_ms = suspension.as_millis() as u64,
            "circuit breaker opened"
        );
    }

    fn snapshot(&self, now: Instant) -> BreakerState {
        let state = self.lock();
        let (phase, remaining) = match state.phase {
            PhaseState::Closed => (Phase::Closed, None),
            PhaseState::Open { until } if now < until => (Phase::Open, Some(until - now)),
            PhaseState::Open { .. } | PhaseState::HalfOpen { .. } => (Phase::HalfOpen, None),
        };
        BreakerState {
            phase,
            failures: state.failures,
            suspension: (phase != Phase::Closed).then_some(state.suspension),
            remaining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    const MS: Duration = Duration::from_millis(1);

    fn config(threshold: u32) -> Config {
        Config {
            base_delay: 100 * MS,
            max_delay: 1000 * MS,
            failure_threshold: threshold,
            half_open_max_attempts: 1,
            half_open_success_threshold: 1,
        }
    }

    fn fail(b: &Breaker, now: Instant) {
        let permit = b.acquire(now).expect("admitted");
        b.record(permit, Outcome::Failure, now);
    }

    #[test]
    fn suspension_doubles_and_is_capped() {
        let c = config(2);
        assert_eq!(c.suspension(2), 100 * MS);
        assert_eq!(c.suspension(3), 200 * MS);
        assert_eq!(c.suspension(5), 800 * MS);
        assert_eq!(c.suspension(6), 1000 * MS);
        assert_eq!(c.suspension(u32::MAX), 1000 * MS);
        let huge = Config {
            base_delay: Duration::MAX,
            max_delay: Duration::MAX,
            ..c
        };
        assert_eq!(huge.suspension(40), Duration::MAX);
    }

    #[test]
    fn opens_at_the_threshold_and_fails_fast() {
        let b = Breaker::new("peer:1", config(3));
        let t0 = Instant::now();
        fail(&b, t0);
        fail(&b, t0);
        // A success resets the count while closed.
        let p = b.acquire(t0).unwrap();
        b.record(p, Outcome::Success, t0);
        assert_eq!(b.snapshot(t0).failures, 0);
        for _ in 0..3 {
            fail(&b, t0);
        }
        let s = b.snapshot(t0 + 10 * MS);
        assert_eq!(s.phase, Phase::Open);
        assert_eq!(
            (s.failures, s.suspension, s.remaining),
            (3, Some(100 * MS), Some(90 * MS))
        );
        let err = b.acquire(t0 + 10 * MS).unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert!(err.message().contains("peer:1"), "{err}");
        assert!(err.message().contains("90 ms"), "{err}");
    }

    #[test]
    fn half_open_admits_one_probe_then_closes_on_success() {
        let b = Breaker::new("p", config(1));
        let t0 = Instant::now();
        fail(&b, t0);
        let t1 = t0 + 100 * MS;
        assert_eq!(b.snapshot(t1).phase, Phase::HalfOpen);
        let probe = b.acquire(t1).unwrap();
        let busy = b.acquire(t1).unwrap_err();
        assert!(busy.message().contains("half-open"), "{busy}");
        b.record(probe, Outcome::Success, t1);
        let s = b.snapshot(t1);
        assert_eq!(
            (s.phase, s.failures, s.suspension),
            (Phase::Closed, 0, None)
        );
        assert!(b.acquire(t1).is_ok());
    }

    #[test]
    fn failed_probe_reopens_for_longer() {
        let b = Breaker::new("p", config(1));
        let t0 = Instant::now();
        fail(&b, t0);
        let t1 = t0 + 100 * MS;
        fail(&b, t1);
        let s = b.snapshot(t1);
        assert_eq!(
            (s.phase, s.failures, s.suspension),
            (Phase::Open, 2, Some(200 * MS))
        );
        assert!(b.acquire(t1 + 199 * MS).is_err());
        let t2 = t1 + 200 * MS;
        fail(&b, t2);
        assert_eq!(b.snapshot(t2).suspension, Some(400 * MS));
    }

    #[test]
    fn abandoned_probe_frees_its_slot_and_stale_outcomes_are_ignored() {
        let b = Breaker::new("p", config(1));
        let t0 = Instant::now();
        let slow = b.acquire(t0).unwrap();
        fail(&b, t0);
        // The slow call admitted while closed fails later: ignored, no longer suspension.
        b.record(slow, Outcome::Failure, t0 + 50 * MS);
        assert_eq!(b.snapshot(t0).suspension, Some(100 * MS));
        let t1 = t0 + 100 * MS;
        let probe = b.acquire(t1).unwrap();
        b.record(probe, Outcome::Abandoned, t1);
        assert_eq!(b.snapshot(t1).phase, Phase::HalfOpen);
        let probe = b
            .acquire(t1)
            .expect("the abandoned probe's slot is free again");
        b.record(probe, Outcome::Success, t1);
        assert_eq!(b.snapshot(t1).phase, Phase::Closed);
    }

    #[test]
    fn success_threshold_needs_several_probes() {
        let c = Config {
            half_open_max_attempts: 2,
            half_open_success_threshold: 2,
            ..config(1)
        };
        let b = Breaker::new("p", c);
        let t0 = Instant::now();
        fail(&b, t0);
        let t1 = t0 + 100 * MS;
        let p1 = b.acquire(t1).unwrap();
        let p2 = b.acquire(t1).unwrap();
        assert!(b.acquire(t1).is_err());
        b.record(p1, Outcome::Success, t1);
        assert_eq!(b.snapshot(t1).phase, Phase::HalfOpen);
        b.record(p2, Outcome::Success, t1);
        assert_eq!(b.snapshot(t1).phase, Phase::Closed);
    }

    #[test]
    fn breakers_are_shared_per_peer() {
        let cb = CircuitBreakerMiddleware::new();
        let peers = ["127.0.0.1:1".to_string()];
        let target = |service| Target {
            direction: Direction::Outbound,
            kind: crate::Kind::Unary,
            service,
            procedure: None,
            peers: &peers,
        };
        let a = cb.breaker(&target("a"));
        let b = cb.breaker(&target("b"));
        assert!(Arc::ptr_eq(&a, &b));
        let none = Target {
            peers: &[],
            ..target("c")
        };
        cb.breaker(&none);
        assert_eq!(cb.peers(), ["127.0.0.1:1", "service:c"]);
        assert_eq!(cb.state("127.0.0.1:1").unwrap().phase, Phase::Closed);
        let m: Middleware = cb.into();
        assert_eq!(m.name(), "circuit-breaker");
        assert!(m.covers(crate::Kind::Duplex));
    }

    #[tokio::test]
    async fn inbound_registration_leaves_the_pipeline_alone() {
        let cb = CircuitBreakerMiddleware::new().failure_threshold(1);
        let m: Middleware = cb.clone().into();
        let failing = crate::middleware::UnaryService::new(tower::service_fn(
            |_: Request<bytes::Bytes>| async {
                Err::<crate::Response<bytes::Bytes>, _>(Error::internal("boom"))
            },
        ));
        let target = Target {
            direction: Direction::Inbound,
            kind: crate::Kind::Unary,
            service: "svc",
            procedure: Some("p::P"),
            peers: &[],
        };
        let wrapped = m.wrap_unary(&target, failing);
        for _ in 0..5 {
            let request = Request::new(
                crate::RequestMeta::new("c", "svc", "p::P"),
                bytes::Bytes::new(),
            );
            let err = wrapped.invoke(request).await.unwrap_err();
            assert_eq!(err.message(), "boom");
        }
        assert!(cb.peers().is_empty());
    }
}
