//! The byte streams under a connection: TCP, a Unix socket, or TLS over TCP, all non-blocking
//! and never inherited by the command.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Tls(s) => s.sock.as_fd(),
        }
    }

    /// Wraps a connected TCP stream in TLS; the handshake happens as the stream is used.
    pub(super) fn tls(
        self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Stream> {
        let Stream::Tcp(tcp) = self else {
            return Ok(self);
        };
        let connection = ClientConnection::new(config, name).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(StreamOwned::new(connection, tcp))))
    }

    /// Whether the stream has bytes of its own to write (the TLS handshake), or, once it can
    /// take ours, whether `queued` ones are waiting.
    pub(super) fn wants_write(&self, queued: bool) -> bool {
        match self {
            Stream::Tls(s) => s.conn.wants_write() || (queued && !s.conn.is_handshaking()),
            _ => queued,
        }
    }

    /// A TLS handshake still under way.
    pub(super) fn handshaking(&self) -> bool {
        matches!(self, Stream::Tls(s) if s.conn.is_handshaking())
    }

    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            // During the handshake rustls says WouldBlock: ours wait in the caller's buffer.
            Stream::Tls(s) => s.write(buf),
        }
    }
}

/// Connects to a Unix socket without waiting: a server that does not accept and whose queue
/// is full refuses at once (EAGAIN) instead of blocking the thread that talks to the others.
pub(super) fn connect_unix(path: &Path) -> io::Result<Stream> {
    let fd = stream_socket(AddressFamily::Unix)?;
    match socket::connect(fd.as_raw_fd(), &socket::UnixAddr::new(path)?) {
        Ok(()) => Ok(Stream::Unix(UnixStream::from(fd))),
        Err(Errno::EAGAIN) => Err(io::Error::other(
            "the server accepts no more connections (its queue is full)",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Opens a TCP connection without waiting for it: the stream, and whether it is still being
/// made (writable once it is).
pub(super) fn start_connect(address: SocketAddr) -> io::Result<(Stream, bool)> {
    let fd = stream_socket(match address {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    })?;
    let pending = match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(address)) {
        Ok(()) => false,
        Err(Errno::EINPROGRESS) => true,
        Err(e) => return Err(e.into()),
    };
    let stream = TcpStream::from(fd);
    stream.set_nodelay(true)?;
    Ok((Stream::Tcp(stream), pending))
}

/// A stream socket that never blocks, and is not inherited by the command.
fn stream_socket(family: AddressFamily) -> io::Result<OwnedFd> {
    Ok(socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}
