//! Fault injection: the [`Chaos`] controller holds per-procedure rules (injected latency,
//! injected errors, each with a probability), and [`ChaosMiddleware`] applies them to calls.
//!
//! Chaos is **off by default**: a new controller is disabled and has no rules, and while it is
//! disabled a call costs one atomic load (no lock, no allocation) before it goes on unchanged.
//!
//! # Rules
//!
//! A [`ChaosRule`] may inject latency ([`LatencyFault`]: a delay and a probability) and an
//! error ([`ErrorFault`]: a [`Code`], a message and a probability). The rule for a call is the
//! one set for its procedure, else the default rule, else none. Inbound, rules match the
//! procedure's registered name (the one introspection lists, even for a call that reached it
//! through an alias or wildcard); outbound, the procedure the call names. Each fault is drawn
//! on its own (with [`fastrand`]): a probability of `0.0` never fires and `1.0` always does.
//!
//! The latency is waited out before the call goes on. When the call has a deadline and the
//! delay would pass it, the call waits only until the deadline and fails there with
//! `deadline-exceeded`, rather than sleeping past it. An injected error is returned after the
//! latency (if any) instead of calling the rest of the pipeline. For streaming shapes the
//! faults apply to opening the stream.
//!
//! # Switching it at run time
//!
//! From code, through the controller ([`Chaos::enable`], [`Chaos::set_rule`],
//! [`Chaos::disable`], ...); a clone of a [`Chaos`] is a handle to the same state. Over HTTP,
//! through the control endpoint [`CONTROL_PATH`] (`/omnirelay/control/chaos`) on the
//! dispatcher's HTTP inbounds, **only when a control token is configured**
//! ([`Chaos::with_control_token`]); without one the endpoint is not registered at all (a request
//! to the path is an ordinary YARPC-HTTP request). Every request must carry
//! `Authorization: Bearer <token>`; a missing or wrong token is answered `401` and changes
//! nothing, before any request body is read. Tokens are compared in constant time.
//!
//! | method | effect | answer |
//! |---|---|---|
//! | `GET` | none | `200`, the state as JSON |
//! | `PUT` or `POST` | replaces the whole state with the body's | `200`, the new state; `400` with the reason for a bad body |
//! | `DELETE` | disables chaos and removes every rule | `200`, the new state |
//!
//! The JSON state (also [`ChaosSnapshot::to_json`] / [`ChaosSnapshot::from_json`]):
//!
//! ```json
//! {
//!   "enabled": true,
//!   "default": null,
//!   "rules": {
//!     "echo::Echo": {
//!       "latency": { "ms": 300, "probability": 0.5 },
//!       "error": { "code": "unavailable", "message": "injected", "probability": 0.1 }
//!     }
//!   }
//! }
//! ```
//!
//! `enabled` is required; `default` and `rules` default to none; in a rule `latency` and
//! `error` are optional; `probability` defaults to `1.0` and must be within `0.0..=1.0`;
//! `code` takes any spelling [`Code::parse`] accepts except `ok`; `message` defaults to
//! `chaos: injected <code>`. Unknown fields are rejected, so a typo cannot silently disable a
//! rule.
//!
//! ```
//! use std::time::Duration;
//! use omnirelay::{Code, Dispatcher};
//! use omnirelay::middleware::chaos::{Chaos, ChaosMiddleware, ChaosRule, Probability};
//!
//! let chaos = Chaos::new().with_control_token("s3cret");
//! let dispatcher = Dispatcher::builder("echo")
//!     .middleware(ChaosMiddleware::new(chaos.clone()))
//!     .build()
//!     .unwrap();
//! chaos
//!     .set_rule(
//!         "echo::Echo",
//!         ChaosRule::new()
//!             .with_latency(Duration::from_millis(100), Probability::new(0.25).unwrap())
//!             .with_error(Code::Unavailable, "injected", Probability::ALWAYS),
//!     )
//!     .unwrap();
//! chaos.enable();
//! # let _ = dispatcher;
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::Either;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tower::Service;

use super::endpoint::{AdminEndpoint, AdminRequest, AdminResponse};
use super::service::RpcService;
use super::stack::{Middleware, ShapeWrap, Target};
use crate::error::{Code, Error, Result};
use crate::meta::Request;
use crate::procedure::BoxFuture;

/// The path of the control endpoint.
pub const CONTROL_PATH: &str = "/omnirelay/control/chaos";

// ---------------------------------------------------------------------------------------------
// Rules

/// A probability in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Probability(f64);

impl Probability {
    /// Never fires.
    pub const NEVER: Probability = Probability(0.0);
    /// Always fires.
    pub const ALWAYS: Probability = Probability(1.0);

    /// `p`, when it is a number within `0.0..=1.0`; otherwise `invalid-argument`.
    pub fn new(p: f64) -> Result<Probability> {
        if (0.0..=1.0).contains(&p) {
            Ok(Probability(p))
        } else {
            Err(Error::invalid_argument(format!(
                "probability {p} is outside 0.0..=1.0"
            )))
        }
    }

    /// The probability as a number.
    pub fn value(self) -> f64 {
        self.0
    }

    /// Whether a uniform `sample` in `[0, 1)` fires: `0.0` never does, `1.0` always does.
    fn fires_at(self, sample: f64) -> bool {
        sample < self.0
    }

    /// Draws once.
    fn fires(self) -> bool {
        if self.0 <= 0.0 {
            false
        } else if self.0 >= 1.0 {
            true
        } else {
            self.fires_at(fastrand::f64())
        }
    }
}

/// Injected latency: wait `delay` before the call goes on, with `probability`.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyFault {
    /// How long to wait.
    pub delay: Duration,
    /// How often.
    pub probability: Probability,
}

/// An injected error: fail the call with `code` and `message` instead of calling on, with
/// `probability`.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorFault {
    /// The error's code (anything but `ok`).
    pub code: Code,
    /// The error's message.
    pub message: String,
    /// How often.
    pub probability: Probability,
}

/// What chaos does to the calls of one procedure (or to every call, as the default rule).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChaosRule {
    /// Latency to inject, if any.
    pub latency: Option<LatencyFault>,
    /// An error to inject, if any; it is returned after the latency.
    pub error: Option<ErrorFault>,
}

impl ChaosRule {
    /// A rule that injects nothing.
    pub fn new() -> Self {
        ChaosRule::default()
    }

    /// Also injects `delay` with `probability`.
    pub fn with_latency(mut self, delay: Duration, probability: Probability) -> Self {
        self.latency = Some(LatencyFault { delay, probability });
        self
    }

    /// Also injects an error with `code` and `message` with `probability`.
    pub fn with_error(
        mut self,
        code: Code,
        message: impl Into<String>,
        probability: Probability,
    ) -> Self {
        self.error = Some(ErrorFault {
            code,
            message: message.into(),
            probability,
        });
        self
    }

    /// `invalid-argument` when the rule injects an error with code `ok`.
    pub fn validate(&self) -> Result<()> {
        match &self.error {
            Some(e) if e.code == Code::Ok => Err(Error::invalid_argument(
                "a chaos error rule cannot inject code ok",
            )),
            _ => Ok(()),
        }
    }

    /// Draws the faults for one call.
    fn draw(&self) -> Option<Injection> {
        let delay = self
            .latency
            .as_ref()
            .filter(|l| l.probability.fires())
            .map(|l| l.delay);
        let error = self
            .error
            .as_ref()
            .filter(|e| e.probability.fires())
            .map(|e| Error::new(e.code, e.message.clone()));
        (delay.is_some() || error.is_some()).then_some(Injection { delay, error })
    }
}

/// The whole chaos state at one moment: what [`Chaos::snapshot`] returns, what
/// [`Chaos::replace`] takes, and (as JSON) what the control endpoint serves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChaosSnapshot {
    /// Whether rules are applied.
    pub enabled: bool,
    /// The rule for procedures without one of their own.
    pub default: Option<ChaosRule>,
    /// Rules by procedure name.
    pub rules: BTreeMap<String, ChaosRule>,
}

impl ChaosSnapshot {
    /// The state as the control endpoint's JSON (see the [module docs](self)).
    pub fn to_json(&self) -> String {
        let state = StateJson {
            enabled: self.enabled,
            default: self.default.as_ref().map(RuleJson::from),
            rules: self
                .rules
                .iter()
                .map(|(k, r)| (k.clone(), RuleJson::from(r)))
                .collect(),
        };
        serde_json::to_string(&state).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parses the control endpoint's JSON (see the [module docs](self)); a malformed or
    /// invalid state is `invalid-argument` saying what is wrong.
    pub fn from_json(json: &[u8]) -> Result<ChaosSnapshot> {
        let state: StateJson = serde_json::from_slice(json)
            .map_err(|e| Error::invalid_argument(format!("invalid chaos state: {e}")))?;
        let rule = |name: &str, rule: RuleJson| {
            rule.into_rule()
                .map_err(|e| Error::invalid_argument(format!("invalid chaos rule {name}: {e}")))
        };
        let default = state.default.map(|r| rule("default", r)).transpose()?;
        let rules = state
            .rules
            .into_iter()
            .map(|(name, r)| {
                let parsed = rule(&format!("for {name:?}"), r)?;
                Ok((name, parsed))
            })
            .collect::<Result<_>>()?;
        Ok(ChaosSnapshot {
            enabled: state.enabled,
            default,
            rules,
        })
    }
}

// The JSON forms.

fn always() -> f64 {
    1.0
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateJson {
    enabled: bool,
    #[serde(default)]
    default: Option<RuleJson>,
    #[serde(default)]
    rules: BTreeMap<String, RuleJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latency: Option<LatencyJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyJson {
    ms: u64,
    #[serde(default = "always")]
    probability: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorJson {
    code: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default = "always")]
    probability: f64,
}

impl ShapeWrap for ChaosMiddleware {
    fn wrap<T, Resp>(
        &self,
        target: &Target<'_>,
        inner: RpcService<Request<T>, Resp>,
    ) -> RpcService<Request<T>, Resp>
    where
        T: Send + 'static,
        Resp: Send + 'static,
    {
        RpcService::new(Chaotic {
            shared: self.chaos.shared.clone(),
            procedure: target.procedure.map(Arc::from),
            inner,
        })
    }
}

impl From<&ChaosRule> for RuleJson {
    fn from(rule: &ChaosRule) -> Self {
        RuleJson {
            latency: rule.latency.as_ref().map(|l| LatencyJson {
                ms: u64::try_from(l.delay.as_millis()).unwrap_or(u64::MAX),
                probability: l.probability.value(),
            }),
            error: rule.error.as_ref().map(|e| ErrorJson {
                code: e.code.as_str().to_owned(),
                message: Some(e.message.clone()),
                probability: e.probability.value(),
            }),
        }
    }
}

impl RuleJson {
    fn into_rule(self) -> std::result::Result<ChaosRule, String> {
        let mut rule = ChaosRule::new();
        if let Some(l) = self.latency {
            let p =
                Probability::new(l.probability).map_err(|e| format!("latency {}", e.message()))?;
            rule = rule.with_latency(Duration::from_millis(l.ms), p);
        }
        if let Some(e) = self.error {
            let p =
                Probability::new(e.probability).map_err(|e| format!("error {}", e.message()))?;
            let code = match Code::parse(&e.code) {
                Some(Code::Ok) => return Err("the error code cannot be ok".to_owned()),
                Some(code) => code,
                None => return Err(format!("unknown error code {:?}", e.code)),
            };
            let message = e
                .message
                .unwrap_or_else(|| format!("chaos: injected {}", code.as_str()));
            rule = rule.with_error(code, message, p);
        }
        Ok(rule)
    }
}

// ---------------------------------------------------------------------------------------------
// The controller

/// What one call gets.
struct Injection {
    delay: Option<Duration>,
    error: Option<Error>,
}

#[derive(Default)]
struct Rules {
    default: Option<ChaosRule>,
    procedures: HashMap<String, ChaosRule>,
}

#[derive(Default)]
struct Shared {
    enabled: AtomicBool,
    rules: RwLock<Rules>,
    token: RwLock<Option<Arc<[u8]>>>,
}

impl Shared {
    fn rules(&self) -> RwLockReadGuard<'_, Rules> {
        self.rules.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn rules_mut(&self) -> RwLockWriteGuard<'_, Rules> {
        self.rules.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn token(&self) -> Option<Arc<[u8]>> {
        self.token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The faults for one call of `procedure`; `None` (after one atomic load) when disabled.
    fn decide(&self, procedure: &str) -> Option<Injection> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let rules = self.rules();
        rules
            .procedures
            .get(procedure)
            .or(rules.default.as_ref())?
            .draw()
    }
}

/// The chaos controller: a cloneable handle (an `Arc` inside) to the enabled switch and the
/// rules that every [`ChaosMiddleware`] built from it reads on each call. New controllers
/// are disabled, with no rules and no control token.
#[derive(Clone, Default)]
pub struct Chaos {
    shared: Arc<Shared>,
}

impl fmt::Debug for Chaos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("enabled", &self.is_enabled())
            .field("control_token", &self.shared.token().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl Chaos {
    /// A disabled controller with no rules and no control token.
    pub fn new() -> Self {
        Chaos::default()
    }

    /// Sets the bearer token the control endpoint requires. Set it before the middleware is
    /// built: a [`ChaosMiddleware`] converted while no token is set registers no endpoint. An
    /// empty token counts as none.
    pub fn with_control_token(self, token: impl Into<String>) -> Self {
        let token = token.into();
        let token = (!token.is_empty()).then(|| Arc::<[u8]>::from(token.into_bytes()));
        *self
            .shared
            .token
            .write()
            .unwrap_or_else(PoisonError::into_inner) = token;
        self
    }

    /// Whether a control token is configured (and so whether the endpoint is registered).
    pub fn has_control_token(&self) -> bool {
        self.shared.token().is_some()
    }

    /// Starts applying the rules.
    pub fn enable(&self) {
        self.shared.enabled.store(true, Ordering::Release);
    }

    /// Stops applying the rules (they are kept).
    pub fn disable(&self) {
        self.shared.enabled.store(false, Ordering::Release);
    }

    /// Whether the rules are applied.
    pub fn is_enabled(&self) -> bool {
        self.shared.enabled.load(Ordering::Acquire)
    }

    /// Sets the rule for `procedure`, replacing an earlier one; `invalid-argument` for a rule
    /// injecting code `ok`.
    pub fn set_rule(&self, procedure: impl Into<String>, rule: ChaosRule) -> Result<()> {
        rule.validate()?;
        self.shared
            .rules_mut()
            .procedures
            .insert(procedure.into(), rule);
        Ok(())
    }

    /// Removes the rule for `procedure`, returning it.
    pub fn remove_rule(&self, procedure: &str) -> Option<ChaosRule> {
        self.shared.rules_mut().procedures.remove(procedure)
    }

    /// Sets (or with `None` removes) the rule for procedures without their own;
    /// `invalid-argument` for a rule injecting code `ok`.
    pub fn set_default_rule(&self, rule: Option<ChaosRule>) -> Result<()> {
        if let Some(rule) = &rule {
            rule.validate()?;
        }
        self.shared.rules_mut().default = rule;
        Ok(())
    }

    /// Removes every rule, the default one included; the enabled switch is left as it is.
    pub fn clear(&self) {
        let mut rules = self.shared.rules_mut();
        rules.default = None;
        rules.procedures.clear();
    }

    /// The current state.
    pub fn snapshot(&self) -> ChaosSnapshot {
        let rules = self.shared.rules();
        ChaosSnapshot {
            enabled: self.is_enabled(),
            default: rules.default.clone(),
            rules: rules
                .procedures
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Replaces the whole state (switch and rules) at once; `invalid-argument`, changing
    /// nothing, when a rule injects code `ok`.
    pub fn replace(&self, snapshot: ChaosSnapshot) -> Result<()> {
        if let Some(rule) = &snapshot.default {
            rule.validate()?;
        }
        for rule in snapshot.rules.values() {
            rule.validate()?;
        }
        let mut rules = self.shared.rules_mut();
        rules.default = snapshot.default;
        rules.procedures = snapshot.rules.into_iter().collect();
        // Under the write lock, so that readers see the switch and the rules change together.
        self.shared
            .enabled
            .store(snapshot.enabled, Ordering::Release);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The control endpoint

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &http::HeaderMap) -> Option<&[u8]> {
    let value = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let split = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    Some(rest.trim_ascii())
}

struct ControlEndpoint {
    chaos: Chaos,
}

impl ControlEndpoint {
    fn state(&self) -> AdminResponse {
        AdminResponse::new(
            StatusCode::OK,
            "application/json",
            self.chaos.snapshot().to_json(),
        )
    }
}

impl AdminEndpoint for ControlEndpoint {
    /// Refuses a missing or wrong token with `401` before the request's body is read.
    fn authorize(&self, headers: &http::HeaderMap) -> Option<AdminResponse> {
        let authorized = match (self.chaos.shared.token(), bearer(headers)) {
            (Some(token), Some(given)) => constant_time_eq(&token, given),
            _ => false,
        };
        (!authorized).then(|| {
            AdminResponse::text(
                StatusCode::UNAUTHORIZED,
                "the chaos control endpoint needs `Authorization: Bearer <token>` with the configured token\n",
            )
        })
    }

    fn handle(&self, request: AdminRequest) -> AdminResponse {
        // Checked again, so that `handle` alone is never a way around the token.
        if let Some(refused) = self.authorize(&request.headers) {
            return refused;
        }
        match request.method {
            Method::GET | Method::HEAD => self.state(),
            Method::PUT | Method::POST => {
                let replaced = ChaosSnapshot::from_json(&request.body)
                    .and_then(|snapshot| self.chaos.replace(snapshot));
                match replaced {
                    Ok(()) => self.state(),
                    Err(e) => {
                        AdminResponse::text(StatusCode::BAD_REQUEST, format!("{}\n", e.message()))
                    }
                }
            }
            Method::DELETE => {
                self.chaos.disable();
                self.chaos.clear();
                self.state()
            }
            other => AdminResponse::text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {other} is not allowed; use GET, PUT, POST or DELETE\n"),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The middleware

/// The `chaos` middleware: applies a [`Chaos`] controller's rules to every call (all five
/// shapes, inbound and outbound). With a control token configured on the controller it also
/// registers the control endpoint [`CONTROL_PATH`]; use [`ChaosMiddleware::without_endpoint`]
/// when the same controller is registered more than once (a path may be claimed only once).
#[derive(Clone, Debug)]
pub struct ChaosMiddleware {
    chaos: Chaos,
    endpoint: bool,
}

impl ChaosMiddleware {
    /// Applies `chaos`'s rules; registers the control endpoint when `chaos` has a token.
    pub fn new(chaos: Chaos) -> Self {
        ChaosMiddleware {
            chaos,
            endpoint: true,
        }
    }

    /// Registers no control endpoint, token or not.
    pub fn without_endpoint(mut self) -> Self {
        self.endpoint = false;
        self
    }
}

impl From<ChaosMiddleware> for Middleware {
    fn from(config: ChaosMiddleware) -> Middleware {
        let endpoint = (config.endpoint && config.chaos.has_control_token()).then(|| {
            Arc::new(ControlEndpoint {
                chaos: config.chaos.clone(),
            }) as Arc<dyn AdminEndpoint>
        });
        let middleware = Middleware::every_shape("chaos", config);
        match endpoint {
            Some(endpoint) => middleware.endpoint(CONTROL_PATH, endpoint),
            None => middleware,
        }
    }
}

impl From<Chaos> for Middleware {
    /// The same as `ChaosMiddleware::new(chaos)`.
    fn from(chaos: Chaos) -> Middleware {
        ChaosMiddleware::new(chaos).into()
    }
}

type Injected<Resp> = Pin<Box<dyn Future<Output = Result<Resp>> + Send>>;

/// A service applying the controller's rules before calling `inner`.
struct Chaotic<S> {
    shared: Arc<Shared>,
    /// Inbound: the registered procedure name the rules match.
    procedure: Option<Arc<str>>,
    inner: S,
}

impl<S: Clone> Clone for Chaotic<S> {
    fn clone(&self) -> Self {
        Chaotic {
            shared: self.shared.clone(),
            procedure: self.procedure.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T, Resp> Service<Request<T>> for Chaotic<RpcService<Request<T>, Resp>>
where
    T: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Error = Error;
    type Future = Either<BoxFuture<Result<Resp>>, Injected<Resp>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<T>) -> Self::Future {
        let procedure = self.procedure.as_deref().unwrap_or(&request.meta.procedure);
        match self.shared.decide(procedure) {
            None => Either::Left(self.inner.invoke(request)),
            Some(injection) => {
                Either::Right(Box::pin(inject(injection, request, self.inner.clone())))
            }
        }
    }
}

async fn inject<T, Resp>(
    injection: Injection,
    request: Request<T>,
    inner: RpcService<Request<T>, Resp>,
) -> Result<Resp>
where
    T: Send + 'static,
    Resp: Send + 'static,
{
    if let Some(delay) = injection.delay {
        match request.meta.deadline {
            Some(deadline)
                if Instant::now()
                    .checked_add(delay)
                    .is_none_or(|end| end >= deadline) =>
            {
                tokio::time::sleep_until(deadline.into()).await;
                return Err(Error::deadline_exceeded(format!(
                    "chaos: the injected latency of {} ms passed the deadline of procedure '{}'",
                    delay.as_millis(),
                    request.meta.procedure
                )));
            }
            _ => tokio::time::sleep(delay).await,
        }
    }
    if let Some(error) = injection.error {
        return Err(error);
    }
    inner.invoke(request).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;

    use super::*;
    use crate::meta::{RequestMeta, Response};
    use crate::middleware::{Direction, UnaryService};
    use crate::procedure::Kind;

    #[test]
    fn probability_bounds() {
        assert!(Probability::new(0.0).is_ok());
        assert!(Probability::new(1.0).is_ok());
        assert!(Probability::new(0.5).is_ok());
        for bad in [
            -0.0001,
            1.0001,
            -1.0,
            2.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let err = Probability::new(bad).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
            assert!(
                err.message().contains("outside 0.0..=1.0"),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn zero_never_fires_and_one_always_does() {
        // At the edges of the sampled range [0, 1).
        let below_one = 1.0 - f64::EPSILON;
        for sample in [0.0, 1e-300, 0.5, below_one] {
            assert!(!Probability::NEVER.fires_at(sample), "{sample}");
            assert!(Probability::ALWAYS.fires_at(sample), "{sample}");
        }
        assert!(Probability(0.25).fires_at(0.2499));
        assert!(!Probability(0.25).fires_at(0.25));
        for _ in 0..10_000 {
            assert!(!Probability::NEVER.fires());
            assert!(Probability::ALWAYS.fires());
        }
    }

    #[test]
    fn a_rule_draws_each_fault() {
        let never = ChaosRule::new()
            .with_latency(Duration::from_secs(1), Probability::NEVER)
            .with_error(Code::Internal, "x", Probability::NEVER);
        assert!(never.draw().is_none());
        let always = ChaosRule::new()
            .with_latency(Duration::from_millis(7), Probability::ALWAYS)
            .with_error(Code::Aborted, "boom", Probability::ALWAYS);
        let injection = always.draw().unwrap();
        assert_eq!(injection.delay, Some(Duration::from_millis(7)));
        let err = injection.error.unwrap();
        assert_eq!((err.code(), err.message()), (Code::Aborted, "boom"));
        let latency_only =
            ChaosRule::new().with_latency(Duration::from_millis(1), Probability::ALWAYS);
        assert!(latency_only.draw().unwrap().error.is_none());
        assert!(ChaosRule::new().draw().is_none());
    }

    #[test]
    fn json_parses_with_defaults_and_round_trips() {
        let json = br#"{
            "enabled": true,
            "default": {"latency": {"ms": 5}},
            "rules": {
                "a::B": {"error": {"code": "UNAVAILABLE", "probability": 0.5}},
                "c": {"latency": {"ms": 300, "probability": 0.0}, "error": {"code": "14", "message": "m"}}
            }
        }"#;
        let snap = ChaosSnapshot::from_json(json).unwrap();
        assert!(snap.enabled);
        let default = snap.default.clone().unwrap();
        assert_eq!(
            default.latency,
            Some(LatencyFault {
                delay: Duration::from_millis(5),
                probability: Probability::ALWAYS
            })
        );
        let ab = snap.rules["a::B"].error.clone().unwrap();
        assert_eq!(ab.code, Code::Unavailable);
        assert_eq!(ab.message, "chaos: injected unavailable");
        assert_eq!(ab.probability.value(), 0.5);
        assert_eq!(snap.rules["c"].error.as_ref().unwrap().message, "m");
        let again = ChaosSnapshot::from_json(snap.to_json().as_bytes()).unwrap();
        assert_eq!(again, snap);

        let minimal = ChaosSnapshot::from_json(br#"{"enabled": false}"#).unwrap();
        assert_eq!(minimal, ChaosSnapshot::default());
        assert_eq!(
            ChaosSnapshot::default().to_json(),
            r#"{"enabled":false,"default":null,"rules":{}}"#
        );
    }

    #[test]
    fn bad_json_is_invalid_argument_with_the_reason() {
        let cases: [(&[u8], &str); 8] = [
            (b"not json", "invalid chaos state"),
            (b"{}", "missing field `enabled`"),
            (br#"{"enabled": true, "rulez": {}}"#, "unknown field `rulez`"),
            (
                br#"{"enabled": true, "rules": {"p": {"latency": {"ms": 1, "probability": 1.5}}}}"#,
                "invalid chaos rule for \"p\": latency probability 1.5 is outside 0.0..=1.0",
            ),
            (
                br#"{"enabled": true, "rules": {"p": {"error": {"code": "internal", "probability": -1}}}}"#,
                "error probability -1 is outside",
            ),
            (
                br#"{"enabled": true, "rules": {"p": {"error": {"code": "nope"}}}}"#,
                "unknown error code \"nope\"",
            ),
            (
                br#"{"enabled": true, "default": {"error": {"code": "ok"}}}"#,
                "invalid chaos rule default: the error code cannot be ok",
            ),
            (
                br#"{"enabled": true, "rules": {"p": {"latency": {"ms": -3}}}}"#,
                "invalid chaos state",
            ),
        ];
        for (json, expected) in cases {
            let err = ChaosSnapshot::from_json(json).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(
                err.message().contains(expected),
                "{:?}: {}",
                String::from_utf8_lossy(json),
                err.message()
            );
        }
    }

    #[test]
    fn controller_api() {
        let chaos = Chaos::new();
        assert_eq!(chaos.snapshot(), ChaosSnapshot::default());
        let rule = ChaosRule::new().with_error(Code::Internal, "x", Probability::ALWAYS);
        chaos.set_rule("p", rule.clone()).unwrap();
        chaos.set_default_rule(Some(rule.clone())).unwrap();
        assert!(chaos.decide_for_test("p").is_none(), "disabled");
        chaos.enable();
        assert!(chaos.decide_for_test("p").is_some());
        assert!(chaos.decide_for_test("other").is_some(), "default rule");
        chaos.set_default_rule(None).unwrap();
        assert!(chaos.decide_for_test("other").is_none());
        assert_eq!(chaos.remove_rule("p"), Some(rule.clone()));
        assert!(chaos.decide_for_test("p").is_none());

        let bad = ChaosRule::new().with_error(Code::Ok, "x", Probability::ALWAYS);
        assert_eq!(
            chaos.set_rule("p", bad.clone()).unwrap_err().code(),
            Code::InvalidArgument
        );
        assert!(chaos.set_default_rule(Some(bad.clone())).is_err());
        let mut snap = chaos.snapshot();
        snap.rules.insert("q".into(), bad);
        assert!(chaos.replace(snap).is_err());
        assert!(
            chaos.snapshot().rules.is_empty(),
            "a failed replace changes nothing"
        );

        chaos.set_rule("p", rule).unwrap();
        chaos.clear();
        assert!(chaos.is_enabled(), "clear keeps the switch");
        assert!(chaos.snapshot().rules.is_empty());
    }

    impl Chaos {
        fn decide_for_test(&self, procedure: &str) -> Option<Injection> {
            self.shared.decide(procedure)
        }
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokex"));
        assert!(!constant_time_eq(b"token", b"token2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    fn admin(method: Method, authorization: Option<&str>, body: &str) -> AdminRequest {
        let mut headers = http::HeaderMap::new();
        if let Some(a) = authorization {
            headers.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        AdminRequest {
            method,
            headers,
            query: String::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn endpoint_authenticates_every_request() {
        let chaos = Chaos::new().with_control_token("t0ken");
        let endpoint = ControlEndpoint {
            chaos: chaos.clone(),
        };
        let enable = r#"{"enabled": true, "rules": {"p": {"error": {"code": "internal"}}}}"#;
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic t0ken"),
            Some("t0ken"),
            Some("Bearer t0ke"),
        ] {
            for method in [Method::GET, Method::PUT, Method::POST, Method::DELETE] {
                let answer = endpoint.handle(admin(method, auth, enable));
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
            }
        }
        assert_eq!(chaos.snapshot(), ChaosSnapshot::default());

        let ok = Some("bearer  t0ken ");
        let answer = endpoint.handle(admin(Method::PUT, ok, enable));
        assert_eq!(answer.status, StatusCode::OK);
        assert!(chaos.is_enabled());
        assert_eq!(answer.body, chaos.snapshot().to_json());

        let answer = endpoint.handle(admin(Method::POST, ok, "{\"enabled\": tru"));
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&answer.body).starts_with("invalid chaos state: "));
        assert!(chaos.is_enabled(), "a bad body changes nothing");

        let answer = endpoint.handle(admin(Method::PATCH, ok, ""));
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);

        let answer = endpoint.handle(admin(Method::DELETE, ok, ""));
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(chaos.snapshot(), ChaosSnapshot::default());
    }

    #[test]
    fn endpoint_registered_only_with_a_token() {
        let without: Middleware = ChaosMiddleware::new(Chaos::new()).into();
        assert!(without.endpoints().is_empty());
        let empty: Middleware = Chaos::new().with_control_token("").into();
        assert!(empty.endpoints().is_empty());
        let with: Middleware = ChaosMiddleware::new(Chaos::new().with_control_token("t")).into();
        assert_eq!(with.endpoints().len(), 1);
        assert_eq!(&*with.endpoints()[0].0, CONTROL_PATH);
        let opted_out: Middleware = ChaosMiddleware::new(Chaos::new().with_control_token("t"))
            .without_endpoint()
            .into();
        assert!(opted_out.endpoints().is_empty());
    }

    fn counting(calls: Arc<AtomicUsize>) -> UnaryService {
        RpcService::new(tower::service_fn(move |r: Request<Bytes>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Error>(Response::new(r.body)) }
        }))
    }

    fn target() -> Target<'static> {
        Target {
            direction: Direction::Inbound,
            kind: Kind::Unary,
            service: "svc",
            procedure: Some("p"),
            peers: &[],
        }
    }

    #[tokio::test]
    async fn latency_past_the_deadline_fails_at_the_deadline_without_calling_on() {
        let chaos = Chaos::new();
        chaos
            .set_rule(
                "p",
                ChaosRule::new().with_latency(Duration::from_secs(3600), Probability::ALWAYS),
            )
            .unwrap();
        chaos.enable();
        let calls = Arc::new(AtomicUsize::new(0));
        let m: Middleware = ChaosMiddleware::new(chaos.clone()).into();
        let service = m.wrap_unary(&target(), counting(calls.clone()));
        let mut meta = RequestMeta::new("c", "svc", "p");
        meta.deadline = Some(Instant::now() + Duration::from_millis(30));
        let call = service.invoke(Request::new(meta, Bytes::new()));
        let err = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("fails at the deadline, not after the injected hour")
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert_eq!(
            err.message(),
            "chaos: the injected latency of 3600000 ms passed the deadline of procedure 'p'"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // A latency within the deadline is waited out and the call goes on.
        chaos
            .set_rule(
                "p",
                ChaosRule::new().with_latency(Duration::from_millis(1), Probability::ALWAYS),
            )
            .unwrap();
        let mut meta = RequestMeta::new("c", "svc", "p");
        meta.deadline = Some(Instant::now() + Duration::from_secs(30));
        let call = service.invoke(Request::new(meta, Bytes::from_static(b"hi")));
        let response = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.body, "hi");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn inbound_rules_match_the_registered_name_and_errors_skip_the_handler() {
        let chaos = Chaos::new();
        chaos
            .set_rule(
                "p",
                ChaosRule::new().with_error(Code::Unavailable, "down", Probability::ALWAYS),
            )
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let m: Middleware = chaos.clone().into();
        let service = m.wrap_unary(&target(), counting(calls.clone()));
        // Reached through an alias: the request names another procedure.
        let request = || Request::new(RequestMeta::new("c", "svc", "alias"), Bytes::new());
        assert!(service.invoke(request()).await.is_ok(), "disabled");
        chaos.enable();
        let err = service.invoke(request()).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::Unavailable, "down"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        chaos.disable();
        assert!(service.invoke(request()).await.is_ok());
    }
}
