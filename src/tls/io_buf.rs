//! The one place TLS code reaches into monoio's owned buffers.
//!
//! monoio lends buffers as raw pointers (`IoBuf`, `IoBufMut`) because the kernel fills
//! them. Plaintext that rustls decrypted must land in the caller's buffer the same way a
//! socket read would, and plaintext to encrypt is read from the caller's buffer, so
//! the TLS stream is a drop-in for a socket on the transport seam and the codec keeps
//! its zero-copy buffers. The alternative, a typed buffer API through the seam, would
//! change every read and write of the connection code for one transport.
#![allow(unsafe_code)]

use monoio::buf::{IoBuf, IoBufMut};

/// The initialised bytes of `buf`.
pub(super) fn as_slice<T: IoBuf>(buf: &T) -> &[u8] {
    // SAFETY: `IoBuf`'s contract: `read_ptr` is valid for `bytes_init` initialised bytes
    // for as long as `buf` is borrowed, and it does not move while borrowed.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
}

/// Lets `fill` write up to `want` bytes at the start of `buf`'s writable region, then
/// marks what it wrote as initialised. Returns what `fill` returned.
pub(super) fn fill_with<T: IoBufMut>(
    buf: &mut T,
    want: usize,
    fill: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    let len = want.min(buf.bytes_total());
    let ptr = buf.write_ptr();
    // SAFETY: `IoBufMut`'s contract: `write_ptr` is valid for writes of `bytes_total`
    // bytes while `buf` is borrowed mutably; `len` is at most that. The bytes may be
    // uninitialised, so they are zeroed before a slice is made over them.
    let dst = unsafe {
        ptr.write_bytes(0, len);
        std::slice::from_raw_parts_mut(ptr, len)
    };
    let n = fill(dst)?.min(len);
    // SAFETY: the first `n` bytes were initialised above (and filled by `fill`).
    unsafe { buf.set_init(n) };
    Ok(n)
}
