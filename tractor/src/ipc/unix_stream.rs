//! A Unix stream that the runtime watches for reading only, and for
//! writing only while a write waits for room.
//!
//! Each time a process reads from a Unix socket, the kernel tells every
//! poller watching the *other* end for writability that there is room
//! again, whether or not anything waits to write. A stream registered for
//! both directions — as `tokio::net::UnixStream` always is — therefore
//! wakes its sleeping runtime once for every frame its peer reads: in one
//! spawn cycle (spec, opening, call, answer, cancel) that was eight
//! wake-ups with nothing to do, each a context switch and, on an idle core,
//! a cross-core interrupt. Frames between actors are small and a socket's
//! buffer is rarely full, so a write here is tried first; only one that
//! would block registers a duplicate of the descriptor for writability,
//! and that registration is dropped once the write goes through.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::io::Errno;
use rustix::net::{SendFlags, Shutdown};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A connected Unix stream (see the module docs): its two halves, used
/// together until split.
pub(crate) struct LocalStream {
    read: LocalReadHalf,
    write: LocalWriteHalf,
}

/// The reading half of a split [`LocalStream`].
pub(crate) struct LocalReadHalf(Arc<AsyncFd<UnixStream>>);

/// The writing half of a split [`LocalStream`]; dropping it shuts the
/// stream down for writing, so the peer reads the end.
pub(crate) struct LocalWriteHalf {
    socket: Arc<AsyncFd<UnixStream>>,
    /// The writability registration of a write that had to wait.
    waiting: Option<AsyncFd<OwnedFd>>,
}

impl LocalStream {
    /// Takes over a connected stream (made non-blocking here).
    pub(crate) fn from_std(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        let socket = Arc::new(register(stream, Interest::READABLE)?);
        Ok(LocalStream {
            read: LocalReadHalf(socket.clone()),
            write: LocalWriteHalf {
                socket,
                waiting: None,
            },
        })
    }

    /// Takes over a stream tokio registered (for both directions).
    pub(crate) fn from_tokio(stream: tokio::net::UnixStream) -> io::Result<Self> {
        LocalStream::from_std(stream.into_std()?)
    }

    /// A connected pair (for tests and the fuzzing harness).
    pub(crate) fn pair() -> io::Result<(Self, Self)> {
        let (ours, theirs) = UnixStream::pair()?;
        Ok((LocalStream::from_std(ours)?, LocalStream::from_std(theirs)?))
    }

    pub(crate) fn into_split(self) -> (LocalReadHalf, LocalWriteHalf) {
        (self.read, self.write)
    }
}

impl AsRawFd for LocalStream {
    fn as_raw_fd(&self) -> RawFd {
        self.read.0.as_raw_fd()
    }
}

impl AsFd for LocalStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.read.0.get_ref().as_fd()
    }
}

/// Registers a descriptor `inner` owns with the runtime, for `interest`.
fn register<T: AsRawFd>(inner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its descriptor (a stream, or a duplicate), which
    // therefore stays open, and the same, while the `AsyncFd` holds it.
    unsafe { AsyncFd::register_with_interest(inner, interest) }.map_err(|err| err.into_parts().1)
}

impl LocalWriteHalf {
    fn write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            match rustix::net::send(self.socket.get_ref(), buf, SendFlags::NOSIGNAL) {
                Ok(sent) => {
                    // Room again: stop being told so on every read.
                    self.waiting = None;
                    return Poll::Ready(Ok(sent));
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {}
                Err(err) => return Poll::Ready(Err(err.into())),
            }
            let waiting = match &mut self.waiting {
                Some(waiting) => waiting,
                None => {
                    let duplicate = self.socket.get_ref().as_fd().try_clone_to_owned()?;
                    self.waiting
                        .insert(register(duplicate, Interest::WRITABLE)?)
                }
            };
            ready!(waiting.poll_write_ready(cx))?.clear_ready();
        }
    }
}

fn shut_down(socket: &AsyncFd<UnixStream>) -> io::Result<()> {
    match rustix::net::shutdown(socket.get_ref(), Shutdown::Write) {
        // The peer is gone already: shut down as far as it matters.
        Ok(()) | Err(Errno::NOTCONN) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

impl LocalReadHalf {
    /// Runs `read`, a non-blocking read of the caller's own (one that
    /// also takes ancillary data, say), once the socket is readable, and
    /// again each time it would block.
    pub(crate) async fn read_with<R>(
        &self,
        mut read: impl FnMut(&UnixStream) -> io::Result<R>,
    ) -> io::Result<R> {
        self.0
            .async_io(Interest::READABLE, |socket| read(socket))
            .await
    }
}

impl AsyncRead for LocalReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let socket = &self.0;
        loop {
            let mut ready = ready!(socket.poll_read_ready(cx))?;
            // SAFETY: `read` only writes into the slice, and only what it
            // returns as initialized is marked so.
            let unfilled = unsafe { buf.unfilled_mut() };
            match ready.try_io(|socket| Ok(rustix::io::read(socket, &mut *unfilled)?.0.len())) {
                Ok(Ok(read)) => {
                    // SAFETY: the kernel filled `read` bytes of the unfilled part.
                    unsafe { buf.assume_init(read) };
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                // Not readable after all: the guard cleared its readiness.
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for LocalWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shut_down(&self.socket))
    }
}

impl AsyncRead for LocalStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl AsyncWrite for LocalStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write.write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shut_down(&self.write.socket))
    }
}

impl Drop for LocalWriteHalf {
    fn drop(&mut self) {
        let _ = shut_down(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_write_that_must_wait_for_room_gets_through_whole() {
        let (ours, theirs) = LocalStream::pair().unwrap();
        let (_, mut writer) = ours.into_split();
        let (mut reader, _theirs) = theirs.into_split();
        // Far more than a socket buffer holds, so the writer waits for
        // the reader again and again.
        let sent: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let writing = tokio::spawn(async move {
            writer.write_all(&sent).await.unwrap();
            assert!(writer.waiting.is_none(), "no writability watch left");
        });
        let mut received = Vec::new();
        reader.read_to_end(&mut received).await.unwrap();
        writing.await.unwrap();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "the bytes arrive in order");
    }

    #[tokio::test]
    async fn dropping_the_write_half_ends_the_peers_reading() {
        let (ours, mut theirs) = LocalStream::pair().unwrap();
        let (_reader, mut writer) = ours.into_split();
        writer.write_all(b"last words").await.unwrap();
        drop(writer);
        let mut received = Vec::new();
        theirs.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"last words");
    }

    #[tokio::test]
    async fn writing_to_a_closed_peer_is_an_error_not_a_signal() {
        let (mut ours, theirs) = LocalStream::pair().unwrap();
        drop(theirs);
        let err = ours.write_all(b"anyone?").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
