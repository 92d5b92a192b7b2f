//! Transports: TCP for actors anywhere, Unix-domain sockets between actors
//! on one host.
//!
//! Every actor listens on TCP (its address is what the registrar and other
//! hosts know) and, where it can, on a Unix socket too: a file in a
//! per-user directory (mode 0700, the socket 0600). Actors announce that
//! path in their handshake; a peer on the same host that can open it uses
//! it instead of TCP loopback, which here halves the cost of waking the
//! other side (tractor-bench measures both). Anything that goes wrong with
//! the Unix path falls back to TCP.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use super::tls::transport;
use crate::error::Result;

/// A connection over any transport.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
    Unix(UnixStream),
}

/// The reading half of a split [`Stream`].
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a split [`Stream`].
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

impl Stream {
    /// Connects to an actor: over its Unix socket if it has one we can
    /// open, else over TCP (with TLS where configured, see `tls`).
    pub(crate) async fn connect(tcp: &str, local: Option<&str>) -> Result<Stream> {
        let transport = transport()?;
        if let (Some(path), true) = (local, transport.unix_sockets()) {
            if let Ok(stream) = UnixStream::connect(path).await {
                return Ok(Stream::Unix(stream));
            }
        }
        transport.dialed(TcpStream::connect(tcp).await?, tcp).await
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
        Ok(Stream::Unix(self.accept().await?.0))
    }
}

/// The per-user directory for actors' Unix sockets: `$XDG_RUNTIME_DIR/tractor`
/// or `/tmp/tractor-<uid>`, created 0700 and used only if it is ours and
/// private.
pub(crate) fn socket_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = rustix::process::getuid().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) if !runtime.is_empty() => PathBuf::from(runtime).join("tractor"),
        _ => std::env::temp_dir().join(format!("tractor-{uid}")),
    };
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let private = meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o077 == 0;
    private.then_some(dir)
}

/// Binds this actor's Unix socket (`<dir>/<name>.sock`, mode 0600), unless
/// the transport settings rule Unix sockets out.
pub(crate) fn bind_local(name: &str) -> Option<(UnixListener, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    if !transport().ok()?.unix_sockets() {
        return None;
    }
    let path = socket_dir()?.join(format!("{name}.sock"));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).ok()?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).ok()?;
    Some((listener, path))
}

/// The interface actors listen on for TCP: `TRACTOR_HOST`, else loopback.
pub(crate) fn listen_host() -> String {
    std::env::var(HOST_ENV).unwrap_or_else(|_| "127.0.0.1".into())
}

/// The interface actors listen on for TCP (default `127.0.0.1`); set it to
/// a routable address for trees that span hosts.
pub const HOST_ENV: &str = "TRACTOR_HOST";

/// Removes sockets in the directory that nobody listens on any more (left
/// by actors that were killed).
pub(crate) fn sweep_stale_sockets() {
    let Some(dir) = socket_dir() else { return };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "sock") && is_stale(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn is_stale(path: &Path) -> bool {
    matches!(
        std::os::unix::net::UnixStream::connect(path),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused
    )
}
