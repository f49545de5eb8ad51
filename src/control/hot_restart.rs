//! Zero-downtime binary upgrade: a new ringway takes the listening sockets of the running
//! one over a Unix socket, as Envoy's hot restart does.
//!
//! The running process (epoch N) listens on a Unix stream socket (mode 0600; a peer of
//! another user is refused by its credentials). A new process started with
//! `--restart-epoch N+1` connects and, in lockstep (one request, one answer, so that no
//! two messages with descriptors are ever merged on the stream):
//!
//! ```text
//! new: SOCKETS <epoch>\n      old: OK\n
//! new: NEXT\n                 old: L <addr>\n + one fd (SCM_RIGHTS)   (every socket of
//! new: NEXT\n                 old: A <addr>\n + one fd                 every group, then
//! new: NEXT\n                 old: K <hex>\n                           the admin socket,
//!                                                                    then the TLS
//!                                                                    session-ticket keys)
//! new: NEXT\n                 old: END\n
//! ... the new process starts its workers on these sockets ...
//! new: DRAIN\n                old: OK\n, then drains and exits 0
//! ```
//!
//! Every socket of each SO_REUSEPORT group is passed, not one per address: the new process
//! then holds the very sockets the old one accepts on, so when the old one closes its
//! descriptors no socket closes and nothing queued on it is lost. Until `DRAIN` both
//! processes accept from the same queues and serve. The admin socket is passed too (it
//! cannot be bound twice); the old process stops serving admin when it starts draining.
//! After `DRAIN` the new process binds the Unix socket path itself, ready for the next
//! upgrade.

use std::{
    io::{self, IoSlice, IoSliceMut, Read, Write},
    net::SocketAddr,
    os::{
        fd::{AsRawFd, RawFd},
        unix::{
            fs::PermissionsExt,
            net::{UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, sockopt::PeerCredentials, ControlMessage, ControlMessageOwned,
    MsgFlags,
};
use tracing::{debug, info, warn};

use super::{adopt::adopt, sockets::Group, sockets::Inherited};
use crate::{config::Address, listen::ListenSocket};

/// How long one step of the exchange may take before the peer is given up on.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_MESSAGE: usize = 256;

/// The default socket path: per admin port (two ringways on one host differ in it), in
/// `$XDG_RUNTIME_DIR` (private to the user) when set, else `/tmp`.
pub fn default_path(admin: Option<SocketAddr>) -> Option<PathBuf> {
    let port = admin?.port();
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    Some(dir.join(format!("ringway-{port}.sock")))
}

/// Binds the hot-restart socket and accepts on a small thread of its own (accepting is
/// the only blocking step; the exchange itself runs on the control thread), handing each
/// connection over through the returned queue.
/// `successor`: we took over from the process serving `path`, which still answers there
/// while it drains; the path is ours now.
pub fn listen(path: &Path, successor: bool) -> io::Result<flume::Receiver<UnixStream>> {
    if !successor && UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process serves this hot-restart socket",
        ));
    }
    // A socket file nobody answers on is left over from a process that was killed.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("ringway-hot-restart".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if tx.send(stream).is_err() {
                            return;
                        }
                    }
                    Err(e) if crate::listen::out_of_resources(&e) => {
                        // A blocking accept out of descriptors fails at once, every time.
                        debug!(error = %e, "hot restart accept: out of resources; backing off");
                        std::thread::sleep(crate::listen::ACCEPT_BACKOFF);
                    }
                    Err(e) => debug!(error = %e, "hot restart accept failed"),
                }
            }
        })?;
    Ok(rx)
}

/// The old side: answers `SOCKETS` and `NEXT` requests with every socket of `groups` and
/// the admin socket. Returns the stream, on which `DRAIN` comes later.
pub fn hand_over(
    mut stream: UnixStream,
    groups: &[Group],
    admin: Option<&std::net::TcpListener>,
    ticket_keys: &crate::tls::ticket::TicketKeys,
) -> io::Result<UnixStream> {
    let peer = getsockopt(stream.as_raw_fd(), PeerCredentials).map_err(io::Error::from)?;
    if peer.uid() != nix::unistd::getuid().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("hot restart from uid {} refused", peer.uid()),
        ));
    }
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    stream.set_write_timeout(Some(STEP_TIMEOUT))?;
    let request = read_message(&mut stream)?;
    let Some(epoch) = request.strip_prefix("SOCKETS ") else {
        return Err(io::Error::other(format!("unexpected request {request:?}")));
    };
    info!(epoch, "hot restart: handing over the listening sockets");
    stream.write_all(b"OK\n")?;
    let mut items: Vec<(String, RawFd)> = Vec::new();
    for group in groups {
        for socket in &group.sockets {
            items.push((
                format!("L {}\n", socket.local_address()?),
                socket.as_raw_fd(),
            ));
        }
    }
    if let Some(admin) = admin {
        items.push((format!("A {}\n", admin.local_addr()?), admin.as_raw_fd()));
    }
    for (text, fd) in &items {
        expect(&mut stream, "NEXT")?;
        let fds = [*fd];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        retry_interrupted(|| {
            sendmsg::<()>(
                stream.as_raw_fd(),
                &[IoSlice::new(text.as_bytes())],
                &cmsg,
                MsgFlags::empty(),
                None,
            )
            .map_err(io::Error::from)
        })?;
    }
    // The ticket keys, so that clients resume their TLS sessions on the new process.
    expect(&mut stream, "NEXT")?;
    stream.write_all(format!("K {}\n", ticket_keys.to_hex()).as_bytes())?;
    expect(&mut stream, "NEXT")?;
    stream.write_all(b"END\n")?;
    // DRAIN may take as long as the new process needs to start.
    stream.set_read_timeout(None)?;
    Ok(stream)
}

/// A predecessor that handed its sockets over and waits to be told to drain.
#[derive(Debug)]
pub struct Predecessor {
    stream: UnixStream,
}

impl Predecessor {
    /// Tells the old process to drain and exit.
    pub fn drain(mut self) -> io::Result<()> {
        self.stream.write_all(b"DRAIN\n")?;
        expect(&mut self.stream, "OK")
    }
}

/// The new side: fetches every listening socket (and the admin socket) from the process
/// serving `path`.
pub fn fetch(path: &Path, epoch: u32) -> io::Result<(Inherited, Predecessor)> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("hot restart socket {}: {e}", path.display()),
        )
    })?;
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    stream.set_write_timeout(Some(STEP_TIMEOUT))?;
    stream.write_all(format!("SOCKETS {epoch}\n").as_bytes())?;
    expect(&mut stream, "OK")?;
    let mut inherited = Inherited {
        from_predecessor: true,
        ..Inherited::default()
    };
    loop {
        stream.write_all(b"NEXT\n")?;
        let mut buf = [0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        // A signal may interrupt the wait (see `retry_interrupted`); the borrow of `iov`
        // in the answer rules that helper out here.
        let msg = loop {
            match recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(io::Error::from)?,
            }
        };
        let mut fd = None;
        for cmsg in msg.cmsgs() {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    // Adopt every descriptor received, so that none leaks.
                    let owned = adopt(raw);
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        let len = msg.bytes;
        let text = std::str::from_utf8(&buf[..len])
            .map_err(io::Error::other)?
            .trim_end()
            .to_string();
        if text == "END" {
            break;
        }
        let (kind, addr) = text
            .split_once(' ')
            .ok_or_else(|| io::Error::other(format!("unexpected message {text:?}")))?;
        if kind == "K" {
            inherited.ticket_keys = crate::tls::ticket::TicketKeys::from_hex(addr);
            if inherited.ticket_keys.is_none() {
                warn!("hot restart: unreadable session-ticket keys; new ones are made");
            }
            continue;
        }
        let fd = fd.ok_or_else(|| io::Error::other(format!("no descriptor with {text:?}")))?;
        match kind {
            "L" => {
                let addr: Address = addr.parse().map_err(io::Error::other)?;
                let socket = ListenSocket::from_fd(fd)?;
                inherited.listeners.push((addr, socket));
            }
            "A" => inherited.admin = Some(std::net::TcpListener::from(fd)),
            _ => warn!(message = text, "hot restart: unknown item ignored"),
        }
    }
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    info!(
        sockets = inherited.listeners.len(),
        admin = inherited.admin.is_some(),
        "hot restart: received the listening sockets"
    );
    Ok((inherited, Predecessor { stream }))
}

/// Reads one short message (the exchange is lockstep, so a read holds exactly one).
fn read_message(stream: &mut UnixStream) -> io::Result<String> {
    let mut buf = [0u8; MAX_MESSAGE];
    let n = retry_interrupted(|| stream.read(&mut buf))?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
}

/// Runs a blocking call again when a signal interrupts it: the process takes signals
/// (SIGCHLD, SIGHUP, SIGTERM) on this thread, and an interrupted step must not abort the
/// hand-over (a CI run lost one to EINTR).
fn retry_interrupted<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn expect(stream: &mut UnixStream, what: &str) -> io::Result<()> {
    let got = read_message(stream)?;
    if got == what {
        Ok(())
    } else {
        Err(io::Error::other(format!("expected {what:?}, got {got:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_socket_the_admin_socket_and_the_ticket_keys_cross_over_and_drain_is_acknowledged() {
        let dir = std::env::temp_dir().join(format!("ringway-hr-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hr.sock");
        let incoming = listen(&path, false).unwrap();
        let group = Group {
            name: "l".into(),
            address: Address::Tcp("127.0.0.1:0".parse().unwrap()),
            sockets: crate::listen::bind(&Address::Tcp("127.0.0.1:0".parse().unwrap()), 3).unwrap(),
            owns_path: true,
        };
        let addr = group.sockets[0].local_address().unwrap();
        let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let client = {
            let path = path.clone();
            std::thread::spawn(move || fetch(&path, 1).unwrap())
        };
        let stream = incoming.recv().unwrap();
        let keys = crate::tls::ticket::TicketKeys::generate(Duration::from_secs(60)).unwrap();
        let mut stream = hand_over(stream, &[group], Some(&admin), &keys).unwrap();
        let (inherited, predecessor) = client.join().unwrap();
        // The session-ticket keys cross over too.
        assert_eq!(inherited.ticket_keys.as_ref(), Some(&keys));
        assert_eq!(inherited.listeners.len(), 3);
        assert!(inherited
            .listeners
            .iter()
            .all(|(a, s)| *a == addr && s.local_address().unwrap() == addr));
        assert_eq!(inherited.admin.unwrap().local_addr().unwrap(), admin_addr);
        let drain = std::thread::spawn(move || predecessor.drain());
        assert_eq!(read_message(&mut stream).unwrap(), "DRAIN");
        stream.write_all(b"OK\n").unwrap();
        drain.join().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
