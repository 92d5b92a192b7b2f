//! The incoming side of a connection: one task reading frames and routing
//! them to the channel (answers to our calls) or the actor (the peer's
//! calls and cancels).
//!
//! Stream items come in batches (a frame holds many) and batches in runs
//! (a producer sends many in a row), so consecutive batches of one stream
//! are handed over together: one shared slice of the read buffer and the
//! batches' places in it. That costs one queue operation and one buffer
//! split per run, and the reader never looks at the items themselves: the
//! consumer decodes them in place.
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
use crate::ipc::channel::{CallKind, Channel, Delivery, Direction, Inbound, Incoming, StreamSink};
use crate::ipc::credit::Window;
use crate::ipc::frame::{self, MAX_FRAME};
use crate::ipc::limits::Admission;
use crate::ipc::msg::{Msg, WireError};

/// Room is made for reads this large at least...
const READ_CAPACITY: usize = 64 * 1024;
/// ...and for eight of the largest frames received so far, up to this:
/// a frame that arrives in pieces is copied whenever the buffer is
/// reallocated around it, so large frames (batches of large items) want a
/// larger buffer. Only frames actually received grow it.
const MAX_READ_CAPACITY: usize = 1024 * 1024;
/// Runs of items smaller than this are copied out of the read buffer.
const COPY_BELOW: usize = MAX_READ_CAPACITY / 16;

/// Reads until EOF, an I/O error, a protocol violation, or (with
/// `silence` set) that long without a byte from the peer.
pub(crate) async fn run<R: AsyncRead + Unpin>(
    mut socket: R,
    mut buf: BytesMut,
    channel: &Channel,
    inbound: &dyn Inbound,
    silence: Option<Duration>,
) {
    buf.reserve(READ_CAPACITY);
    // Armed once and moved on only when it fires early: a read costs a
    // clock reading, not a timer reset.
    let mut heard = tokio::time::Instant::now();
    let far = Duration::from_secs(86_400 * 365);
    let deadline = tokio::time::sleep(silence.unwrap_or(far));
    tokio::pin!(deadline);
    let mut streams = Streams::default();
    let mut admitted = None;
    let mut largest = 0;
    let outcome = loop {
        match drain(
            &mut buf,
            channel,
            inbound,
            &mut streams,
            &mut admitted,
            &mut largest,
        ) {
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
            buf.reserve(
                largest
                    .saturating_mul(8)
                    .clamp(READ_CAPACITY, MAX_READ_CAPACITY),
            );
        }
        tokio::select! {
            read = socket.read_buf(&mut buf) => match read {
                Ok(0) => break Ok(()),
                Ok(_) => {
                    if silence.is_some() {
                        heard = tokio::time::Instant::now();
                    }
                }
                Err(err) => break Err(err.into()),
            },
            () = channel.closed() => break Ok(()),
            () = &mut deadline, if silence.is_some() => {
                let silence = silence.unwrap_or(far);
                if heard.elapsed() >= silence {
                    channel.set_silent();
                    break Ok(());
                }
                deadline.as_mut().reset(heard + silence);
            }
        }
    };
    match outcome {
        Ok(()) if channel.went_silent() => tracing::warn!(
            peer = %channel.peer(),
            "nothing from the peer for {:?} (no heartbeat): its link is down or its host is \
             stuck; closing the channel",
            silence.unwrap_or(far)
        ),
        Ok(()) => tracing::debug!(peer = %channel.peer(), "channel closed"),
        Err(Error::Protocol(reason)) => {
            tracing::error!(peer = %channel.peer(), "dropping the channel: {reason}")
        }
        Err(err) => tracing::debug!(peer = %channel.peer(), "channel lost: {err}"),
    }
}

/// Batches of one stream at the front of the buffer, not yet handed over.
struct Run {
    direction: Direction,
    id: u64,
    batches: Vec<(Range<usize>, u32)>,
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
/// the reader waited for) for the first call; `largest` keeps the length
/// of the largest frame seen.
fn drain(
    buf: &mut BytesMut,
    channel: &Channel,
    inbound: &dyn Inbound,
    streams: &mut Streams,
    admitted: &mut Option<Admission>,
    largest: &mut usize,
) -> Result<Drained, Error> {
    let mut run: Option<Run> = None;
    loop {
        let at = run.as_ref().map_or(0, |run| run.end);
        let Some(len) = frame::peek(buf, at, MAX_FRAME)? else {
            break;
        };
        *largest = (*largest).max(len);
        let body = &buf[at + 4..at + 4 + len];
        let (msg, payload) = decode(body)?;
        let items = match msg {
            Msg::Yield { id, n } => Some((Direction::ToCaller, id, n)),
            Msg::Push { id, n } => Some((Direction::ToCallee, id, n)),
            _ => None,
        };
        if let Some((direction, id, n)) = items {
            if n == 0 {
                return Err(Error::Protocol(format!(
                    "an empty batch of items for call {id}"
                )));
            }
            let batch = (at + 4 + len - payload.len()..at + 4 + len, n);
            match &mut run {
                Some(run) if run.id == id && run.direction == direction => {
                    run.batches.push(batch);
                    run.end = at + 4 + len;
                    continue;
                }
                Some(_) => {}
                None => {
                    run = Some(Run {
                        direction,
                        id,
                        batches: vec![batch],
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
            | Msg::OpenContext { .. }
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
struct Streams {
    key: (Direction, u64),
    sink: Option<StreamSink>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            key: (Direction::ToCaller, 0),
            sink: None,
        }
    }
}

impl Streams {
    /// Hands over the run at the front of `buf` and removes it from there.
    ///
    /// A run handed over as a slice of the read buffer keeps the whole
    /// buffer (up to 1 MiB) alive while its items wait, so a run smaller
    /// than [`COPY_BELOW`] is copied out instead: items held by a slow
    /// consumer pin at most 16 times the bytes they hold.
    fn deliver(&mut self, channel: &Channel, run: Run, buf: &mut BytesMut) {
        let chunk = if run.end < COPY_BELOW {
            let chunk = bytes::Bytes::copy_from_slice(&buf[..run.end]);
            buf.advance(run.end);
            chunk
        } else {
            buf.split_to(run.end).freeze()
        };
        let key = (run.direction, run.id);
        if self.key != key || self.sink.is_none() {
            self.key = key;
            self.sink = channel.stream_sink(run.direction, run.id);
        }
        match &self.sink {
            Some(sink) => {
                let overrun = run.batches.iter().find_map(|(range, n)| {
                    sink.granted.receive((*n).into(), range.len() as u64).err()
                });
                if let Some(overrun) = overrun {
                    self.sink = None;
                    let error = Error::Protocol(format!(
                        "the sender of stream {} sent {overrun}; the stream was failed",
                        run.id
                    ));
                    tracing::error!(peer = %channel.peer(), "{error}");
                    channel.fail_stream(run.direction, run.id, error);
                    return;
                }
                let delivery = Delivery::Items {
                    chunk,
                    batches: run.batches,
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

    /// The items flowing `direction` on call `id` ended.
    fn forget(&mut self, direction: Direction, id: u64) {
        if self.key == (direction, id) {
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
        Msg::Call {
            id,
            func,
            timeout_ms,
        } => inbound.call(
            channel,
            Incoming {
                id,
                func,
                kind: CallKind::Unary {
                    timeout: timeout_ms.map(|ms| Duration::from_millis(ms.into())),
                },
                args: payload,
                admission: admitted(id)?,
            },
        )?,
        Msg::OpenStream {
            id,
            func,
            window,
            window_bytes,
        } => inbound.call(
            channel,
            Incoming {
                id,
                func,
                kind: CallKind::Stream {
                    window: Window {
                        items: window,
                        bytes: window_bytes,
                    },
                },
                args: payload,
                admission: admitted(id)?,
            },
        )?,
        Msg::OpenContext {
            id,
            func,
            window,
            window_bytes,
        } => inbound.call(
            channel,
            Incoming {
                id,
                func,
                kind: CallKind::Context {
                    window: Window {
                        items: window,
                        bytes: window_bytes,
                    },
                },
                args: payload,
                admission: admitted(id)?,
            },
        )?,
        Msg::Return { id } => {
            streams.forget(Direction::ToCaller, id);
            channel.complete(id, Ok(payload));
        }
        Msg::Started {
            id,
            window,
            window_bytes,
        } => {
            let window = Window {
                items: window,
                bytes: window_bytes,
            };
            channel.context_started(id, window, payload);
        }
        // Items arrive in runs (see `drain`); this is never reached.
        Msg::Yield { .. } | Msg::Push { .. } => {}
        Msg::Stop { id, hangup } => {
            streams.forget(Direction::ToCaller, id);
            channel.end_stream(id, hangup);
        }
        Msg::PushEnd { id, hangup } => {
            streams.forget(Direction::ToCallee, id);
            channel.end_push(id, hangup);
        }
        Msg::Credit { id, n, bytes } => channel.credit_served(id, n, bytes),
        Msg::PushCredit { id, n, bytes } => channel.push_credit(id, n, bytes),
        Msg::Error { id } => {
            streams.forget(Direction::ToCaller, id);
            let error = postcard::from_bytes::<WireError>(&payload).map_err(|err| {
                Error::Protocol(format!("undecodable error for call {id}: {err}"))
            })?;
            channel.complete(id, Err(error.into_error()));
        }
        Msg::Cancel { id } => {
            streams.forget(Direction::ToCallee, id);
            channel.cancel_served(id);
        }
        Msg::Leave { id } => inbound.leave(channel, id, admitted(id)?),
        // Heard: the read that brought it was the point.
        Msg::Heartbeat => {}
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
