//! Byte streams between actors: Unix sockets on one host, TCP (with TLS
//! where configured) to others.
//!
//! Actors on one host reach each other through the private directory of
//! [`local`](super::local): a socket per actor, named after its uuid, and
//! a rendezvous socket for the registrar. Nothing is announced by a peer
//! and then dialed: the path follows from whom we want to reach. TCP is
//! for other hosts; whether it is plain or TLS is the transport policy's
//! (see [`tls`](super::tls)).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use uuid::Uuid;

use super::local;
use super::tls::transport;
use super::unix_stream::LocalStream;
use crate::error::{Error, Result};

/// A connection over any transport.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
    /// Watched for writability only while a write waits (see
    /// `unix_stream`).
    Unix(LocalStream),
}

/// The reading half of a split [`Stream`].
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a split [`Stream`].
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Whom a connection is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    /// The actor `uuid`: through its socket if it is on this host, else at
    /// its TCP address `addr`.
    Actor { uuid: Uuid, addr: Option<&'a str> },
    /// The registrar at configured address `addr`: its rendezvous socket
    /// for an address this host keeps to itself, else TCP.
    Registrar(&'a str),
}

impl Target<'_> {
    /// For messages: where the target is.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Actor { uuid, addr } => match addr {
                Some(addr) => format!("actor {} at {addr}", uuid.simple()),
                None => format!("actor {} on this host", uuid.simple()),
            },
            Target::Registrar(addr) => format!("the registrar at {addr}"),
        }
    }
}

impl Stream {
    /// Connects to `target`. No deadline of its own: the opening's covers
    /// it (see `connections`).
    pub(crate) async fn connect(target: Target<'_>) -> Result<Stream> {
        let transport = transport()?;
        match target {
            Target::Registrar(addr) => match local::rendezvous(addr) {
                Some(name) if transport.unix_sockets() => {
                    Ok(connect_unix(&local::rendezvous_socket(&name)?).await?)
                }
                Some(_) if addr.starts_with(local::LOCAL_PREFIX) => Err(Error::other(format!(
                    "registrar address {addr:?} names a tree on this host, which needs Unix \
                     sockets; this program's transport policy rules them out"
                ))),
                _ => {
                    transport
                        .dialed(TcpStream::connect(addr).await?, addr)
                        .await
                }
            },
            Target::Actor { uuid, addr } => {
                if transport.unix_sockets() {
                    let path = local::actor_socket(uuid)?;
                    match (connect_unix(&path).await, addr) {
                        (Ok(stream), _) => return Ok(stream),
                        // Not on this host (or gone): try its TCP address.
                        (Err(err), _) if err.kind() == io::ErrorKind::PermissionDenied => {
                            return Err(err.into());
                        }
                        (Err(err), None) => return Err(err.into()),
                        (Err(_), Some(_)) => {}
                    }
                }
                let addr = addr.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("actor {} has no TCP address", uuid.simple()),
                    )
                })?;
                transport
                    .dialed(TcpStream::connect(addr).await?, addr)
                    .await
            }
        }
    }

    pub(crate) fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(stream) => {
                let (read, write) = stream.into_split();
                (Box::new(read), Box::new(write))
            }
            Stream::Tls(stream) => {
                let (read, write) = tokio::io::split(*stream);
                (Box::new(read), Box::new(write))
            }
            Stream::Unix(stream) => {
                let (read, write) = stream.into_split();
                (Box::new(read), Box::new(write))
            }
        }
    }

    /// The other end, for messages.
    pub(crate) fn peer(&self) -> String {
        match self {
            Stream::Tcp(stream) => stream
                .peer_addr()
                .map_or_else(|_| "a TCP peer".into(), |addr| addr.to_string()),
            Stream::Tls(stream) => stream
                .get_ref()
                .0
                .peer_addr()
                .map_or_else(|_| "a TLS peer".into(), |addr| addr.to_string()),
            Stream::Unix(_) => "a local peer".into(),
        }
    }

    /// Whether this is a connection over TCP (to another host, as a rule).
    pub(crate) fn is_tcp(&self) -> bool {
        !matches!(self, Stream::Unix(_))
    }

    /// The connection's socket descriptor, to ask the kernel whether the
    /// peer hung up (see `Channel::is_gone`).
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Stream::Tcp(stream) => stream.as_raw_fd(),
            Stream::Tls(stream) => stream.get_ref().0.as_raw_fd(),
            Stream::Unix(stream) => stream.as_raw_fd(),
        }
    }

    /// The remote host of a TCP connection (`None` for a local peer).
    pub(crate) fn remote_host(&self) -> Option<std::net::IpAddr> {
        match self {
            Stream::Tcp(stream) => stream.peer_addr().ok().map(|addr| addr.ip()),
            Stream::Tls(stream) => stream.get_ref().0.peer_addr().ok().map(|addr| addr.ip()),
            Stream::Unix(_) => None,
        }
    }

    /// The key material both ends of a TLS session derive from it (RFC
    /// 5705), which the opening's proofs cover: proofs made over one TLS
    /// session do not check over another, so a relay that terminates TLS
    /// on both legs learns nothing it can use. Empty for other transports.
    pub(crate) fn binding(&self) -> Result<Vec<u8>> {
        let Stream::Tls(stream) = self else {
            return Ok(Vec::new());
        };
        let mut key = vec![0; 32];
        let label = b"EXPORTER-tractor-opening";
        let exported = match stream.as_ref() {
            tokio_rustls::TlsStream::Client(client) => client
                .get_ref()
                .1
                .export_keying_material(&mut key, label, None),
            tokio_rustls::TlsStream::Server(server) => server
                .get_ref()
                .1
                .export_keying_material(&mut key, label, None),
        };
        exported.map_err(|err| Error::Protocol(format!("no TLS channel binding: {err}")))?;
        Ok(key)
    }
}

/// Connects to the socket at `path`, checking it is served by our user.
async fn connect_unix(path: &std::path::Path) -> io::Result<Stream> {
    let stream = UnixStream::connect(path).await?;
    local::check_peer(&stream)?;
    Ok(Stream::Unix(LocalStream::from_tokio(stream)?))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// Something that accepts connections: a TCP or a Unix listener.
pub(crate) trait Listener: Send + Sync + 'static {
    /// The next connection.
    fn next(&self) -> impl std::future::Future<Output = io::Result<Stream>> + Send;
}

/// Accepted TCP connections come out plain: TLS (if configured) is set up
/// by the connection's own task, so a slow client holds up no one else.
impl Listener for tokio::net::TcpListener {
    async fn next(&self) -> io::Result<Stream> {
        Ok(Stream::Tcp(self.accept().await?.0))
    }
}

impl Listener for UnixListener {
    async fn next(&self) -> io::Result<Stream> {
        Ok(Stream::Unix(LocalStream::from_tokio(
            self.accept().await?.0,
        )?))
    }
}

/// The interface actors listen on for TCP: `TRACTOR_HOST`, else loopback.
pub(crate) fn listen_host() -> String {
    std::env::var(HOST_ENV).unwrap_or_else(|_| "127.0.0.1".into())
}

/// The interface actors listen on for TCP (default `127.0.0.1`) when they
/// listen on TCP at all (see [`TRANSPORT_ENV`](crate::TRANSPORT_ENV)); set
/// it to a routable address for trees that span hosts.
pub const HOST_ENV: &str = "TRACTOR_HOST";
