use super::*;
use crate::config::resilience::Fraction;

const fn f(numerator: u32, denominator: u32) -> Fraction {
    Fraction {
        numerator,
        denominator,
    }
}

const NONE: Fraction = f(0, 100);

fn shares(random: Fraction, client: Fraction, overall: Fraction) -> Sampling {
    Sampling {
        random,
        client,
        overall,
    }
}

/// A UUID whose first 8 hex chars are `head` and version nibble `v`.
fn uuid(head: &str, v: char) -> String {
    format!("{head}-1234-{v}678-9abc-def012345678")
}

fn envoy(s: &Sampling, id: &str) -> Decision {
    decide(&Decide {
        sampling: s,
        parent: None,
        client_trace_id: false,
        force_trace: false,
        request_id: Some(id.as_bytes()),
        draw: 0,
    })
}

#[test]
fn packed_reasons_round_trip() {
    for (v, r) in [
        ('9', Reason::Sampling),
        ('a', Reason::ServiceForced),
        ('b', Reason::ClientForced),
        ('4', Reason::NotTraceable),
        ('c', Reason::NotTraceable),
    ] {
        let id = uuid("00000000", v);
        assert_eq!(id.len(), 36);
        assert_eq!(packed_reason(id.as_bytes()), r);
    }
    let mut id = uuid("00000000", '4').into_bytes();
    for r in [
        Reason::Sampling,
        Reason::ServiceForced,
        Reason::ClientForced,
        Reason::NotTraceable,
    ] {
        pack_reason(&mut id, r);
        assert_eq!(packed_reason(&id), r);
    }
    assert_eq!(id[14], b'4');
    // Another length: untouched, and nothing is packed in it.
    let mut short = *b"abcdefgh-1234-9678";
    pack_reason(&mut short, Reason::ServiceForced);
    assert_eq!(&short, b"abcdefgh-1234-9678");
    assert_eq!(packed_reason(&short), Reason::NotTraceable);
}

#[test]
fn a_packed_reason_stands_unless_overall_refuses() {
    let none = shares(NONE, NONE, Fraction::ALL);
    for (v, r) in [
        ('9', Reason::Sampling),
        ('a', Reason::ServiceForced),
        ('b', Reason::ClientForced),
    ] {
        assert_eq!(
            envoy(&none, &uuid("00000000", v)),
            Decision {
                sampled: true,
                reason: r
            }
        );
    }
    // x = 0x63 = 99: overall 99/100 refuses it, 100/100 takes it.
    let capped = shares(NONE, NONE, f(99, 100));
    assert_eq!(
        envoy(&capped, &uuid("00000063", '9')),
        Decision {
            sampled: false,
            reason: Reason::NotTraceable
        }
    );
    assert_eq!(
        envoy(&capped, &uuid("00000062", 'a')).reason,
        Reason::ServiceForced
    );
}

#[test]
fn random_share_over_each_denominator() {
    // x = first 8 hex % 10000.
    let cases: &[(&str, Fraction, bool)] = &[
        ("00000063", f(99, 100), false), // 99 % 100 = 99
        ("00000062", f(99, 100), true),
        ("00000063", f(100, 100), true),
        ("00000000", f(1, 100), true),
        ("00000000", NONE, false),
        ("0000270f", f(9999, 10000), false), // 9999
        ("0000270e", f(9999, 10000), true),
        ("00002710", f(1, 10000), true),     // 10000 % 10000 = 0
        ("000004d2", f(1234, 10000), false), // 1234
        ("000004D1", f(1234, 10000), true),  // upper case is hex too
        // Over 1,000,000 x is still below 10,000: n/1e6 acts as n/1e4 (Envoy's quirk).
        ("00001387", f(5000, 1_000_000), true),  // 4999
        ("00001388", f(5000, 1_000_000), false), // 5000
        ("0000270f", f(10_000, 1_000_000), true),
        ("ffffffff", f(7_295, 10000), false), // 4294967295 % 10000 = 7295
        ("ffffffff", f(7_296, 10000), true),
    ];
    for (head, random, want) in cases {
        let s = shares(*random, NONE, Fraction::ALL);
        let d = envoy(&s, &uuid(head, '4'));
        assert_eq!(d.sampled, *want, "{head} {random:?}");
        assert_eq!(
            d.reason,
            if *want {
                Reason::Sampling
            } else {
                Reason::NotTraceable
            }
        );
    }
}

#[test]
fn overall_caps_random_with_the_same_x() {
    // x = 50: random 100 %, overall 50/100 → 50 < 50 fails.
    let s = shares(Fraction::ALL, NONE, f(50, 100));
    assert!(!envoy(&s, &uuid("00000032", '4')).sampled);
    assert!(envoy(&s, &uuid("00000031", '4')).sampled);
}

#[test]
fn client_and_force_trace() {
    let id = uuid("00000063", '4');
    let base = Decide {
        sampling: &shares(NONE, Fraction::ALL, Fraction::ALL),
        parent: None,
        client_trace_id: true,
        force_trace: false,
        request_id: Some(id.as_bytes()),
        draw: 0,
    };
    assert_eq!(decide(&base).reason, Reason::ClientForced);
    // The client share draws from `draw` (Envoy's random generator), not from x.
    let half = shares(NONE, f(50, 100), Fraction::ALL);
    assert_eq!(
        decide(&Decide {
            sampling: &half,
            draw: 49,
            ..base
        })
        .reason,
        Reason::ClientForced
    );
    assert_eq!(
        decide(&Decide {
            sampling: &half,
            draw: 50,
            ..base
        })
        .reason,
        Reason::NotTraceable
    );
    // Client share refused, force-trace next.
    let no_client = shares(NONE, NONE, Fraction::ALL);
    let forced = Decide {
        sampling: &no_client,
        force_trace: true,
        ..base
    };
    assert_eq!(decide(&forced).reason, Reason::ServiceForced);
    // Forced requests still pass the overall share.
    let capped = shares(NONE, NONE, f(99, 100));
    assert_eq!(
        decide(&Decide {
            sampling: &capped,
            ..forced
        }),
        Decision {
            sampled: false,
            reason: Reason::NotTraceable
        }
    );
    // Without x-client-trace-id the client share does nothing.
    assert_eq!(
        decide(&Decide {
            client_trace_id: false,
            ..base
        })
        .reason,
        Reason::NotTraceable
    );
}

#[test]
fn parent_decision_overrides() {
    let id = uuid("00000000", 'a');
    let forced = Decide {
        sampling: &Sampling::ALL,
        parent: Some(false),
        client_trace_id: false,
        force_trace: false,
        request_id: Some(id.as_bytes()),
        draw: 0,
    };
    assert_eq!(
        decide(&forced),
        Decision {
            sampled: false,
            reason: Reason::ServiceForced
        }
    );
    let nothing = shares(NONE, NONE, NONE);
    let id = uuid("00000000", '4');
    assert_eq!(
        decide(&Decide {
            sampling: &nothing,
            parent: Some(true),
            request_id: Some(id.as_bytes()),
            ..forced
        }),
        Decision {
            sampled: true,
            reason: Reason::NotTraceable
        }
    );
}

#[test]
fn an_unusable_request_id_skips_the_decision() {
    for id in [
        "",
        "1234567",
        "zzzzzzzz-1234-9678-9abc-def012345678",
        "0000 000-1234-4678-9abc-def012345678",
        "0x",
        "0xzzzzzz",
        "--000000",
    ] {
        let d = decide(&Decide {
            sampling: &Sampling::ALL,
            parent: None,
            client_trace_id: true,
            force_trace: true,
            request_id: Some(id.as_bytes()),
            draw: 0,
        });
        assert_eq!(
            d,
            Decision {
                sampled: false,
                reason: Reason::NotTraceable
            },
            "{id:?}"
        );
    }
}

#[test]
fn request_id_integer_reads_like_strtoull() {
    assert_eq!(id_integer(b"0000abcd-rest"), Some(0xabcd));
    assert_eq!(id_integer(b"ABCDEF01"), Some(0xabcdef01));
    assert_eq!(id_integer(b"12345678"), Some(0x12345678));
    assert_eq!(id_integer(b"0x123456"), Some(0x123456));
    assert_eq!(id_integer(b"  +12345"), Some(0x12345));
    assert_eq!(id_integer(b"-0000001"), Some(u64::MAX));
    assert_eq!(id_integer(b"0x"), None);
    assert_eq!(id_integer(b"0xg12345"), None);
    assert_eq!(id_integer(b"        "), None);
    assert_eq!(id_integer(b"1234 678"), None);
    // An id that is not a UUID but starts with 8 hex chars still decides (Envoy).
    let d = envoy(&shares(Fraction::ALL, NONE, Fraction::ALL), "deadbeef");
    assert_eq!(d.reason, Reason::Sampling);
}

#[test]
fn native_mode_uses_the_draw() {
    let s = shares(f(1, 100), NONE, Fraction::ALL);
    let native = |draw: u64| {
        decide(&Decide {
            sampling: &s,
            parent: None,
            client_trace_id: false,
            force_trace: false,
            request_id: None,
            draw,
        })
    };
    assert_eq!(native(100).reason, Reason::Sampling);
    assert_eq!(native(101).reason, Reason::NotTraceable);
    let mut rng = fastrand::Rng::with_seed(1);
    let hits = (0..100_000).filter(|_| native(rng.u64(..)).sampled).count();
    assert!((800..1200).contains(&hits), "{hits}");
    // Force trace in native mode.
    let d = decide(&Decide {
        sampling: &s,
        parent: None,
        client_trace_id: false,
        force_trace: true,
        request_id: None,
        draw: 101,
    });
    assert_eq!(d.reason, Reason::ServiceForced);
}

#[test]
fn fuzz_entry_accepts_samples() {
    fuzz(uuid("01234567", '9').as_bytes());
    fuzz(b"");
    fuzz(b"-0x12345");
}

/// The native bound takes exactly the random share of all draws: 0 % none, 100 % every
/// draw (u64::MAX too), 1 % the lowest hundredth; an overall share below 100 % leaves
/// the decision to `decide`.
#[test]
fn native_bound_is_the_share_of_all_draws() {
    let all = Fraction::ALL;
    let bound = |random| native_bound(&shares(random, all, all)).unwrap();
    assert_eq!(bound(NONE), 0);
    assert_eq!(bound(f(100, 100)), 1u128 << 64);
    assert!(u128::from(u64::MAX) < bound(f(100, 100)));
    assert_eq!(bound(f(1, 100)), (1u128 << 64) / 100);
    assert_eq!(bound(f(5, 4)), 1u128 << 64, "over 100 % is all");
    assert_eq!(
        bound(f(1, 0)),
        0,
        "a zero denominator takes none, as hits does"
    );
    assert_eq!(native_bound(&shares(f(1, 100), all, f(50, 100))), None);
    assert_eq!(native_bound(&shares(f(1, 100), all, f(1, 0))), None);
    // Over many draws the share holds (a fixed seed: the count is the same each run).
    let mut rng = fastrand::Rng::with_seed(7);
    let b = bound(f(1, 100));
    let hits = (0..1_000_000)
        .filter(|_| u128::from(rng.u64(..)) < b)
        .count();
    assert!((9_500..=10_500).contains(&hits), "{hits}");
}
