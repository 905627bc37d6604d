//! Prometheus metrics for every call a dispatcher serves or makes, built on
//! [`prometheus-client`](prometheus_client), the Prometheus project's Rust client.
//!
//! A [`Metrics`] handle owns the instruments and a registry holding them. Its
//! [`MetricsMiddleware`] (named `metrics`) records each call, inbound or outbound, and serves the
//! registry at [`METRICS_PATH`] (`/omnirelay/metrics`) on the dispatcher's HTTP inbounds.
//!
//! ```
//! use omnirelay::Dispatcher;
//! use omnirelay::middleware::metrics::Metrics;
//!
//! let metrics = Metrics::new();
//! let dispatcher = Dispatcher::builder("keyvalue")
//!     .middleware(metrics.middleware())
//!     // The same handle may measure outbound calls too: both serve one endpoint.
//!     .outbound_middleware(metrics.middleware())
//!     .build()
//!     .unwrap();
//! # let _ = dispatcher;
//! assert!(metrics.render().is_empty()); // nothing recorded yet
//! ```
//!
//! # Instruments
//!
//! | name | type | labels |
//! |---|---|---|
//! | `omnirelay_calls_total` | counter: calls started | call labels |
//! | `omnirelay_successes_total` | counter: calls that ended `ok` | call labels |
//! | `omnirelay_caller_failures_total` | counter: calls that failed by the caller's fault | call labels, `code` |
//! | `omnirelay_server_failures_total` | counter: calls that failed by the server's fault | call labels, `code` |
//! | `omnirelay_call_duration_seconds` | histogram: time from the call's start to its end | call labels, `code` |
//!
//! The call labels are `direction` (`inbound` or `outbound`), `service` (inbound: this
//! dispatcher's service; outbound: the service the outbound calls), `procedure` (inbound: the
//! registered name, even when an alias was called), `rpc_type` (`unary`, `oneway`,
//! `server-stream`, `client-stream`, `duplex`), `caller` (the calling service's name, as the
//! request says), `transport` (`grpc`, `http`, `in-process`) and `encoding` (`proto`, `json`,
//! `raw`). `code` is the OmniRelay code text (`ok`, `invalid-argument`, ...). Whether a failure is
//! the caller's or the server's follows [`Code::fault`](crate::Code::fault).
//!
//! A call counts in `calls` when it starts, and in exactly one of `successes`,
//! `caller_failures` or `server_failures` (and in the histogram) when it ends, so
//! `calls - successes - caller_failures - server_failures` is the number of calls in flight.
//! Unary, oneway and client-streaming calls end when their response (or error) is ready;
//! server-streaming and duplex calls end when the response stream ends (`ok`) or fails (its
//! error's code). A call or stream dropped before its end (the client went away) ends as
//! `cancelled`, a caller failure.
//!
//! The default histogram buckets ([`DEFAULT_LATENCY_BUCKETS`]) run from 0.5 ms to 60 s.
//!
//! # Exposition format
//!
//! The endpoint answers `GET` (and `HEAD`) with the Prometheus text format, version 0.0.4
//! (`text/plain; version=0.0.4; charset=utf-8`, [`PROMETHEUS_TEXT`]), the format every
//! Prometheus version and most other scrapers read, and what `/omnirelay/metrics` promises. A
//! scraper whose `Accept` header prefers OpenMetrics (Prometheus 2.5+ sends one) gets
//! OpenMetrics text 1.0.0 instead ([`OPENMETRICS_TEXT`], ending in `# EOF`). Each body is
//! written by the matching prometheus-client encoder, so the content type always describes
//! the body. Other methods get `405 Method Not Allowed`.
//!
//! Apps serving metrics elsewhere call [`Metrics::render`] (or
//! [`Metrics::render_openmetrics`]), or register the instruments into their own registry with
//! [`Metrics::register`]; [`MetricsMiddleware::without_endpoint`] leaves the HTTP inbounds
//! alone.
//!
//! # Cost
//!
//! The labels fixed for a pipeline (`direction`, `service`, `rpc_type` and, inbound,
//! `procedure`) are computed once, when the dispatcher composes it. Each pipeline keeps a
//! cache from the labels that vary per call (caller, transport, encoding and, outbound,
//! procedure) to the instruments of that label set, looked up with the request's borrowed
//! strings under a read lock: no string is built or copied per call, only on the first call of
//! a label set. The outcome instruments of each code are created on the first call ending with
//! it. A call then costs one hash lookup, an `Instant` read at each end, two counter increments
//! and one histogram observation (a short mutex); its future is kept inline when it is the
//! outermost middleware, boxed otherwise (see [`super`]'s cost section). A stream costs one
//! more allocation (its watching wrapper).
//!
//! # Cardinality
//!
//! Callers name themselves and choose (within limits) how their calls end, so the series a
//! client can make are capped ([`MetricsBuilder::max_series`], default
//! [`DEFAULT_MAX_SERIES`]). A *series* is one label set of one instrument: a label set's
//! `calls` counter is one series, and each code a label set's calls end with adds two (its
//! outcome counter and its duration histogram). Every series is counted against the cap when
//! it is created, across all pipelines:
//!
//! * a new label set past the cap, or one whose caller (or outbound procedure) is longer than
//!   [`MAX_LABEL_VALUE_LEN`] bytes, is recorded in its pipeline's *overflow label set*: caller,
//!   transport and encoding (and, outbound, procedure) [`OVERFLOW_LABEL`];
//! * the first call of a label set to end with a new code past the cap records its outcome in
//!   the overflow label set, with its code. That call counts in its own label set's `calls` and
//!   in the overflow set's outcome, so past the cap `calls - outcomes` is the number in flight
//!   summed over a pipeline's label sets, not per label set.
//!
//! The overflow series are not counted: a pipeline's overflow label set has at most one
//! `calls` counter and two series per code (35 in all), and the pipelines are the ones the app
//! composes (one per inbound procedure, one per outbound and shape), whatever clients send.
//!
//! So a scrape holds at most `max_series` series plus the overflow series. A histogram series
//! renders as its buckets plus three lines (19 with the default buckets) and a counter as one,
//! so a series averages at most 10 lines. With the defaults, service and procedure names of up
//! to 64 bytes, and callers of up to [`MAX_LABEL_VALUE_LEN`] bytes, a line is at most about
//! 600 bytes (escaping doubles a caller made of quotes), so the default cap's series render
//! in at most about **12 MB** (2,048 series × 10 lines × 600 bytes; 11.4 MB measured with
//! 128-byte callers of quotes ending calls with every code); with 16-byte callers, about
//! 7 MB. Lower the cap to shrink the bound in proportion.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::Stream;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tower::Service;

/// The prometheus-client crate the instruments are built with, for [`Metrics::register`].
pub use prometheus_client;

use super::endpoint::{AdminEndpoint, AdminRequest, AdminResponse};
use super::service::RpcService;
use super::stack::{Middleware, Target};
use crate::codec::Encoding;
use crate::error::{Code, Error, Fault, Result};
use crate::meta::{Request, RequestMeta, Response, Transport};
use crate::stream::ByteStream;

/// Where the metrics endpoint is served by default.
pub const METRICS_PATH: &str = "/omnirelay/metrics";

/// The content type of the Prometheus text format 0.0.4, served by default.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The content type of OpenMetrics text 1.0.0, served to scrapers that prefer it.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The default upper bounds, in seconds, of the call duration histogram's buckets: 0.5 ms to
/// 60 s (an implicit `+Inf` bucket follows).
pub const DEFAULT_LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The default cap on series (see [`MetricsBuilder::max_series`] and the module's
/// [cardinality section](self#cardinality)): 2,048 series, a scrape of at most about 12 MB.
pub const DEFAULT_MAX_SERIES: usize = 2048;

/// The longest caller (and outbound procedure) recorded as a label, in bytes; a call with a
/// longer one is recorded in the overflow label set (see the module's
/// [cardinality section](self#cardinality)).
pub const MAX_LABEL_VALUE_LEN: usize = 128;

/// The caller, transport and encoding (and outbound procedure) labels of the overflow label
/// set, where calls are recorded past the series cap.
pub const OVERFLOW_LABEL: &str = "__other__";

// ---------------------------------------------------------------------------------------------
// Labels.

/// The labels of `calls` and `successes`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallLabels {
    direction: &'static str,
    service: Arc<str>,
    procedure: Arc<str>,
    rpc_type: &'static str,
    caller: Arc<str>,
    transport: &'static str,
    encoding: &'static str,
}

impl CallLabels {
    fn pairs(&self) -> [(&'static str, &str); 7] {
        [
            ("direction", self.direction),
            ("service", &self.service),
            ("procedure", &self.procedure),
            ("rpc_type", self.rpc_type),
            ("caller", &self.caller),
            ("transport", self.transport),
            ("encoding", self.encoding),
        ]
    }
}

impl EncodeLabelSet for CallLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        for pair in self.pairs() {
            pair.encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// The labels of the failure counters and the histogram: the call's plus its code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CodeLabels {
    call: CallLabels,
    code: &'static str,
}

impl EncodeLabelSet for CodeLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        self.call.encode(encoder)?;
        ("code", self.code).encode(encoder.encode_label())
    }
}

// ---------------------------------------------------------------------------------------------
// Instruments and the registry.

/// Makes the histograms of the duration family with the configured buckets.
#[derive(Clone, Debug)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

#[derive(Clone, Debug)]
struct Families {
    calls: Family<CallLabels, Counter>,
    successes: Family<CallLabels, Counter>,
    caller_failures: Family<CodeLabels, Counter>,
    server_failures: Family<CodeLabels, Counter>,
    duration: Family<CodeLabels, Histogram, Buckets>,
}

impl Families {
    fn new(buckets: Arc<[f64]>) -> Self {
        Families {
            calls: Family::default(),
            successes: Family::default(),
            caller_failures: Family::default(),
            server_failures: Family::default(),
            duration: Family::new_with_constructor(Buckets(buckets)),
        }
    }

    /// Registers (clones of) the families in `registry`; both then show the same values.
    fn register(&self, registry: &mut Registry) {
        registry.register("omnirelay_calls", "RPC calls started", self.calls.clone());
        registry.register(
            "omnirelay_successes",
            "RPC calls that ended with code ok",
            self.successes.clone(),
        );
        registry.register(
            "omnirelay_caller_failures",
            "RPC calls that failed by the caller's fault, by code",
            self.caller_failures.clone(),
        );
        registry.register(
            "omnirelay_server_failures",
            "RPC calls that failed by the server's fault, by code",
            self.server_failures.clone(),
        );
        registry.register_with_unit(
            "omnirelay_call_duration",
            "Time from an RPC call's start to its end (a stream's end), by code",
            Unit::Seconds,
            self.duration.clone(),
        );
    }
}

/// What every pipeline of one [`Metrics`] shares.
struct Shared {
    families: Families,
    registry: Registry,
    /// The series created so far (not counting the overflow label sets').
    series: AtomicUsize,
    max_series: usize,
}

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_TEXT,
            Format::OpenMetrics => OPENMETRICS_TEXT,
        }
    }

    /// The format an `Accept` header asks for: OpenMetrics when it ranks
    /// `application/openmetrics-text` above every range matching `text/plain`; Prometheus text
    /// otherwise (also without an `Accept` header, or when it accepts neither, rather than
    /// refusing the scrape).
    fn negotiate(headers: &http::HeaderMap) -> Format {
        let mut openmetrics: f32 = 0.0;
        let mut text: f32 = 0.0;
        let ranges = headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        for range in ranges {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let mut q = 1.0_f32;
            for param in parts {
                if let Some((name, value)) = param.split_once('=')
                    && name.trim().eq_ignore_ascii_case("q")
                {
                    q = match value.trim().parse::<f32>() {
                        Ok(q) if (0.0..=1.0).contains(&q) => q,
                        _ => 0.0,
                    };
                }
            }
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(q);
            } else if ["text/plain", "text/*", "*/*"]
                .iter()
                .any(|m| media.eq_ignore_ascii_case(m))
            {
                text = text.max(q);
            }
        }
        if openmetrics > 0.0 && openmetrics > text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

impl Shared {
    /// Takes `n` series from the cap; `false` (taking none) when fewer are left.
    fn reserve(&self, n: usize) -> bool {
        self.series
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n)
                    .filter(|total| *total <= self.max_series)
            })
            .is_ok()
    }

    fn render(&self, format: Format) -> std::result::Result<String, fmt::Error> {
        let mut out = String::new();
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// The handle and its builder.

/// A cloneable handle on a set of call metrics and the registry holding them (see the
/// [module documentation](self) for the instruments and labels).
///
/// Clones share the instruments: give [`Metrics::middleware`] to a dispatcher's inbound and
/// outbound middleware alike, and read the values with [`Metrics::render`] or over HTTP at
/// [`METRICS_PATH`].
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
    endpoint: Arc<dyn AdminEndpoint>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("series", &self.shared.series.load(Ordering::Relaxed))
            .field("max_series", &self.shared.max_series)
            .finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Metrics with the default buckets ([`DEFAULT_LATENCY_BUCKETS`]) and series cap
    /// ([`DEFAULT_MAX_SERIES`]).
    pub fn new() -> Self {
        Metrics::with(
            Arc::from(DEFAULT_LATENCY_BUCKETS.as_slice()),
            DEFAULT_MAX_SERIES,
        )
    }

    /// A builder for metrics with other options.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder::default()
    }

    fn with(buckets: Arc<[f64]>, max_series: usize) -> Self {
        let families = Families::new(buckets);
        let mut registry = Registry::default();
        families.register(&mut registry);
        let shared = Arc::new(Shared {
            families,
            registry,
            series: AtomicUsize::new(0),
            max_series,
        });
        let endpoint = Arc::new(MetricsEndpoint {
            shared: shared.clone(),
        });
        Metrics { shared, endpoint }
    }

    /// The middleware recording calls into these metrics and serving them at
    /// [`METRICS_PATH`].
    pub fn middleware(&self) -> MetricsMiddleware {
        MetricsMiddleware::new(self)
    }

    /// The metrics in the Prometheus text format 0.0.4 (see [`PROMETHEUS_TEXT`]); empty until
    /// a call has been recorded.
    pub fn render(&self) -> String {
        self.shared.render(Format::Prometheus).unwrap_or_default()
    }

    /// The metrics in OpenMetrics text 1.0.0 (see [`OPENMETRICS_TEXT`]), ending in `# EOF`.
    pub fn render_openmetrics(&self) -> String {
        self.shared.render(Format::OpenMetrics).unwrap_or_default()
    }

    /// Also registers the instruments in `registry` (for an app that serves its own registry):
    /// they stay registered here too, and both show the same values. Register them in one
    /// registry once; prometheus-client does not check for duplicates.
    pub fn register(&self, registry: &mut Registry) {
        self.shared.families.register(registry);
    }

    /// The endpoint serving these metrics (what [`MetricsMiddleware`] registers at
    /// [`METRICS_PATH`]), for mounting elsewhere.
    pub fn endpoint(&self) -> Arc<dyn AdminEndpoint> {
        self.endpoint.clone()
    }
}

/// Options for [`Metrics`]; [`MetricsBuilder::build`] checks them.
#[derive(Clone, Debug)]
pub struct MetricsBuilder {
    buckets: Vec<f64>,
    max_series: usize,
}

impl Default for MetricsBuilder {
    fn default() -> Self {
        MetricsBuilder {
            buckets: DEFAULT_LATENCY_BUCKETS.to_vec(),
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

impl MetricsBuilder {
    /// The upper bounds of the duration histogram's buckets, in seconds, in increasing order
    /// (an implicit `+Inf` bucket follows). Default: [`DEFAULT_LATENCY_BUCKETS`].
    pub fn latency_buckets(mut self, buckets: impl IntoIterator<Item = f64>) -> Self {
        self.buckets = buckets.into_iter().collect();
        self
    }

    /// The most series created for calls, across all pipelines: each label set's `calls`
    /// counter counts one, and each code its calls end with two (the outcome counter and the
    /// duration histogram). Past the cap, new label sets and new outcomes are recorded in the
    /// pipeline's overflow label set (see the module's [cardinality section](self#cardinality)).
    /// Callers name themselves, so this bounds the memory and scrape size clients can cause:
    /// with the default buckets, at most about 6 KB of scrape per series allowed. Default:
    /// [`DEFAULT_MAX_SERIES`] (about 12 MB at most).
    pub fn max_series(mut self, max: usize) -> Self {
        self.max_series = max;
        self
    }

    /// The metrics; `invalid-argument` when the buckets are empty, not finite and positive, or
    /// not strictly increasing.
    pub fn build(self) -> Result<Metrics> {
        check_buckets(&self.buckets)?;
        Ok(Metrics::with(Arc::from(self.buckets), self.max_series))
    }
}

fn check_buckets(buckets: &[f64]) -> Result<()> {
    if buckets.is_empty() {
        return Err(Error::invalid_argument(
            "metrics: the latency histogram needs at least one bucket",
        ));
    }
    if let Some(bad) = buckets.iter().find(|b| !b.is_finite() || **b <= 0.0) {
        return Err(Error::invalid_argument(format!(
            "metrics: latency bucket {bad} is not a finite, positive number of seconds"
        )));
    }
    if let Some(pair) = buckets.windows(2).find(|w| w[0] >= w[1]) {
        return Err(Error::invalid_argument(format!(
            "metrics: latency buckets must increase strictly, but {} is followed by {}",
            pair[0], pair[1]
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The endpoint.

struct MetricsEndpoint {
    shared: Arc<Shared>,
}

impl AdminEndpoint for MetricsEndpoint {
    fn handle(&self, request: AdminRequest) -> AdminResponse {
        if !matches!(request.method, http::Method::GET | http::Method::HEAD) {
            return AdminResponse::text(
                http::StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "method {} is not allowed on the metrics endpoint: use GET\n",
                    request.method
                ),
            );
        }
        let format = Format::negotiate(&request.headers);
        match self.shared.render(format) {
            Ok(body) => AdminResponse::new(http::StatusCode::OK, format.content_type(), body),
            Err(_) => AdminResponse::text(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "the metrics could not be encoded\n",
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The middleware.

/// The `metrics` middleware: records every call of every shape into a [`Metrics`], and serves
/// it at [`METRICS_PATH`] (by default) on the dispatcher's HTTP inbounds. Register it inbound,
/// outbound or both; it converts into a [`Middleware`].
#[derive(Clone, Debug)]
pub struct MetricsMiddleware {
    metrics: Metrics,
    path: Option<Arc<str>>,
}

impl MetricsMiddleware {
    /// Records into `metrics` and serves them at [`METRICS_PATH`].
    pub fn new(metrics: &Metrics) -> Self {
        MetricsMiddleware {
            metrics: metrics.clone(),
            path: Some(Arc::from(METRICS_PATH)),
        }
    }

    /// Serves the metrics at `path` instead of [`METRICS_PATH`].
    pub fn path(mut self, path: impl Into<Arc<str>>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Serves no endpoint: for apps that expose [`Metrics::render`] themselves.
    pub fn without_endpoint(mut self) -> Self {
        self.path = None;
        self
    }
}

impl From<MetricsMiddleware> for Middleware {
    fn from(m: MetricsMiddleware) -> Middleware {
        let shared = m.metrics.shared;
        let (s1, s2, s3, s4, s5) = (
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared,
        );
        let middleware = Middleware::new("metrics")
            .unary_with(move |target, inner| {
                RpcService::new(Whole::new(PipelineMetrics::new(&s1, target), inner))
            })
            .oneway_with(move |target, inner| {
                RpcService::new(Whole::new(PipelineMetrics::new(&s2, target), inner))
            })
            .server_stream_with(move |target, inner| {
                RpcService::new(Streamed::new(PipelineMetrics::new(&s3, target), inner))
            })
            .client_stream_with(move |target, inner| {
                RpcService::new(Whole::new(PipelineMetrics::new(&s4, target), inner))
            })
            .duplex_with(move |target, inner| {
                RpcService::new(Streamed::new(PipelineMetrics::new(&s5, target), inner))
            });
        match m.path {
            Some(path) => middleware.endpoint(path, m.metrics.endpoint),
            None => middleware,
        }
    }
}

impl From<Metrics> for Middleware {
    /// [`Metrics::middleware`] with its defaults.
    fn from(metrics: Metrics) -> Middleware {
        metrics.middleware().into()
    }
}

// ---------------------------------------------------------------------------------------------
// Per-pipeline state: the fixed labels and the cache of label sets.

/// The part of a label set that varies per call, borrowed from the request.
type KeyParts<'a> = (&'a str, &'a str, Transport, Encoding);

/// A cache key, owned or borrowed: lets the cache be searched with the request's strings.
trait CacheKey {
    fn parts(&self) -> KeyParts<'_>;
}

impl CacheKey for KeyParts<'_> {
    fn parts(&self) -> KeyParts<'_> {
        *self
    }
}

/// The owned cache key: (outbound) procedure, caller, transport, encoding.
struct OwnedKey {
    procedure: Box<str>,
    caller: Box<str>,
    transport: Transport,
    encoding: Encoding,
}

impl CacheKey for OwnedKey {
    fn parts(&self) -> KeyParts<'_> {
        (&self.procedure, &self.caller, self.transport, self.encoding)
    }
}

impl<'a> Borrow<dyn CacheKey + 'a> for OwnedKey {
    fn borrow(&self) -> &(dyn CacheKey + 'a) {
        self
    }
}

impl Hash for dyn CacheKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn CacheKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn CacheKey + '_ {}

impl Hash for OwnedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for OwnedKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for OwnedKey {}

/// One pipeline's metrics: the labels fixed when it was composed and the instruments of each
/// label set seen so far.
struct PipelineMetrics {
    shared: Arc<Shared>,
    direction: &'static str,
    service: Arc<str>,
    rpc_type: &'static str,
    /// Inbound: the procedure's registered name. Outbound: `None`, taken from each request.
    procedure: Option<Arc<str>>,
    entries: RwLock<HashMap<OwnedKey, Arc<Entry>>>,
    /// Where calls past the series cap are recorded.
    overflow: Arc<Overflow>,
}

impl PipelineMetrics {
    fn new(shared: &Arc<Shared>, target: &Target<'_>) -> Arc<Self> {
        let service: Arc<str> = Arc::from(target.service);
        let procedure: Option<Arc<str>> = target.procedure.map(Arc::from);
        let other: Arc<str> = Arc::from(OVERFLOW_LABEL);
        let overflow = Arc::new(Overflow {
            labels: CallLabels {
                direction: target.direction.as_str(),
                service: service.clone(),
                procedure: procedure.clone().unwrap_or_else(|| other.clone()),
                rpc_type: target.kind.as_str(),
                caller: other,
                transport: OVERFLOW_LABEL,
                encoding: OVERFLOW_LABEL,
            },
            shared: shared.clone(),
            entry: OnceLock::new(),
        });
        Arc::new(PipelineMetrics {
            shared: shared.clone(),
            direction: target.direction.as_str(),
            service,
            rpc_type: target.kind.as_str(),
            procedure,
            entries: RwLock::new(HashMap::new()),
            overflow,
        })
    }

    /// Counts a call starting and returns what records its end.
    fn start(self: &Arc<Self>, meta: &RequestMeta) -> Recorder {
        let procedure = match self.procedure {
            Some(_) => "",
            None => meta.procedure.as_str(),
        };
        let key = (
            procedure,
            meta.caller.as_str(),
            meta.transport,
            meta.encoding,
        );
        let entry = self.entry(key);
        entry.calls.inc();
        Recorder {
            entry,
            start: Instant::now(),
            done: false,
        }
    }

    fn entry(&self, key: KeyParts<'_>) -> Arc<Entry> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key as &dyn CacheKey) {
            Some(entry) => entry.clone(),
            None => {
                drop(entries);
                self.insert(key)
            }
        }
    }

    /// The first call of a label set: creates its instruments, or, past the series cap or
    /// with an over-long caller or procedure, returns the overflow label set's (not cached
    /// under `key`, so that folded keys take no memory).
    #[cold]
    fn insert(&self, key: KeyParts<'_>) -> Arc<Entry> {
        let (procedure, caller, transport, encoding) = key;
        if caller.len() > MAX_LABEL_VALUE_LEN || procedure.len() > MAX_LABEL_VALUE_LEN {
            return self.overflow.entry();
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(&key as &dyn CacheKey) {
            return entry.clone();
        }
        let shared = &self.shared;
        if !shared.reserve(1) {
            drop(entries);
            return self.overflow.entry();
        }
        let labels = CallLabels {
            direction: self.direction,
            service: self.service.clone(),
            procedure: match &self.procedure {
                Some(p) => p.clone(),
                None => Arc::from(procedure),
            },
            rpc_type: self.rpc_type,
            caller: Arc::from(caller),
            transport: transport.as_str(),
            encoding: encoding.as_str(),
        };
        let entry = Arc::new(Entry {
            calls: shared.families.calls.get_or_create_owned(&labels),
            labels,
            shared: shared.clone(),
            overflow: Some(self.overflow.clone()),
            outcomes: std::array::from_fn(|_| OnceLock::new()),
        });
        let owned = OwnedKey {
            procedure: procedure.into(),
            caller: caller.into(),
            transport,
            encoding,
        };
        entries.insert(owned, entry.clone());
        entry
    }
}

/// A pipeline's overflow label set, made on first use.
struct Overflow {
    labels: CallLabels,
    shared: Arc<Shared>,
    entry: OnceLock<Arc<Entry>>,
}

impl Overflow {
    fn entry(&self) -> Arc<Entry> {
        self.entry
            .get_or_init(|| {
                Arc::new(Entry {
                    calls: self.shared.families.calls.get_or_create_owned(&self.labels),
                    labels: self.labels.clone(),
                    shared: self.shared.clone(),
                    overflow: None,
                    outcomes: std::array::from_fn(|_| OnceLock::new()),
                })
            })
            .clone()
    }
}

/// The instruments of one label set.
struct Entry {
    labels: CallLabels,
    shared: Arc<Shared>,
    /// The pipeline's overflow label set, where outcomes past the series cap go; `None` for
    /// the overflow label set itself (whose series are not counted against the cap).
    overflow: Option<Arc<Overflow>>,
    calls: Counter,
    /// By code number: the counter and histogram a call ending with that code updates.
    outcomes: [OnceLock<Outcome>; Code::ALL.len()],
}

#[derive(Clone)]
struct Outcome {
    count: Counter,
    duration: Histogram,
}

impl Entry {
    fn outcome(&self, code: Code) -> &Outcome {
        self.outcomes[code.as_i32() as usize].get_or_init(|| {
            if let Some(overflow) = &self.overflow
                && !self.shared.reserve(2)
            {
                return overflow.entry().outcome(code).clone();
            }
            let families = &self.shared.families;
            let labels = CodeLabels {
                call: self.labels.clone(),
                code: code.as_str(),
            };
            let count = match code.fault() {
                Fault::None => families.successes.get_or_create_owned(&self.labels),
                Fault::Client => families.caller_failures.get_or_create_owned(&labels),
                Fault::Server => families.server_failures.get_or_create_owned(&labels),
            };
            Outcome {
                count,
                duration: families.duration.get_or_create_owned(&labels),
            }
        })
    }
}

/// Records a call's end, once: with the code given to [`Recorder::finish`], or as `cancelled`
/// when dropped before.
struct Recorder {
    entry: Arc<Entry>,
    start: Instant,
    done: bool,
}

impl Recorder {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let seconds = self.start.elapsed().as_secs_f64();
        let outcome = self.entry.outcome(code);
        outcome.count.inc();
        outcome.duration.observe(seconds);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

fn code_of<T>(result: &Result<T>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>;

/// Measures a shape whose call ends when its future does: unary, oneway, client stream.
struct Whole<Req, Resp> {
    metrics: Arc<PipelineMetrics>,
    inner: RpcService<Req, Resp>,
}

impl<Req, Resp> Whole<Req, Resp> {
    fn new(metrics: Arc<PipelineMetrics>, inner: RpcService<Req, Resp>) -> Self {
        Whole { metrics, inner }
    }
}

impl<Req, Resp> Clone for Whole<Req, Resp> {
    fn clone(&self) -> Self {
        Whole {
            metrics: self.metrics.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T, Resp> Service<Request<T>> for Whole<Request<T>, Resp>
where
    T: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Error = Error;
    type Future = BoxFuture<Resp>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<T>) -> Self::Future {
        let mut recorder = self.metrics.start(&request.meta);
        let call = self.inner.invoke(request);
        Box::pin(async move {
            let result = call.await;
            recorder.finish(code_of(&result));
            result
        })
    }
}

/// Measures a shape whose call ends with its response stream: server stream, duplex.
struct Streamed<T> {
    metrics: Arc<PipelineMetrics>,
    inner: RpcService<Request<T>, Response<ByteStream>>,
}

impl<T> Streamed<T> {
    fn new(
        metrics: Arc<PipelineMetrics>,
        inner: RpcService<Request<T>, Response<ByteStream>>,
    ) -> Self {
        Streamed { metrics, inner }
    }
}

impl<T> Clone for Streamed<T> {
    fn clone(&self) -> Self {
        Streamed {
            metrics: self.metrics.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static> Service<Request<T>> for Streamed<T> {
    type Response = Response<ByteStream>;
    type Error = Error;
    type Future = BoxFuture<Response<ByteStream>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<T>) -> Self::Future {
        let mut recorder = self.metrics.start(&request.meta);
        let call = self.inner.invoke(request);
        Box::pin(async move {
            match call.await {
                Ok(Response { meta, body }) => Ok(Response {
                    meta,
                    body: body.map_stream(|inner| Watched { inner, recorder }),
                }),
                Err(error) => {
                    recorder.finish(error.code());
                    Err(error)
                }
            }
        })
    }
}

/// A response stream that records the call's end when it ends, fails or is dropped.
struct Watched {
    inner: ByteStream,
    recorder: Recorder,
}

impl Stream for Watched {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = futures::ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &item {
            Some(Ok(_)) => {}
            Some(Err(error)) => this.recorder.finish(error.code()),
            None => this.recorder.finish(Code::Ok),
        }
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;
    use crate::middleware::Direction;

    fn headers(accept: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for a in accept {
            map.append(http::header::ACCEPT, a.parse().unwrap());
        }
        map
    }

    #[test]
    fn negotiates_the_exposition_format() {
        use Format::*;
        let cases: &[(&[&str], Format)] = &[
            (&[], Prometheus),
            (&["*/*"], Prometheus),
            (&["text/plain"], Prometheus),
            (&["application/json"], Prometheus),
            (&["application/openmetrics-text"], OpenMetrics),
            (
                &["Application/OpenMetrics-Text; version=1.0.0"],
                OpenMetrics,
            ),
            // What Prometheus sends: OpenMetrics ranked first.
            (
                &[
                    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ],
                OpenMetrics,
            ),
            (
                &["application/openmetrics-text;q=0.2, text/plain;q=0.9"],
                Prometheus,
            ),
            (&["application/openmetrics-text;q=0"], Prometheus),
            (&["application/openmetrics-text;q=nonsense"], Prometheus),
            (
                &["application/openmetrics-text;q=0.5", "*/*;q=0.5"],
                Prometheus,
            ),
            (
                &["text/plain;q=0.1", "application/openmetrics-text"],
                OpenMetrics,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(&headers(accept)), *want, "{accept:?}");
        }
    }

    #[test]
    fn buckets_are_checked() {
        assert!(
            Metrics::builder()
                .latency_buckets([0.1, 1.0])
                .build()
                .is_ok()
        );
        for bad in [
            vec![],
            vec![0.0, 1.0],
            vec![-1.0],
            vec![f64::NAN],
            vec![f64::INFINITY],
            vec![1.0, 1.0],
            vec![2.0, 1.0],
        ] {
            let err = Metrics::builder()
                .latency_buckets(bad.clone())
                .build()
                .unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        }
    }

    fn target(direction: Direction, kind: Kind, procedure: Option<&str>) -> Target<'_> {
        Target {
            direction,
            kind,
            service: "svc",
            procedure,
            peers: &[],
        }
    }

    fn meta(caller: &str, procedure: &str) -> RequestMeta {
        let mut meta = RequestMeta::new(caller, "svc", procedure);
        meta.transport = Transport::Http;
        meta.encoding = Encoding::Json;
        meta
    }

    #[test]
    fn renders_prometheus_text_with_escaped_labels() {
        let metrics = Metrics::builder().latency_buckets([0.5]).build().unwrap();
        let pipeline = PipelineMetrics::new(
            &metrics.shared,
            &target(Direction::Inbound, Kind::Unary, Some("kv::Get")),
        );
        let mut rec = pipeline.start(&meta("we\"ird\\\ncaller", "kv::Alias"));
        rec.finish(Code::InvalidArgument);
        let text = metrics.render();
        let labels = r#"direction="inbound",service="svc",procedure="kv::Get",rpc_type="unary",caller="we\"ird\\\ncaller",transport="http",encoding="json""#;
        for line in [
            "# HELP omnirelay_calls_total RPC calls started.".to_owned(),
            "# TYPE omnirelay_calls_total counter".to_owned(),
            format!("omnirelay_calls_total{{{labels}}} 1"),
            "# TYPE omnirelay_caller_failures_total counter".to_owned(),
            format!("omnirelay_caller_failures_total{{{labels},code=\"invalid-argument\"}} 1"),
            "# TYPE omnirelay_call_duration_seconds histogram".to_owned(),
            format!(
                "omnirelay_call_duration_seconds_bucket{{{labels},code=\"invalid-argument\",le=\"0.5\"}} 1"
            ),
            format!(
                "omnirelay_call_duration_seconds_bucket{{{labels},code=\"invalid-argument\",le=\"+Inf\"}} 1"
            ),
            format!(
                "omnirelay_call_duration_seconds_count{{{labels},code=\"invalid-argument\"}} 1"
            ),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // No success or server failure happened: those families are not shown.
        assert!(!text.contains("omnirelay_successes"), "{text}");
        assert!(!text.contains("omnirelay_server_failures"), "{text}");
        assert!(!text.contains("# EOF"));

        let open = metrics.render_openmetrics();
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE omnirelay_calls counter\n"), "{open}");
        assert!(
            open.contains("# UNIT omnirelay_call_duration_seconds seconds\n"),
            "{open}"
        );
    }

    #[test]
    fn outcomes_follow_the_fault_and_a_dropped_call_is_cancelled() {
        let metrics = Metrics::new();
        let pipeline = PipelineMetrics::new(
            &metrics.shared,
            &target(Direction::Outbound, Kind::ServerStream, None),
        );
        pipeline.start(&meta("me", "a::A")).finish(Code::Ok);
        pipeline
            .start(&meta("me", "a::A"))
            .finish(Code::Unavailable);
        let mut twice = pipeline.start(&meta("me", "b::B"));
        twice.finish(Code::NotFound);
        twice.finish(Code::Internal); // ignored: a call ends once
        drop(twice);
        drop(pipeline.start(&meta("me", "b::B")));
        let text = metrics.render();
        let a = r#"direction="outbound",service="svc",procedure="a::A",rpc_type="server-stream",caller="me",transport="http",encoding="json""#;
        let b = a.replace("a::A", "b::B");
        for line in [
            format!("omnirelay_calls_total{{{a}}} 2"),
            format!("omnirelay_successes_total{{{a}}} 1"),
            format!("omnirelay_server_failures_total{{{a},code=\"unavailable\"}} 1"),
            format!("omnirelay_calls_total{{{b}}} 2"),
            format!("omnirelay_caller_failures_total{{{b},code=\"not-found\"}} 1"),
            format!("omnirelay_caller_failures_total{{{b},code=\"cancelled\"}} 1"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("code=\"internal\""), "{text}");
        // One cache entry per (procedure, caller, transport, encoding).
        assert_eq!(pipeline.entries.read().unwrap().len(), 2);
    }

    #[test]
    fn series_past_the_cap_are_folded() {
        // Room for a's and b's `calls`, a's `ok` outcome (2) and a's `not-found` outcome (2).
        let metrics = Metrics::builder().max_series(6).build().unwrap();
        let inbound = PipelineMetrics::new(
            &metrics.shared,
            &target(Direction::Inbound, Kind::Unary, Some("p::P")),
        );
        let outbound = PipelineMetrics::new(
            &metrics.shared,
            &target(Direction::Outbound, Kind::Unary, None),
        );
        inbound.start(&meta("a", "ignored")).finish(Code::Ok);
        inbound.start(&meta("a", "ignored")).finish(Code::NotFound);
        inbound.start(&meta("b", "ignored")); // dropped: cancelled, past the cap
        inbound.start(&meta("a", "ignored")).finish(Code::Internal); // past the cap
        for caller in ["c", "d"] {
            inbound.start(&meta(caller, "ignored")).finish(Code::Ok);
        }
        inbound.start(&meta("a", "ignored")).finish(Code::Ok);
        let long = "x".repeat(MAX_LABEL_VALUE_LEN + 1);
        outbound.start(&meta(&long, "x::X")).finish(Code::Ok);
        assert_eq!(metrics.shared.series.load(Ordering::Relaxed), 6);

        let text = metrics.render();
        let set = |caller: &str, wire: &str| {
            let (transport, encoding) = if wire == "other" {
                (OVERFLOW_LABEL, OVERFLOW_LABEL)
            } else {
                ("http", "json")
            };
            format!(
                r#"direction="inbound",service="svc",procedure="p::P",rpc_type="unary",caller="{caller}",transport="{transport}",encoding="{encoding}""#
            )
        };
        let (a, b, other) = (
            set("a", "http"),
            set("b", "http"),
            set(OVERFLOW_LABEL, "other"),
        );
        let out = r#"direction="outbound",service="svc",procedure="__other__",rpc_type="unary",caller="__other__",transport="__other__",encoding="__other__""#;
        let expected = [
            format!("omnirelay_calls_total{{{a}}} 4"),
            format!("omnirelay_successes_total{{{a}}} 2"),
            format!("omnirelay_caller_failures_total{{{a},code=\"not-found\"}} 1"),
            format!("omnirelay_calls_total{{{b}}} 1"),
            format!("omnirelay_calls_total{{{other}}} 2"),
            format!("omnirelay_successes_total{{{other}}} 2"),
            format!("omnirelay_caller_failures_total{{{other},code=\"cancelled\"}} 1"),
            format!("omnirelay_server_failures_total{{{other},code=\"internal\"}} 1"),
            format!("omnirelay_call_duration_seconds_count{{{other},code=\"internal\"}} 1"),
            format!("omnirelay_calls_total{{{out}}} 1"),
            format!("omnirelay_successes_total{{{out}}} 1"),
        ];
        for line in &expected {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Nothing else: no series for c, d or the long caller, none for b's outcome.
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains("_bucket{") && !l.contains("_sum{"))
            .count();
        // The 11 lines above, a's two `_count` lines and other's `ok` and `cancelled` ones, and
        // out's `ok` one.
        assert_eq!(samples, 11 + 2 + 2 + 1, "{text}");
        for absent in ["caller=\"c\"", "caller=\"d\"", "xxxxxxxx"] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
    }

    /// The worst a client can do to the default metrics: distinct, longest, all-quote callers
    /// ending their calls with every code.
    #[test]
    fn the_default_cap_bounds_the_worst_scrape() {
        let service = "s".repeat(64);
        let procedure = "p".repeat(64);
        let target = Target {
            direction: Direction::Inbound,
            kind: Kind::ClientStream,
            service: &service,
            procedure: Some(&procedure),
            peers: &[],
        };
        // (caller length, filler, documented bound in bytes)
        for (len, fill, bound) in [(MAX_LABEL_VALUE_LEN, '"', 12_000_000), (16, 'c', 7_000_000)] {
            let metrics = Metrics::new();
            let pipeline = PipelineMetrics::new(&metrics.shared, &target);
            for i in 0..DEFAULT_MAX_SERIES {
                let mut caller = format!("{i}");
                while caller.len() < len {
                    caller.push(fill);
                }
                for code in Code::ALL {
                    pipeline.start(&meta(&caller, "")).finish(code);
                }
            }
            let used = metrics.shared.series.load(Ordering::Relaxed);
            assert_eq!(used, DEFAULT_MAX_SERIES);
            let text = metrics.render();
            let lines = text.lines().filter(|l| !l.starts_with('#')).count();
            let longest = text.lines().map(str::len).max().unwrap();
            eprintln!(
                "callers of {len} bytes: scrape of {} bytes, {lines} sample lines, longest line {longest} bytes",
                text.len()
            );
            if len == MAX_LABEL_VALUE_LEN {
                assert!(longest <= 600, "{longest}");
            }
            assert!(lines <= (DEFAULT_MAX_SERIES + 35) * 10, "{lines}");
            assert!(text.len() <= bound, "{} > {bound}", text.len());
        }
    }

    #[test]
    fn the_endpoint_answers_get_and_refuses_other_methods() {
        let metrics = Metrics::new();
        let request = |method: http::Method, accept: &[&str]| AdminRequest {
            method,
            headers: headers(accept),
            query: String::new(),
            body: Bytes::new(),
        };
        let ok = metrics.endpoint().handle(request(http::Method::GET, &[]));
        assert_eq!(ok.status, http::StatusCode::OK);
        assert_eq!(ok.content_type, "text/plain; version=0.0.4; charset=utf-8");
        let open = metrics.endpoint().handle(request(
            http::Method::GET,
            &["application/openmetrics-text"],
        ));
        assert_eq!(open.content_type, OPENMETRICS_TEXT);
        assert_eq!(open.body.as_ref(), b"# EOF\n");
        for method in [http::Method::POST, http::Method::PUT, http::Method::DELETE] {
            let refused = metrics.endpoint().handle(request(method, &[]));
            assert_eq!(refused.status, http::StatusCode::METHOD_NOT_ALLOWED);
        }
    }

    #[test]
    fn registers_into_another_registry() {
        let metrics = Metrics::new();
        let mut registry = Registry::with_prefix("app");
        metrics.register(&mut registry);
        let pipeline = PipelineMetrics::new(
            &metrics.shared,
            &target(Direction::Inbound, Kind::Oneway, Some("p::P")),
        );
        pipeline.start(&meta("c", "p::P")).finish(Code::Ok);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("app_omnirelay_calls_total{"), "{text}");
        assert!(text.contains("app_omnirelay_successes_total{"), "{text}");
    }
}
