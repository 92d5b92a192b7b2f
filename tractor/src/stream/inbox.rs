//! The receiving half of a stream, whichever way it flows: the items of a
//! `RemoteStream`, or what one side of a context's `MsgStream` reads.
//!
//! Items arrive from the channel's reader in runs of batches on a queue
//! that cannot grow past the window: the sender needs credit to send, and
//! the reader fails a stream whose sender sends past it (see
//! `ipc::credit`). Each item is decoded in place, straight from the read
//! buffer, one after the other (postcard values are self-delimiting), so
//! an item costs its decoding and a counter. Credit goes back in batches
//! of half a window, so the sender is never idle waiting for it while the
//! consumer keeps up.

use std::ops::Range;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::ipc::channel::Direction;
use crate::ipc::credit::{Granted, Window};
use crate::ipc::{Channel, Delivery};

/// How a stream's receiving half ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Still open.
    No,
    /// The sender ended it (or failed it: the error was the last item).
    Yes,
    /// An item did not decode: the rest of its batch cannot be read, so
    /// the stream was ended here; its owner tells the sender.
    Broken,
}

pub(crate) struct Inbox {
    channel: Channel,
    id: u64,
    direction: Direction,
    items: mpsc::UnboundedReceiver<Delivery>,
    /// What we allowed the sender so far.
    granted: Arc<Granted>,
    /// The run being read, its batches left, and the batch being read:
    /// `chunk[at..end]` holds its `left` items.
    chunk: Bytes,
    batches: std::vec::IntoIter<(Range<usize>, u32)>,
    at: usize,
    end: usize,
    left: u32,
    window: Window,
    /// Items (and their bytes) taken since credit was last returned.
    taken: u32,
    taken_bytes: u32,
    ended: Ended,
}

impl Inbox {
    pub(crate) fn new(
        channel: Channel,
        id: u64,
        direction: Direction,
        items: mpsc::UnboundedReceiver<Delivery>,
        granted: Arc<Granted>,
        window: Window,
    ) -> Self {
        Inbox {
            channel,
            id,
            direction,
            items,
            granted,
            chunk: Bytes::new(),
            batches: Vec::new().into_iter(),
            at: 0,
            end: 0,
            left: 0,
            window,
            taken: 0,
            taken_bytes: 0,
            ended: Ended::No,
        }
    }

    pub(crate) fn channel(&self) -> &Channel {
        &self.channel
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn ended(&self) -> Ended {
        self.ended
    }

    /// The next item decoded as `T`.
    pub(crate) fn poll_next<T: DeserializeOwned>(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<T>>> {
        self.poll_item(cx, |bytes| {
            postcard::take_from_bytes::<T>(bytes)
                .map(|(item, rest)| (item, bytes.len() - rest.len()))
                .map_err(|err| {
                    Error::codec(
                        format!("a stream item as {}", std::any::type_name::<T>()),
                        err,
                    )
                })
        })
    }

    /// The next item, decoded by `decode` from the bytes where it starts
    /// (it returns the value and how many bytes it used).
    fn poll_item<R>(
        &mut self,
        cx: &mut Context<'_>,
        decode: impl FnOnce(&[u8]) -> Result<(R, usize)>,
    ) -> Poll<Option<Result<R>>> {
        loop {
            if self.ended != Ended::No {
                return Poll::Ready(None);
            }
            if self.left > 0 {
                return Poll::Ready(Some(match decode(&self.chunk[self.at..self.end]) {
                    Ok((value, used)) => {
                        self.at += used;
                        self.left -= 1;
                        self.took(1, used);
                        Ok(value)
                    }
                    Err(error) => self.broken(error),
                }));
            }
            if self.at != self.end {
                let error = Error::Protocol(format!(
                    "stream {} sent {} bytes past the items of a batch",
                    self.id,
                    self.end - self.at
                ));
                return Poll::Ready(Some(self.broken(error)));
            }
            if let Some((range, n)) = self.batches.next() {
                (self.at, self.end, self.left) = (range.start, range.end, n);
                continue;
            }
            match ready!(self.poll_delivery(cx)) {
                Some(Ok(())) => {}
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }

    /// Takes the next delivery off the queue: `Some(Ok)` when a run of
    /// items is ready to read, `Some(Err)` for the failure that ended the
    /// stream, `None` for a normal end.
    fn poll_delivery(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<()>>> {
        let delivery = ready!(self.items.poll_recv(cx));
        Poll::Ready(match delivery {
            Some(Delivery::Items { chunk, batches }) => {
                self.chunk = chunk;
                self.batches = batches.into_iter();
                Some(Ok(()))
            }
            Some(Delivery::End) => {
                self.ended = Ended::Yes;
                None
            }
            Some(Delivery::Failed(error)) => {
                self.ended = Ended::Yes;
                Some(Err(error))
            }
            // The channel dropped the queue without a word: only when it
            // closed under us.
            None => {
                self.ended = Ended::Yes;
                Some(Err(Error::Disconnected {
                    actor: self.channel.peer().clone(),
                }))
            }
        })
    }

    fn broken<R>(&mut self, error: Error) -> Result<R> {
        tracing::warn!(peer = %self.channel.peer(), id = self.id, "ending a stream: {error}");
        self.ended = Ended::Broken;
        Err(error)
    }

    /// Counts `n` taken items of `bytes` bytes, returning credit every
    /// half window (of items or of bytes).
    #[inline]
    fn took(&mut self, n: u32, bytes: usize) {
        self.taken = self.taken.saturating_add(n);
        self.taken_bytes = self
            .taken_bytes
            .saturating_add(u32::try_from(bytes).unwrap_or(u32::MAX));
        if self.taken >= self.window.items.div_ceil(2)
            || self.taken_bytes >= self.window.bytes.div_ceil(2)
        {
            let (n, bytes) = (self.taken, self.taken_bytes);
            self.granted.grant(n, bytes);
            self.channel.send_credit(self.direction, self.id, n, bytes);
            (self.taken, self.taken_bytes) = (0, 0);
        }
    }

    /// Reads and discards the rest of the stream, without decoding; the
    /// error that ended it, if one did.
    pub(crate) async fn drain(&mut self) -> Result<()> {
        std::future::poll_fn(|cx| {
            loop {
                if self.ended != Ended::No {
                    return Poll::Ready(Ok(()));
                }
                if self.left > 0 {
                    let left = std::mem::take(&mut self.left);
                    let bytes = self.end - self.at;
                    self.at = self.end;
                    self.took(left, bytes);
                }
                if let Some((range, n)) = self.batches.next() {
                    (self.at, self.end, self.left) = (range.start, range.end, n);
                    continue;
                }
                match ready!(self.poll_delivery(cx)) {
                    Some(Ok(())) => {}
                    Some(Err(error)) => return Poll::Ready(Err(error)),
                    None => return Poll::Ready(Ok(())),
                }
            }
        })
        .await
    }
}
