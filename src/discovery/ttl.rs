//! Resolving a name with its TTL, for clusters with `respect_dns_ttl` (Envoy's field).
//!
//! Design: getaddrinfo reports no TTL, so these names are asked of the nameservers of
//! `resolv.conf` directly: one query per record type over UDP (retried over TCP when the
//! answer is truncated), built and read with hickory-proto's message codec over blocking
//! std sockets with timeouts. It runs on the lookup threads (`schedule`), which exist to
//! block, so no async runtime is needed. The files are read at every lookup, so an edit
//! applies at the next refresh, as with getaddrinfo.
//!
//! What getaddrinfo would do is kept where it is cheap: an IP literal answers itself; the
//! hosts file is consulted first (`hosts`), and a name it gives addresses of the wanted
//! family is answered from it with no TTL (so it is resolved again at `refresh_rate`);
//! `resolv.conf`'s `nameserver` lines (none: the local host, as the C library does; port
//! 53; a zone index of a link-local server is dropped), `options timeout:` and
//! `attempts:` (each server in turn, every attempt), and `search`/`domain` with `ndots`
//! (a name with fewer dots than `ndots` is tried with each search domain first, else
//! as-is first; a name ending in `.` only as-is) apply. `rotate`, `edns0`, `use-vc`,
//! `single-request` and `sortlist` are ignored; queries always carry EDNS with a
//! 1232-byte payload (the DNS flag day's size), which keeps most answers off TCP.
//!
//! Which queries the lookup family sends (as Envoy's c-ares resolver): `V4_ONLY` A,
//! `V6_ONLY` AAAA, `AUTO` AAAA then A when there is none, `V4_PREFERRED` A then AAAA,
//! `ALL` both. The TTL of an answer is the smallest TTL of the records it was made of
//! (the CNAME chain from the name and the address records at its end; a TTL with its top
//! bit set counts as 0, RFC 2181). An answer is matched to its query by id, question and
//! source (a connected socket); anything else that arrives is ignored until the timeout.
//! A name that does not exist (NXDOMAIN) or has no address record is the next search
//! candidate's turn, and a failure once none is left; a server that fails (SERVFAIL,
//! REFUSED, a garbled answer, no answer in time) is the next server's turn, and a failure
//! once none is left. The scheduler keeps a failed name's last good addresses.

use std::{
    io::{self, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};

use super::{choose, hosts, Answer, TtlLookup};
use crate::config::LookupFamily;

/// The EDNS payload size queries advertise.
const EDNS_PAYLOAD: u16 = 1232;
/// The largest TTL honoured (RFC 2181 §8): larger values mean 0.
const MAX_TTL: u32 = i32::MAX as u32;

/// A stub resolver that reads `resolv.conf` and the hosts file at every lookup.
#[derive(Debug, Clone)]
pub struct DnsClient {
    resolv_conf: PathBuf,
    hosts: PathBuf,
    port: u16,
}

/// The nameservers and options of one `resolv.conf` read.
struct Servers {
    addresses: Vec<SocketAddr>,
    timeout: Duration,
    attempts: u32,
    search: Vec<String>,
    ndots: u32,
}

/// What one name and record type came to.
enum Outcome {
    /// Addresses (possibly none: the name exists without records of the type), and the
    /// smallest TTL of the records used.
    Found(Vec<IpAddr>, Option<u32>),
    /// NXDOMAIN.
    NoName,
}

impl DnsClient {
    /// The system's files: `/etc/resolv.conf` and `/etc/hosts`.
    pub fn system() -> DnsClient {
        DnsClient::new("/etc/resolv.conf", "/etc/hosts")
    }

    /// These files instead (tests); nameservers are asked on port 53.
    pub fn new(resolv_conf: impl Into<PathBuf>, hosts: impl Into<PathBuf>) -> DnsClient {
        DnsClient {
            resolv_conf: resolv_conf.into(),
            hosts: hosts.into(),
            port: 53,
        }
    }

    /// Asks the nameservers on `port` instead of 53 (`resolv.conf` cannot say a port;
    /// tests run their server on a free one).
    pub fn with_port(mut self, port: u16) -> DnsClient {
        self.port = port;
        self
    }

    /// The client as the resolver's TTL-aware lookup.
    pub fn into_lookup(self) -> TtlLookup {
        Arc::new(move |host: &str, family: LookupFamily| self.resolve(host, family))
    }

    /// Resolves `host` for `family`, blocking (up to timeout × attempts × servers).
    pub fn resolve(&self, host: &str, family: LookupFamily) -> io::Result<Answer> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Answer::untimed(vec![ip]));
        }
        // A missing hosts file is an empty one (as for the C library).
        let text = std::fs::read_to_string(&self.hosts).unwrap_or_default();
        let pinned = choose(family, &hosts::addresses(&text, host));
        if !pinned.is_empty() {
            return Ok(Answer::untimed(pinned));
        }
        let servers = self.servers();
        for candidate in candidates(host, &servers) {
            let Ok(mut name) = Name::from_utf8(&candidate) else {
                continue;
            };
            // Absolute, as every name in an answer is (and `Name` compares that too).
            name.set_fqdn(true);
            if let Some(answer) = resolve_name(&servers, &name, family)? {
                return Ok(answer);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: no such name, or no address record for it"),
        ))
    }

    /// `resolv.conf` now (missing or unreadable: the defaults, the local host).
    fn servers(&self) -> Servers {
        let bytes = std::fs::read(&self.resolv_conf).unwrap_or_default();
        // Lines it cannot read are skipped, as the C library does.
        let (config, _errors) = resolv_conf::Config::parse_with_errors(&bytes);
        let addresses = config
            .get_nameservers_or_local()
            .into_iter()
            .map(|ip| SocketAddr::new(IpAddr::from(ip), self.port))
            .collect();
        Servers {
            addresses,
            // The C library's bounds: at most 30 s and 5 attempts.
            timeout: Duration::from_secs(config.timeout.clamp(1, 30).into()),
            attempts: config.attempts.clamp(1, 5),
            search: config.get_last_search_or_domain().cloned().collect(),
            ndots: config.ndots,
        }
    }
}

/// The names to try for `host`, in order (`search` and `ndots`).
fn candidates(host: &str, servers: &Servers) -> Vec<String> {
    if host.ends_with('.') {
        return vec![host.to_owned()];
    }
    let searched = servers
        .search
        .iter()
        .filter(|domain| !domain.is_empty())
        .map(|domain| format!("{host}.{}", domain.trim_end_matches('.')));
    let dots = u32::try_from(host.matches('.').count()).unwrap_or(u32::MAX);
    if dots >= servers.ndots {
        std::iter::once(host.to_owned()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(host.to_owned())).collect()
    }
}

/// One candidate name for `family`: `None` when it has no address of the family.
fn resolve_name(
    servers: &Servers,
    name: &Name,
    family: LookupFamily,
) -> io::Result<Option<Answer>> {
    use RecordType::{A, AAAA};
    let steps: &[&[RecordType]] = match family {
        LookupFamily::V4Only => &[&[A]],
        LookupFamily::V6Only => &[&[AAAA]],
        LookupFamily::Auto => &[&[AAAA], &[A]],
        LookupFamily::V4Preferred => &[&[A], &[AAAA]],
        LookupFamily::All => &[&[A, AAAA]],
    };
    for step in steps {
        let mut addresses = Vec::new();
        let mut ttl: Option<u32> = None;
        for rtype in *step {
            match query(servers, name, *rtype)? {
                Outcome::NoName => return Ok(None),
                Outcome::Found(found, found_ttl) => {
                    addresses.extend(found);
                    ttl = min_ttl(ttl, found_ttl);
                }
            }
        }
        if !addresses.is_empty() {
            return Ok(Some(Answer {
                addresses,
                ttl: ttl.map(|s| Duration::from_secs(s.into())),
            }));
        }
    }
    Ok(None)
}

fn min_ttl(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Asks each server in turn, `attempts` rounds, until one answers.
fn query(servers: &Servers, name: &Name, rtype: RecordType) -> io::Result<Outcome> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no nameserver");
    for _ in 0..servers.attempts {
        for server in &servers.addresses {
            match exchange(*server, name, rtype, servers.timeout) {
                Ok(response) => match response.response_code() {
                    ResponseCode::NoError => return Ok(addresses(&response, name, rtype)),
                    ResponseCode::NXDomain => return Ok(Outcome::NoName),
                    code => {
                        last =
                            io::Error::other(format!("{name} {rtype}: {server} answered {code}"));
                    }
                },
                Err(e) => last = io::Error::new(e.kind(), format!("{name} {rtype}: {server}: {e}")),
            }
        }
    }
    Err(last)
}

/// One query to one server: over UDP, then over TCP if the answer was truncated.
fn exchange(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    timeout: Duration,
) -> io::Result<Message> {
    let id = fastrand::u16(..);
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    let bytes = message.to_vec().map_err(io::Error::other)?;
    let response = over_udp(server, &bytes, timeout, |r| answers(r, id, name, rtype))?;
    if !response.truncated() {
        return Ok(response);
    }
    over_tcp(server, &bytes, timeout, |r| answers(r, id, name, rtype))
}

/// Whether `response` answers the query `id` for `name` and `rtype`.
fn answers(response: &Message, id: u16, name: &Name, rtype: RecordType) -> bool {
    response.id() == id
        && response.message_type() == MessageType::Response
        && response
            .queries()
            .first()
            .is_some_and(|q| q.query_type() == rtype && q.name() == name)
}

fn over_udp(
    server: SocketAddr,
    query: &[u8],
    timeout: Duration,
    matches: impl Fn(&Message) -> bool,
) -> io::Result<Message> {
    let local: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((local, 0))?;
    // Connected: the kernel drops datagrams from any other source.
    socket.connect(server)?;
    socket.send(query)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0; usize::from(u16::MAX)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ));
        }
        socket.set_read_timeout(Some(left))?;
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        // Garbled or unrelated datagrams are ignored (a late answer to an earlier query).
        if let Ok(response) = Message::from_vec(&buf[..len]) {
            if matches(&response) {
                return Ok(response);
            }
        }
    }
}

fn over_tcp(
    server: SocketAddr,
    query: &[u8],
    timeout: Duration,
    matches: impl Fn(&Message) -> bool,
) -> io::Result<Message> {
    let len = u16::try_from(query.len()).map_err(io::Error::other)?;
    let mut stream = TcpStream::connect_timeout(&server, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed)?;
    let mut prefix = [0; 2];
    stream.read_exact(&mut prefix)?;
    let mut buf = vec![0; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut buf)?;
    let response =
        Message::from_vec(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if matches(&response) {
        Ok(response)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the TCP answer is not for the query",
        ))
    }
}

/// The addresses at the end of `name`'s CNAME chain in `response`, with the smallest TTL
/// of the records used.
fn addresses(response: &Message, name: &Name, rtype: RecordType) -> Outcome {
    let records = response.answers();
    let mut chain = vec![name.clone()];
    let mut ttl = None;
    // Each pass follows one link; a chain longer than the answer is a loop.
    for _ in 0..records.len() {
        let Some(last) = chain.last() else { break };
        let next = records.iter().find_map(|r| match r.data() {
            RData::CNAME(target) if r.name() == last => Some((target.0.clone(), r.ttl())),
            _ => None,
        });
        match next {
            Some((target, t)) if !chain.contains(&target) => {
                ttl = min_ttl(ttl, Some(sane(t)));
                chain.push(target);
            }
            _ => break,
        }
    }
    let mut found = Vec::new();
    for record in records {
        if !chain.contains(record.name()) {
            continue;
        }
        let ip = match (record.data(), rtype) {
            (RData::A(a), RecordType::A) => IpAddr::V4(a.0),
            (RData::AAAA(aaaa), RecordType::AAAA) => IpAddr::V6(aaaa.0),
            _ => continue,
        };
        ttl = min_ttl(ttl, Some(sane(record.ttl())));
        if !found.contains(&ip) {
            found.push(ip);
        }
    }
    if found.is_empty() {
        // A name without records of the type: its CNAMEs' TTLs do not matter.
        return Outcome::Found(found, None);
    }
    Outcome::Found(found, ttl)
}

/// A record's TTL as RFC 2181 §8 reads it: one with the top bit set means 0.
fn sane(ttl: u32) -> u32 {
    if ttl > MAX_TTL {
        0
    } else {
        ttl
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::discovery::test_server::{Reply, Seen, TestServer};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A client of `server` with this `resolv.conf` and hosts file text.
    fn client(dir: &Path, server: &TestServer, resolv: &str, hosts: &str) -> DnsClient {
        let (resolv_path, hosts_path) = (dir.join("resolv.conf"), dir.join("hosts"));
        std::fs::write(&resolv_path, resolv).unwrap();
        std::fs::write(&hosts_path, hosts).unwrap();
        DnsClient::new(resolv_path, hosts_path).with_port(server.port)
    }

    const LOCAL: &str = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

    fn seen(name: &str, rtype: RecordType, tcp: bool) -> Seen {
        Seen {
            name: name.into(),
            rtype,
            tcp,
        }
    }

    #[test]
    fn the_ttl_is_the_smallest_of_the_cname_chain_and_the_addresses() {
        let server = TestServer::start(&[
            ("www.example", Reply::Alias("web.example", 30)),
            (
                "web.example",
                Reply::Records(vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("fd00::1")], 60),
            ),
            ("short.example", Reply::Alias("web.example", 300)),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path(), &server, LOCAL, "");
        let answer = client.resolve("www.example", LookupFamily::V4Only).unwrap();
        assert_eq!(answer.addresses, [ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(answer.ttl, Some(Duration::from_secs(30)));
        let answer = client
            .resolve("short.example", LookupFamily::V6Only)
            .unwrap();
        assert_eq!(answer.addresses, [ip("fd00::1")]);
        assert_eq!(answer.ttl, Some(Duration::from_secs(60)));
        // Names compare without case.
        let answer = client.resolve("WEB.Example", LookupFamily::V4Only).unwrap();
        assert_eq!(answer.addresses.len(), 2);
    }

    #[test]
    fn the_lookup_family_decides_the_queries() {
        let server = TestServer::start(&[
            ("v4.example", Reply::Records(vec![ip("10.0.0.1")], 10)),
            (
                "both.example",
                Reply::Records(vec![ip("10.0.0.2"), ip("fd00::2")], 20),
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path(), &server, LOCAL, "");
        // AUTO: AAAA, then A when there is none.
        let answer = client.resolve("v4.example", LookupFamily::Auto).unwrap();
        assert_eq!(answer.addresses, [ip("10.0.0.1")]);
        let answer = client.resolve("both.example", LookupFamily::Auto).unwrap();
        assert_eq!(answer.addresses, [ip("fd00::2")]);
        // V4_PREFERRED: A only when there is one.
        let answer = client
            .resolve("both.example", LookupFamily::V4Preferred)
            .unwrap();
        assert_eq!(answer.addresses, [ip("10.0.0.2")]);
        // ALL: both.
        let answer = client.resolve("both.example", LookupFamily::All).unwrap();
        assert_eq!(answer.addresses, [ip("10.0.0.2"), ip("fd00::2")]);
        assert_eq!(answer.ttl, Some(Duration::from_secs(20)));
        use RecordType::{A, AAAA};
        assert_eq!(
            server.seen(),
            [
                seen("v4.example", AAAA, false),
                seen("v4.example", A, false),
                seen("both.example", AAAA, false),
                seen("both.example", A, false),
                seen("both.example", A, false),
                seen("both.example", AAAA, false),
            ]
        );
        // V6_ONLY on a name without AAAA: no address (a failure).
        assert!(client.resolve("v4.example", LookupFamily::V6Only).is_err());
    }

    #[test]
    fn a_truncated_answer_is_asked_again_over_tcp() {
        let server = TestServer::start(&[(
            "big.example",
            Reply::Truncated(vec![ip("10.0.0.7"), ip("10.0.0.8")], 5),
        )]);
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path(), &server, LOCAL, "");
        let answer = client.resolve("big.example", LookupFamily::V4Only).unwrap();
        assert_eq!(answer.addresses, [ip("10.0.0.7"), ip("10.0.0.8")]);
        assert_eq!(answer.ttl, Some(Duration::from_secs(5)));
        assert_eq!(
            server.seen(),
            [
                seen("big.example", RecordType::A, false),
                seen("big.example", RecordType::A, true)
            ]
        );
    }

    #[test]
    fn nxdomain_servfail_and_silence_are_failures() {
        let server = TestServer::start(&[
            ("gone.example", Reply::NxDomain),
            ("broken.example", Reply::ServFail),
            ("mute.example", Reply::Silent),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path(), &server, LOCAL, "");
        let err = client
            .resolve("gone.example", LookupFamily::V4Only)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        let err = client
            .resolve("broken.example", LookupFamily::V4Only)
            .unwrap_err();
        assert!(err.to_string().contains("Server Failure"), "{err}");
        let started = Instant::now();
        let err = client
            .resolve("mute.example", LookupFamily::V4Only)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // One server, one attempt of `timeout:1`.
        assert!(started.elapsed() < Duration::from_secs(3));
        // `attempts:2`: the silent server is asked twice.
        let client = super::tests::client(
            dir.path(),
            &server,
            "nameserver 127.0.0.1\noptions timeout:1 attempts:2\n",
            "",
        );
        let before = server.count("mute.example");
        assert!(client
            .resolve("mute.example", LookupFamily::V4Only)
            .is_err());
        assert_eq!(server.count("mute.example") - before, 2);
    }

    #[test]
    fn the_hosts_file_comes_first_without_a_ttl() {
        let server = TestServer::start(&[
            ("pinned.example", Reply::Records(vec![ip("10.0.0.1")], 10)),
            ("v4pinned.example", Reply::Records(vec![ip("fd00::9")], 10)),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let hosts = "10.9.9.9 pinned.example\n10.9.9.8 v4pinned.example\n";
        let client = client(dir.path(), &server, LOCAL, hosts);
        let answer = client
            .resolve("pinned.example", LookupFamily::Auto)
            .unwrap();
        assert_eq!(answer, Answer::untimed(vec![ip("10.9.9.9")]));
        assert_eq!(server.count("pinned.example"), 0);
        // The hosts file has no address of the family: DNS is asked.
        let answer = client
            .resolve("v4pinned.example", LookupFamily::V6Only)
            .unwrap();
        assert_eq!(answer.addresses, [ip("fd00::9")]);
        // An IP literal answers itself.
        let answer = client.resolve("10.1.2.3", LookupFamily::V4Only).unwrap();
        assert_eq!(answer, Answer::untimed(vec![ip("10.1.2.3")]));
        assert_eq!(server.seen().len(), 1);
    }

    #[test]
    fn search_domains_and_ndots() {
        let server = TestServer::start(&[
            ("api.corp.example", Reply::Records(vec![ip("10.0.0.3")], 10)),
            ("db.svc", Reply::Records(vec![ip("10.0.0.4")], 10)),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let resolv = "nameserver 127.0.0.1\nsearch other.example corp.example\n\
                      options ndots:1 timeout:1 attempts:1\n";
        let client = client(dir.path(), &server, resolv, "");
        // No dot (< ndots): the search domains first, in order.
        let answer = client.resolve("api", LookupFamily::V4Only).unwrap();
        assert_eq!(answer.addresses, [ip("10.0.0.3")]);
        let asked: Vec<String> = server.seen().into_iter().map(|s| s.name).collect();
        assert_eq!(asked, ["api.other.example", "api.corp.example"]);
        // One dot (>= ndots): as-is first.
        let answer = client.resolve("db.svc", LookupFamily::V4Only).unwrap();
        assert_eq!(answer.addresses, [ip("10.0.0.4")]);
        assert_eq!(server.seen().last().unwrap().name, "db.svc");
        assert_eq!(server.count("db.svc.other.example"), 0);
        // A trailing dot: only as-is.
        assert!(client.resolve("api.", LookupFamily::V4Only).is_err());
        assert_eq!(server.count("api"), 1);
    }

    #[test]
    fn without_a_nameserver_line_the_local_host_is_asked() {
        let server =
            TestServer::start(&[("local.example", Reply::Records(vec![ip("10.0.0.5")], 7))]);
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path(), &server, "options timeout:1 attempts:1\n", "");
        let answer = client
            .resolve("local.example", LookupFamily::V4Only)
            .unwrap();
        assert_eq!(answer.addresses, [ip("10.0.0.5")]);
    }

    #[test]
    fn a_ttl_with_its_top_bit_set_means_zero() {
        let server = TestServer::start(&[(
            "odd.example",
            Reply::Records(vec![ip("10.0.0.6")], 0x8000_0000),
        )]);
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path(), &server, LOCAL, "");
        let answer = client.resolve("odd.example", LookupFamily::V4Only).unwrap();
        assert_eq!(answer.ttl, Some(Duration::ZERO));
    }
}
