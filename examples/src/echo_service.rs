//! The echo service the quickstart and the integration tests serve.

use futures::StreamExt;
use omnirelay::{Error, Request, Response, Result, Streaming};

use crate::echo::{Echo, EchoRequest, EchoResponse};

/// Echoes messages in all four gRPC shapes. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoService;

impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>> {
        let message = request.into_body().message;
        Ok(Response::new(EchoResponse { message, index: 0 }))
    }

    async fn expand(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Streaming<EchoResponse>>> {
        let EchoRequest { message, repeat } = request.into_body();
        if repeat > 10_000 {
            return Err(Error::invalid_argument(format!(
                "repeat is {repeat}; at most 10000 responses are sent"
            )));
        }
        let stream = futures::stream::iter((0..repeat).map(move |index| {
            Ok(EchoResponse {
                message: message.clone(),
                index,
            })
        }));
        Ok(Response::new(Streaming::new(stream)))
    }

    async fn collect(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>> {
        let mut requests = request.into_body();
        let mut words = Vec::new();
        while let Some(request) = requests.message().await? {
            words.push(request.message);
        }
        let index = u32::try_from(words.len()).unwrap_or(u32::MAX);
        Ok(Response::new(EchoResponse {
            message: words.join(" "),
            index,
        }))
    }

    async fn chat(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Streaming<EchoResponse>>> {
        let responses = request.into_body().enumerate().map(|(index, item)| {
            item.map(|r| EchoResponse {
                message: r.message,
                index: u32::try_from(index).unwrap_or(u32::MAX),
            })
        });
        Ok(Response::new(Streaming::new(responses)))
    }
}
