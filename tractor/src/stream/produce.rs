//! The producer side of a generator-form stream: pull an item, send it,
//! repeat, spending one unit of credit per item.
//!
//! Items are encoded straight into the connection's outgoing buffer: no
//! allocation per item.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::Stream;
use serde::Serialize;

use crate::error::Error;
use crate::ipc::frame;
use crate::stream::context::RawContext;

/// A typed stream behind an untyped face: it holds each item it pulls
/// until asked to encode it.
pub(crate) trait ItemSource: Send {
    /// Pulls the next item (`Some`) or learns the end (`None`).
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>>;
    /// Encodes the item pulled last.
    fn encode_item(&mut self, buf: &mut BytesMut) -> Result<(), Error>;
}

struct Source<S: Stream> {
    stream: Pin<Box<S>>,
    held: Option<S::Item>,
}

impl<S> ItemSource for Source<S>
where
    S: Stream + Send,
    S::Item: Serialize + Send,
{
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.stream.as_mut().poll_next(cx).map(|item| {
            self.held = item;
            self.held.as_ref().map(|_| ())
        })
    }

    fn encode_item(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        match self.held.take() {
            Some(item) => frame::encode_into(buf, &item),
            None => Ok(()),
        }
    }
}

/// Erases `stream`'s type.
pub(crate) fn source<S>(stream: S) -> Box<dyn ItemSource>
where
    S: Stream + Send + 'static,
    S::Item: Serialize + Send,
{
    Box::new(Source {
        stream: Box::pin(stream),
        held: None,
    })
}

/// Sends `source`'s items until it ends (`Ok`), an item fails to encode
/// (`Err`), or the consumer goes away (`Ok`: nobody is listening).
pub(crate) async fn produce(
    context: &RawContext,
    mut source: Box<dyn ItemSource>,
) -> Result<(), Error> {
    loop {
        if !context.credit.take().await {
            return Ok(());
        }
        if next_item(&mut *source).await.is_none() {
            return Ok(());
        }
        match context
            .channel
            .send_yield(context.id, |buf| source.encode_item(buf))
            .await
        {
            Ok(()) => {}
            Err(Error::Disconnected { .. }) => return Ok(()),
            Err(err) => return Err(err),
        }
    }
}

fn next_item(source: &mut dyn ItemSource) -> impl Future<Output = Option<()>> + '_ {
    std::future::poll_fn(move |cx| source.poll_item(cx))
}
