//! A real HTTP/1.1 upstream for the proxy tests: std sockets, a thread per connection.
//!
//! It echoes the request body back and reports every request head it saw on a channel,
//! so a test can check exactly what ringway forwarded. Request headers steer it:
//! `x-respond-chunked: 1` (chunked response), `x-delay-ms: N` (answer late),
//! `x-close-after: 1` (close the connection after answering, without saying so, as an
//! origin's idle timeout does), `x-malformed: 1` (an invalid status line),
//! `x-respond-header: name: value` (that field in the response, content-length responses),
//! `x-respond-status: N` (that status instead of 200, content-length responses).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::net::{UnixListener, UnixStream},
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc,
    },
    time::Duration,
};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: String,
    pub body: Vec<u8>,
}

impl Seen {
    /// The request line as the upstream received it.
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub unix: Option<PathBuf>,
    pub seen: mpsc::Receiver<Seen>,
    pub connections: Arc<AtomicUsize>,
    _dir: Option<tempfile::TempDir>,
}

/// Serves every connection `incoming` yields on a thread of its own.
fn accept_all<S, I>(
    incoming: I,
    clone: fn(&S) -> std::io::Result<S>,
) -> (mpsc::Receiver<Seen>, Arc<AtomicUsize>)
where
    S: Read + Write + Send + 'static,
    I: Iterator<Item = std::io::Result<S>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    std::thread::spawn(move || {
        for stream in incoming {
            let Ok(stream) = stream else { return };
            let Ok(reader) = clone(&stream) else { continue };
            count.fetch_add(1, Ordering::Relaxed);
            let tx = tx.clone();
            std::thread::spawn(move || serve(BufReader::new(reader), stream, tx));
        }
    });
    (rx, connections)
}

impl Upstream {
    /// Starts on 127.0.0.1 (or `[::1]` when `v6`).
    pub fn start(v6: bool) -> Upstream {
        let bind = if v6 { "[::1]:0" } else { "127.0.0.1:0" };
        let listener = TcpListener::bind(bind).expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let incoming = std::iter::from_fn(move || Some(listener.accept().map(|(s, _)| s)));
        let (seen, connections) = accept_all(incoming, TcpStream::try_clone);
        Upstream {
            addr,
            unix: None,
            seen,
            connections,
            _dir: None,
        }
    }

    /// Starts on `addr` (an `ip:port`), or returns the bind error.
    pub fn start_at(addr: &str) -> std::io::Result<Upstream> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let incoming = std::iter::from_fn(move || Some(listener.accept().map(|(s, _)| s)));
        let (seen, connections) = accept_all(incoming, TcpStream::try_clone);
        Ok(Upstream {
            addr,
            unix: None,
            seen,
            connections,
            _dir: None,
        })
    }

    /// Starts on a Unix socket in a temporary directory.
    pub fn start_unix() -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream.sock");
        let listener = UnixListener::bind(&path).expect("bind unix upstream");
        let incoming = std::iter::from_fn(move || Some(listener.accept().map(|(s, _)| s)));
        let (seen, connections) = accept_all(incoming, UnixStream::try_clone);
        Upstream {
            addr: "127.0.0.1:1".parse().unwrap(),
            unix: Some(path),
            seen,
            connections,
            _dir: Some(dir),
        }
    }

    /// The endpoint as written in ringway's config.
    pub fn endpoint(&self) -> String {
        match &self.unix {
            Some(path) => format!("unix:{}", path.display()),
            None => self.addr.to_string(),
        }
    }

    /// The next request head the upstream saw.
    pub fn next_seen(&self) -> Seen {
        self.seen
            .recv_timeout(Duration::from_secs(10))
            .expect("the upstream saw no request")
    }
}

fn serve<R: Read, W: Write>(mut reader: BufReader<R>, mut writer: W, tx: mpsc::Sender<Seen>) {
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let seen_header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let mut body = Vec::new();
        if let Some(len) = seen_header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(len, 0);
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        } else if seen_header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                if reader.read_line(&mut size).is_err() {
                    return;
                }
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .unwrap_or(0);
                if n == 0 {
                    // Trailers, then the blank line.
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty()
                        {
                            break;
                        }
                    }
                    break;
                }
                let mut chunk = vec![0; n + 2];
                if reader.read_exact(&mut chunk).is_err() {
                    return;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        let chunked = seen_header("x-respond-chunked").is_some();
        let delay = seen_header("x-delay-ms").and_then(|v| v.parse().ok());
        let close_after = seen_header("x-close-after").is_some();
        let malformed = seen_header("x-malformed").is_some();
        let extra = seen_header("x-respond-header")
            .map(|line| format!("{line}\r\n"))
            .unwrap_or_default();
        let status = seen_header("x-respond-status").unwrap_or_else(|| "200".into());
        let head_request = head.starts_with("HEAD ");
        let _ = tx.send(Seen {
            head: head.clone(),
            body: body.clone(),
        });
        if let Some(ms) = delay {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let mut out = Vec::new();
        if malformed {
            out.extend_from_slice(b"HTTP/1.1 abc\r\n\r\n");
        } else if chunked {
            out.extend_from_slice(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-upstream: echo\r\n\r\n",
            );
            if !head_request {
                for piece in body.chunks(7000) {
                    out.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\nx-trailer: yes\r\n\r\n");
            }
        } else {
            out.extend_from_slice(
                format!("HTTP/1.1 {status} OK\r\ncontent-length: {}\r\nx-upstream: echo\r\nkeep-alive: timeout=30\r\n{extra}\r\n", body.len())
                    .as_bytes(),
            );
            if !head_request {
                out.extend_from_slice(&body);
            }
        }
        if writer.write_all(&out).is_err() || close_after || malformed {
            return;
        }
    }
}
