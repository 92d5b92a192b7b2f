//! The incoming side of a connection: one task reading frames and routing
//! them to the channel (answers to our calls) or the actor (the peer's
//! calls and cancels).
//!
//! Anything malformed ends the channel with a logged error and nothing
//! else: the actor keeps serving its other channels.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::Error;
use crate::ipc::channel::{CallKind, Channel, Inbound};
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
    let outcome = loop {
        let mut failed = None;
        loop {
            match frame::split(&mut buf, MAX_FRAME) {
                Ok(Some(frame)) => {
                    if let Err(err) = dispatch(frame, channel, inbound) {
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

fn dispatch(frame: bytes::Bytes, channel: &Channel, inbound: &dyn Inbound) -> Result<(), Error> {
    let (msg, payload) = postcard::take_from_bytes::<Msg<'_>>(&frame)
        .map_err(|err| Error::Protocol(format!("undecodable frame: {err}")))?;
    let payload = frame.slice_ref(payload);
    match msg {
        Msg::Call { id, func } => inbound.call(channel, id, func, CallKind::Unary, payload),
        Msg::OpenStream { id, func, window } => {
            inbound.call(channel, id, func, CallKind::Stream { window }, payload)
        }
        Msg::Return { id } => channel.complete(id, Ok(payload)),
        Msg::Yield { id } => channel.deliver(id, Some(payload)),
        Msg::Stop { id } => channel.deliver(id, None),
        Msg::Credit { id, n } => channel.credit_served(id, n),
        Msg::Error { id } => {
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
