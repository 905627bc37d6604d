//! The deadline middleware: refuses work already past its deadline (or too close to it) and
//! cancels the call at the deadline.
//!
//! The deadline is the request's absolute `deadline` when set (it wins over the TTL, as in
//! OmniRelay .NET), otherwise now plus its `ttl`; a call with neither is passed through. A call
//! with less than the minimum lead time left fails with `deadline-exceeded` before the next
//! service is called. Otherwise the call runs until the deadline; if it has not answered by then
//! it is dropped (which cancels the handler, or the outbound request) and the caller gets
//! `deadline-exceeded`. For the streaming shapes the same bound applies to opening the stream
//! and to the response stream, which ends with `deadline-exceeded` at the deadline.
//!
//! Both inbounds already refuse calls past their deadline and bound handlers by it; this
//! middleware adds the lead time, applies the same rule to outbound calls (a call that cannot
//! finish in time is not sent), and names the procedure in its errors.
//!
//! ```
//! use std::time::Duration;
//! use omnirelay::middleware::deadline::DeadlineMiddleware;
//!
//! let deadline = DeadlineMiddleware::new().minimum_lead_time(Duration::from_millis(5));
//! let dispatcher = omnirelay::Dispatcher::builder("svc").middleware(deadline).build().unwrap();
//! # let _ = dispatcher;
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::service::{
    ClientStreamService, DuplexService, OnewayService, RpcService, ServerStreamService,
    UnaryService,
};
use super::stack::{Direction, Middleware, Target};
use crate::error::{Error, Result};
use crate::meta::{Request, RequestMeta, Response};
use crate::stream::{ByteStream, with_deadline};

/// Refuses calls too close to their deadline and cancels them at it. Name: `deadline`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadlineMiddleware {
    lead: Duration,
}

impl DeadlineMiddleware {
    /// No lead time: only work already past its deadline is refused.
    pub fn new() -> Self {
        DeadlineMiddleware::default()
    }

    /// Refuses calls with less than `lead` left before their deadline (default zero).
    pub fn minimum_lead_time(mut self, lead: Duration) -> Self {
        self.lead = lead;
        self
    }
}

/// The deadline of the call `meta` describes, if any: the absolute deadline, else the TTL
/// from now.
fn deadline_of(meta: &RequestMeta) -> Option<Instant> {
    meta.deadline
        .or_else(|| meta.ttl.map(|ttl| Instant::now() + ttl))
}

#[derive(Clone)]
struct Rule {
    lead: Duration,
    direction: Direction,
    /// What a deadline error names, built once per pipeline: `procedure "p"` inbound,
    /// `service "s"` outbound (one outbound pipeline serves every procedure).
    subject: Arc<str>,
}

impl Rule {
    /// The call's deadline, or the error refusing it.
    fn admit(&self, meta: &mut RequestMeta) -> Result<Option<Instant>> {
        let Some(deadline) = deadline_of(meta) else {
            return Ok(None);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || left < self.lead {
            return Err(Error::deadline_exceeded(format!(
                "{} call to procedure {:?} refused: {} ms left before its deadline, \
                 less than the {} ms it needs",
                self.direction.as_str(),
                meta.procedure,
                left.as_millis(),
                self.lead.as_millis().max(1)
            )));
        }
        meta.deadline = Some(deadline);
        Ok(Some(deadline))
    }

    async fn bound<T>(
        self,
        deadline: Option<Instant>,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(deadline) = deadline else {
            return call.await;
        };
        match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(result) => result,
            Err(_) => Err(Error::deadline_exceeded(format!(
                "{} call to {} passed its deadline",
                self.direction.as_str(),
                self.subject
            ))),
        }
    }
}

macro_rules! single {
    ($name:ident, $service:ty, $req:ty, $resp:ty) => {
        fn $name(rule: Rule, inner: $service) -> $service {
            RpcService::around(inner, move |inner, mut request: Request<$req>| {
                let rule = rule.clone();
                async move {
                    let deadline = rule.admit(&mut request.meta)?;
                    rule.bound(deadline, inner.invoke(request)).await
                }
            })
        }
    };
}

macro_rules! streaming {
    ($name:ident, $service:ty, $req:ty, $resp:ty) => {
        fn $name(rule: Rule, inner: $service) -> $service {
            RpcService::around(inner, move |inner, mut request: Request<$req>| {
                let rule = rule.clone();
                async move {
                    let deadline = rule.admit(&mut request.meta)?;
                    let response: Response<ByteStream> =
                        rule.bound(deadline, inner.invoke(request)).await?;
                    Ok(response.map(|s| with_deadline(s, deadline, "the response stream")))
                }
            })
        }
    };
}

single!(unary, UnaryService, Bytes, Response<Bytes>);
single!(oneway, OnewayService, Bytes, ());
streaming!(
    server_stream,
    ServerStreamService,
    Bytes,
    Response<ByteStream>
);
single!(
    client_stream,
    ClientStreamService,
    ByteStream,
    Response<Bytes>
);
streaming!(duplex, DuplexService, ByteStream, Response<ByteStream>);

impl From<DeadlineMiddleware> for Middleware {
    fn from(m: DeadlineMiddleware) -> Middleware {
        let rule = move |target: &Target<'_>| Rule {
            lead: m.lead,
            direction: target.direction,
            subject: match target.procedure {
                Some(procedure) => format!("procedure {procedure:?}"),
                None => format!("service {:?}", target.service),
            }
            .into(),
        };
        Middleware::new("deadline")
            .unary_with(move |t, inner| unary(rule(t), inner))
            .oneway_with(move |t, inner| oneway(rule(t), inner))
            .server_stream_with(move |t, inner| server_stream(rule(t), inner))
            .client_stream_with(move |t, inner| client_stream(rule(t), inner))
            .duplex_with(move |t, inner| duplex(rule(t), inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    fn meta(ttl: Option<Duration>) -> RequestMeta {
        let mut meta = RequestMeta::new("c", "s", "p");
        meta.ttl = ttl;
        meta
    }

    #[test]
    fn lead_time_refuses_calls_too_close_to_their_deadline() {
        let rule = Rule {
            lead: Duration::from_millis(50),
            direction: Direction::Inbound,
            subject: "procedure \"p\"".into(),
        };
        let err = rule
            .admit(&mut meta(Some(Duration::from_millis(10))))
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert!(err.message().contains("\"p\""), "{}", err.message());
        let mut ok = meta(Some(Duration::from_secs(10)));
        assert!(rule.admit(&mut ok).unwrap().is_some());
        assert!(
            ok.deadline.is_some(),
            "the TTL becomes an absolute deadline"
        );
        assert!(rule.admit(&mut meta(None)).unwrap().is_none());
    }

    #[test]
    fn the_absolute_deadline_wins_over_the_ttl() {
        let rule = Rule {
            lead: Duration::ZERO,
            direction: Direction::Outbound,
            subject: "service \"s\"".into(),
        };
        let mut m = meta(Some(Duration::from_secs(60)));
        m.deadline = Some(Instant::now() - Duration::from_millis(1));
        let err = rule.admit(&mut m).unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert!(err.message().starts_with("outbound"), "{}", err.message());
    }
}
