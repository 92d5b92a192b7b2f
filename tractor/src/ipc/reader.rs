//! The incoming side of a connection: one task reading frames and routing
//! them to the channel (answers to our calls) or the actor (the peer's
//! calls and cancels).
//!
//! Stream items come in runs (a producer sends many in a row), so
//! consecutive items of one stream are handed over together: one shared
//! slice of the read buffer and the items' places in it. That costs one
//! queue operation and one buffer split per run instead of per item.
//!
//! Anything malformed ends the channel with a logged error and nothing
//! else: the actor keeps serving its other channels.

use std::ops::Range;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::ipc::channel::{CallKind, Channel, Delivery, Inbound};
use crate::ipc::frame::{self, MAX_FRAME};
use crate::ipc::msg::{Msg, WireError};

const READ_CAPACITY: usize = 64 * 1024;

/// Reads until EOF, an I/O error or a protocol violation.
pub(crate) async fn run<R: AsyncRead + Unpin>(
    mut socket: R,
    mut buf: BytesMut,
    channel: &Channel,
    inbound: &dyn Inbound,
) {
    buf.reserve(READ_CAPACITY);
    let mut streams = Streams::default();
    let outcome = loop {
        if let Err(err) = drain(&mut buf, channel, inbound, &mut streams) {
            break Err(err);
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CAPACITY);
        }
        tokio::select! {
            read = socket.read_buf(&mut buf) => match read {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(err) => break Err(err.into()),
            },
            () = channel.closed() => break Ok(()),
        }
    };
    match outcome {
        Ok(()) => tracing::debug!(peer = %channel.peer(), "channel closed"),
        Err(Error::Protocol(reason)) => {
            tracing::error!(peer = %channel.peer(), "dropping the channel: {reason}")
        }
        Err(err) => tracing::debug!(peer = %channel.peer(), "channel lost: {err}"),
    }
}

/// Items of one stream at the front of the buffer, not yet handed over.
struct Run {
    id: u64,
    items: Vec<Range<usize>>,
    /// Where the run ends in the buffer.
    end: usize,
}

/// Handles every complete frame in `buf`.
fn drain(
    buf: &mut BytesMut,
    channel: &Channel,
    inbound: &dyn Inbound,
    streams: &mut Streams,
) -> Result<(), Error> {
    let mut run: Option<Run> = None;
    loop {
        let at = run.as_ref().map_or(0, |run| run.end);
        let Some(len) = frame::peek(buf, at, MAX_FRAME)? else {
            break;
        };
        let body = &buf[at + 4..at + 4 + len];
        let (msg, payload) = decode(body)?;
        if let Msg::Yield { id } = msg {
            let item = at + 4 + len - payload.len()..at + 4 + len;
            match &mut run {
                Some(run) if run.id == id => {
                    run.items.push(item);
                    run.end = at + 4 + len;
                    continue;
                }
                Some(_) => {}
                None => {
                    run = Some(Run {
                        id,
                        items: vec![item],
                        end: at + 4 + len,
                    });
                    continue;
                }
            }
        }
        // Anything but the next item of the current run: hand the run over
        // first, so that order is kept, then look at this frame again.
        if let Some(done) = run.take() {
            streams.deliver(channel, done, buf);
            continue;
        }
        buf.advance(4);
        let frame = buf.split_to(len).freeze();
        dispatch(frame, channel, inbound, streams)?;
    }
    if let Some(done) = run.take() {
        streams.deliver(channel, done, buf);
    }
    Ok(())
}

fn decode(body: &[u8]) -> Result<(Msg<'_>, &[u8]), Error> {
    postcard::take_from_bytes::<Msg<'_>>(body)
        .map_err(|err| Error::Protocol(format!("undecodable frame: {err}")))
}

/// Where each stream's items go. The queue of the last stream used is kept
/// at hand: items come in runs.
#[derive(Default)]
struct Streams {
    id: u64,
    items: Option<mpsc::UnboundedSender<Delivery>>,
}

impl Streams {
    /// Hands over the run at the front of `buf` and removes it from there.
    fn deliver(&mut self, channel: &Channel, run: Run, buf: &mut BytesMut) {
        let chunk = buf.split_to(run.end).freeze();
        if self.id != run.id || self.items.is_none() {
            self.id = run.id;
            self.items = channel.stream_items(run.id);
        }
        match &self.items {
            Some(items) => {
                let delivery = Delivery::Items {
                    chunk,
                    items: run.items,
                };
                if items.send(delivery).is_err() {
                    self.items = None;
                }
            }
            None => {
                tracing::trace!(peer = %channel.peer(), id = run.id, "stream items nobody awaits")
            }
        }
    }

    fn forget(&mut self, id: u64) {
        if self.id == id {
            self.items = None;
        }
    }
}

fn dispatch(
    frame: bytes::Bytes,
    channel: &Channel,
    inbound: &dyn Inbound,
    streams: &mut Streams,
) -> Result<(), Error> {
    let (msg, payload) = decode(&frame)?;
    let payload = frame.slice_ref(payload);
    match msg {
        Msg::Call { id, func } => inbound.call(channel, id, func, CallKind::Unary, payload),
        Msg::OpenStream { id, func, window } => {
            inbound.call(channel, id, func, CallKind::Stream { window }, payload)
        }
        Msg::Return { id } => channel.complete(id, Ok(payload)),
        // Items arrive in runs (see `drain`); this is never reached.
        Msg::Yield { .. } => {}
        Msg::Stop { id } => {
            streams.forget(id);
            channel.end_stream(id);
        }
        Msg::Credit { id, n } => channel.credit_served(id, n),
        Msg::Error { id } => {
            streams.forget(id);
            let error = postcard::from_bytes::<WireError>(&payload).map_err(|err| {
                Error::Protocol(format!("undecodable error for call {id}: {err}"))
            })?;
            channel.complete(id, Err(error.into_error()));
        }
        Msg::Cancel { id } => channel.cancel_served(id),
        Msg::CancelActor { id, grace_ms } => {
            inbound.cancel_actor(channel, id, Duration::from_millis(grace_ms.into()))
        }
    }
    Ok(())
}

/// Everything the reader and the opening exchange make of untrusted bytes,
/// without a socket: frames are split and each is decoded as an envelope,
/// an error payload and an opening message. For fuzzing; never panics.
pub(crate) fn decode_untrusted(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = frame::split(&mut buf, MAX_FRAME) {
        if let Ok((Msg::Error { .. }, payload)) = decode(&frame)
            && let Ok(error) = postcard::from_bytes::<WireError>(payload)
        {
            let _ = error.into_error().to_string();
        }
        super::handshake::decode_untrusted(&frame);
    }
}
