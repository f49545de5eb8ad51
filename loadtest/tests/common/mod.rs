//! Shared helpers: an in-process `serve` and run parameters for it.
#![allow(dead_code)]

use std::time::Duration;

use ringway_load::http::Url;
use ringway_load::run::{Pin, RunParams};
use ringway_load::serve::{start, ServeOptions};

/// Starts `serve` on a free loopback port with one worker; `adjust` changes options.
pub fn serve(adjust: impl FnOnce(&mut ServeOptions)) -> Url {
    let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    adjust(&mut opts);
    let server = start(opts).expect("serve starts");
    Url::parse(&format!("http://{}/", server.addr)).unwrap()
}

/// A quiet single-thread run against `url`.
pub fn params(url: Url, connections: usize, duration: Duration) -> RunParams {
    let mut p = RunParams::new(vec![url]);
    p.connections = connections;
    p.threads = 1;
    p.duration = duration;
    p.pin = Pin::Off;
    p
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1e3
}
