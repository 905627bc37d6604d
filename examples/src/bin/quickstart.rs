//! Quickstart: serve the echo service over gRPC and YARPC-HTTP, call it through the generated
//! client in all four shapes over each transport, then stop cleanly.
//!
//! ```text
//! cargo run -p omnirelay-examples --bin quickstart [-- --http-port 8080 --grpc-port 50051]
//! ```
//!
//! Both ports default to 0 (a free port). While it runs, the HTTP inbound answers curl too; the
//! program prints a curl command for it.

use std::net::{Ipv4Addr, SocketAddr};

use clap::Parser;
use omnirelay::transport::grpc::{GrpcInbound, GrpcOutbound};
use omnirelay::transport::http::{HttpInbound, HttpOutbound};
use omnirelay::{Dispatcher, Transport};
use omnirelay_examples::EchoService;
use omnirelay_examples::echo::{EchoClient, EchoProcedures, EchoRequest, echo_names};

#[derive(Parser, Debug)]
#[command(about = "OmniRelay quickstart: the echo service over gRPC and YARPC-HTTP")]
struct Args {
    /// The gRPC port (127.0.0.1); 0 picks a free one.
    #[arg(long = "grpc-port", default_value_t = 0)]
    grpc_port: u16,
    /// The YARPC-HTTP port (127.0.0.1); 0 picks a free one.
    #[arg(long = "http-port", alias = "http_port", default_value_t = 0)]
    http_port: u16,
}

fn request(message: &str, repeat: u32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        repeat,
    }
}

/// Calls the echo service in all four shapes and prints what came back.
async fn call_all(client: &EchoClient, transport: &str) -> omnirelay::Result<()> {
    println!("-- over {transport}");
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
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // The server: one dispatcher, a gRPC and an HTTP inbound, the echo procedures.
    let server = Dispatcher::builder("echo")
        .inbound(GrpcInbound::new(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            args.grpc_port,
        ))))
        .inbound(HttpInbound::new(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            args.http_port,
        ))))
        .register(EchoProcedures::new(EchoService))
        .build()?;
    server.start().await?;
    let grpc = server
        .addr(Transport::Grpc)
        .ok_or("the gRPC inbound did not start")?;
    let http = server
        .addr(Transport::Http)
        .ok_or("the HTTP inbound did not start")?;
    println!("serving echo over gRPC on {grpc} and YARPC-HTTP on {http}");
    for procedure in server.registry().procedures() {
        println!("  {} ({})", procedure.name(), procedure.kind());
    }

    // The clients: a dispatcher per transport with an outbound for service "echo", and the
    // generated client on each.
    let over_grpc = Dispatcher::builder("quickstart")
        .outbound("echo", GrpcOutbound::new(format!("http://{grpc}"))?)
        .build()?;
    call_all(&EchoClient::new(over_grpc.client_config("echo")?), "gRPC").await?;
    let over_http = Dispatcher::builder("quickstart")
        .outbound("echo", HttpOutbound::new(format!("http://{http}"))?)
        .build()?;
    call_all(
        &EchoClient::new(over_http.client_config("echo")?),
        "YARPC-HTTP",
    )
    .await?;

    println!(
        "-- the same unary call with curl:\n\
         curl -X POST -H 'Rpc-Caller: curl' -H 'Rpc-Service: echo' \\\n  \
         -H 'Rpc-Procedure: {}' -H 'Rpc-Encoding: json' \\\n  \
         -H 'Context-TTL-MS: 1000' -d '{{\"message\": \"hi\"}}' http://{http}/",
        echo_names::ECHO
    );

    server.stop().await?;
    println!("stopped cleanly");
    Ok(())
}
