//! The incoming side of a connection: one task reading frames and routing
//! them to the channel (answers to our calls) or the actor (the peer's
//! calls and cancels).
//!
//! Stream items come in runs (a producer sends many in a row), so
//! consecutive items of one stream are handed over together: one shared
//! slice of the read buffer and the items' places in it. That costs one
//! queue operation and one buffer split per run instead of per item.
//!
//! The reader is where the peer's say-so meets our memory: a call is read
//! only once it is admitted (see [`limits`](super::limits)), so when the
//! peer has too much running here the reader stops and the socket pushes
//! back; stream items past the credit we granted fail that stream.
//!
//! Anything malformed ends the channel with a logged error and nothing
//! else: the actor keeps serving its other channels.

use std::ops::Range;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::budget::MAX_GRACE;
use crate::error::Error;
use crate::ipc::channel::{CallKind, Channel, Delivery, Inbound, Incoming, StreamSink};
use crate::ipc::frame::{self, MAX_FRAME};
use crate::ipc::limits::Admission;
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
    let mut admitted = None;
    let outcome = loop {
        match drain(&mut buf, channel, inbound, &mut streams, &mut admitted) {
            Ok(Drained::All) => {}
            Ok(Drained::Waiting(len)) => {
                // Too much running for this peer: read nothing more until
                // a call ends.
                tokio::select! {
                    admission = channel.limits().admit(len) => admitted = Some(admission),
                    () = channel.closed() => break Ok(()),
                }
                continue;
            }
            Err(err) => break Err(err),
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

/// How far [`drain`] got.
enum Drained {
    /// Every complete frame was handled.
    All,
    /// The next frame is a call of this many bytes that cannot be admitted
    /// yet; it is still in the buffer.
    Waiting(usize),
}

/// Handles every complete frame in `buf`, using `admitted` (an admission
/// the reader waited for) for the first call.
fn drain(
    buf: &mut BytesMut,
    channel: &Channel,
    inbound: &dyn Inbound,
    streams: &mut Streams,
    admitted: &mut Option<Admission>,
) -> Result<Drained, Error> {
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
        let admission = match msg {
            Msg::Call { .. }
            | Msg::OpenStream { .. }
            | Msg::CancelActor { .. }
            | Msg::Leave { .. } => {
                match admitted.take().or_else(|| channel.limits().try_admit(len)) {
                    Some(admission) => Some(admission),
                    None => return Ok(Drained::Waiting(len)),
                }
            }
            _ => None,
        };
        buf.advance(4);
        let frame = buf.split_to(len).freeze();
        dispatch(frame, channel, inbound, streams, admission)?;
    }
    if let Some(done) = run.take() {
        streams.deliver(channel, done, buf);
    }
    Ok(Drained::All)
}

/// The envelope at the start of a frame's body, and the payload after it.
pub(crate) fn decode(body: &[u8]) -> Result<(Msg<'_>, &[u8]), Error> {
    postcard::take_from_bytes::<Msg<'_>>(body)
        .map_err(|err| Error::Protocol(format!("undecodable frame: {err}")))
}

/// Where each stream's items go. The sink of the last stream used is kept
/// at hand: items come in runs.
#[derive(Default)]
struct Streams {
    id: u64,
    sink: Option<StreamSink>,
}

impl Streams {
    /// Hands over the run at the front of `buf` and removes it from there.
    fn deliver(&mut self, channel: &Channel, run: Run, buf: &mut BytesMut) {
        let chunk = buf.split_to(run.end).freeze();
        if self.id != run.id || self.sink.is_none() {
            self.id = run.id;
            self.sink = channel.stream_sink(run.id);
        }
        match &self.sink {
            Some(sink) => {
                if let Err((received, allowed)) = sink.granted.receive(run.items.len()) {
                    self.sink = None;
                    let error = Error::Protocol(format!(
                        "the producer of stream {} sent {received} items with credit for \
                         {allowed}; the stream was failed",
                        run.id
                    ));
                    tracing::error!(peer = %channel.peer(), "{error}");
                    channel.fail_stream(run.id, error);
                    return;
                }
                let delivery = Delivery::Items {
                    chunk,
                    items: run.items,
                };
                if sink.items.send(delivery).is_err() {
                    self.sink = None;
                }
            }
            None => {
                tracing::trace!(peer = %channel.peer(), id = run.id, "stream items nobody awaits")
            }
        }
    }

    fn forget(&mut self, id: u64) {
        if self.id == id {
            self.sink = None;
        }
    }
}

fn dispatch(
    frame: bytes::Bytes,
    channel: &Channel,
    inbound: &dyn Inbound,
    streams: &mut Streams,
    admission: Option<Admission>,
) -> Result<(), Error> {
    let (msg, payload) = decode(&frame)?;
    let payload = frame.slice_ref(payload);
    // `drain` admits every request before it gets here.
    let admitted =
        |id| admission.ok_or_else(|| Error::Protocol(format!("request {id} was not admitted")));
    match msg {
        Msg::Call { id, func } => inbound.call(
            channel,
            Incoming {
                id,
                func,
                kind: CallKind::Unary,
                args: payload,
                admission: admitted(id)?,
            },
        )?,
        Msg::OpenStream { id, func, window } => inbound.call(
            channel,
            Incoming {
                id,
                func,
                kind: CallKind::Stream { window },
                args: payload,
                admission: admitted(id)?,
            },
        )?,
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
        Msg::Leave { id } => inbound.leave(channel, id, admitted(id)?),
        Msg::CancelActor { id, grace_ms } => {
            let grace = Duration::from_millis(grace_ms.into());
            if grace > MAX_GRACE {
                return Err(Error::Protocol(format!(
                    "a cancel request with a grace of {grace:?}, over the {MAX_GRACE:?} allowed"
                )));
            }
            inbound.cancel_actor(channel, id, grace, admitted(id)?)
        }
    }
    Ok(())
}
