//! Table of raw requests through the whole codec pipeline (see `pipeline::forward`):
//! each row is the input and either the status it is rejected with or the exact bytes
//! the proxy would forward.

mod pipeline;

use pipeline::forward;

enum Want {
    /// Forwarded unchanged.
    Same,
    /// Forwarded as these bytes.
    Bytes(&'static [u8]),
}
use Want::*;

const H: &str = "Host: a.example\r\n";

fn rejected(cases: &[(&str, &[u8], u16)]) {
    for (name, raw, status) in cases {
        assert_eq!(
            forward(raw),
            Err(*status),
            "{name}: {}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn rejections() {
    #[rustfmt::skip]
    let cases: &[(&str, &[u8], u16)] = &[
        // Content-Length
        ("cl+te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("te+cl", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
        ("cl duplicate same", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
        ("cl duplicate differing", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400),
        ("cl list identical", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", 400),
        ("cl plus sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
        ("cl minus sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400),
        ("cl hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", 400),
        ("cl inner space", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
        ("cl empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400),
        ("cl overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
        // Transfer-Encoding
        ("te chunked not last", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("te chunked twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
        ("te chunked twice in two headers", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("te without chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ("te unknown coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n\r\n", 501),
        ("te unknown before chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", 501),
        ("te gzip then chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("te on http/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("te with parameters", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n", 400),
        ("te empty", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400),
        // Field syntax
        ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        ("tab before colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A\t: 1\r\n\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", 400),
        ("first line starts with space", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
        ("bare CR in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n", 400),
        ("bare CR as line end", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n", 400),
        ("DEL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x7f\r\n\r\n", 400),
        ("bare LF after request line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        ("bare LF after field", b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
        ("bare LF blank line", b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
        ("bare LF leading line", b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("bad name token", b"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", 400),
        ("empty name", b"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 400),
        ("no colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400),
        // Request line
        ("bad method token", b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("space in target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("double space", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("non-ascii target", b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("fragment in target", b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("asterisk with GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("relative target", b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("CONNECT without port", b"CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
        ("absolute-form ftp", b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute-form userinfo", b"GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        ("HTTP/0.9", b"GET / HTTP/0.9\r\n\r\n", 505),
        ("lowercase version", b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
        ("garbage version", b"GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
        ("missing version", b"GET /\r\nHost: a\r\n\r\n", 400),
        // Host
        ("missing host", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
        ("missing host absolute-form", b"GET http://a/ HTTP/1.1\r\n\r\n", 400),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        ("host bad chars", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("host slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        ("host bad port", b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400),
        ("host port letters", b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", 400),
        ("host userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
        // Chunked bodies
        ("chunk size not hex", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("chunk size 0x prefix", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n", 400),
        ("chunk size signed", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\nx\r\n0\r\n\r\n", 400),
        ("chunk size overflow", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400),
        ("chunk size trailing space", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n", 400),
        ("chunk ext no name", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;=x\r\nx\r\n0\r\n\r\n", 400),
        ("chunk ext bad value", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b@c\r\nx\r\n0\r\n\r\n", 400),
        ("chunk ext unterminated quote", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"b\r\nx\r\n0\r\n\r\n", 400),
        ("chunk ext bare LF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a\nx\r\n0\r\n\r\n", 400),
        ("chunk size bare LF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n", 400),
        ("chunk data too long", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", 400),
        ("chunk data bare LF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n", 400),
        ("trailer without colon", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A\r\n\r\n", 400),
        ("trailer obs-fold", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\r\n 2\r\n\r\n", 400),
        ("trailer bare LF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\n\r\n", 400),
    ];
    assert!(cases.len() >= 60);
    rejected(cases);
}

#[test]
fn limits() {
    let line = |n: usize| format!("GET /{} HTTP/1.1\r\n{H}\r\n", "a".repeat(n - 14));
    // The request line is exactly 8 KiB: accepted; one byte more: 414.
    assert_eq!(line(8192).find("\r\n"), Some(8192));
    assert!(forward(line(8192).as_bytes()).is_ok());
    assert_eq!(forward(line(8193).as_bytes()), Err(414));
    // A head of exactly 60 KiB passes; one byte more is 431.
    let head = |n: usize| {
        let base = format!("GET / HTTP/1.1\r\n{H}X-Pad: \r\n\r\n");
        format!(
            "GET / HTTP/1.1\r\n{H}X-Pad: {}\r\n\r\n",
            "p".repeat(n - base.len())
        )
    };
    assert_eq!(head(61440).len(), 61440);
    assert_eq!(
        forward(head(61440).as_bytes()).as_deref(),
        Ok(head(61440).as_bytes())
    );
    assert_eq!(forward(head(61441).as_bytes()), Err(431));
    // 100 fields pass, 101 are 431.
    let fields = |n: usize| format!("GET / HTTP/1.1\r\n{H}{}\r\n", "X-F: 1\r\n".repeat(n - 1));
    assert!(forward(fields(100).as_bytes()).is_ok());
    assert_eq!(forward(fields(101).as_bytes()), Err(431));
    // Chunk extensions over 16 KiB in total: 400. Trailers over 16 KiB: 431.
    let ext = format!(
        "POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n1;e={}\r\nx\r\n0\r\n\r\n",
        "v".repeat(16 * 1024)
    );
    assert_eq!(forward(ext.as_bytes()), Err(400));
    let trailers = format!(
        "POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: {}\r\n\r\n",
        "v".repeat(16 * 1024)
    );
    assert_eq!(forward(trailers.as_bytes()), Err(431));
}

#[test]
fn accepted() {
    #[rustfmt::skip]
    let cases: &[(&str, &[u8], Want)] = &[
        ("simple get", b"GET / HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n", Same),
        ("pipelined gets",
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", Same),
        ("pipelined post then get",
            b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", Same),
        ("content-length zero", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", Same),
        ("content-length leading zeros", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n\r\nabc", Same),
        ("chunked re-framed",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
            Bytes(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n")),
        ("chunked case-insensitive with OWS",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n1\r\nx\r\n0\r\n\r\n",
            Bytes(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")),
        ("chunked extensions dropped, trailers kept, framing trailers dropped",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b; c = \"d;\\\"e\" ;f\r\nabc\r\n0;last\r\nX-Sum: 9\r\nContent-Length: 5\r\nHost: evil\r\n\r\n",
            Bytes(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 9\r\n\r\n")),
        ("chunked then pipelined get",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            Bytes(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")),
        ("absolute-form", b"GET http://b.example:8080/p?q HTTP/1.1\r\nHost: a.example\r\n\r\n", Same),
        ("absolute-form empty path", b"GET https://b.example HTTP/1.1\r\nHost: b.example\r\n\r\n", Same),
        ("http/1.0 keep-alive",
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\n\r\n",
            Bytes(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")),
        ("http/1.0 without host", b"GET / HTTP/1.0\r\n\r\n", Same),
        ("leading empty lines", b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Bytes(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
        ("empty value", b"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank:   \r\n\r\n", Same),
        ("value whitespace kept verbatim", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \t1 2 \t\r\n\r\n", Same),
        ("obs-text value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n", Same),
        ("empty host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", Same),
        ("ipv6 host", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", Same),
        ("extension method", b"PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", Same),
        ("options asterisk", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Same),
        ("connect authority", b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", Same),
        ("expect continue", b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", Same),
        ("hop-by-hop stripped",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Private\r\nKeep-Alive: 5\r\nX-Private: 1\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: x\r\nProxy-Connection: keep-alive\r\nX-Public: 2\r\n\r\n",
            Bytes(b"GET / HTTP/1.1\r\nHost: a\r\nX-Public: 2\r\n\r\n")),
        ("connection cannot remove framing or host",
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, host, transfer-encoding\r\nContent-Length: 2\r\n\r\nhi",
            Bytes(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")),
        ("connection names header case-insensitively",
            b"GET / HTTP/1.1\r\nHost: a\r\nx-drop: 1\r\nConnection: X-DROP\r\n\r\n",
            Bytes(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
        ("query with odd but valid chars", b"GET /a/b;c=d?e=f&g=%20|{} HTTP/1.1\r\nHost: a\r\n\r\n", Same),
    ];
    for (name, raw, want) in cases {
        let expected: &[u8] = match want {
            Same => raw,
            Bytes(b) => b,
        };
        match forward(raw) {
            Ok(out) => assert_eq!(
                out,
                expected,
                "{name}:\n got {}\nwant {}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected)
            ),
            Err(s) => panic!("{name}: rejected with {s}"),
        }
    }
}

#[test]
fn trickled_reads_forward_the_same_bytes() {
    let raw = b"\r\nPOST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n4;x=y\r\nabcd\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let one_shot = forward(raw).unwrap();
    for step in 1..16 {
        let limits = ringway::http1::Limits::default();
        assert_eq!(
            pipeline::forward_with(raw, step, &limits).unwrap(),
            one_shot
        );
    }
}
