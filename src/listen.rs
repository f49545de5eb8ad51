//! Listening sockets: one SO_REUSEPORT group per TCP listener, one socket per worker; one
//! shared socket per Unix-socket listener.
//!
//! Each worker accepts on its own socket, so accepting takes no lock and the kernel
//! spreads connections over workers by hashing the 4-tuple. Unix stream sockets have no
//! such groups (Linux does not balance SO_REUSEPORT for them), so every worker waits on
//! the same socket and the first to accept takes the connection; a worker that loses the
//! race gets EAGAIN and waits again. The group is created by the
//! control thread before workers start, so a bind error stops ringway at start, with the
//! listener's name, instead of in a worker.
//!
//! SO_REUSEPORT alone would let a second ringway on the same port silently take a share
//! of the connections. So the address is first bound once *without* SO_REUSEPORT: if
//! anything is listening there, that bind fails with "address in use". The probe is then
//! closed and the group bound; the window between the two is microseconds, and a process
//! that races into it would need SO_REUSEPORT and the same user to join the group.

use std::{
    io,
    net::SocketAddr,
    os::{
        fd::{AsRawFd, RawFd},
        unix::net::{UnixListener, UnixStream},
    },
    path::Path,
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Address;

/// A listening socket, TCP or Unix.
#[derive(Debug)]
pub enum ListenSocket {
    Tcp(std::net::TcpListener),
    Unix(UnixListener),
}

impl ListenSocket {
    /// Another descriptor of the same socket.
    pub fn try_clone(&self) -> io::Result<ListenSocket> {
        Ok(match self {
            ListenSocket::Tcp(s) => ListenSocket::Tcp(s.try_clone()?),
            ListenSocket::Unix(s) => ListenSocket::Unix(s.try_clone()?),
        })
    }

    /// The address it is bound to.
    pub fn local_address(&self) -> io::Result<Address> {
        match self {
            ListenSocket::Tcp(s) => s.local_addr().map(Address::Tcp),
            ListenSocket::Unix(s) => s
                .local_addr()?
                .as_pathname()
                .map(|p| Address::Unix(p.to_path_buf()))
                .ok_or_else(|| io::Error::other("an unnamed or abstract Unix socket")),
        }
    }

    /// The socket from a descriptor known to be a listening stream socket, by its family.
    pub fn from_fd(fd: std::os::fd::OwnedFd) -> io::Result<ListenSocket> {
        if socket2::SockRef::from(&fd).local_addr()?.is_unix() {
            Ok(ListenSocket::Unix(UnixListener::from(fd)))
        } else {
            Ok(ListenSocket::Tcp(std::net::TcpListener::from(fd)))
        }
    }
}

impl AsRawFd for ListenSocket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            ListenSocket::Tcp(s) => s.as_raw_fd(),
            ListenSocket::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// Binds the listener's sockets: a SO_REUSEPORT group of `count` for TCP, one socket for
/// a Unix path.
pub fn bind(address: &Address, count: usize) -> io::Result<Vec<ListenSocket>> {
    match address {
        Address::Tcp(addr) => Ok(bind_group(*addr, count)?
            .into_iter()
            .map(ListenSocket::Tcp)
            .collect()),
        Address::Unix(path) => Ok(vec![ListenSocket::Unix(bind_unix(path)?)]),
    }
}

/// Binds a Unix stream socket at `path`. A socket file already there is taken over only
/// when nothing accepts on it (a stale file left by a process that died): a live one is
/// "address in use", as for TCP, and a file that is not a socket is never removed.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "a process is accepting on this socket",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)?;
            }
            Err(e) => return Err(e),
        },
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The accept queue length asked of the kernel (it caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

fn socket_for(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Rebinding over connections in TIME_WAIT after a restart; on Linux this never lets
    // two sockets listen on one port.
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// Binds `count` listening sockets on `addr` in one SO_REUSEPORT group, after checking
/// that nothing else listens there. Port 0 picks one free port for the whole group.
pub fn bind_group(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let probe = socket_for(addr)?;
    probe.bind(&addr.into())?;
    let bound = probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound address is not an IP address"))?;
    drop(probe);
    join_group(bound, count.max(1))
}

/// Binds `count` more SO_REUSEPORT sockets on `addr`, joining the group already there
/// (ours, or one inherited from a previous ringway or systemd: the kernel allows it for
/// the same user when every socket of the group has SO_REUSEPORT).
pub fn join_group(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    (0..count)
        .map(|_| {
            let socket = socket_for(addr)?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.set_nodelay(true)?;
            socket.bind(&addr.into())?;
            socket.listen(BACKLOG)?;
            Ok(socket.into())
        })
        .collect()
}

/// How long an accept loop waits after an error that says the process or the system is
/// out of something (descriptors, socket buffers, memory) before accepting again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Whether an accept error is the process or the system running out of descriptors,
/// socket buffers or memory. Linux takes the new descriptor *before* it looks at the
/// queue, so `accept` then fails at once every time, with or without a connection
/// waiting and even on a blocking socket: a loop that simply accepts again spins a core
/// until something else closes a descriptor. Every accept loop backs off on these.
pub fn out_of_resources(e: &io::Error) -> bool {
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const ENOBUFS: i32 = 105;
    matches!(e.raw_os_error(), Some(ENOMEM | ENFILE | EMFILE | ENOBUFS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_buffers_or_memory_is_out_of_resources() {
        for errno in [12, 23, 24, 105] {
            assert!(
                out_of_resources(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        // ECONNABORTED and EAGAIN concern one connection or none: no back-off.
        for errno in [103, 11] {
            assert!(
                !out_of_resources(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        assert!(!out_of_resources(&io::Error::other("no errno")));
    }

    #[test]
    fn a_group_shares_one_port_and_a_second_group_is_refused() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(group.len(), 3);
        let addr = group[0].local_addr().unwrap();
        assert!(group.iter().all(|l| l.local_addr().unwrap() == addr));
        let err = bind_group(addr, 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn a_unix_socket_takes_over_a_stale_file_but_not_a_live_socket_or_other_files() {
        let dir = std::env::temp_dir().join(format!("ringway-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let live = bind_unix(&path).unwrap();
        let err = bind_unix(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        // Closed without removing its file: stale, taken over.
        drop(live);
        let again = ListenSocket::Unix(bind_unix(&path).unwrap());
        assert_eq!(again.local_address().unwrap(), Address::Unix(path.clone()));
        let clone = again.try_clone().unwrap();
        let fd: std::os::fd::OwnedFd = match clone {
            ListenSocket::Unix(s) => s.into(),
            ListenSocket::Tcp(_) => unreachable!(),
        };
        assert!(matches!(
            ListenSocket::from_fd(fd).unwrap(),
            ListenSocket::Unix(_)
        ));
        let plain = dir.join("plain");
        std::fs::write(&plain, b"keep me").unwrap();
        assert_eq!(
            bind_unix(&plain).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::read(&plain).unwrap(), b"keep me");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn accepted_sockets_inherit_tcp_nodelay_from_the_listener() {
        // The accept path relies on this instead of a setsockopt per connection.
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let listener = &group[0];
        listener.set_nonblocking(false).unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY not inherited");
        assert!(
            !client.nodelay().unwrap(),
            "a fresh socket has it off: the check means something"
        );
    }
}
