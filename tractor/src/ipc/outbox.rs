//! The outgoing side of a connection: one buffer, one writer task.
//!
//! Senders append whole frames to a shared buffer under a short lock (no
//! allocation per message, no queue of boxed messages) and wake the writer
//! only when the buffer was empty. The writer swaps the buffer for an empty
//! one and writes everything accumulated in one call, so a burst of small
//! messages costs one syscall: batching is worth ~19x for small messages.
//!
//! The buffer is bounded. Data frames (calls, answers, stream items) are
//! queued with [`Outbox::push_data`], which waits while the buffer holds
//! [`HIGH_WATER`] bytes or more: a peer that stops reading makes its
//! senders wait, it does not make the buffer grow. Small control frames
//! (credit, cancel, stop, acknowledgements) never wait; each is sent in
//! answer to something bounded on our side, so they cannot pile up.

use std::sync::{Mutex, MutexGuard};

use bytes::BytesMut;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use tokio::sync::Notify;

use crate::error::Error;
use crate::ipc::frame;

const INITIAL_CAPACITY: usize = 16 * 1024;

/// Data frames wait while this many bytes are queued. One frame may still
/// go past it, so the buffer holds at most `HIGH_WATER` plus one frame,
/// and the writer as much again while it writes.
pub(crate) const HIGH_WATER: usize = 4 << 20;

/// A spare buffer grown past this by a burst of large frames is dropped
/// once written rather than kept.
const KEEP_CAPACITY: usize = HIGH_WATER;

/// What [`Outbox::try_push_data`] did.
pub(crate) enum Pushed<P> {
    /// Queued (`Ok(true)`), closed (`Ok(false)`), or not encodable.
    Done(Result<bool, Error>),
    /// No room: the payload, unused.
    Full(P),
}

pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer when frames arrive in an empty buffer.
    wake_writer: Notify,
    /// Wakes `flushed` waiters whenever the writer empties the buffer.
    drained: Notify,
    /// Wakes `push_data` waiters when the buffer has room again.
    room: Notify,
}

struct State {
    buf: BytesMut,
    /// The writer holds bytes it has not finished writing.
    writing: bool,
    /// No more frames are accepted; the writer stops once drained.
    closed: bool,
    /// The writer has finished (drained after close, or the socket failed).
    stopped: bool,
    /// A frame other than a heartbeat was queued since
    /// [`Outbox::take_sent`] last asked.
    sent: bool,
}

impl Outbox {
    /// An outbox whose first bytes are `first` (a frame of the opening
    /// that leaves with the channel's first frames, in one write).
    pub(crate) fn new(first: &[u8]) -> Self {
        let mut buf = BytesMut::with_capacity(INITIAL_CAPACITY.max(first.len()));
        buf.extend_from_slice(first);
        Outbox {
            state: Mutex::new(State {
                buf,
                writing: false,
                closed: false,
                stopped: false,
                sent: false,
            }),
            wake_writer: Notify::new(),
            drained: Notify::new(),
            room: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the buffer torn
        // (frame::write restores it), so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues one control frame at once, whatever the buffer holds. Fails
    /// if the outbox is closed (`Ok(false)`) or the frame cannot be
    /// encoded; nothing is queued then.
    pub(crate) fn push<H: Serialize + ?Sized>(
        &self,
        header: &H,
        payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        let state = self.lock();
        if state.closed {
            return Ok(false);
        }
        self.append(state, header, payload, true)
    }

    /// Queues one data frame once the buffer is below [`HIGH_WATER`]; the
    /// check and the append happen under one lock, so concurrent senders
    /// cannot all slip in past the mark.
    pub(crate) async fn push_data<H, P>(&self, header: &H, payload: P) -> Result<bool, Error>
    where
        H: Serialize + ?Sized,
        P: FnOnce(&mut BytesMut) -> Result<(), Error>,
    {
        let mut payload = match self.try_push_data(header, payload) {
            Pushed::Done(result) => return result,
            Pushed::Full(payload) => payload,
        };
        loop {
            // Registered before the buffer is looked at again, so a drain
            // in between is not missed.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            payload = match self.try_push_data(header, payload) {
                Pushed::Done(result) => return result,
                Pushed::Full(payload) => payload,
            };
            room.await;
        }
    }

    /// Queues one data frame if the buffer is below [`HIGH_WATER`] now;
    /// otherwise hands `payload` back. The path of every stream item.
    #[inline]
    pub(crate) fn try_push_data<H, P>(&self, header: &H, payload: P) -> Pushed<P>
    where
        H: Serialize + ?Sized,
        P: FnOnce(&mut BytesMut) -> Result<(), Error>,
    {
        let state = self.lock();
        if state.closed {
            return Pushed::Done(Ok(false));
        }
        if state.buf.len() >= HIGH_WATER {
            return Pushed::Full(payload);
        }
        Pushed::Done(self.append(state, header, payload, true))
    }

    /// Appends one frame; `counts`: it is something sent, not a heartbeat
    /// (see [`take_sent`](Self::take_sent)).
    #[inline]
    fn append<H: Serialize + ?Sized>(
        &self,
        mut state: MutexGuard<'_, State>,
        header: &H,
        payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
        counts: bool,
    ) -> Result<bool, Error> {
        let was_empty = state.buf.is_empty();
        frame::write(&mut state.buf, header, payload)?;
        state.sent |= counts;
        drop(state);
        if was_empty {
            self.wake_writer.notify_one();
        }
        Ok(true)
    }

    /// Waits until a data frame would be queued at once (or the outbox is
    /// closed): for senders that keep their frame themselves meanwhile.
    pub(crate) async fn room(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let state = self.lock();
                if state.closed || state.buf.len() < HIGH_WATER {
                    return;
                }
            }
            room.await;
        }
    }

    /// Stops accepting frames; what is queued is still written.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake_writer.notify_one();
        self.room.notify_waiters();
    }

    /// Waits until everything queued so far has been handed to the socket
    /// (or the writer has stopped).
    pub(crate) async fn flushed(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let state = self.lock();
                if state.stopped || (state.buf.is_empty() && !state.writing) {
                    return;
                }
            }
            drained.await;
        }
    }

    /// Whether a frame other than a heartbeat was queued since the last
    /// time this was asked (see `heartbeat`).
    pub(crate) fn take_sent(&self) -> bool {
        std::mem::take(&mut self.lock().sent)
    }

    /// Queues a heartbeat (a control frame, see [`push`](Self::push)),
    /// which does not count as something sent: an idle channel's next
    /// heartbeat is due a full interval later, not two.
    pub(crate) fn push_heartbeat<H: Serialize + ?Sized>(&self, header: &H) -> Result<bool, Error> {
        let state = self.lock();
        if state.closed {
            return Ok(false);
        }
        self.append(state, header, |_| Ok(()), false)
    }

    /// The writer task: runs until the outbox is closed and drained, or the
    /// socket fails.
    pub(crate) async fn run_writer<W: AsyncWrite + Unpin>(
        &self,
        mut socket: W,
    ) -> std::io::Result<()> {
        let mut spare = BytesMut::with_capacity(INITIAL_CAPACITY);
        let result = loop {
            let closed = {
                let mut state = self.lock();
                if state.buf.is_empty() {
                    state.writing = false;
                    state.closed
                } else {
                    state.writing = true;
                    std::mem::swap(&mut state.buf, &mut spare);
                    false
                }
            };
            self.room.notify_waiters();
            if spare.is_empty() {
                self.drained.notify_waiters();
                if closed {
                    break socket.flush().await;
                }
                self.wake_writer.notified().await;
                continue;
            }
            if let Err(err) = socket.write_all(&spare).await {
                break Err(err);
            }
            if spare.capacity() > KEEP_CAPACITY {
                spare = BytesMut::with_capacity(INITIAL_CAPACITY);
            } else {
                spare.clear();
            }
        };
        let mut state = self.lock();
        state.closed = true;
        state.stopped = true;
        state.writing = false;
        state.buf = BytesMut::new();
        drop(state);
        self.drained.notify_waiters();
        self.room.notify_waiters();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::msg::Msg;

    #[test]
    fn a_heartbeat_is_not_counted_as_something_sent() {
        let outbox = Outbox::new(&[]);
        assert!(!outbox.take_sent());
        assert!(outbox.push_heartbeat(&Msg::Heartbeat).unwrap());
        assert!(
            !outbox.take_sent(),
            "a heartbeat alone leaves the channel idle"
        );
        assert!(outbox.push(&Msg::Cancel { id: 1 }, |_| Ok(())).unwrap());
        assert!(outbox.take_sent());
        assert!(!outbox.take_sent(), "asked again, nothing new");
        outbox.close();
        assert!(!outbox.push_heartbeat(&Msg::Heartbeat).unwrap());
    }
}
