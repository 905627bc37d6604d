//! Quickstart: serve the echo service over gRPC and call it through the generated client in all
//! four shapes, then stop cleanly.
//!
//! ```text
//! cargo run -p omnirelay-examples --bin quickstart
//! ```

use std::net::{Ipv4Addr, SocketAddr};

use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::{Dispatcher, Transport};
use omnirelay_examples::EchoService;
use omnirelay_examples::echo::{EchoClient, EchoProcedures, EchoRequest};

fn request(message: &str, repeat: u32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        repeat,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server: one dispatcher, one gRPC inbound on a free port, the echo procedures.
    let server = Dispatcher::builder("echo")
        .inbound(GrpcInbound::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))
        .register(EchoProcedures::new(EchoService))
        .build()?;
    server.start().await?;
    let addr = server
        .addr(Transport::Grpc)
        .ok_or("the gRPC inbound did not start")?;
    println!("serving echo over gRPC on {addr}");
    for procedure in server.registry().procedures() {
        println!("  {} ({})", procedure.name(), procedure.kind());
    }

    // The client: a dispatcher with an outbound for service "echo", and the generated client.
    let caller = Dispatcher::builder("quickstart")
        .outbound("echo", GrpcOutbound::new(format!("http://{addr}"))?)
        .build()?;
    let client = EchoClient::new(caller.client_config("echo")?);

    let unary = client.echo(request("hello", 0)).await?;
    println!("unary:         {:?}", unary.body.message);

    let mut expanded = client.expand(request("again", 3)).await?.into_body();
    let mut seen = Vec::new();
    while let Some(response) = expanded.message().await? {
        seen.push(format!("{}#{}", response.message, response.index));
    }
    println!("server stream: {}", seen.join(", "));

    let words = ["one", "two", "three"].map(|w| request(w, 0));
    let collected = client.collect(futures::stream::iter(words)).await?;
    println!(
        "client stream: {:?} ({} messages)",
        collected.body.message, collected.body.index
    );

    let words = ["ping", "pong"].map(|w| request(w, 0));
    let mut chat = client.chat(futures::stream::iter(words)).await?.into_body();
    let mut replies = Vec::new();
    while let Some(response) = chat.message().await? {
        replies.push(format!("{}#{}", response.message, response.index));
    }
    println!("duplex:        {}", replies.join(", "));

    server.stop().await?;
    println!("stopped cleanly");
    Ok(())
}
