//! Distributed tracing: trace context in and out of every hop, the sampling decision,
//! spans recorded per worker and exported off the workers.
//!
//! Design: the request path only touches [`context`] (one pass over the head's fields to
//! find a parent, a few header lines written per upstream attempt) and [`sampling`]
//! (arithmetic on the request id or a draw from the worker's generator); an unsampled
//! request records nothing and allocates nothing. A sampled request's spans are written
//! into its worker's [`span::SpanBatch`] (an OTLP tracer's in their wire form, once; a
//! Zipkin tracer's as records), which goes to the exporter thread whole when full or
//! old; the exporter frames OTLP or encodes Zipkin and POSTs it with the blocking
//! client of [`crate::fetch`]. A slow collector fills a bounded queue and workers then drop
//! spans, counted; no worker ever waits for it.

pub mod context;
pub mod export;
pub mod sampling;
pub mod sink;
pub mod span;
