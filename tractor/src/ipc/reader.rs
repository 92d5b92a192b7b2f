//! The incoming side of a connection: one task reading frames and routing
//! them to the channel (answers to our calls) or the actor (the peer's
//! calls and cancels).
//!
//! Anything malformed ends the channel with a logged error and nothing
//! else: the actor keeps serving its other channels.

use std::time::Duration;

use bytes::BytesMut;
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
    let mut last_stream = LastStream::default();
    let outcome = loop {
        let mut failed = None;
        loop {
            match frame::split(&mut buf, MAX_FRAME) {
                Ok(Some(frame)) => {
                    if let Err(err) = dispatch(frame, channel, inbound, &mut last_stream) {
                        failed = Some(err);
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        if let Some(err) = failed {
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

/// The stream the last item was for: items come in runs, and this spares
/// each one a lookup.
#[derive(Default)]
struct LastStream {
    id: u64,
    items: Option<mpsc::UnboundedSender<Delivery>>,
}

impl LastStream {
    fn deliver(&mut self, channel: &Channel, id: u64, item: bytes::Bytes) {
        if self.id != id || self.items.is_none() {
            self.id = id;
            self.items = channel.stream_items(id);
        }
        match &self.items {
            Some(items) => {
                if items.send(Delivery::Item(item)).is_err() {
                    self.items = None;
                }
            }
            None => tracing::trace!(peer = %channel.peer(), id, "stream item nobody awaits"),
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
    last_stream: &mut LastStream,
) -> Result<(), Error> {
    let (msg, payload) = postcard::take_from_bytes::<Msg<'_>>(&frame)
        .map_err(|err| Error::Protocol(format!("undecodable frame: {err}")))?;
    let payload = frame.slice_ref(payload);
    match msg {
        Msg::Call { id, func } => inbound.call(channel, id, func, CallKind::Unary, payload),
        Msg::OpenStream { id, func, window } => {
            inbound.call(channel, id, func, CallKind::Stream { window }, payload)
        }
        Msg::Return { id } => channel.complete(id, Ok(payload)),
        Msg::Yield { id } => last_stream.deliver(channel, id, payload),
        Msg::Stop { id } => {
            last_stream.forget(id);
            channel.deliver(id, None);
        }
        Msg::Credit { id, n } => channel.credit_served(id, n),
        Msg::Error { id } => {
            last_stream.forget(id);
            let error = postcard::from_bytes::<WireError>(&payload).map_err(|err| {
                Error::Protocol(format!("undecodable error for call {id}: {err}"))
            })?;
            channel.complete(id, Err(error.into_error()));
        }
        Msg::Cancel { id } => channel.cancel_served(id),
        Msg::CancelActor { id, grace_ms } => {
            inbound.cancel_actor(channel, id, Duration::from_millis(grace_ms.into()))
        }
        Msg::Handshake(_) => {
            return Err(Error::Protocol(
                "a second handshake on an open channel".into(),
            ));
        }
    }
    Ok(())
}
