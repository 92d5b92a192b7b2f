//! Opening a channel: dial or accept, then exchange [`Handshake`]s.
//!
//! The dialing side speaks first. Handshake frames are small and must arrive
//! quickly; anything else (a port scanner, a stuck peer, a wrong protocol)
//! is dropped before a channel exists.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Error;
use crate::ipc::frame;
use crate::ipc::msg::{Handshake, Msg};
use crate::ipc::transport::Stream;

/// How long a peer has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A handshake frame is a few dozen bytes; refuse anything much larger.
const HANDSHAKE_LIMIT: usize = 4096;

/// A connection whose peer has introduced itself.
pub(crate) struct Opened {
    pub stream: Stream,
    pub peer: Handshake,
    /// Bytes the peer sent after its handshake, already read.
    pub leftover: BytesMut,
}

/// Dials the actor at `addr` (or at its Unix socket `local`) and exchanges
/// handshakes.
pub(crate) async fn dial(
    addr: &str,
    local: Option<&str>,
    ours: &Handshake,
) -> Result<Opened, Error> {
    let stream = Stream::connect(addr, local).await?;
    over(stream, ours).await
}

/// Exchanges handshakes over a stream we dialed.
pub(crate) async fn over(mut stream: Stream, local: &Handshake) -> Result<Opened, Error> {
    let peer_addr = stream.peer();
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        send(&mut stream, local).await?;
        let (peer, leftover) = receive(&mut stream).await?;
        Ok(Opened {
            stream,
            peer,
            leftover,
        })
    })
    .await
    .map_err(|_| {
        Error::Protocol(format!(
            "no handshake from {peer_addr} within {HANDSHAKE_TIMEOUT:?}"
        ))
    })?
}

/// Reads the handshake of a peer that dialed us; the caller answers with
/// [`send`] once it has decided to keep the connection.
pub(crate) async fn accept(mut stream: Stream) -> Result<Opened, Error> {
    let (peer, leftover) = tokio::time::timeout(HANDSHAKE_TIMEOUT, receive(&mut stream))
        .await
        .map_err(|_| Error::Protocol(format!("no handshake within {HANDSHAKE_TIMEOUT:?}")))??;
    Ok(Opened {
        stream,
        peer,
        leftover,
    })
}

pub(crate) async fn send(stream: &mut Stream, local: &Handshake) -> Result<(), Error> {
    let mut buf = BytesMut::new();
    frame::write(&mut buf, &Msg::Handshake(Box::new(local.clone())), |_| {
        Ok(())
    })?;
    stream.write_all(&buf).await?;
    Ok(())
}

async fn receive(stream: &mut Stream) -> Result<(Handshake, BytesMut), Error> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some(frame) = frame::split(&mut buf, HANDSHAKE_LIMIT)? {
            let peer = match postcard::from_bytes::<Msg<'_>>(&frame) {
                Ok(Msg::Handshake(peer)) => *peer,
                Ok(other) => {
                    return Err(Error::Protocol(format!(
                        "expected a handshake, got {other:?}"
                    )));
                }
                Err(err) => return Err(Error::Protocol(format!("unreadable handshake: {err}"))),
            };
            peer.check()?;
            return Ok((peer, buf));
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Protocol(
                "the peer closed the connection during the handshake".into(),
            ));
        }
    }
}
