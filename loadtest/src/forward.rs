//! `ringway-load forward`: a bare TCP forwarder on raw io_uring, built to measure the
//! floor under any proxy on a machine.
//!
//! The performance issue points at io_uring features monoio 0.2.4 does not offer
//! (multishot receive into a provided buffer ring, registered files, multishot accept)
//! and asks for them "where measurement shows they pay". Before building a driver of our
//! own beside monoio's, this measures the most any of them could pay: a forwarder that
//! uses all of them and does nothing else. Each client connection gets its own upstream
//! connection (like HAProxy's `mode tcp`), bytes are never parsed or copied:
//!
//! - one thread, one ring with `SINGLE_ISSUER | DEFER_TASKRUN` (completions run when the
//!   loop asks, never as task-work interrupts); each turn of the loop is one
//!   `io_uring_enter` that submits what the last turn queued and waits for a completion;
//! - multishot accept on the listener; accepted and upstream sockets go into the ring's
//!   fixed-file table, so no operation looks a descriptor up (`fget`);
//! - one multishot receive per socket for its whole life, into buffers the kernel picks
//!   from a provided buffer ring: no receive submission per message, no buffer held by
//!   an idle connection;
//! - each received buffer is sent to the other side as it is, then handed back to the
//!   buffer ring (one send in flight per socket keeps the byte order).
//!
//! It is an instrument, not a proxy: no timeouts, no limits, no graceful stop (compare
//! kills it), and an upstream connect that blocks the loop (loopback: microseconds; the
//! cost regimes keep their connections). `compare --targets uring-forward` measures it.
//!
//! All `unsafe` of this crate is here: pushing submission entries that point at the
//! buffer memory, and the buffer ring shared with the kernel. Each block says why it
//! holds.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// Submission queue entries (the completion queue gets twice as many).
const RING_ENTRIES: u32 = 1024;
/// Provided buffers: a power of two, as the buffer ring requires.
const BUFFERS: u16 = 1024;
/// Bytes per provided buffer.
const BUFFER_SIZE: usize = 16 * 1024;
/// The one buffer group.
const GROUP: u16 = 0;
/// Fixed-file slots: two per forwarded connection.
const SLOTS: u32 = 8192;

/// Linux's ENOBUFS (the same on every architecture), without a libc dependency for one
/// constant: a multishot receive found the buffer ring empty.
const ENOBUFS: i32 = 105;

/// What a completion belongs to: the low byte of its user data; the slot is above it.
const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;

fn user_data(kind: u64, slot: u32) -> u64 {
    kind | (u64::from(slot) << 8)
}

/// One side of a forwarded connection, by fixed-file slot.
#[derive(Debug, Default)]
struct Side {
    /// The descriptor (closed when the side is released).
    socket: Option<TcpStream>,
    /// The other side's slot.
    peer: u32,
    /// Received buffers waiting to be sent to this socket: (buffer id, sent, length).
    queue: VecDeque<(u16, u32, u32)>,
    sending: bool,
    receiving: bool,
    /// This socket's receive saw the end of its stream.
    eof: bool,
    /// The other side has ended: shut this socket's writing down once its queue is sent.
    shut_when_sent: bool,
    closing: bool,
}

/// The provided buffer ring: buffers the kernel fills, and the ring of their ids it
/// takes them from.
struct BufferRing {
    /// The ring entries (16 bytes each), page-aligned as the kernel requires.
    entries: *mut types::BufRingEntry,
    layout: std::alloc::Layout,
    /// The buffers themselves, `BUFFERS * BUFFER_SIZE` bytes.
    memory: Box<[u8]>,
    /// Our copy of the tail the kernel reads.
    tail: u16,
}

impl std::fmt::Debug for BufferRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferRing")
            .field("tail", &self.tail)
            .finish()
    }
}

impl BufferRing {
    fn new() -> Result<BufferRing, String> {
        let layout = std::alloc::Layout::from_size_align(
            usize::from(BUFFERS) * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(|e| format!("buffer ring layout: {e}"))?;
        // SAFETY: the layout has a non-zero size; zeroed memory is a valid ring (all
        // entries empty, tail 0).
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            return Err("cannot allocate the buffer ring".into());
        }
        let mut ring = BufferRing {
            entries,
            layout,
            memory: vec![0u8; usize::from(BUFFERS) * BUFFER_SIZE].into_boxed_slice(),
            tail: 0,
        };
        for id in 0..BUFFERS {
            ring.give_back(id);
        }
        Ok(ring)
    }

    fn address(&self, id: u16) -> *const u8 {
        self.memory[usize::from(id) * BUFFER_SIZE..].as_ptr()
    }

    /// Puts buffer `id` back at the tail, where the kernel will take it again.
    fn give_back(&mut self, id: u16) {
        let index = usize::from(self.tail & (BUFFERS - 1));
        // SAFETY: `index` < BUFFERS, inside the allocation; the kernel reads an entry only
        // once the tail (published below) has passed it, and it never writes entries.
        let entry = unsafe { &mut *self.entries.add(index) };
        entry.set_addr(self.address(id) as u64);
        entry.set_len(BUFFER_SIZE as u32);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is the u16 the kernel reads in the first entry's reserved field,
        // aligned and inside the allocation; the release store publishes the entry written
        // above before the kernel can see the new tail.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufferRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout. The ring is dropped after the
        // io_uring instance (field order in `Forwarder`), so the kernel no longer reads it.
        unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) };
    }
}

/// The forwarder's state: the ring first, so it is dropped (and the kernel lets go of
/// the buffers) before the buffers are.
struct Forwarder {
    ring: IoUring,
    buffers: BufferRing,
    sides: Vec<Side>,
    free_slots: Vec<u32>,
    listener: TcpListener,
    upstream: SocketAddr,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstream", &self.upstream)
            .finish()
    }
}

/// The ring with its fixed-file table and buffer ring registered, and which setup flags
/// it got. `SINGLE_ISSUER | DEFER_TASKRUN` needs Linux 6.1; older kernels get
/// `COOP_TASKRUN`, then a plain ring, as ringway's workers do.
fn setup() -> Result<(IoUring, BufferRing, &'static str), String> {
    let build = |flags: &str| {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(RING_ENTRIES * 2);
        match flags {
            "SINGLE_ISSUER|DEFER_TASKRUN" => {
                builder.setup_single_issuer().setup_defer_taskrun();
            }
            "COOP_TASKRUN" => {
                builder.setup_coop_taskrun();
            }
            _ => {}
        }
        builder.build(RING_ENTRIES)
    };
    let mut last = None;
    let mut ring = None;
    for flags in ["SINGLE_ISSUER|DEFER_TASKRUN", "COOP_TASKRUN", "no flags"] {
        match build(flags) {
            Ok(r) => {
                ring = Some((r, flags));
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some((ring, flags)) = ring else {
        return Err(format!(
            "io_uring is unavailable: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ));
    };
    ring.submitter()
        .register_files_sparse(SLOTS)
        .map_err(|e| format!("registering {SLOTS} fixed files: {e}"))?;
    let buffers = BufferRing::new()?;
    // SAFETY: the ring entries stay allocated until `buffers` is dropped, after the ring.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(buffers.entries as u64, BUFFERS, GROUP, 0)
    }
    .map_err(|e| format!("registering a provided buffer ring (Linux 5.19+): {e}"))?;
    Ok((ring, buffers, flags))
}

/// Whether this kernel lets `forward` run (compare skips the target with the reason).
/// Multishot receive needs Linux 6.0, which the ring setup alone does not reveal.
pub fn probe() -> Result<(), String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if !kernel_at_least(&release, (6, 0)) {
        return Err(format!(
            "multishot receive needs Linux 6.0 (this is {})",
            release.trim()
        ));
    }
    setup().map(drop)
}

/// Whether a kernel release string ("6.18.44-fc-v657") is at least `(major, minor)`.
fn kernel_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// Binds `listen` and forwards every connection to `upstream` until killed. Returns only
/// on a setup error (the kernel lacks a feature, the port is taken) or a ring failure.
pub fn run(listen: SocketAddr, upstream: SocketAddr) -> Result<(), String> {
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let (ring, buffers, flags) = setup()?;
    let mut forwarder = Forwarder {
        ring,
        buffers,
        sides: (0..SLOTS).map(|_| Side::default()).collect(),
        free_slots: (0..SLOTS).rev().collect(),
        listener,
        upstream,
    };
    eprintln!(
        "ringway-load forward: {} -> {upstream} (raw io_uring, {flags}: multishot accept \
         and receive, provided buffer ring, fixed files)",
        forwarder.listener.local_addr().map_err(|e| e.to_string())?
    );
    forwarder.arm_accept();
    forwarder.run()
}

impl Forwarder {
    fn run(&mut self) -> Result<(), String> {
        let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(RING_ENTRIES as usize);
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("io_uring_enter: {e}")),
            }
            done.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for (data, result, flags) in done.drain(..) {
                let slot = (data >> 8) as u32;
                match data & 0xff {
                    ACCEPT => self.accepted(result, flags),
                    RECV => self.received(slot, result, flags),
                    SEND => self.sent(slot, result),
                    _ => {}
                }
            }
        }
    }

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every entry points only at fixed-file slots that stay registered until
            // their operations complete (`release`) and at provided-buffer memory that
            // outlives the ring.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // The queue is full: hand it to the kernel and go on.
            let _ = self.ring.submit();
        }
    }

    fn arm_accept(&mut self) {
        let listener = types::Fd(self.listener.as_raw_fd());
        self.push(opcode::AcceptMulti::new(listener).build().user_data(ACCEPT));
    }

    fn arm_recv(&mut self, slot: u32) {
        self.sides[slot as usize].receiving = true;
        self.push(
            opcode::RecvMulti::new(types::Fixed(slot), GROUP)
                .build()
                .user_data(user_data(RECV, slot)),
        );
    }

    fn accepted(&mut self, result: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.arm_accept();
        }
        if result < 0 {
            return;
        }
        // SAFETY: a successful accept completion carries a new descriptor nobody else owns.
        let client = TcpStream::from(unsafe { OwnedFd::from_raw_fd(result) });
        let _ = client.set_nodelay(true);
        let Ok(upstream) = TcpStream::connect(self.upstream) else {
            return;
        };
        let _ = upstream.set_nodelay(true);
        if self.free_slots.len() < 2 {
            return;
        }
        let (a, b) = (self.take_slot(client), self.take_slot(upstream));
        let (Some(a), Some(b)) = (a, b) else {
            for slot in [a, b].into_iter().flatten() {
                self.sides[slot as usize].closing = true;
                self.release_if_idle(slot);
            }
            return;
        };
        self.sides[a as usize].peer = b;
        self.sides[b as usize].peer = a;
        self.arm_recv(a);
        self.arm_recv(b);
    }

    /// Registers `socket` in a free fixed-file slot.
    fn take_slot(&mut self, socket: TcpStream) -> Option<u32> {
        let slot = self.free_slots.pop()?;
        match self
            .ring
            .submitter()
            .register_files_update(slot, &[socket.as_raw_fd()])
        {
            Ok(_) => {
                self.sides[slot as usize] = Side {
                    socket: Some(socket),
                    ..Side::default()
                };
                Some(slot)
            }
            Err(_) => {
                self.free_slots.push(slot);
                None
            }
        }
    }

    fn received(&mut self, slot: u32, result: i32, flags: u32) {
        let buffer = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let side = &mut self.sides[slot as usize];
        if !more {
            side.receiving = false;
        }
        // A closing side's peer slot may already serve another connection: touch only
        // this side (both sides of a connection start closing together).
        if side.closing {
            if let Some(id) = buffer {
                self.buffers.give_back(id);
            }
            self.release_if_idle(slot);
            return;
        }
        let peer = side.peer;
        match (result, buffer) {
            (n, Some(id)) if n > 0 => {
                self.sides[peer as usize].queue.push_back((id, 0, n as u32));
                if !self.sides[peer as usize].sending {
                    self.send_next(peer);
                }
                if !more {
                    self.arm_recv(slot);
                }
            }
            // Out of buffers for a moment: they come back as sends complete.
            (n, _) if n == -ENOBUFS => {
                if !more {
                    self.arm_recv(slot);
                }
            }
            // End of stream: pass it on once what came before it is sent (a half-close, so
            // a response after the client's FIN still arrives).
            (0, None) => {
                self.sides[slot as usize].eof = true;
                self.sides[peer as usize].shut_when_sent = true;
                self.shut_if_sent(peer);
                self.finish_if_done(slot);
            }
            // An error: close both sides.
            (_, id) => {
                if let Some(id) = id {
                    self.buffers.give_back(id);
                }
                self.close(slot);
                self.close(peer);
            }
        }
        self.release_if_idle(slot);
    }

    fn send_next(&mut self, slot: u32) {
        let Some(&(id, sent, len)) = self.sides[slot as usize].queue.front() else {
            return;
        };
        self.sides[slot as usize].sending = true;
        // SAFETY (of the pointer in the entry): the buffer stays out of the buffer ring
        // until this send completes and `sent` gives it back.
        let at = self.buffers.address(id).wrapping_add(sent as usize);
        self.push(
            opcode::Send::new(types::Fixed(slot), at, len - sent)
                .build()
                .user_data(user_data(SEND, slot)),
        );
    }

    fn sent(&mut self, slot: u32, result: i32) {
        let side = &mut self.sides[slot as usize];
        side.sending = false;
        if side.closing {
            // (Its peer slot may serve another connection already: see `received`.)
            self.release_if_idle(slot);
            return;
        }
        if result <= 0 {
            let peer = side.peer;
            self.close(slot);
            self.close(peer);
            return;
        }
        let Some(front) = side.queue.front_mut() else {
            return;
        };
        front.1 += result as u32;
        if front.1 >= front.2 {
            let id = front.0;
            side.queue.pop_front();
            self.buffers.give_back(id);
        }
        self.send_next(slot);
        self.shut_if_sent(slot);
        self.finish_if_done(slot);
    }

    /// Shuts a side's writing down once the other side has ended and everything it sent
    /// has been passed on.
    fn shut_if_sent(&mut self, slot: u32) {
        let side = &mut self.sides[slot as usize];
        if side.shut_when_sent && !side.sending && side.queue.is_empty() {
            side.shut_when_sent = false;
            if let Some(socket) = &side.socket {
                let _ = socket.shutdown(std::net::Shutdown::Write);
            }
        }
    }

    /// Closes a connection whose both directions have ended and been passed on.
    fn finish_if_done(&mut self, slot: u32) {
        let peer = self.sides[slot as usize].peer;
        let drained = |s: &Side| s.eof && !s.sending && s.queue.is_empty();
        if drained(&self.sides[slot as usize]) && drained(&self.sides[peer as usize]) {
            self.close(slot);
            self.close(peer);
        }
    }

    /// Stops a side: shutting the socket down ends its receive and fails its send, whose
    /// completions then release the slot.
    fn close(&mut self, slot: u32) {
        let side = &mut self.sides[slot as usize];
        if side.closing || side.socket.is_none() {
            return;
        }
        side.closing = true;
        if let Some(socket) = &side.socket {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        self.release_if_idle(slot);
    }

    /// Gives a closing side's slot, buffers and descriptor back once no operation of its
    /// is in flight.
    fn release_if_idle(&mut self, slot: u32) {
        let side = &mut self.sides[slot as usize];
        if !side.closing || side.sending || side.receiving || side.socket.is_none() {
            return;
        }
        let queued: Vec<u16> = side.queue.drain(..).map(|(id, _, _)| id).collect();
        side.socket = None;
        for id in queued {
            self.buffers.give_back(id);
        }
        let _ = self.ring.submitter().register_files_update(slot, &[-1]);
        self.free_slots.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_compare_by_major_then_minor() {
        assert!(kernel_at_least("6.18.44-fc-v657\n", (6, 0)));
        assert!(kernel_at_least("6.0.0", (6, 0)));
        assert!(kernel_at_least("10.1", (6, 0)));
        assert!(!kernel_at_least("5.19.17-generic", (6, 0)));
        assert!(!kernel_at_least("5.4", (6, 0)));
        assert!(!kernel_at_least("", (6, 0)));
        assert!(!kernel_at_least("garbage", (6, 0)));
    }
}
