//! The PROXY protocol (HAProxy's spec, versions 1 and 2): the header a load balancer in
//! front of ringway (AWS NLB, HAProxy) sends before the client's bytes to say who the
//! client is. Sans-IO: [`parse`] works on the bytes read so far.
//!
//! Version 1 is one text line, at most 107 bytes with its CRLF:
//! `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or `TCP6`, or `UNKNOWN`, whose addresses
//! are ignored). Version 2 is binary: a 12-byte signature, version and command (`PROXY`,
//! or `LOCAL` for the balancer's own health checks: no client address), address family
//! and transport, a length, the addresses and TLVs (skipped). Anything else, or an
//! address that does not parse, is an error: the connection is closed, as the spec says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 line, CRLF included.
const V1_MAX: usize = 107;
/// The most a version 2 header may carry after its fixed 16 bytes (TLVs included); a
/// larger length is refused rather than waited for.
const V2_MAX_BODY: usize = 2048;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The client's address; `None` for `UNKNOWN` (v1) and `LOCAL` or unspecified (v2).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, when given.
    pub destination: Option<SocketAddr>,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Not a PROXY protocol header.
    NotProxy,
    /// A header, but malformed.
    Malformed,
}

/// Whether `bytes` may be the start of a header (`optional` mode: anything else is the
/// client's own first bytes).
pub fn may_start_header(bytes: &[u8]) -> bool {
    let n = bytes.len().min(V2_SIGNATURE.len());
    bytes[..n] == V2_SIGNATURE[..n]
        || bytes[..bytes.len().min(6)] == b"PROXY "[..bytes.len().min(6)]
}

/// Parses a header at the start of `bytes`: `Ok(None)` when more bytes are needed,
/// `Ok(Some((consumed, header)))` when complete.
pub fn parse(bytes: &[u8]) -> Result<Option<(usize, Header)>, Error> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes[0] == b'\r' {
        return parse_v2(bytes);
    }
    if bytes[0] == b'P' {
        return parse_v1(bytes);
    }
    Err(Error::NotProxy)
}

fn parse_v1(bytes: &[u8]) -> Result<Option<(usize, Header)>, Error> {
    let prefix = &b"PROXY "[..bytes.len().min(6)];
    if !bytes.starts_with(prefix) {
        return Err(Error::NotProxy);
    }
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
        return if bytes.len() >= V1_MAX {
            Err(Error::Malformed)
        } else {
            Ok(None)
        };
    };
    if end + 2 > V1_MAX {
        return Err(Error::Malformed);
    }
    let line = std::str::from_utf8(&bytes[6..end]).map_err(|_| Error::Malformed)?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["UNKNOWN", ..] => Header {
            source: None,
            destination: None,
        },
        [family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |text: &str| -> Result<IpAddr, Error> {
                let ip: IpAddr = text.parse().map_err(|_| Error::Malformed)?;
                match (*family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(Error::Malformed),
                }
            };
            let port = |text: &str| -> Result<u16, Error> {
                // No leading zeros or signs, as the spec writes ports.
                if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
                    return Err(Error::Malformed);
                }
                text.parse().map_err(|_| Error::Malformed)
            };
            Header {
                source: Some(SocketAddr::new(ip(src)?, port(sport)?)),
                destination: Some(SocketAddr::new(ip(dst)?, port(dport)?)),
            }
        }
        _ => return Err(Error::Malformed),
    };
    Ok(Some((end + 2, header)))
}

fn parse_v2(bytes: &[u8]) -> Result<Option<(usize, Header)>, Error> {
    let n = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..n] != V2_SIGNATURE[..n] {
        return Err(Error::NotProxy);
    }
    if bytes.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    if version != 2 || command > 1 {
        return Err(Error::Malformed);
    }
    let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if length > V2_MAX_BODY {
        return Err(Error::Malformed);
    }
    let Some(body) = bytes.get(16..16 + length) else {
        return Ok(None);
    };
    let consumed = 16 + length;
    let unknown = Header {
        source: None,
        destination: None,
    };
    // LOCAL: the balancer speaking for itself (a health check).
    if command == 0 {
        return Ok(Some((consumed, unknown)));
    }
    let header = match bytes[13] {
        // TCP over IPv4, UDP over IPv4.
        0x11 | 0x12 => {
            let a = body.get(..12).ok_or(Error::Malformed)?;
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Header {
                source: Some(SocketAddr::new(ip(0), port(8))),
                destination: Some(SocketAddr::new(ip(4), port(10))),
            }
        }
        // TCP over IPv6, UDP over IPv6.
        0x21 | 0x22 => {
            let a = body.get(..36).ok_or(Error::Malformed)?;
            let ip = |i: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&a[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Header {
                source: Some(SocketAddr::new(ip(0), port(32))),
                destination: Some(SocketAddr::new(ip(16), port(34))),
            }
        }
        // Unspecified, or Unix sockets: no client address to take.
        0x00 | 0x31 | 0x32 => unknown,
        _ => return Err(Error::Malformed),
    };
    Ok(Some((consumed, header)))
}

/// The fuzz target's checks (fuzz/fuzz_targets/proxy_protocol.rs, and the corpus replay
/// in tests/fuzz_corpus.rs): never a panic, never more consumed than given, every prefix
/// of a complete header is "need more", and the header alone parses the same.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    if let Ok(Some((consumed, header))) = parse(data) {
        assert!(consumed <= data.len());
        for cut in 0..consumed {
            assert_eq!(parse(&data[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(parse(&data[..consumed]), Ok(Some((consumed, header))));
    }
}

/// Version 1 header for `source` connecting to `destination` (appended to `out`).
pub fn write_v1(source: SocketAddr, destination: SocketAddr, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => write!(
            out,
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        (SocketAddr::V6(s), SocketAddr::V6(d)) => write!(
            out,
            "PROXY TCP6 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        // Mixed families cannot be said in one line.
        _ => write!(out, "PROXY UNKNOWN\r\n"),
    };
}

/// Version 2 header with the LOCAL command (no client address).
pub fn write_v2_local(out: &mut Vec<u8>) {
    out.extend_from_slice(V2_SIGNATURE);
    out.extend_from_slice(&[0x20, 0x00, 0, 0]);
}

/// Version 2 header (command PROXY over TCP) for `source` connecting to `destination`.
pub fn write_v2(source: SocketAddr, destination: SocketAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(V2_SIGNATURE);
    out.push(0x21);
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.extend_from_slice(&[0x11, 0, 12]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            out.extend_from_slice(&[0x21, 0, 36]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        _ => out.extend_from_slice(&[0x00, 0, 0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn version_1_lines() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
        let (n, h) = parse(line).unwrap().unwrap();
        assert_eq!(&line[n..n + 3], b"GET");
        assert_eq!(h.source, Some(addr("192.0.2.1:56324")));
        assert_eq!(h.destination, Some(addr("198.51.100.2:443")));
        let (_, h) = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some(addr("[2001:db8::1]:1")));
        let (_, h) = parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, None);
        // Incomplete, at every cut.
        for cut in 1..line.len().min(40) {
            assert_eq!(parse(&line[..cut]), Ok(None), "cut {cut}");
        }
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
            b"PROXY TCP5 a b 1 2\r\n",
            b"PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(Error::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(parse(&long), Err(Error::Malformed));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Error::NotProxy));
    }

    #[test]
    fn version_2_round_trips_and_local_and_tlvs() {
        for (s, d) in [
            ("192.0.2.1:56324", "198.51.100.2:443"),
            ("[2001:db8::1]:1", "[2001:db8::2]:2"),
        ] {
            let mut out = Vec::new();
            write_v2(addr(s), addr(d), &mut out);
            out.extend_from_slice(b"GET");
            let (n, h) = parse(&out).unwrap().unwrap();
            assert_eq!(&out[n..], b"GET");
            assert_eq!((h.source, h.destination), (Some(addr(s)), Some(addr(d))));
            for cut in 1..n {
                assert_eq!(parse(&out[..cut]), Ok(None), "cut {cut}");
            }
            let mut v1 = Vec::new();
            write_v1(addr(s), addr(d), &mut v1);
            let (_, h) = parse(&v1).unwrap().unwrap();
            assert_eq!((h.source, h.destination), (Some(addr(s)), Some(addr(d))));
        }
        // LOCAL with a TLV: no client address, every byte consumed.
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 4, 0x04, 0, 1, 0xff]);
        assert_eq!(
            parse(&local),
            Ok(Some((
                20,
                Header {
                    source: None,
                    destination: None
                }
            )))
        );
        // An IPv4 header with a TLV after the addresses.
        let mut tlv = Vec::new();
        write_v2(addr("10.0.0.1:1"), addr("10.0.0.2:2"), &mut tlv);
        tlv[15] = 12 + 4;
        tlv.extend_from_slice(&[0x04, 0, 1, 0xaa]);
        assert_eq!(parse(&tlv).unwrap().unwrap().0, 32);
        // Wrong version, bad family, too short for its family.
        let mut bad = tlv.clone();
        bad[12] = 0x31;
        assert_eq!(parse(&bad), Err(Error::Malformed));
        let mut bad = tlv.clone();
        bad[13] = 0x51;
        assert_eq!(parse(&bad), Err(Error::Malformed));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse(&short), Err(Error::Malformed));
    }

    #[test]
    fn optional_mode_tells_a_header_from_http() {
        assert!(may_start_header(b"PROX"));
        assert!(may_start_header(b"\r\n\r\n"));
        assert!(!may_start_header(b"GET / HTTP/1.1"));
        assert!(!may_start_header(b"POST"));
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 8)) as u8).collect();
            if seed % 3 == 0 {
                bytes.splice(0..0, V2_SIGNATURE.iter().copied());
            } else if seed % 3 == 1 {
                bytes.splice(0..0, b"PROXY TCP4 ".iter().copied());
            }
            let _ = parse(&bytes);
        }
    }
}
