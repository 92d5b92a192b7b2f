//! The consumer side of a stream: [`RemoteStream`].
//!
//! Items arrive from the channel's reader in runs on a queue that cannot
//! grow past the window: the producer needs credit to send, and the reader
//! fails a stream whose producer sends past it (see `ipc::credit`). Each item is decoded straight from the read buffer. Credit goes
//! back in batches of half a window, so the producer is never idle waiting
//! for it while the consumer keeps up.

use std::marker::PhantomData;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::ipc::credit::Granted;
use crate::ipc::{Channel, Delivery};

/// A stream of `T`s produced in another actor.
///
/// Yields `Ok(item)` for every item the remote function produced, in
/// order; if the function fails (an `Err`, a panic, its actor cancelled or
/// gone), one `Err` after the items already sent; then the stream ends.
/// Dropping it cancels the remote function.
///
/// ```
/// use futures::StreamExt;
///
/// #[tractor::stream]
/// fn count_to(n: u32) -> impl futures::Stream<Item = u32> {
///     futures::stream::iter(0..n)
/// }
///
/// # async fn example(portal: tractor::Portal) -> tractor::Result<()> {
/// let mut numbers = portal.open_stream(count_to::call(10)).await?;
/// while let Some(n) = numbers.next().await {
///     println!("{}", n?);
/// }
/// # Ok(())
/// # }
/// ```
pub struct RemoteStream<T> {
    raw: RawStream,
    _item: PhantomData<fn() -> T>,
}

impl<T> RemoteStream<T> {
    pub(crate) fn new(raw: RawStream) -> Self {
        RemoteStream {
            raw,
            _item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Stream for RemoteStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let item = ready!(self.raw.poll_item(cx, |bytes| {
            postcard::from_bytes(bytes).map_err(|err| {
                Error::codec(
                    format!("a stream item as {}", std::any::type_name::<T>()),
                    err,
                )
            })
        }));
        Poll::Ready(item.map(|item| item.and_then(|decoded| decoded)))
    }
}

impl<T> std::fmt::Debug for RemoteStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStream")
            .field("actor", self.raw.channel.peer())
            .field("id", &self.raw.id)
            .finish_non_exhaustive()
    }
}

/// A stream's undecoded items and its flow control.
pub(crate) struct RawStream {
    channel: Channel,
    id: u64,
    items: mpsc::UnboundedReceiver<Delivery>,
    /// What we allowed the producer so far.
    granted: Arc<Granted>,
    /// The run being read: the shared buffer and the items left in it.
    run: Option<(Bytes, std::vec::IntoIter<Range<usize>>)>,
    window: u32,
    /// Items taken since credit was last returned.
    taken: u32,
    done: bool,
    /// Told how the stream ended (dropped unfinished: nothing is sent).
    on_end: Option<oneshot::Sender<Result<()>>>,
}

impl RawStream {
    /// Opens stream `func(args)` on `channel`.
    pub(crate) async fn open(
        channel: &Channel,
        func: &str,
        args: &[u8],
        window: u32,
    ) -> Result<Self> {
        let (id, items, granted) = channel.open_stream(func, args, window).await?;
        Ok(RawStream {
            channel: channel.clone(),
            id,
            items,
            granted,
            run: None,
            window,
            taken: 0,
            done: false,
            on_end: None,
        })
    }

    /// Reports the stream's end to `on_end`.
    pub(crate) fn on_end(&mut self, on_end: oneshot::Sender<Result<()>>) {
        self.on_end = Some(on_end);
    }

    /// The next item, given to `read` as its encoded bytes.
    pub(crate) fn poll_item<R>(
        &mut self,
        cx: &mut Context<'_>,
        mut read: impl FnMut(&[u8]) -> R,
    ) -> Poll<Option<Result<R>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            if let Some((chunk, items)) = &mut self.run {
                if let Some(item) = items.next() {
                    let value = read(&chunk[item]);
                    self.took_one();
                    return Poll::Ready(Some(Ok(value)));
                }
                self.run = None;
            }
            match ready!(self.items.poll_recv(cx)) {
                Some(Delivery::Items { chunk, items }) => {
                    self.run = Some((chunk, items.into_iter()))
                }
                Some(Delivery::End) => {
                    self.finish(Ok(()));
                    return Poll::Ready(None);
                }
                Some(Delivery::Failed(error)) => {
                    self.finish(Err(error.clone()));
                    return Poll::Ready(Some(Err(error)));
                }
                // The channel dropped the queue without a word: only when
                // it closed under us.
                None => {
                    let error = Error::Disconnected {
                        actor: self.channel.peer().clone(),
                    };
                    self.finish(Err(error.clone()));
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }

    /// Counts a taken item, returning credit every half window.
    fn took_one(&mut self) {
        self.taken += 1;
        if self.taken >= self.window.div_ceil(2) {
            self.granted.grant(self.taken);
            self.channel.send_credit(self.id, self.taken);
            self.taken = 0;
        }
    }

    fn finish(&mut self, outcome: Result<()>) {
        self.done = true;
        if let Some(on_end) = self.on_end.take() {
            let _ = on_end.send(outcome);
        }
    }

    /// Reads and discards the rest of the stream.
    pub(crate) async fn drain(mut self) {
        while std::future::poll_fn(|cx| self.poll_item(cx, |_| ()))
            .await
            .is_some()
        {}
    }
}

impl Drop for RawStream {
    fn drop(&mut self) {
        if !self.done {
            self.channel.abandon(self.id);
        }
    }
}
