//! Streaming types shared by every transport.
//!
//! Streams are pull-based [`futures::Stream`]s (tonic style): a transport reads the next inbound
//! message only when the handler asks for it, and sends the next outbound message only when the
//! peer's flow-control window allows, so backpressure crosses the wire end to end.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::error::Result;
use crate::meta::Headers;

/// A boxed, sendable stream of messages or errors.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T>> + Send + 'static>>;

/// A stream of messages: what a client-streaming or duplex handler reads, and what a
/// server-streaming or duplex call returns. It ends after the last message (`None`) or with an
/// error, after which it yields nothing more.
///
/// A stream a client receives also carries the server's trailers: [`Streaming::trailers`] returns
/// them once the stream has ended (gRPC sends them after the last message). Dropping a stream
/// before its end cancels the call.
pub struct Streaming<T> {
    inner: BoxStream<T>,
    done: bool,
    trailers: Option<TrailerSlot>,
}

/// Where a transport puts a stream's trailers when it reads them.
pub(crate) type TrailerSlot = Arc<OnceLock<Headers>>;

/// A stream of encoded messages, as transports carry them.
pub type ByteStream = Streaming<Bytes>;

impl<T> Streaming<T> {
    /// Wraps any stream of results.
    pub fn new(stream: impl Stream<Item = Result<T>> + Send + 'static) -> Self {
        Streaming {
            inner: Box::pin(stream),
            done: false,
            trailers: None,
        }
    }

    /// A stream whose trailers the transport will put in `slot`.
    pub(crate) fn with_trailers(
        stream: impl Stream<Item = Result<T>> + Send + 'static,
        slot: TrailerSlot,
    ) -> Self {
        Streaming {
            trailers: Some(slot),
            ..Streaming::new(stream)
        }
    }

    /// The trailers the server sent after the last message: `None` until the stream has ended,
    /// and for streams that crossed no transport.
    pub fn trailers(&self) -> Option<&Headers> {
        self.trailers.as_ref()?.get()
    }

    /// A stream that yields nothing.
    pub fn empty() -> Self
    where
        T: Send + 'static,
    {
        Streaming::new(futures::stream::empty())
    }

    /// Waits for the next message: `Ok(None)` at the end of the stream.
    pub async fn message(&mut self) -> Result<Option<T>> {
        self.next().await.transpose()
    }

    /// Wraps the stream in another built by `wrap` (one that watches the messages, the end, or
    /// the stream being dropped), keeping the trailers: [`Streaming::trailers`] of the result
    /// reads the same trailers as this stream's. What middleware uses to act when a stream ends.
    pub fn wrap<U, S>(self, wrap: impl FnOnce(Streaming<T>) -> S) -> Streaming<U>
    where
        S: Stream<Item = Result<U>> + Send + 'static,
    {
        let trailers = self.trailers.clone();
        Streaming {
            trailers,
            ..Streaming::new(wrap(self))
        }
    }

    /// Turns each message into another with `f`, which may fail (for example a decoder).
    pub fn and_then_map<U>(self, mut f: impl FnMut(T) -> Result<U> + Send + 'static) -> Streaming<U>
    where
        T: 'static,
        U: 'static,
    {
        let trailers = self.trailers.clone();
        Streaming {
            trailers,
            ..Streaming::new(self.map(move |item| item.and_then(&mut f)))
        }
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = futures::ready!(self.inner.as_mut().poll_next(cx));
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        Poll::Ready(item)
    }
}

impl<T> std::fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("done", &self.done)
            .finish()
    }
}

/// Ends `stream` with a `deadline-exceeded` error if it has not finished by `deadline`.
pub(crate) fn with_deadline<T: Send + 'static>(
    stream: Streaming<T>,
    deadline: Option<std::time::Instant>,
    what: &'static str,
) -> Streaming<T> {
    let Some(deadline) = deadline else {
        return stream;
    };
    let sleep = tokio::time::sleep_until(deadline.into());
    let state = (stream, Box::pin(sleep), false);
    Streaming::new(futures::stream::unfold(
        state,
        move |(mut s, mut sleep, done)| async move {
            if done {
                return None;
            }
            tokio::select! {
                biased;
                item = s.next() => item.map(|item| (item, (s, sleep, false))),
                () = &mut sleep => Some((
                    Err(crate::Error::deadline_exceeded(format!("{what} passed its deadline"))),
                    (s, sleep, true),
                )),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[tokio::test]
    async fn stops_after_an_error() {
        let mut s = Streaming::new(futures::stream::iter(vec![
            Ok(1),
            Err(Error::internal("boom")),
            Ok(2),
        ]));
        assert_eq!(s.message().await.unwrap(), Some(1));
        assert!(s.message().await.is_err());
        assert_eq!(s.message().await.unwrap(), None);
    }
}
