//! TLS both ways: termination for clients and origination to upstreams, over rustls.
//!
//! Design. rustls is sans-IO: ciphertext read from the socket goes in with `read_tls`,
//! plaintext comes out of its reader; plaintext goes in through its writer and records
//! come out with `write_tls`. [`session`] holds those synchronous steps, [`stream`] the
//! few async loops that move records between a socket and a session with monoio's
//! owned buffers, so the codec, the exchange and the filters above see the same
//! `AsyncReadRent`/`AsyncWriteRent` seam as on a plain socket. All of the rustls glue
//! lives in this module: rustls 0.24 replaces `read_tls`, and the upgrade stays here.
//!
//! Per core, nothing shared: each worker builds its own `ServerConfig` and `ClientConfig`
//! from the DER bytes the control thread read ([`crate::config::tls`]), with its own
//! certificate keys, verifier and [`ticket::Ticketer`]. A handshake therefore touches no
//! lock and no reference count another core writes. What every worker must agree on, the
//! session-ticket keys, is plain bytes handed to each worker ([`ticket::TicketKeys`]): a
//! client that resumes on another worker (SO_REUSEPORT spreads connections) decrypts
//! there too.
//!
//! Costs: a TLS connection holds its rustls state (boxed, behind one `Rc` so a tunnel can
//! read and write at once) and, only while a read or write is in flight, one ciphertext
//! chunk from a per-worker free list ([`session`]). rustls's buffered API copies each
//! record once more into its own plaintext buffers (an allocation per record it
//! receives and per record it sends); the allocation guard counts them.

pub mod client;
pub mod identity;
mod io_buf;
pub mod names;
pub mod server;
pub mod session;
pub mod stream;
pub mod ticket;
