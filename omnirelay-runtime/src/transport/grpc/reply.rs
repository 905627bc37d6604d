//! [`Reply`]: the message stream a gRPC inbound call hands tonic to encode.
//!
//! A unary (or client-streaming) call answers one message, perhaps followed by the trailer item
//! that carries application trailers; that reply is held inline, without the allocation and the
//! virtual calls of a boxed stream. A streaming reply is the handler's stream, boxed.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

/// One item of a reply: a message, or a status (an error, or `Ok` with trailers) that ends it.
pub(super) type ReplyItem = Result<Bytes, tonic::Status>;

/// A boxed reply stream: what a streaming handler's reply becomes.
pub(super) type BoxedReply = Pin<Box<dyn Stream<Item = ReplyItem> + Send>>;

/// The reply stream of one call.
pub(super) enum Reply {
    /// One message, then the trailer item when there is one.
    Single {
        message: Option<Bytes>,
        trailer: Option<ReplyItem>,
    },
    /// A stream of messages.
    Stream(BoxedReply),
}

impl Reply {
    /// `message`, then `trailer`.
    pub(super) fn single(message: Bytes, trailer: Option<ReplyItem>) -> Self {
        Reply::Single {
            message: Some(message),
            trailer,
        }
    }
}

impl Stream for Reply {
    type Item = ReplyItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ReplyItem>> {
        match self.get_mut() {
            Reply::Single { message, trailer } => {
                Poll::Ready(message.take().map(Ok).or_else(|| trailer.take()))
            }
            Reply::Stream(stream) => stream.as_mut().poll_next(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Reply::Single { message, trailer } => {
                let n = usize::from(message.is_some()) + usize::from(trailer.is_some());
                (n, Some(n))
            }
            Reply::Stream(stream) => stream.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_single_reply_yields_its_message_then_its_trailer() {
        let trailer = Err(tonic::Status::ok(""));
        let mut reply = Reply::single(Bytes::from_static(b"m"), Some(trailer));
        assert_eq!(reply.size_hint(), (2, Some(2)));
        assert_eq!(reply.next().await.unwrap().unwrap(), "m");
        assert_eq!(
            reply.next().await.unwrap().unwrap_err().code(),
            tonic::Code::Ok
        );
        assert!(reply.next().await.is_none());
        let mut bare = Reply::single(Bytes::new(), None);
        assert_eq!(bare.size_hint(), (1, Some(1)));
        assert_eq!(bare.next().await.unwrap().unwrap(), "");
        assert!(bare.next().await.is_none());
    }

    #[tokio::test]
    async fn a_stream_reply_passes_its_items_through() {
        let items =
            futures::stream::iter([Ok(Bytes::from_static(b"a")), Ok(Bytes::from_static(b"b"))]);
        let reply = Reply::Stream(Box::pin(items));
        let got: Vec<_> = reply.map(|item| item.unwrap()).collect().await;
        assert_eq!(got, ["a", "b"]);
    }
}
