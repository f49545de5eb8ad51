//! Flow control as credits: how many body bytes the forwarding loop may read next.
//!
//! HTTP/1.1 has no flow control of its own; its backpressure is TCP's, and ringway's part
//! is to read at most one chunk ahead of the one write in flight, so a fast sender and a
//! slow receiver cost one chunk per direction, never a growing buffer. HTTP/2 gives each
//! stream a window that the peer reopens with WINDOW_UPDATE. Both answer one question,
//! "how much may I take now?", through [`Credit`], so the body loops do not need to know
//! which protocol is on either side.

use crate::buffers::CHUNK;

/// Permission to move body bytes towards a receiver.
pub trait Credit {
    /// Bytes that may be read from the sender now; 0 means wait until the receiver
    /// grants more.
    fn available(&self) -> usize;
    /// `n` bytes were handed to the receiver.
    fn consume(&mut self, n: usize);
}

/// HTTP/1.1's credit: one chunk per write, renewed as soon as the write completes (the
/// loops never read while a write is in flight, so no more is needed).
#[derive(Debug, Default, Clone, Copy)]
pub struct OneChunk;

impl Credit for OneChunk {
    fn available(&self) -> usize {
        CHUNK
    }

    fn consume(&mut self, _n: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an HTTP/2 stream window will look like: a counter the peer refills.
    struct Window(usize);

    impl Credit for Window {
        fn available(&self) -> usize {
            self.0
        }
        fn consume(&mut self, n: usize) {
            self.0 = self.0.saturating_sub(n);
        }
    }

    #[test]
    fn credits_bound_what_may_be_read() {
        let mut one = OneChunk;
        one.consume(CHUNK);
        assert_eq!(one.available(), CHUNK);
        let mut window = Window(100);
        window.consume(60);
        assert_eq!(window.available(), 40);
        window.consume(60);
        assert_eq!(window.available(), 0);
    }
}
