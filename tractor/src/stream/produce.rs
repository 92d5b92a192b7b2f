//! The producer side of a generator-form stream: buy credit in bulk, pull
//! items for as long as the stream has them ready (and the credit and the
//! batch allow), encode them into one batch, send it as one frame, repeat.
//!
//! A batch ends when the stream would wait, so a slow stream's items go
//! out one by one as they come, and a fast one's go in frames of many: no
//! allocation, lock or atomic operation per item.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::Stream;
use serde::Serialize;

use crate::error::Error;
use crate::ipc::channel::Direction;
use crate::ipc::frame;
use crate::stream::context::RawContext;
use crate::stream::outlet::{BATCH_BYTES, BATCH_ITEMS};

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
    let mut batch = BytesMut::new();
    loop {
        let credit = context.credit.take_up_to(BATCH_ITEMS).await;
        if credit == 0 {
            return Ok(());
        }
        // The first item may be waited for; the rest only if ready.
        let mut ended = next_item(&mut *source).await.is_none();
        let mut n = 0;
        let mut panicked = None;
        // Some bytes are left (or no item credit would have come); the
        // batch may overshoot them by its last item.
        let room = usize::try_from(context.credit.bytes_left())
            .unwrap_or(0)
            .min(BATCH_BYTES);
        let mut unencodable = None;
        while !ended {
            let before = batch.len();
            if let Err(err) = source.encode_item(&mut batch) {
                // The items before it still go; then the stream fails.
                batch.truncate(before);
                unencodable = Some(err);
                break;
            }
            n += 1;
            if n == credit || batch.len() >= room {
                break;
            }
            // A panic pulling the next item must not take the batch with
            // it: the items before it go first.
            let polled = std::future::poll_fn(|cx| {
                Poll::Ready(std::panic::catch_unwind(AssertUnwindSafe(|| {
                    source.poll_item(cx)
                })))
            })
            .await;
            match polled {
                Ok(Poll::Ready(Some(()))) => {}
                Ok(Poll::Ready(None)) => ended = true,
                Ok(Poll::Pending) => break,
                Err(panic) => {
                    panicked = Some(panic);
                    break;
                }
            }
        }
        context.credit.give_back(credit - n);
        if n > 0 {
            let sent = context
                .channel
                .send_items(Direction::ToCaller, context.id, n, |buf| {
                    buf.extend_from_slice(&batch);
                    Ok(())
                })
                .await;
            match sent {
                Ok(()) => context.credit.spend_bytes(batch.len()),
                Err(Error::Disconnected { .. }) => return Ok(()),
                Err(err) => return Err(err),
            }
            batch.clear();
        }
        if let Some(panic) = panicked {
            std::panic::resume_unwind(panic);
        }
        if let Some(err) = unencodable {
            return Err(err);
        }
        if ended {
            return Ok(());
        }
    }
}

fn next_item(source: &mut dyn ItemSource) -> impl Future<Output = Option<()>> + '_ {
    std::future::poll_fn(move |cx| source.poll_item(cx))
}
