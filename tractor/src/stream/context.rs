//! [`StreamContext`]: the producer's handle in the context form of
//! `#[tractor::stream]`.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ipc::Credit;
use crate::ipc::channel::Direction;
use crate::ipc::{Channel, frame};

/// The sending end of a stream, given to a
/// `#[tractor::stream] async fn f(ctx: StreamContext<T>, ..)`.
///
/// Clone it to push from several tasks at once; every item waits for flow
/// control credit, so `send_yield` slows down to the consumer's pace.
///
/// ```
/// use tractor::StreamContext;
///
/// #[tractor::stream]
/// async fn ticks(ctx: StreamContext<u64>, count: u64) -> tractor::Result<()> {
///     for tick in 0..count {
///         ctx.send_yield(tick).await?;
///     }
///     Ok(())
/// }
/// ```
pub struct StreamContext<T> {
    raw: RawContext,
    _item: PhantomData<fn(T)>,
}

/// What the producing actor knows of a stream, untyped.
#[derive(Clone)]
pub(crate) struct RawContext {
    pub(crate) channel: Channel,
    pub(crate) id: u64,
    pub(crate) credit: Arc<Credit>,
    /// One `send_yield` at a time: a frame may start only while bytes are
    /// left, so the one before it must have spent its own first.
    pub(crate) sending: Arc<tokio::sync::Mutex<()>>,
}

impl<T> StreamContext<T> {
    pub(crate) fn new(raw: RawContext) -> Self {
        StreamContext {
            raw,
            _item: PhantomData,
        }
    }
}

impl<T: Serialize> StreamContext<T> {
    /// Sends `item` to the consumer, once it has room for it.
    ///
    /// Fails with [`Error::Disconnected`] (or [`Error::Cancelled`]) once the
    /// consumer is gone: stop producing then.
    pub async fn send_yield(&self, item: T) -> Result<()> {
        let _sending = self.raw.sending.lock().await;
        if !self.raw.credit.take().await {
            return Err(Error::Cancelled);
        }
        let mut size = 0;
        let sent = self
            .raw
            .channel
            .send_items(Direction::ToCaller, self.raw.id, 1, |buf| {
                let start = buf.len();
                frame::encode_into(buf, &item)?;
                size = buf.len() - start;
                Ok(())
            })
            .await;
        match &sent {
            Ok(()) => self.raw.credit.spend_bytes(size),
            Err(_) => self.raw.credit.give_back(1),
        }
        sent
    }
}

impl<T> Clone for StreamContext<T> {
    fn clone(&self) -> Self {
        StreamContext {
            raw: self.raw.clone(),
            _item: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for StreamContext<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamContext")
            .field("consumer", self.raw.channel.peer())
            .field("id", &self.raw.id)
            .finish_non_exhaustive()
    }
}
