//! Whether a request is traced: Envoy's decision, made from the request id so that every
//! Envoy-compatible hop of a request agrees, and the native one, a draw from the worker's
//! generator.
//!
//! Design: Envoy's `ConnectionManagerUtility::mutateTracingRequestHeader` with the UUID
//! request-id extension, step for step, as arithmetic on borrowed bytes:
//! - x = the first 8 chars of `x-request-id` read as hex (`strtoull` base 16, the whole 8
//!   consumed), `% 10000`; an id that does not read skips the decision (NotTraceable).
//! - the reason already packed in the id (char 14 of a 36-char id: `9` Sampling, `a`
//!   ServiceForced, `b` ClientForced) stands; else `x-client-trace-id` and the client
//!   share → ClientForced, else `x-envoy-force-trace` → ServiceForced, else the random
//!   share of x → Sampling;
//! - a reason other than NotTraceable that fails the overall share of x → NotTraceable.
//!
//! A share is Envoy's `evaluateFractionalPercent`: `value % denominator < numerator`
//! ([`Fraction::hits`](crate::config::resilience::Fraction::hits)). Envoy draws the
//! client share from its random generator, not from x, so it does here too (`draw`).
//! Because x is below 10,000, a share over 1,000,000 acts as n/10,000 in Envoy mode
//! (10,000/1,000,000 = 1 % takes every request): Envoy's quirk, kept so that hops
//! agree. The parent's decision (a sampled flag that came with the context) overrides the
//! reason, as Envoy's tracers do.

use crate::config::observability::Sampling;

/// Why a request is (not) traced (Envoy's `Tracing::Reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    NotTraceable,
    Sampling,
    ServiceForced,
    ClientForced,
}

/// The inputs of one decision.
#[derive(Clone, Copy, Debug)]
pub struct Decide<'a> {
    /// The route's shares, else the listener's.
    pub sampling: &'a Sampling,
    /// `Incoming::sampled` or `Extracted::sampled_only` (debug ⇒ `Some(true)`).
    pub parent: Option<bool>,
    /// `x-client-trace-id` present.
    pub client_trace_id: bool,
    /// `x-envoy-force-trace` present and the peer trusted/internal.
    pub force_trace: bool,
    /// `Some` in Envoy mode (`request_id_sampling`): the `x-request-id` value as sent
    /// upstream (`Some(b"")` when there is none: no decision, as in Envoy). `None`:
    /// native mode, `draw` decides.
    pub request_id: Option<&'a [u8]>,
    /// The worker's random draw, uniform over u64: the native decision, and Envoy's
    /// client share.
    pub draw: u64,
}

/// The outcome: whether the request's spans are recorded and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub sampled: bool,
    pub reason: Reason,
}

/// Envoy's UUID extension: the reason lives in the UUID's version nibble.
const TRACE_BYTE_POSITION: usize = 14;
const UUID_LENGTH: usize = 36;

/// The decision; see the module notes. `sampled = parent.unwrap_or(reason !=
/// NotTraceable)`.
#[inline]
pub fn decide(input: &Decide) -> Decision {
    let reason = match input.request_id {
        Some(id) => match id_integer(id) {
            Some(v) => reason_for(input, packed_reason(id), v % 10_000, input.draw),
            None => Reason::NotTraceable,
        },
        // Native: one draw; the client share reads other bits of it, so that it is
        // independent of the random and overall shares.
        None => reason_for(
            input,
            Reason::NotTraceable,
            input.draw,
            input.draw.rotate_left(32),
        ),
    };
    Decision {
        sampled: input.parent.unwrap_or(reason != Reason::NotTraceable),
        reason,
    }
}

#[inline]
fn reason_for(input: &Decide, packed: Reason, x: u64, client_draw: u64) -> Reason {
    let s = input.sampling;
    let mut reason = packed;
    if reason == Reason::NotTraceable {
        if input.client_trace_id && s.client.hits(client_draw) {
            reason = Reason::ClientForced;
        } else if input.force_trace {
            reason = Reason::ServiceForced;
        } else if s.random.hits(x) {
            reason = Reason::Sampling;
        }
    }
    if reason != Reason::NotTraceable && !s.overall.hits(x) {
        reason = Reason::NotTraceable;
    }
    reason
}

/// The native decision for a request with no parent decision and nothing forcing it, as
/// one comparison: sampled when a uniform u64 (the worker compares its new trace id's
/// low 64 bits, as OpenTelemetry's `TraceIdRatioBased` sampler does) is below the
/// returned bound, which `random`'s share of all u64 values are (`None` when an overall
/// share below 100 % also applies: then [`decide`] decides). Exact: the bound is
/// `2^64 * n / d`, rounded down, and 100 % is `2^64`, above every draw.
pub fn native_bound(s: &Sampling) -> Option<u128> {
    // As `Fraction::hits` reads a share: a zero denominator takes nothing.
    let all =
        |f: crate::config::resilience::Fraction| f.denominator > 0 && f.numerator >= f.denominator;
    if !all(s.overall) {
        return None;
    }
    let r = s.random;
    let d = u128::from(r.denominator.max(1));
    let n = u128::from(r.numerator.min(r.denominator));
    Some((n << 64) / d)
}

/// Envoy's `getInteger`: the first 8 chars as `strtoull(.., 16)` reads them, all 8
/// consumed (leading white space, a sign and a `0x` are what strtoull allows).
fn id_integer(id: &[u8]) -> Option<u64> {
    let s = id.get(..8)?;
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    // strtoull takes `0x` only when a hex digit follows it.
    if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
    }
    let digits = &s[i..];
    if digits.is_empty() {
        return None;
    }
    let mut v = 0u64;
    for &b in digits {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// Writes `reason` into a 36-char request id at index 14 (`4` NotTraceable, `9`
/// Sampling, `a` ServiceForced, `b` ClientForced); an id of another length is left
/// alone (Envoy checks the length only).
pub fn pack_reason(request_id: &mut [u8], reason: Reason) {
    if request_id.len() != UUID_LENGTH {
        return;
    }
    request_id[TRACE_BYTE_POSITION] = match reason {
        Reason::NotTraceable => b'4',
        Reason::Sampling => b'9',
        Reason::ServiceForced => b'a',
        Reason::ClientForced => b'b',
    };
}

/// The reason packed in a 36-char request id; NotTraceable for anything else.
pub fn packed_reason(request_id: &[u8]) -> Reason {
    if request_id.len() != UUID_LENGTH {
        return Reason::NotTraceable;
    }
    match request_id[TRACE_BYTE_POSITION] {
        b'9' => Reason::Sampling,
        b'a' => Reason::ServiceForced,
        b'b' => Reason::ClientForced,
        _ => Reason::NotTraceable,
    }
}

/// Fuzz helper: the decision never panics and packing round-trips.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let sampling = Sampling::ALL;
    let draw = data
        .iter()
        .fold(0u64, |a, b| a.rotate_left(5) ^ u64::from(*b));
    for request_id in [Some(data), None] {
        let d = decide(&Decide {
            sampling: &sampling,
            parent: None,
            client_trace_id: draw & 1 == 1,
            force_trace: draw & 2 == 2,
            request_id,
            draw,
        });
        assert_eq!(d.sampled, d.reason != Reason::NotTraceable);
    }
    if data.len() == UUID_LENGTH {
        let mut id = [0u8; UUID_LENGTH];
        id.copy_from_slice(data);
        for r in [
            Reason::Sampling,
            Reason::ServiceForced,
            Reason::ClientForced,
            Reason::NotTraceable,
        ] {
            pack_reason(&mut id, r);
            assert_eq!(packed_reason(&id), r);
        }
    }
}

#[cfg(test)]
mod tests;
