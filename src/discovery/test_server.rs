//! A tiny DNS server for the tests of `ttl` and `schedule`: UDP and TCP on one port of
//! 127.0.0.1, answering from a table the test may change, counting the queries.
//!
//! Answers are built with hickory-proto, the codec the client uses, but by a separate
//! path (records from the table), so a test checks what went over the wire.

use std::{
    cell::RefCell,
    collections::HashMap,
    io::{Read, Write},
    net::{IpAddr, TcpListener, TcpStream, UdpSocket},
    thread::JoinHandle,
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{
        rdata::{A, AAAA, CNAME},
        Name, RData, Record, RecordType,
    },
};

/// How the server answers a name.
#[derive(Debug, Clone)]
pub enum Reply {
    /// These addresses (those of the asked type), each with this TTL.
    Records(Vec<IpAddr>, u32),
    /// A CNAME to another name of the table (whose records follow it), with this TTL.
    Alias(&'static str, u32),
    /// Over UDP: an empty answer with the truncated bit; over TCP: the records.
    Truncated(Vec<IpAddr>, u32),
    NxDomain,
    ServFail,
    /// No answer at all.
    Silent,
}

/// One query the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub rtype: RecordType,
    pub tcp: bool,
}

/// Each server thread owns its copy of the table; the test changes it by message (and
/// the threads end when these senders are dropped).
type Table = HashMap<String, Reply>;

pub struct TestServer {
    pub port: u16,
    changes: Vec<flume::Sender<(String, Reply)>>,
    seen_rx: flume::Receiver<Seen>,
    seen: RefCell<Vec<Seen>>,
    threads: Vec<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server answering from `entries` (names without the trailing dot).
    pub fn start(entries: &[(&str, Reply)]) -> TestServer {
        let (udp, tcp) = bind();
        let port = udp.local_addr().unwrap().port();
        let table: Table = entries
            .iter()
            .map(|(name, reply)| (name.to_ascii_lowercase(), reply.clone()))
            .collect();
        let (seen_tx, seen_rx) = flume::unbounded();
        let (udp_tx, udp_changes) = flume::unbounded();
        let (tcp_tx, tcp_changes) = flume::unbounded();
        let threads = vec![
            {
                let (mut table, seen) = (table.clone(), seen_tx.clone());
                std::thread::spawn(move || serve_udp(&udp, &mut table, &udp_changes, &seen))
            },
            {
                let mut table = table;
                std::thread::spawn(move || serve_tcp(&tcp, &mut table, &tcp_changes, &seen_tx))
            },
        ];
        TestServer {
            port,
            changes: vec![udp_tx, tcp_tx],
            seen_rx,
            seen: RefCell::new(Vec::new()),
            threads,
        }
    }

    /// Answers `name` with `reply` from now on.
    pub fn set(&self, name: &str, reply: Reply) {
        for changes in &self.changes {
            changes
                .send((name.to_ascii_lowercase(), reply.clone()))
                .unwrap();
        }
    }

    /// The queries seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        let mut seen = self.seen.borrow_mut();
        seen.extend(self.seen_rx.try_iter());
        seen.clone()
    }

    /// How many queries for `name` were seen.
    pub fn count(&self, name: &str) -> usize {
        self.seen().iter().filter(|s| s.name == name).count()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.changes.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A UDP and a TCP socket on the same free port of 127.0.0.1.
fn bind() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            udp.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            tcp.set_nonblocking(true).unwrap();
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// Applies the test's changes; false once the test dropped the server.
fn update(table: &mut Table, changes: &flume::Receiver<(String, Reply)>) -> bool {
    loop {
        match changes.try_recv() {
            Ok((name, reply)) => {
                table.insert(name, reply);
            }
            Err(flume::TryRecvError::Empty) => return true,
            Err(flume::TryRecvError::Disconnected) => return false,
        }
    }
}

fn serve_udp(
    socket: &UdpSocket,
    table: &mut Table,
    changes: &flume::Receiver<(String, Reply)>,
    seen: &flume::Sender<Seen>,
) {
    let mut buf = [0; 4096];
    while update(table, changes) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        update(table, changes);
        if let Some(answer) = respond(&buf[..len], table, seen, false) {
            let _ = socket.send_to(&answer, from);
        }
    }
}

fn serve_tcp(
    listener: &TcpListener,
    table: &mut Table,
    changes: &flume::Receiver<(String, Reply)>,
    seen: &flume::Sender<Seen>,
) {
    while update(table, changes) {
        match listener.accept() {
            Ok((stream, _)) => serve_stream(stream, table, seen),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn serve_stream(mut stream: TcpStream, table: &Table, seen: &flume::Sender<Seen>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut prefix = [0; 2];
    if stream.read_exact(&mut prefix).is_err() {
        return;
    }
    let mut query = vec![0; usize::from(u16::from_be_bytes(prefix))];
    if stream.read_exact(&mut query).is_err() {
        return;
    }
    if let Some(answer) = respond(&query, table, seen, true) {
        let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&answer);
        let _ = stream.write_all(&framed);
    }
}

/// The answer to `query`, or `None` to stay silent.
fn respond(query: &[u8], table: &Table, seen: &flume::Sender<Seen>, tcp: bool) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries().first()?.clone();
    let name = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let _ = seen.send(Seen {
        name: name.clone(),
        rtype: question.query_type(),
        tcp,
    });
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(true)
        .set_recursion_available(true)
        .add_query(question.clone());
    let rtype = question.query_type();
    let mut owner = question.name().clone();
    let mut reply = table.get(&name).cloned();
    // Follow aliases through the table, adding each CNAME.
    for _ in 0..8 {
        let Some(Reply::Alias(target, ttl)) = reply else {
            break;
        };
        let target_name = Name::from_ascii(format!("{target}.")).unwrap();
        response.add_answer(Record::from_rdata(
            owner.clone(),
            ttl,
            RData::CNAME(CNAME(target_name.clone())),
        ));
        owner = target_name;
        reply = table.get(target).cloned();
    }
    match reply {
        None | Some(Reply::NxDomain) => {
            response.set_response_code(ResponseCode::NXDomain);
        }
        Some(Reply::ServFail) => {
            response.set_response_code(ResponseCode::ServFail);
        }
        Some(Reply::Silent) => return None,
        Some(Reply::Truncated(_, _)) if !tcp => {
            response.set_truncated(true);
        }
        Some(Reply::Records(ips, ttl) | Reply::Truncated(ips, ttl)) => {
            for ip in ips {
                let data = match (ip, rtype) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                    _ => continue,
                };
                response.add_answer(Record::from_rdata(owner.clone(), ttl, data));
            }
        }
        Some(Reply::Alias(..)) => {
            response.set_response_code(ResponseCode::ServFail);
        }
    }
    response.to_vec().ok()
}
