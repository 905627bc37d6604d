//! Middleware: the echo service behind the built-in inbound stack, called through a client with
//! the outbound stack, then chaos switched on and off at run time.
//!
//! ```text
//! cargo run -p omnirelay-examples --bin middleware
//! ```
//!
//! Inbound, outermost first: tracing, logging, metrics, deadline, rate limit, chaos, panic
//! recovery. Outbound: tracing, metrics, retry, circuit breaker, deadline. The program checks
//! what it sees (a retried injected failure, the metric counts, one trace across the call) and
//! exits non-zero if anything is off.

use std::num::NonZeroU32;
use std::time::Duration;

use omnirelay::middleware::chaos::{Chaos, ChaosMiddleware, ChaosRule, Probability};
use omnirelay::middleware::circuit_breaker::CircuitBreakerMiddleware;
use omnirelay::middleware::deadline::DeadlineMiddleware;
use omnirelay::middleware::logging::LoggingMiddleware;
use omnirelay::middleware::metrics::{METRICS_PATH, Metrics};
use omnirelay::middleware::panic_recovery::PanicRecoveryMiddleware;
use omnirelay::middleware::rate_limit::{Quota, RateLimitMiddleware};
use omnirelay::middleware::retry::RetryMiddleware;
use omnirelay::middleware::trace::TracingMiddleware;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::HttpInbound;
use omnirelay::{Code, Dispatcher, Error, Result, Transport};
use omnirelay_examples::EchoService;
use omnirelay_examples::echo::{EchoClient, EchoProcedures, EchoRequest, echo_names};

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        println!("ok: {what}");
        Ok(())
    } else {
        Err(Error::internal(format!("check failed: {what}")))
    }
}

/// The value of the first sample line of `metric` whose labels contain every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::main]
async fn main() -> Result<()> {
    let loopback = "127.0.0.1:0".parse().expect("an address");
    let server_metrics = Metrics::new();
    let chaos = Chaos::new().with_control_token("example-token");
    let per_second = NonZeroU32::new(100).expect("non-zero");
    let server = Dispatcher::builder("echo")
        .inbound(GrpcInbound::new(loopback))
        .inbound(HttpInbound::new(loopback))
        .register(EchoProcedures::new(EchoService))
        .middleware(TracingMiddleware::new())
        .middleware(LoggingMiddleware::new())
        .middleware(server_metrics.middleware())
        .middleware(DeadlineMiddleware::new())
        .middleware(RateLimitMiddleware::new(Quota::per_second(per_second)))
        .middleware(ChaosMiddleware::new(chaos.clone()))
        .middleware(PanicRecoveryMiddleware::new())
        .build()?;
    server.start().await?;
    let grpc = server.addr(Transport::Grpc).expect("bound");
    let http = server.addr(Transport::Http).expect("bound");
    println!("serving echo: gRPC {grpc}, HTTP {http}");
    println!("  curl http://{http}{METRICS_PATH}");
    println!(
        "  curl -H 'Authorization: Bearer example-token' http://{http}{}",
        omnirelay::middleware::chaos::CONTROL_PATH
    );

    let client_metrics = Metrics::new();
    let breaker = CircuitBreakerMiddleware::new();
    let caller = Dispatcher::builder("example-client")
        .outbound("echo", GrpcOutbound::new(format!("http://{grpc}"))?)
        .outbound_middleware(TracingMiddleware::new())
        .outbound_middleware(client_metrics.middleware())
        .outbound_middleware(RetryMiddleware::new())
        .outbound_middleware(breaker.clone())
        .outbound_middleware(DeadlineMiddleware::new())
        .build()?;
    let client = EchoClient::new(caller.client_config("echo")?);
    let hello = || EchoRequest {
        message: "hello".into(),
        repeat: 0,
    };

    let reply = client.echo(hello()).await?;
    check(reply.body.message == "hello", "a call through both stacks")?;

    // Chaos on through the dispatcher API: every Echo call fails with unavailable, which the
    // client's retry middleware retries (3 attempts in all) before giving up.
    chaos.set_rule(
        echo_names::ECHO,
        ChaosRule::new().with_error(Code::Unavailable, "chaos says no", Probability::ALWAYS),
    )?;
    chaos.enable();
    let err = client.echo(hello()).await.expect_err("chaos is on");
    check(err.code() == Code::Unavailable, "injected unavailable")?;
    chaos.disable();
    check(client.echo(hello()).await.is_ok(), "chaos off again")?;

    let text = server_metrics.render();
    let calls = sample(
        &text,
        "omnirelay_calls_total",
        &[r#"caller="example-client""#, r#"transport="grpc""#],
    );
    check(
        calls == Some(5.0),
        "the server counted 5 calls (1 + 3 attempts + 1)",
    )?;
    let failures = sample(
        &text,
        "omnirelay_server_failures_total",
        &[r#"code="unavailable""#],
    );
    check(failures == Some(3.0), "3 server failures, all unavailable")?;
    let outbound = sample(
        &client_metrics.render(),
        "omnirelay_calls_total",
        &[r#"direction="outbound""#],
    );
    check(outbound == Some(3.0), "the client counted its 3 calls")?;
    let peer = breaker.peers().into_iter().next().unwrap_or_default();
    check(
        breaker.state(&peer).is_some(),
        "the breaker tracks the peer",
    )?;

    println!("server metrics (calls):");
    for line in text
        .lines()
        .filter(|l| l.starts_with("omnirelay_calls_total"))
    {
        println!("  {line}");
    }
    tokio::time::timeout(Duration::from_secs(15), server.stop())
        .await
        .map_err(|_| Error::deadline_exceeded("the server did not stop in time"))??;
    println!("stopped");
    Ok(())
}
