//! The streams a forward connection is served over: TCP, a Unix socket, or TLS over TCP.
//!
//! Plain sockets wait for data without a buffer and can leave the event loop's poller while a
//! connection coalesces reads. A TLS stream cannot report readiness without decrypting, so it
//! reads into a small buffer of its own when waited on.

use std::future::Future;
use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;

/// Bytes a TLS stream decrypts at a time when waited on.
const TLS_READ_SIZE: usize = 16 * 1024;

/// A stream that can wait for data without a buffer, and leave the event loop's poller while
/// it waits on purpose.
pub(super) trait Socket: AsyncWrite + Unpin + Send + Sized + 'static {
    type Std: Send;
    /// Resolves once data (or end of stream) can be read. Cancel-safe.
    fn readable(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads what is there without waiting (`WouldBlock` when nothing is).
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
    /// Out of epoll: data arriving meanwhile wakes nothing.
    fn into_std(self) -> io::Result<Self::Std>;
    /// Back in epoll; data that arrived meanwhile is reported at once.
    fn from_std(std: Self::Std) -> io::Result<Self>;
}

impl Socket for TcpStream {
    type Std = std::net::TcpStream;
    fn readable(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        TcpStream::try_read_buf(self, buf)
    }
    fn into_std(self) -> io::Result<Self::Std> {
        TcpStream::into_std(self)
    }
    fn from_std(std: Self::Std) -> io::Result<Self> {
        TcpStream::from_std(std)
    }
}

impl Socket for UnixStream {
    type Std = std::os::unix::net::UnixStream;
    fn readable(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        UnixStream::readable(self)
    }
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        UnixStream::try_read_buf(self, buf)
    }
    fn into_std(self) -> io::Result<Self::Std> {
        UnixStream::into_std(self)
    }
    fn from_std(std: Self::Std) -> io::Result<Self> {
        UnixStream::from_std(std)
    }
}

/// A TLS connection and the plaintext decrypted while waiting for readiness.
pub(super) struct Tls {
    stream: TlsStream<TcpStream>,
    pending: BytesMut,
    /// The peer closed (or the stream failed): reported once `pending` is drained.
    eof: Option<io::ErrorKind>,
}

impl Tls {
    pub fn new(stream: TlsStream<TcpStream>) -> Self {
        Tls {
            stream,
            pending: BytesMut::new(),
            eof: None,
        }
    }
}

impl Socket for Tls {
    /// A TLS session cannot leave the poller without losing its state: it stays as it is.
    type Std = Self;
    async fn readable(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() || self.eof.is_some() {
            return Ok(());
        }
        self.pending.reserve(TLS_READ_SIZE);
        // `read_buf` on a TLS stream only appends once a whole record has been decrypted, so
        // a cancelled wait loses nothing.
        match self.stream.read_buf(&mut self.pending).await {
            Ok(0) => self.eof = Some(io::ErrorKind::UnexpectedEof),
            Ok(_) => {}
            Err(e) => self.eof = Some(e.kind()),
        }
        Ok(())
    }
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if self.pending.is_empty() {
            return match self.eof {
                Some(io::ErrorKind::UnexpectedEof) => Ok(0),
                Some(kind) => Err(kind.into()),
                None => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        let n = self.pending.len();
        buf.extend_from_slice(&self.pending);
        // An idle TLS connection holds no plaintext buffer either.
        self.pending = BytesMut::new();
        Ok(n)
    }
    fn into_std(self) -> io::Result<Self> {
        Ok(self)
    }
    fn from_std(std: Self) -> io::Result<Self> {
        Ok(std)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
