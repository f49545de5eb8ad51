//! systemd integration: socket activation (`LISTEN_FDS`) and readiness (`sd_notify`).
//!
//! Sockets passed by systemd go through the same adoption path as a hot restart's
//! (`sockets::Inherited`), matched to listeners by their local address. Readiness is a
//! datagram to `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`),
//! sent by the control thread only; without `NOTIFY_SOCKET` nothing is sent.

use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

use tracing::{debug, warn};

use super::{adopt::adopt, sockets::Inherited};
use crate::listen::ListenSocket;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// Listening sockets (TCP, or Unix with a path) passed by systemd, if this process is their addressee.
pub fn listen_fds() -> Inherited {
    let mut inherited = Inherited::default();
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    // Unset them so that nothing started later believes they are its own.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if !pid_matches || count <= 0 {
        return inherited;
    }
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + count {
        let listener = match ListenSocket::from_fd(adopt(fd)) {
            Ok(listener) => listener,
            Err(e) => {
                warn!(fd, error = %e, "LISTEN_FDS: not a socket; ignored");
                continue;
            }
        };
        // Accepted sockets inherit TCP_NODELAY from the listener (the accept path does
        // not set it per connection); a socket unit sets it only with `NoDelay=true`.
        if let ListenSocket::Tcp(tcp) = &listener {
            if let Err(e) = socket2::SockRef::from(tcp).set_nodelay(true) {
                warn!(fd, error = %e, "LISTEN_FDS: cannot set TCP_NODELAY");
            }
        }
        match listener.local_address() {
            Ok(addr) => inherited.listeners.push((addr, listener)),
            Err(e) => warn!(fd, error = %e, "LISTEN_FDS: not a TCP or Unix path socket; ignored"),
        }
    }
    inherited
}

/// Sends `state` (e.g. `READY=1`) to the service manager, when there is one.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = (|| {
        let socket = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => abstract_addr(name)?,
            None => UnixAddr::from_pathname(std::path::Path::new(&path))?,
        };
        socket.send_to_addr(state.as_bytes(), &addr)
    })();
    match result {
        Ok(_) => debug!(state, "sd_notify"),
        Err(e) => warn!(error = %e, "sd_notify failed"),
    }
}

fn abstract_addr(name: &[u8]) -> std::io::Result<UnixAddr> {
    use std::os::linux::net::SocketAddrExt;
    UnixAddr::from_abstract_name(name)
}
