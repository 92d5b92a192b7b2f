//! The consumer side of a stream: [`RemoteStream`], over an [`Inbox`]
//! (where flow control and decoding live).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::error::{Error, Result};
use crate::ipc::Channel;
use crate::ipc::channel::Direction;
use crate::ipc::credit::Window;
use crate::stream::inbox::{Ended, Inbox};

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
        self.raw.poll_next(cx)
    }
}

impl<T> std::fmt::Debug for RemoteStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStream")
            .field("actor", self.raw.inbox.channel().peer())
            .field("id", &self.raw.inbox.id())
            .finish_non_exhaustive()
    }
}

/// A stream call's items, untyped, and how it ends.
pub(crate) struct RawStream {
    inbox: Inbox,
    /// Until the first item (or the end) arrives: when the open times out.
    first_by: Option<Pin<Box<Sleep>>>,
    /// Told how the stream ended (dropped unfinished: nothing is sent).
    on_end: Option<oneshot::Sender<Result<()>>>,
    /// The remote function was told to stop (or is done).
    stopped: bool,
}

impl RawStream {
    /// Opens stream `func(args)` on `channel`; the first item must come
    /// before `first_by`, if set.
    pub(crate) async fn open(
        channel: &Channel,
        func: &str,
        args: &[u8],
        window: Window,
        first_by: Option<Instant>,
    ) -> Result<Self> {
        let (id, items, granted) = channel.open_stream(func, args, window).await?;
        Ok(RawStream {
            inbox: Inbox::new(
                channel.clone(),
                id,
                Direction::ToCaller,
                items,
                granted,
                window,
            ),
            first_by: first_by.map(|at| Box::pin(tokio::time::sleep_until(at))),
            on_end: None,
            stopped: false,
        })
    }

    /// Reports the stream's end to `on_end`.
    pub(crate) fn on_end(&mut self, on_end: oneshot::Sender<Result<()>>) {
        self.on_end = Some(on_end);
    }

    fn poll_next<T: DeserializeOwned>(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        if self.stopped && self.inbox.ended() == Ended::No {
            return Poll::Ready(None);
        }
        let polled = self.inbox.poll_next(cx);
        if polled.is_pending() {
            if let Some(first_by) = &mut self.first_by {
                ready!(first_by.as_mut().poll(cx));
                self.first_by = None;
                self.stop();
                self.report(Err(Error::Timeout));
                return Poll::Ready(Some(Err(Error::Timeout)));
            }
            return Poll::Pending;
        }
        if self.first_by.is_some() {
            self.first_by = None;
        }
        let item = ready!(polled);
        match (&item, self.inbox.ended()) {
            (_, Ended::No) => {}
            (Some(Err(error)), Ended::Broken) => {
                let error = error.clone();
                self.stop();
                self.report(Err(error));
            }
            (Some(Err(error)), Ended::Yes) => {
                let error = error.clone();
                self.stopped = true;
                self.report(Err(error));
            }
            (_, _) => {
                self.stopped = true;
                self.report(Ok(()));
            }
        }
        Poll::Ready(item)
    }

    /// Tells the remote function to stop.
    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.inbox.channel().abandon(self.inbox.id());
        }
    }

    fn report(&mut self, outcome: Result<()>) {
        if let Some(on_end) = self.on_end.take() {
            let _ = on_end.send(outcome);
        }
    }

    /// Reads and discards the rest of the stream.
    pub(crate) async fn drain(mut self) {
        if !self.stopped {
            let outcome = self.inbox.drain().await;
            self.stopped = true;
            self.report(outcome);
        }
    }
}

impl Drop for RawStream {
    fn drop(&mut self) {
        self.stop();
    }
}
