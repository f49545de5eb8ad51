//! Memory comes back after a burst of connections (ARCHITECTURE.md, "Memory").
//!
//! The real binary, both drivers: its anonymous resident memory (`RssAnon`: the heap,
//! not the binary's text) at idle, then after 1,000 connections opened at once and
//! closed, once the worker sweeps have given memory back. Before connections had their
//! own allocator heap, each worker's long-lived objects shared 64 KiB pages with the
//! burst's and kept them resident: +330-380 KiB after this burst (6 runs, both
//! drivers); now +100-160 KiB.

mod common;

use std::{
    io::{BufReader, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use common::{connect, direct_config, drivers, free_port, read_response, Ringway};

/// The burst: connections open at the same time.
const BURST: usize = 1000;

/// What a burst may leave behind.
const ALLOWED_GROWTH_KIB: u64 = 240;

fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/PID/status")
}

/// One request on a connection that stays open.
fn open_and_request(addr: SocketAddr) -> TcpStream {
    let mut conn = connect(addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    conn
}

/// The lowest `RssAnon` seen once the sweeps have run (they collect once a second; the
/// first quiet one returns everything free), waiting until two readings a second apart
/// agree.
fn settled_rss_anon_kib(pid: u32) -> u64 {
    std::thread::sleep(Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(14);
    let mut last = rss_anon_kib(pid);
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let now = rss_anon_kib(pid);
        if now == last || Instant::now() > deadline {
            return now.min(last);
        }
        last = now;
    }
}

/// One attempt: a fresh ringway, idle, burst, after; returns (idle, peak, after) in KiB.
fn burst_once(driver: &str) -> (u64, u64, u64) {
    let (port, admin) = (free_port(), free_port());
    // ringway raises its own soft open-file limit to the hard limit at start.
    let rw = Ringway::start(&direct_config(port, admin), admin, &["--driver", driver]);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Warm up both workers the way the burst will use them, then settle.
    drop((0..8).map(|_| open_and_request(addr)).collect::<Vec<_>>());
    let idle = settled_rss_anon_kib(rw.pid());
    let burst: Vec<TcpStream> = (0..BURST).map(|_| open_and_request(addr)).collect();
    let peak = rss_anon_kib(rw.pid());
    drop(burst);
    let after = settled_rss_anon_kib(rw.pid());
    eprintln!(
        "{driver}: RssAnon idle {idle} KiB, with {BURST} connections {peak} KiB, after {after} KiB"
    );
    (idle, peak, after)
}

#[test]
fn memory_comes_back_after_a_burst_of_connections() {
    // 1,000 client sockets here and 1,000 in ringway: above a default soft limit of 1,024.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((_, hard)) if hard < 4096 => {
            eprintln!("SKIP memory after a burst: the open-file hard limit ({hard}) is below the 4,096 this test needs");
            return;
        }
        Ok((soft, hard)) if soft < 4096 => {
            setrlimit(Resource::RLIMIT_NOFILE, 4096, hard).expect("raising the soft limit");
        }
        _ => {}
    }
    for driver in drivers() {
        // Up to three attempts: about one run in eight keeps a few hundred KiB more, when
        // an object that outlives the burst (a grown slab page of monoio's) lands in one
        // of the burst's pages; the shared heap keeps +330-380 KiB in every run.
        let mut attempts = Vec::new();
        for _ in 0..3 {
            let (idle, peak, after) = burst_once(driver);
            assert!(
                peak > idle + 2000,
                "{driver}: the burst did not grow the heap (idle {idle} KiB, peak {peak} KiB)"
            );
            attempts.push(after.saturating_sub(idle));
            if after <= idle + ALLOWED_GROWTH_KIB {
                break;
            }
        }
        assert!(
            attempts.iter().any(|&kept| kept <= ALLOWED_GROWTH_KIB),
            "{driver}: KiB kept after each burst: {attempts:?} (allowed {ALLOWED_GROWTH_KIB})"
        );
    }
}
