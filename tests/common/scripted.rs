//! An upstream whose answers a test writes by hand: for what the echo upstream cannot
//! do (interim responses, answering before the body, going silent).
//!
//! Each connection runs on a thread of its own: the script is called with the request
//! head as received (through the blank line) and the connection, and does what it
//! likes with both; whatever body the request has is the script's to read or ignore.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

/// What a script gets for each request.
pub struct Exchange<'a> {
    pub head: String,
    pub reader: &'a mut BufReader<TcpStream>,
    pub writer: &'a mut TcpStream,
}

impl Exchange<'_> {
    /// Writes raw bytes to ringway, ignoring errors (it may have closed already).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.writer.write_all(bytes);
        let _ = self.writer.flush();
    }
}

/// Whether the script wants the next request on the same connection.
#[derive(PartialEq, Eq)]
pub enum Then {
    Next,
    Close,
}

pub struct Scripted {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Connections whose thread has ended (ringway closed or the script said Close).
    pub closed: Arc<AtomicUsize>,
}

impl Scripted {
    pub fn start<F>(script: F) -> Scripted
    where
        F: Fn(&mut Exchange<'_>) -> Then + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind scripted upstream");
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(script);
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (opened, ended) = (Arc::clone(&connections), Arc::clone(&closed));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut writer) = stream else { return };
                opened.fetch_add(1, Ordering::SeqCst);
                let script = Arc::clone(&script);
                let ended = Arc::clone(&ended);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(writer.try_clone().unwrap());
                    loop {
                        let mut head = String::new();
                        loop {
                            let mut line = String::new();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => {
                                    ended.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                                Ok(_) => {}
                            }
                            head.push_str(&line);
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut exchange = Exchange {
                            head,
                            reader: &mut reader,
                            writer: &mut writer,
                        };
                        if script(&mut exchange) == Then::Close {
                            ended.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                });
            }
        });
        Scripted {
            addr,
            connections,
            closed,
        }
    }
}
