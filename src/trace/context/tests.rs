use proptest::prelude::*;

use super::*;

const TRACE: u128 = 0x0af7651916cd43dd8448eb211c80319c;
const SPAN: u64 = 0xb7ad6b7169203331;
const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn extract(fields: &[(&str, &str)]) -> Extracted {
    let mut ex = Extractor::default();
    for (n, v) in fields {
        ex.observe(n.as_bytes(), v.as_bytes());
    }
    ex.finish()
}

fn ctx(fields: &[(&str, &str)]) -> Option<Incoming> {
    extract(fields).context
}

fn tp(v: &str) -> Option<Incoming> {
    ctx(&[("traceparent", v)])
}

#[test]
fn observe_claims_the_rewritten_fields_only() {
    let mut ex = Extractor::default();
    for name in [
        "traceparent",
        "TraceParent",
        "b3",
        "B3",
        "x-b3-traceid",
        "X-B3-TraceId",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "X-B3-SAMPLED",
        "x-b3-flags",
    ] {
        assert!(ex.observe(name.as_bytes(), b"junk"), "{name}");
    }
    for name in [
        "tracestate",
        "host",
        "b4",
        "x-b3-spanic",
        "x-b3-traceix",
        "x-b3-xampled",
        "traceparenu",
        "x-request-id",
        "",
        "x",
        "x-b3-parentspanix",
        "tracestatf",
    ] {
        assert!(!ex.observe(name.as_bytes(), b"junk"), "{name}");
    }
    assert!(ex.finish().tracestate);
}

/// The common request's check (`may_bear_on_decision`, then `bears_on_decision`) lets
/// through every field the decision reads, whatever its case, and stops the rest.
#[test]
fn the_decision_fields_pass_the_quick_check() {
    let decisive = [
        "traceparent",
        "TRACEPARENT",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "X-B3-Sampled",
        "x-b3-flags",
        "x-client-trace-id",
        "X-Client-Trace-Id",
        "x-envoy-force-trace",
    ];
    let check = |name: &str| may_bear_on_decision(name.len()) && bears_on_decision(name.as_bytes());
    for name in decisive {
        assert!(check(name), "{name}");
        // Whatever the check lets through, the decision's own pass reads.
        let claimed = Extractor::default().observe(name.as_bytes(), b"");
        let forcing = ["x-client-trace-id", "x-envoy-force-trace"]
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name));
        assert!(claimed || forcing, "{name}");
    }
    for name in [
        "tracestate",
        "host",
        "user-agent",
        "x-request-id",
        "x-client-trace-ix",
        "x-envoy-force-tracf",
        "x-b3-parentspanix",
        "",
        "a-field-name-longer-than-thirty-two-bytes",
    ] {
        assert!(!check(name), "{name}");
    }
}

// The W3C trace-context test suite (w3c/trace-context test/test.py), valid and invalid
// traceparent values.
#[test]
fn w3c_valid_vectors() {
    let c = tp(TP).unwrap();
    assert_eq!(
        (c.trace_id, c.span_id, c.sampled),
        (TRACE, SPAN, Some(true))
    );
    assert_eq!((c.short_id, c.parent_id, c.debug), (false, 0, false));
    assert_eq!(c.formats, Formats::W3C);
    let c = tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    assert_eq!(c.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
    assert_eq!(c.span_id, 0x00f067aa0ba902b7);
    assert_eq!(c.sampled, Some(false));
    // Flags other than bit 0 are ignored; header names are case-insensitive.
    assert_eq!(tp(&TP.replace("-01", "-09")).unwrap().sampled, Some(true));
    assert_eq!(tp(&TP.replace("-01", "-fe")).unwrap().sampled, Some(false));
    assert!(ctx(&[("TraceParent", TP)]).is_some());
    // OWS around the value.
    assert!(tp(&format!(" {TP}")).is_some());
    assert!(tp(&format!("\t{TP}\t")).is_some());
    // Future versions: the first 55 chars, then '-' or the end.
    let future = TP.replacen("00", "cc", 1);
    assert_eq!(tp(&future).unwrap().trace_id, TRACE);
    assert_eq!(
        tp(&format!("{future}-what-the-future-will-be-like"))
            .unwrap()
            .span_id,
        SPAN
    );
    assert!(tp(&TP.replacen("00", "01", 1)).is_some());
    assert!(tp(&TP.replacen("00", "fe", 1)).is_some());
}

#[test]
fn w3c_invalid_vectors() {
    let t = "0af7651916cd43dd8448eb211c80319c";
    let s = "b7ad6b7169203331";
    for bad in [
        // version 00 with anything after the flags
        format!("{TP}."),
        format!("{TP}-what-the-future-will-not-be-like"),
        // future version followed by something other than '-'
        format!("cc-{t}-{s}-01.what-the-future-will-be-like"),
        // version ff, illegal, too long, too short
        format!("ff-{t}-{s}-01"),
        format!(".0-{t}-{s}-01"),
        format!("0.-{t}-{s}-01"),
        format!("000-{t}-{s}-01"),
        format!("0000-{t}-{s}-01"),
        format!("0-{t}-{s}-01"),
        format!("0G-{t}-{s}-01"),
        // trace id: all zero, illegal chars, uppercase, too long, too short
        format!("00-00000000000000000000000000000000-{s}-01"),
        format!("00-0af7651916cd43dd8448eb211c80319.-{s}-01"),
        format!("00-0af7651916cd43dd8448eb211c80319G-{s}-01"),
        format!("00-0AF7651916CD43DD8448EB211C80319C-{s}-01"),
        format!("00-{t}00-{s}-01"),
        format!("00-0af7651916cd43dd8448eb211c8031-{s}-01"),
        // parent id: all zero, illegal, uppercase, too long, too short
        format!("00-{t}-0000000000000000-01"),
        format!("00-{t}-b7ad6b716920333.-01"),
        format!("00-{t}-B7AD6B7169203331-01"),
        format!("00-{t}-{s}00-01"),
        format!("00-{t}-b7ad6b71692033-01"),
        // flags: illegal, too long, too short
        format!("00-{t}-{s}-.0"),
        format!("00-{t}-{s}-0."),
        format!("00-{t}-{s}-001"),
        format!("00-{t}-{s}-1"),
        // wrong delimiters, empty, a comma-joined pair
        format!("00_{t}-{s}-01"),
        format!("00-{t}_{s}-01"),
        format!("00-{t}-{s}_01"),
        String::new(),
        format!("{TP},{TP}"),
    ] {
        assert_eq!(tp(&bad), None, "{bad:?}");
    }
}

#[test]
fn w3c_duplicated_traceparent_is_invalid() {
    assert_eq!(ctx(&[("traceparent", TP), ("traceparent", TP)]), None);
    assert_eq!(ctx(&[("traceparent", "junk"), ("traceparent", TP)]), None);
    // ... and B3 then takes over.
    let c = ctx(&[
        ("traceparent", TP),
        ("traceparent", TP),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    ])
    .unwrap();
    assert_eq!(c.span_id, 0xe457b5a2e4d86bd1);
}

#[test]
fn b3_single() {
    // The examples of openzipkin/b3-propagation.
    let c = ctx(&[(
        "b3",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    )])
    .unwrap();
    assert_eq!(c.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
    assert_eq!(c.span_id, 0xe457b5a2e4d86bd1);
    assert_eq!(c.parent_id, 0x05e3ac9a4f6e3b90);
    assert_eq!((c.sampled, c.debug, c.short_id), (Some(true), false, false));
    assert_eq!(c.formats, Formats::B3_SINGLE);
    // 64-bit trace id, deferred decision, upper case accepted.
    let c = ctx(&[("b3", "64FE8B2A57D3EFF7-E457B5A2E4D86BD1")]).unwrap();
    assert_eq!(c.trace_id, 0x64fe8b2a57d3eff7);
    assert!(c.short_id);
    assert_eq!((c.sampled, c.parent_id), (None, 0));
    let c = ctx(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]).unwrap();
    assert_eq!(c.sampled, Some(false));
    let c = ctx(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]).unwrap();
    assert_eq!((c.sampled, c.debug), (Some(true), true));
    for bad in [
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b900",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-true",
        "64fe8b2a57d3eff-e457b5a2e4d86bd1",
        "0000000000000000-e457b5a2e4d86bd1",
        "64fe8b2a57d3eff7-0000000000000000",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1x",
        "64fe8b2a57d3eff7e457b5a2e4d86bd1",
        "64fe8b2a57d3eff7-e457b5a2e4d86bg1",
        "-",
        "",
    ] {
        let got = extract(&[("b3", bad)]);
        assert_eq!(got.context, None, "{bad}");
        assert_eq!(got.sampled_only, None, "{bad}");
    }
}

#[test]
fn b3_single_sampling_only_and_deny() {
    let got = extract(&[("b3", "0")]);
    assert_eq!(
        (got.context, got.sampled_only, got.debug),
        (None, Some(false), false)
    );
    let got = extract(&[("b3", "1")]);
    assert_eq!(got.sampled_only, Some(true));
    let got = extract(&[("b3", "d")]);
    assert_eq!((got.sampled_only, got.debug), (Some(true), true));
    assert_eq!(extract(&[("b3", "2")]).sampled_only, None);
    // A deny next to ids from another format defers to that format's ids and flag...
    let c = ctx(&[("b3", "0"), ("traceparent", TP)]).unwrap();
    assert_eq!(c.sampled, Some(true));
    assert!(c.formats.b3_single() && c.formats.w3c());
    // ... but fills in a B3 multi context's missing decision.
    let c = ctx(&[
        ("b3", "0"),
        ("x-b3-traceid", "64fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
    ])
    .unwrap();
    assert_eq!(c.sampled, Some(false));
}

#[test]
fn b3_multi() {
    let c = ctx(&[
        ("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("X-B3-ParentSpanId", "05e3ac9a4f6e3b90"),
        ("X-B3-SpanId", "e457b5a2e4d86bd1"),
        ("X-B3-Sampled", "1"),
    ])
    .unwrap();
    assert_eq!(c.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
    assert_eq!(
        (c.span_id, c.parent_id, c.sampled, c.debug, c.short_id),
        (
            0xe457b5a2e4d86bd1,
            0x05e3ac9a4f6e3b90,
            Some(true),
            false,
            false
        )
    );
    assert_eq!(c.formats, Formats::B3);
    // 64-bit, sampled spelled out, no parent.
    let c = ctx(&[
        ("x-b3-traceid", "64fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "false"),
    ])
    .unwrap();
    assert_eq!((c.trace_id, c.short_id), (0x64fe8b2a57d3eff7, true));
    assert_eq!((c.parent_id, c.sampled), (0, Some(false)));
    assert_eq!(
        ctx(&[
            ("x-b3-traceid", "64fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "true"),
        ])
        .unwrap()
        .sampled,
        Some(true)
    );
    // Debug flag: sampled.
    let c = ctx(&[
        ("x-b3-traceid", "64fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-flags", "1"),
    ])
    .unwrap();
    assert_eq!((c.sampled, c.debug), (Some(true), true));
    // A malformed parent or sampled is dropped alone.
    let c = ctx(&[
        ("x-b3-traceid", "64fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "nothex"),
        ("x-b3-sampled", "yes"),
        ("x-b3-flags", "0"),
    ])
    .unwrap();
    assert_eq!((c.parent_id, c.sampled, c.debug), (0, None, false));
    // One of the pair missing or malformed: no context.
    for fields in [
        &[("x-b3-traceid", "64fe8b2a57d3eff7")][..],
        &[("x-b3-spanid", "e457b5a2e4d86bd1")][..],
        &[
            ("x-b3-traceid", "64fe8b2a57d3eff"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ][..],
        &[
            ("x-b3-traceid", "0000000000000000"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ][..],
        &[
            ("x-b3-traceid", "64fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1e457b5a2e4d86bd1"),
        ][..],
    ] {
        assert_eq!(ctx(fields), None, "{fields:?}");
    }
    // Sampled alone: a decision without ids.
    let got = extract(&[("x-b3-sampled", "0")]);
    assert_eq!((got.context, got.sampled_only), (None, Some(false)));
    let got = extract(&[("x-b3-flags", "1")]);
    assert_eq!((got.sampled_only, got.debug), (Some(true), true));
}

#[test]
fn precedence_w3c_then_single_then_multi() {
    let multi = [
        ("x-b3-traceid", "11111111111111111111111111111111"),
        ("x-b3-spanid", "1111111111111111"),
        ("x-b3-sampled", "0"),
    ];
    let single = ("b3", "22222222222222222222222222222222-2222222222222222-1");
    let mut all = vec![single];
    all.extend_from_slice(&multi);
    all.push(("traceparent", TP));
    let c = ctx(&all).unwrap();
    assert_eq!((c.trace_id, c.sampled), (TRACE, Some(true)));
    assert_eq!(c.formats, Formats::new(true, true, true));
    all.pop();
    let c = ctx(&all).unwrap();
    assert_eq!(c.trace_id, 0x22222222222222222222222222222222);
    assert_eq!(c.sampled, Some(true));
    all.remove(0);
    let c = ctx(&all).unwrap();
    assert_eq!(c.trace_id, 0x11111111111111111111111111111111);
    assert_eq!(c.sampled, Some(false));
    // An invalid W3C value falls through to B3.
    all.push(("traceparent", "00-junk"));
    assert_eq!(
        ctx(&all).unwrap().trace_id,
        0x11111111111111111111111111111111
    );
    assert!(!ctx(&all).unwrap().formats.w3c());
    assert_eq!(extract(&[]), Extracted::default());
}

#[test]
fn write_lines_formats() {
    let out = Outgoing {
        trace_id: TRACE,
        short_id: false,
        span_id: SPAN,
        parent_id: 0x05e3ac9a4f6e3b90,
        sampled: true,
        debug: false,
    };
    let all = Formats::new(true, true, true);
    let mut buf = [0u8; MAX_LINES];
    let n = write_lines(&out, all, &mut buf);
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
         x-b3-traceid: 0af7651916cd43dd8448eb211c80319c\r\n\
         x-b3-spanid: b7ad6b7169203331\r\n\
         x-b3-parentspanid: 05e3ac9a4f6e3b90\r\n\
         x-b3-sampled: 1\r\n\
         b3: 0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1-05e3ac9a4f6e3b90\r\n"
    );
    // The longest output fits MAX_LINES.
    let debug = Outgoing { debug: true, ..out };
    let n = write_lines(&debug, all, &mut buf);
    assert!(n <= MAX_LINES);
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
         x-b3-traceid: 0af7651916cd43dd8448eb211c80319c\r\n\
         x-b3-spanid: b7ad6b7169203331\r\n\
         x-b3-parentspanid: 05e3ac9a4f6e3b90\r\n\
         x-b3-flags: 1\r\n\
         b3: 0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-d-05e3ac9a4f6e3b90\r\n"
    );
    let short = Outgoing {
        trace_id: 0x64fe8b2a57d3eff7,
        short_id: true,
        parent_id: 0,
        sampled: false,
        ..out
    };
    let n = write_lines(&short, all, &mut buf);
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        "traceparent: 00-000000000000000064fe8b2a57d3eff7-b7ad6b7169203331-00\r\n\
         x-b3-traceid: 64fe8b2a57d3eff7\r\n\
         x-b3-spanid: b7ad6b7169203331\r\n\
         x-b3-sampled: 0\r\n\
         b3: 64fe8b2a57d3eff7-b7ad6b7169203331-0\r\n"
    );
    assert_eq!(write_lines(&out, Formats::NONE, &mut buf), 0);
}

#[test]
fn lines_len_is_what_write_lines_writes() {
    for bits in 0..8u8 {
        let formats = Formats::new(bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
        for (short_id, parent_id, debug) in [
            (false, 0, false),
            (true, 7, false),
            (false, 0x05e3ac9a4f6e3b90, true),
            (true, 0, true),
        ] {
            let out = Outgoing {
                trace_id: if short_id { 0x64fe8b2a57d3eff7 } else { TRACE },
                short_id,
                span_id: SPAN,
                parent_id,
                sampled: !debug,
                debug,
            };
            let mut buf = [0u8; MAX_LINES];
            let n = write_lines(&out, formats, &mut buf);
            assert_eq!(lines_len(&out, formats), n, "{formats:?} {out:?}");
            // Appended after a head's fields, they end it with its blank line.
            let mut head = b"GET / HTTP/1.1\r\nhost: a\r\n".to_vec();
            let fields = head.len();
            append_lines_ending_head(&out, formats, &mut head);
            assert_eq!(&head[fields..fields + n], &buf[..n], "{formats:?} {out:?}");
            assert_eq!(&head[fields + n..], b"\r\n", "{formats:?} {out:?}");
        }
    }
}

#[test]
fn hex_helpers_and_ids() {
    let mut t = [0u8; 32];
    assert_eq!(
        trace_id_hex(TRACE, false, &mut t),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(
        trace_id_hex(0x64fe8b2a57d3eff7, true, &mut t),
        "64fe8b2a57d3eff7"
    );
    assert_eq!(
        trace_id_hex(1, false, &mut t),
        "00000000000000000000000000000001"
    );
    let mut s = [0u8; 16];
    assert_eq!(span_id_hex(SPAN, &mut s), "b7ad6b7169203331");
    assert_eq!(span_id_hex(u64::MAX, &mut s), "ffffffffffffffff");
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..1000 {
        assert_ne!(new_trace_id(&mut rng), 0);
        assert_ne!(new_span_id(&mut rng), 0);
        let short = new_short_trace_id(&mut rng);
        assert!(short != 0 && short >> 64 == 0);
    }
}

#[test]
fn formats_from_propagation() {
    let p = Propagation {
        w3c: true,
        b3: false,
        b3_single: true,
    };
    let f = Formats::from_propagation(p);
    assert_eq!(f.union(Formats::B3), Formats::new(true, true, true));
}

#[test]
fn fuzz_entry_accepts_samples() {
    fuzz(format!("traceparent: {TP}\nb3: 0\nx-b3-flags: 1\n").as_bytes());
    fuzz(b"b3: 64fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90\r\n");
    fuzz(b"x-b3-traceid: 64fe8b2a57d3eff7\nx-b3-spanid: e457b5a2e4d86bd1\nx-b3-sampled: true");
    fuzz(b"\xff:\n:\n::::");
}

proptest! {
    /// Whatever a hop writes, the next hop reads back: ids, decision, debug, parent and
    /// 64-bit ids for B3; each format on its own and all together (W3C then wins).
    #[test]
    fn write_then_extract_round_trips(
        hi in any::<u64>(),
        lo in 1u64..,
        span_id in 1u64..,
        parent_id in any::<u64>(),
        short_id in any::<bool>(),
        sampled in any::<bool>(),
        debug in any::<bool>(),
        w3c in any::<bool>(),
        b3 in any::<bool>(),
        b3_single in any::<bool>(),
    ) {
        let trace_id = if short_id { u128::from(lo) } else { (u128::from(hi) << 64) | u128::from(lo) };
        let out = Outgoing { trace_id, short_id, span_id, parent_id, sampled, debug };
        let formats = Formats::new(w3c, b3, b3_single);
        let mut buf = [0u8; MAX_LINES];
        let n = write_lines(&out, formats, &mut buf);
        let got = extract_lines(&buf[..n]);
        if formats == Formats::NONE {
            prop_assert_eq!(got, Extracted::default());
            return Ok(());
        }
        let c = got.context.unwrap();
        prop_assert_eq!(c.trace_id, trace_id);
        prop_assert_eq!(c.span_id, span_id);
        prop_assert_eq!(c.sampled, Some(sampled || debug));
        prop_assert_eq!(c.formats, formats);
        if !w3c {
            prop_assert_eq!(c.short_id, short_id);
            prop_assert_eq!(c.parent_id, parent_id);
            prop_assert_eq!(c.debug, debug);
        }
        // Observing the lines claims every one of them.
        let mut ex = Extractor::default();
        for line in buf[..n].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let colon = line.iter().position(|b| *b == b':').unwrap();
            prop_assert!(ex.observe(&line[..colon], &line[colon + 2..line.len() - 1]));
        }
    }
}

proptest! {
    /// The SWAR hex writer agrees with `format!("{:016x}")`.
    #[test]
    fn span_id_hex_matches_fmt(id in any::<u64>()) {
        let mut s = [0u8; 16];
        prop_assert_eq!(span_id_hex(id, &mut s), format!("{id:016x}"));
    }
}

/// The W3C line built by value is the line `write_lines` writes, sampled or not.
#[test]
fn the_traceparent_line_by_value_matches_write_lines() {
    for (sampled, debug) in [(false, false), (true, false), (false, true)] {
        let ctx = Outgoing {
            trace_id: TRACE,
            short_id: false,
            span_id: SPAN,
            parent_id: 0,
            sampled,
            debug,
        };
        let mut buf = [0u8; MAX_LINES];
        let n = write_lines(&ctx, Formats::W3C, &mut buf);
        assert_eq!(&traceparent_line(&ctx)[..], &buf[..n]);
        let flag = if sampled || debug { "01" } else { "00" };
        let want = format!("traceparent: 00-{TRACE:032x}-{SPAN:016x}-{flag}\r\n");
        assert_eq!(&buf[..n], want.as_bytes());
    }
}

/// Envoy's tracers read their own formats: Zipkin B3 first (W3C only as a fallback,
/// when asked), OpenTelemetry W3C alone; a field of a format not read is not claimed,
/// so it goes upstream as it came.
#[test]
fn a_listener_reads_only_its_tracers_formats() {
    let b3 = [
        ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-sampled", "1"),
    ];
    let read = |reads: Reads, fields: &[(&str, &str)]| {
        let mut ex = Extractor::reading(reads);
        let claimed: Vec<bool> = fields
            .iter()
            .map(|(n, v)| ex.observe(n.as_bytes(), v.as_bytes()))
            .collect();
        (ex.finish(), claimed)
    };
    let zipkin = Reads {
        ignore_w3c: true,
        ignore_b3: false,
        b3_first: true,
    };
    let (only_w3c, claimed) = read(zipkin, &[("traceparent", TP)]);
    assert_eq!(only_w3c.context, None, "USE_B3 never reads traceparent");
    assert_eq!(claimed, [false]);
    let both: Vec<(&str, &str)> = [("traceparent", TP)].into_iter().chain(b3).collect();
    let fallback = Reads {
        ignore_w3c: false,
        ..zipkin
    };
    let (e, _) = read(fallback, &both);
    let c = e.context.expect("a context");
    assert_eq!(c.trace_id, 0x463ac35c9f6413ad48485a3953bb6124, "B3 wins");
    assert_eq!(c.sampled, Some(true));
    let (e, _) = read(fallback, &[("traceparent", TP)]);
    assert_eq!(e.context.map(|c| c.trace_id), Some(TRACE), "W3C when no B3");
    let otel = Reads {
        ignore_w3c: false,
        ignore_b3: true,
        b3_first: false,
    };
    let (e, claimed) = read(otel, &b3);
    assert_eq!((e.context, e.sampled_only), (None, None));
    assert_eq!(
        claimed,
        [false, false, false],
        "B3 passes through untouched"
    );
    let (e, _) = read(otel, &both);
    assert_eq!(e.context.map(|c| c.trace_id), Some(TRACE));
    // Native: everything, W3C first.
    let (e, _) = read(Reads::ALL, &both);
    assert_eq!(e.context.map(|c| c.trace_id), Some(TRACE));
    // A decision that came alone keeps its format and debug flag.
    let (e, _) = read(Reads::ALL, &[("b3", "d")]);
    assert_eq!((e.sampled_only, e.debug), (Some(true), true));
    assert!(e.formats.b3_single() && !e.formats.b3());
}
