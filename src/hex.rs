//! Lower hex digits of the ids every request writes: a trace context's trace id (32
//! digits) and span id (16), and the 128 bits of an `x-request-id` UUID.
//!
//! Design: on x86-64 built with SSE2 (its baseline: every x86-64 CPU has it, so no
//! detection at run time), each id becomes its digits in a few vector instructions: the
//! high and low nibbles apart, interleaved into digit order, then mapped to ASCII by one
//! compare and two adds. That is about 40 instructions for a trace id and a span id;
//! the compiler's own vectorization of the byte loop (the portable version below, which
//! other targets use and the tests compare against) takes about 75, and a table of digit
//! pairs a byte at a time about 100 for a UUID. `unsafe` is confined to [`ids_sse2`],
//! which touches no memory but its own arrays.

/// The digits of `trace_id` (32; its high and low halves) and `span_id` (16), most
/// significant first. Halves, not a `u128`: a `u128` loaded from memory went into a
/// vector register whole, and its byte swap took a dozen shuffles there instead of
/// two `bswap`s.
#[inline(always)]
pub(crate) fn ids(trace_id: [u64; 2], span_id: u64) -> ([u8; 32], [u8; 16]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        ids_sse2(trace_id, span_id)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        ids_portable(trace_id, span_id)
    }
}

/// The 32 digits of `id` (its high and low halves), most significant first (the span
/// id's half of [`ids`] is left out by the compiler: nothing reads it).
#[inline(always)]
pub(crate) fn digits128(id: [u64; 2]) -> [u8; 32] {
    ids(id, 0).0
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
#[inline(always)]
fn ids_sse2([high, low]: [u64; 2], span_id: u64) -> ([u8; 32], [u8; 16]) {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_cmpgt_epi8, _mm_set1_epi8, _mm_set_epi64x,
        _mm_srli_epi16, _mm_storeu_si128, _mm_unpackhi_epi8, _mm_unpacklo_epi8,
    };
    // Each lane holds its id's bytes in memory order (most significant byte first).
    // Swapped as one `u128` (two `bswap`s once the backend splits it): two `u64`
    // swaps of adjacent fields were turned into a dozen vector shuffles.
    let swapped = (u128::from(high) << 64 | u128::from(low)).swap_bytes();
    let high_half = swapped as u64 as i64;
    let low_half = (swapped >> 64) as u64 as i64;
    let span = span_id.swap_bytes() as i64;
    let mut trace_digits = [0u8; 32];
    let mut span_digits = [0u8; 16];
    // SAFETY: the build targets SSE2 (the cfg above; it is in the x86-64 baseline, so
    // every x86-64 CPU has it), so these intrinsics are available; the three stores write 16 bytes each into arrays
    // of 32 (at 0 and 16) and 16 bytes (at 0) owned here.
    unsafe {
        let nibble = _mm_set1_epi8(0x0f);
        let nine = _mm_set1_epi8(9);
        let zero = _mm_set1_epi8(b'0' as i8);
        let letters = _mm_set1_epi8((b'a' - b'0' - 10) as i8);
        // Nibbles (0..=15) to digits: '0' + n, and 'a' - '0' - 10 more past 9.
        let ascii = |n: __m128i| {
            let past_nine = _mm_and_si128(_mm_cmpgt_epi8(n, nine), letters);
            _mm_add_epi8(_mm_add_epi8(n, zero), past_nine)
        };
        let trace = _mm_set_epi64x(low_half, high_half);
        let high = _mm_and_si128(_mm_srli_epi16(trace, 4), nibble);
        let low = _mm_and_si128(trace, nibble);
        let out = trace_digits.as_mut_ptr().cast::<__m128i>();
        _mm_storeu_si128(out, ascii(_mm_unpacklo_epi8(high, low)));
        _mm_storeu_si128(out.add(1), ascii(_mm_unpackhi_epi8(high, low)));
        let span = _mm_set_epi64x(0, span);
        let high = _mm_and_si128(_mm_srli_epi16(span, 4), nibble);
        let low = _mm_and_si128(span, nibble);
        let out = span_digits.as_mut_ptr().cast::<__m128i>();
        _mm_storeu_si128(out, ascii(_mm_unpacklo_epi8(high, low)));
    }
    (trace_digits, span_digits)
}

/// The same digits, one byte at a time (other targets, and the tests' reference).
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn ids_portable([high, low]: [u64; 2], span_id: u64) -> ([u8; 32], [u8; 16]) {
    let trace_id = u128::from(high) << 64 | u128::from(low);
    fn digits<const N: usize>(bytes: &[u8]) -> [u8; N] {
        let digit = |n: u8| n + if n > 9 { b'a' - 10 } else { b'0' };
        let mut out = [0u8; N];
        for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = digit(b >> 4);
            pair[1] = digit(b & 0x0f);
        }
        out
    }
    (
        digits(&trace_id.to_be_bytes()),
        digits(&span_id.to_be_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_match_the_formatter_and_the_portable_version() {
        let mut rng = fastrand::Rng::with_seed(23);
        let edges = [
            (0, 0),
            (u128::MAX, u64::MAX),
            (1 << 127 | 0x0a, 0x9a00_0000_0000_00ff),
        ];
        let random = (0..1000).map(|_| (rng.u128(..), rng.u64(..)));
        for (trace_id, span_id) in edges.into_iter().chain(random) {
            let halves = [(trace_id >> 64) as u64, trace_id as u64];
            let (trace, span) = ids(halves, span_id);
            assert_eq!(trace, format!("{trace_id:032x}").as_bytes());
            assert_eq!(span, format!("{span_id:016x}").as_bytes());
            assert_eq!((trace, span), ids_portable(halves, span_id));
            assert_eq!(digits128(halves), trace);
        }
    }
}
