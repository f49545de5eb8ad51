//! Table and property tests of path normalisation.

use proptest::prelude::*;

use super::*;

const KEEP: PathNormalization = PathNormalization {
    merge_slashes: false,
    escaped_slashes: EscapedSlashes::Keep,
};
const MERGE: PathNormalization = PathNormalization {
    merge_slashes: true,
    escaped_slashes: EscapedSlashes::Keep,
};
const REJECT: PathNormalization = PathNormalization {
    merge_slashes: false,
    escaped_slashes: EscapedSlashes::Reject,
};
const UNESCAPE: PathNormalization = PathNormalization {
    merge_slashes: false,
    escaped_slashes: EscapedSlashes::Unescape,
};

fn norm(target: &str, policy: PathNormalization) -> Result<String, Rejection> {
    let mut scratch = Vec::new();
    let n = normalize(target.as_bytes(), &policy, &mut scratch)?;
    Ok(String::from_utf8_lossy(n.path).into_owned())
}

#[test]
fn table() {
    use Rejection::*;
    let cases: &[(&str, PathNormalization, Result<&str, Rejection>)] = &[
        ("/", KEEP, Ok("/")),
        ("/admin/", KEEP, Ok("/admin/")),
        ("/x/../admin/", KEEP, Ok("/admin/")),
        ("/admin/./", KEEP, Ok("/admin/")),
        ("/admin/.", KEEP, Ok("/admin/")),
        ("/%2e%2e/admin", KEEP, Ok("/admin")),
        ("/%2E%2E/admin/", KEEP, Ok("/admin/")),
        ("/x/%2e%2E/admin/", KEEP, Ok("/admin/")),
        ("/x/.%2e/admin", KEEP, Ok("/admin")),
        ("//admin", KEEP, Ok("//admin")),
        ("//admin", MERGE, Ok("/admin")),
        ("/a//b///c", MERGE, Ok("/a/b/c")),
        ("/a//", MERGE, Ok("/a/")),
        ("//", MERGE, Ok("/")),
        ("/a/b/../../..", KEEP, Ok("/")),
        ("/..", KEEP, Ok("/")),
        ("/../../x", KEEP, Ok("/x")),
        ("/a/b/..", KEEP, Ok("/a/")),
        ("/a/./b/./c", KEEP, Ok("/a/b/c")),
        ("/a//../b", KEEP, Ok("/a/b")),
        ("/.hidden/x", KEEP, Ok("/.hidden/x")),
        ("/a/...", KEEP, Ok("/a/...")),
        ("/%41%62c", KEEP, Ok("/Abc")),
        ("/%7e%5f%2D", KEEP, Ok("/~_-")),
        ("/a%3ab", KEEP, Ok("/a%3Ab")),
        ("/a%20b", KEEP, Ok("/a%20b")),
        ("/a%2fb", KEEP, Ok("/a%2Fb")),
        ("/x/..%2f..%2fadmin", KEEP, Ok("/x/..%2F..%2Fadmin")),
        ("/a%2fb", REJECT, Err(EscapedSlash)),
        ("/a%5Cb", REJECT, Err(EscapedSlash)),
        ("/a%2fb", UNESCAPE, Ok("/a/b")),
        ("/a%5cb", UNESCAPE, Ok("/a/b")),
        ("/x/..%2fadmin/", UNESCAPE, Ok("/admin/")),
        ("/x%2F%2E%2E%2Fadmin", UNESCAPE, Ok("/admin")),
        ("/a%zz", KEEP, Err(BadEscape)),
        ("/a%4", KEEP, Err(BadEscape)),
        ("/a%", KEEP, Err(BadEscape)),
        ("/a%00b", KEEP, Err(ForbiddenByte)),
        ("/a\0b", KEEP, Err(ForbiddenByte)),
        ("/a\x1fb", KEEP, Err(ForbiddenByte)),
        ("/a\x7f", KEEP, Err(ForbiddenByte)),
        ("/a#frag", KEEP, Err(ForbiddenByte)),
        ("a/b", KEEP, Err(NotOriginForm)),
        // An absolute-form target with an empty path (`http://a`, `http://a?q`).
        ("", KEEP, Ok("/")),
        ("?q=1", KEEP, Ok("/")),
        ("http://h/x", KEEP, Err(NotOriginForm)),
        ("*", KEEP, Ok("*")),
        ("/q/../p?x=/../y", KEEP, Ok("/p")),
        ("/caf\u{e9}/../x", KEEP, Ok("/x")),
    ];
    for (target, policy, expected) in cases {
        let got = norm(target, *policy);
        let expected = expected.map(str::to_owned);
        assert_eq!(got, expected, "{target:?} under {policy:?}");
    }
}

#[test]
fn query_is_split_off_untouched() {
    let mut scratch = Vec::new();
    let n = normalize(b"/a/./b?x=%2e&y=/../", &KEEP, &mut scratch).unwrap();
    assert_eq!(n.path, b"/a/b");
    assert_eq!(n.query, b"x=%2e&y=/../");
    assert!(n.changed);
    assert!(normalize(b"/a?x\0", &KEEP, &mut scratch).is_err());
    let n = normalize(b"/a?", &KEEP, &mut scratch).unwrap();
    assert_eq!((n.path, n.query), (&b"/a"[..], &b""[..]));
}

#[test]
fn clean_paths_are_borrowed_not_copied() {
    let target = b"/api/v1/orders?id=7";
    let mut scratch = Vec::new();
    let n = normalize(target, &MERGE, &mut scratch).unwrap();
    assert!(!n.changed);
    assert_eq!(n.path.as_ptr(), target.as_ptr());
    assert!(scratch.is_empty());
    // `//` is clean when not merging.
    let n = normalize(b"//x", &KEEP, &mut scratch).unwrap();
    assert_eq!(n.path, b"//x");
    assert!(scratch.is_empty());
    // A slow-path path that turns out unchanged is reported as such.
    let n = normalize(b"/a%20b", &KEEP, &mut scratch).unwrap();
    assert!(!n.changed);
}

fn policies() -> impl Strategy<Value = PathNormalization> {
    (
        any::<bool>(),
        prop_oneof![
            Just(EscapedSlashes::Keep),
            Just(EscapedSlashes::Reject),
            Just(EscapedSlashes::Unescape)
        ],
    )
        .prop_map(|(merge_slashes, escaped_slashes)| PathNormalization {
            merge_slashes,
            escaped_slashes,
        })
}

/// Paths built from the pieces that matter, so dot segments and escapes are common.
fn paths() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just("."),
        Just(".."),
        Just("%2e"),
        Just("%2E"),
        Just("%2f"),
        Just("%5C"),
        Just("%41"),
        Just("%3a"),
        Just("a"),
        Just("admin"),
        Just("~"),
        Just("%"),
        Just("%g1"),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|v| format!("/{}", v.concat()))
}

proptest! {
    #[test]
    fn normalising_twice_changes_nothing(path in paths(), policy in policies()) {
        if let Ok(once) = norm(&path, policy) {
            let twice = norm(&once, policy);
            prop_assert_eq!(twice, Ok(once.clone()), "{} -> {}", path, once);
            prop_assert!(once.starts_with('/'));
            // No dot segment survives.
            prop_assert!(!once.split('/').any(|s| s == "." || s == ".."), "{}", once);
            if policy.merge_slashes {
                prop_assert!(!once.contains("//"), "{}", once);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(target in proptest::collection::vec(any::<u8>(), 0..64),
                                   policy in policies()) {
        let mut scratch = Vec::new();
        let _ = normalize(&target, &policy, &mut scratch);
    }

    #[test]
    fn the_result_never_escapes_the_root(depth in 0usize..6, ups in 0usize..10) {
        let path = format!("{}{}/admin/", "/x".repeat(depth), "/..".repeat(ups));
        let got = norm(&path, KEEP).unwrap();
        let expected = format!("{}/admin/", "/x".repeat(depth.saturating_sub(ups)));
        prop_assert_eq!(got, expected);
    }
}
