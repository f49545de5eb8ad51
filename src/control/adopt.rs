//! Taking ownership of a file descriptor this process received as a bare number: from a
//! predecessor over SCM_RIGHTS (hot restart) or from systemd (`LISTEN_FDS`). This is one
//! of the few places in ringway with `unsafe` (the others: `allocator.rs`, one FFI call
//! into mimalloc, and the counting allocator of the test-only `alloc-count` feature,
//! `alloc_count.rs`): std and nix hand such descriptors over as a `RawFd`, and turning a
//! number into an owned descriptor is unsafe by nature (the compiler cannot know that
//! nothing else owns it). Everything else stays safe code.

#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Owns `fd` from now on (it is closed when the result is dropped).
///
/// Callers pass only descriptors that nothing else in the process refers to: one that
/// `recvmsg` just created for us (the kernel installs a new descriptor per SCM_RIGHTS
/// entry), or one systemd passed at exec (`LISTEN_FDS`, checked against `LISTEN_PID`),
/// each adopted once.
pub fn adopt(fd: RawFd) -> OwnedFd {
    // SAFETY: per the contract above, `fd` is open and owned by no other object, so this
    // OwnedFd is its sole owner and closes it exactly once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
