//! Listening sockets: one SO_REUSEPORT group per listener, one socket per worker.
//!
//! Each worker accepts on its own socket, so accepting takes no lock and the kernel
//! spreads connections over workers by hashing the 4-tuple. The group is created by the
//! control thread before workers start, so a bind error stops ringway at start, with the
//! listener's name, instead of in a worker.
//!
//! SO_REUSEPORT alone would let a second ringway on the same port silently take a share
//! of the connections. So the address is first bound once *without* SO_REUSEPORT: if
//! anything is listening there, that bind fails with "address in use". The probe is then
//! closed and the group bound; the window between the two is microseconds, and a process
//! that races into it would need SO_REUSEPORT and the same user to join the group.

use std::{io, net::SocketAddr, time::Duration};

use socket2::{Domain, Protocol, Socket, Type};

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
