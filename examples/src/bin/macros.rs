//! Procedures written as plain Rust with `#[omnirelay::procedure]` and `#[omnirelay::service]`,
//! no `.proto` file: all five shapes served over gRPC and YARPC-HTTP, and called through a typed
//! client over each.
//!
//! ```text
//! cargo run -p omnirelay-examples --bin macros
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use omnirelay::codec::{Encoding, JsonCodec};
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{
    CallOptions, Client, ClientConfig, Dispatcher, Procedure, Request, Response, Result, Service,
    Streaming, Transport,
};
use serde::{Deserialize, Serialize};

/// A greeting request.
#[derive(Debug, Serialize, Deserialize)]
struct Greeting {
    name: String,
}

/// An event for the log.
#[derive(Debug, Serialize, Deserialize)]
struct Event {
    text: String,
}

/// Greets someone: unary, also reachable as `hello`.
#[omnirelay::procedure(encoding = "json", alias = "hello")]
async fn greet(request: Request<Greeting>) -> Result<Response<String>> {
    Ok(Response::new(format!("hello, {}!", request.body.name)))
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Appends to the log: oneway, so the caller only learns it was accepted.
#[omnirelay::procedure(encoding = "json", oneway, name = "log::append")]
async fn append(request: Request<Event>) -> Result<()> {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(request.into_body().text);
    Ok(())
}

/// Counts down from a number: a server stream.
#[omnirelay::procedure(encoding = "json")]
async fn countdown(request: Request<u32>) -> Result<Response<Streaming<u32>>> {
    let from = request.into_body();
    let numbers = futures::stream::iter((0..=from).rev().map(Ok));
    Ok(Response::new(Streaming::new(numbers)))
}

/// Sums numbers, remembering a grand total across calls: state shared by its procedures.
#[derive(Default)]
struct Tally {
    grand_total: Mutex<i64>,
}

impl Tally {
    fn add(&self, n: i64) -> i64 {
        let mut total = self.grand_total.lock().unwrap_or_else(|e| e.into_inner());
        *total += n;
        *total
    }
}

#[omnirelay::service(name = "tally", encoding = "json")]
impl Tally {
    /// `tally::sum`: a client stream; answers the sum of the numbers sent.
    #[procedure]
    async fn sum(&self, request: Request<Streaming<i64>>) -> Result<Response<i64>> {
        let mut numbers = request.into_body();
        let mut sum = 0;
        while let Some(n) = numbers.message().await? {
            sum += n;
            self.add(n);
        }
        Ok(Response::new(sum))
    }

    /// `tally::running`: duplex; answers each number with the grand total so far.
    #[procedure(name = "running")]
    async fn running_total(
        self: std::sync::Arc<Self>,
        request: Request<Streaming<i64>>,
    ) -> Result<Response<Streaming<i64>>> {
        let totals = request.into_body().map(move |n| n.map(|n| self.add(n)));
        Ok(Response::new(Streaming::new(totals)))
    }
}

/// A typed client for the procedures above: the generic client with the JSON codec, and the
/// procedure names from the procedures' own constants.
struct ExampleClient {
    inner: Client<JsonCodec>,
}

impl ExampleClient {
    fn new(config: ClientConfig) -> Self {
        ExampleClient {
            inner: Client::with_codec(config, JsonCodec, Encoding::Json),
        }
    }

    fn options() -> CallOptions {
        CallOptions::new().ttl(Duration::from_secs(5))
    }

    async fn greet(&self, name: &str) -> Result<String> {
        let request = Greeting {
            name: name.to_owned(),
        };
        let response = self.inner.unary(greet::NAME, &request, Self::options());
        Ok(response.await?.into_body())
    }

    async fn append(&self, text: &str) -> Result<()> {
        let event = Event {
            text: text.to_owned(),
        };
        self.inner
            .oneway(append::NAME, &event, Self::options())
            .await
    }

    async fn countdown(&self, from: u32) -> Result<Vec<u32>> {
        let response = self
            .inner
            .server_stream(countdown::NAME, &from, Self::options())
            .await?;
        collect(response.into_body()).await
    }

    async fn sum(&self, numbers: Vec<i64>) -> Result<i64> {
        let response = self
            .inner
            .client_stream(
                "tally::sum",
                futures::stream::iter(numbers),
                Self::options(),
            )
            .await?;
        Ok(response.into_body())
    }

    async fn running(&self, numbers: Vec<i64>) -> Result<Vec<i64>> {
        let response = self
            .inner
            .duplex(
                "tally::running",
                futures::stream::iter(numbers),
                Self::options(),
            )
            .await?;
        collect(response.into_body()).await
    }
}

async fn collect<T>(mut stream: Streaming<T>) -> Result<Vec<T>> {
    let mut items = Vec::new();
    while let Some(item) = stream.message().await? {
        items.push(item);
    }
    Ok(items)
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // What the macros declared, known at compile time.
    println!("procedures declared at compile time:");
    let free = [greet::INFO, append::INFO, countdown::INFO];
    for info in free.iter().chain(Tally::PROCEDURES) {
        let encodings: Vec<&str> = info.encodings().iter().map(|e| e.as_str()).collect();
        println!(
            "  {:<14} {:<13} encodings {} aliases {:?}",
            info.name(),
            info.kind().as_str(),
            encodings.join(","),
            info.aliases()
        );
    }

    // The server: free functions one by one or as a list, and the service with its state.
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let server = Dispatcher::builder("macros-example")
        .inbound(GrpcInbound::new(loopback))
        .inbound(HttpInbound::new(loopback))
        .register(greet)
        .register(omnirelay::procedures![append, countdown])
        .register(Tally::default())
        .build()?;
    server.start().await?;
    let grpc = server
        .addr(Transport::Grpc)
        .ok_or("the gRPC inbound did not start")?;
    let http = server
        .addr(Transport::Http)
        .ok_or("the HTTP inbound did not start")?;
    println!("serving over gRPC on {grpc} and YARPC-HTTP on {http}");

    let over_grpc = Dispatcher::builder("macros-caller")
        .outbound(
            "macros-example",
            GrpcOutbound::new(format!("http://{grpc}"))?,
        )
        .build()?;
    let over_http = Dispatcher::builder("macros-caller")
        .outbound(
            "macros-example",
            HttpOutbound::new(format!("http://{http}"))?,
        )
        .build()?;
    for (pass, (transport, caller)) in [("gRPC", &over_grpc), ("HTTP", &over_http)]
        .into_iter()
        .enumerate()
    {
        println!("-- over {transport}");
        let client = ExampleClient::new(caller.client_config("macros-example")?);
        exercise(&client, pass as i64).await?;
    }

    server.stop().await?;
    println!("stopped cleanly");
    Ok(())
}

/// Calls every procedure once. `pass` counts earlier runs, whose numbers the tally remembers.
async fn exercise(
    client: &ExampleClient,
    pass: i64,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let greeting = client.greet("macros").await?;
    println!("unary:         {greeting}");
    assert_eq!(greeting, "hello, macros!");

    let text = format!("started {pass}");
    client.append(&text).await?;
    let mut logged = false;
    for _ in 0..200 {
        if LOG
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&text)
        {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("oneway:        logged = {logged}");
    if !logged {
        return Err("the oneway handler did not run".into());
    }

    let numbers = client.countdown(3).await?;
    println!("server stream: {numbers:?}");
    assert_eq!(numbers, [3, 2, 1, 0]);

    let sum = client.sum(vec![1, 2, 3, 4]).await?;
    println!("client stream: sum = {sum}");
    assert_eq!(sum, 10);

    // Each pass adds 10 (sum) and 10 (running) to the grand total.
    let base = 20 * pass + 10;
    let totals = client.running(vec![5, 5]).await?;
    println!("duplex:        running totals = {totals:?}");
    assert_eq!(totals, [base + 5, base + 10]);
    Ok(())
}
