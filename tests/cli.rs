//! The command line: validation, start failures, and shutdown by signal.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn validate_accepts_a_good_config() {
    let config = write_config(&direct_config(free_port(), free_port()));
    let out = run_ringway(&["--mode", "validate"], &config.path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("OK"));
}

#[test]
fn validate_names_file_line_and_field_of_an_unknown_cluster() {
    let yaml = direct_config(8080, 9901).replace("cluster: orders", "cluster: orderz");
    let config = write_config(&yaml);
    let out = run_ringway(&["--mode", "validate"], &config.path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:10:18: listeners[0].routes[1].cluster: unknown cluster \"orderz\"",
        config.path.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in {stderr}"
    );
    assert!(stderr.contains("did you mean"), "{stderr}");
}

#[test]
fn validate_rejects_unknown_keys_with_a_suggestion() {
    let yaml =
        direct_config(8080, 9901).replace("    address:", "    adress_typo: 1\n    address:");
    let config = write_config(&yaml);
    let out = run_ringway(&["--mode", "validate"], &config.path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(":5:5: listeners[0]"), "{stderr}");
    assert!(stderr.contains("adress_typo"), "{stderr}");
}

#[test]
fn a_second_instance_on_the_same_port_fails_with_address_in_use() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let _first = Ringway::start(&direct_config(port, admin), admin, &["--driver", driver]);
        let config = write_config(&direct_config(port, free_port()));
        let started = Instant::now();
        let out = run_ringway(&["--driver", driver], &config.path);
        assert_eq!(out.status.code(), Some(1), "{driver}");
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(
            stderr.contains("address already in use"),
            "{driver}: {stderr}"
        );
        assert!(stderr.contains("listener public"), "{driver}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn sigterm_drains_and_exits_zero() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let rw = Ringway::start(&direct_config(port, admin), admin, &["--driver", driver]);
        // An idle keep-alive connection must not hold the exit back.
        let idle = connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        let started = Instant::now();
        let status = rw.terminate();
        assert!(status.success(), "{driver}: {status}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{driver}: drain took {:?}",
            started.elapsed()
        );
        drop(idle);
    }
}

#[test]
fn a_missing_config_file_is_reported() {
    let out = run_ringway(
        &["--mode", "validate"],
        std::path::Path::new("/nonexistent/ringway.yaml"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ringway.yaml"));
}

/// `(soft, hard)` "Max open files" of a process, from /proc (`unlimited` as `u64::MAX`).
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut values = line["Max open files".len()..]
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(u64::MAX));
    (values.next().unwrap(), values.next().unwrap())
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        // A shell lowers the soft limit (as a default systemd or login session has it),
        // then becomes ringway.
        let rw = Ringway::start_with_ulimit(
            &direct_config(port, admin),
            admin,
            &["--driver", driver],
            "-Sn 256",
        );
        let (soft, hard) = open_file_limits(rw.pid());
        assert!(rw.terminate().success(), "{driver}");
        assert!(hard > 256, "{driver}: the hard limit here is {hard}");
        assert_eq!(
            soft,
            hard.min(nr_open),
            "{driver}: soft {soft}, hard {hard}"
        );
    }
}

/// User + system CPU ticks a process has used, from /proc.
fn cpu_ticks(pid: u32) -> u64 {
    ticks_in(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap())
}

/// User + system CPU ticks from a `stat` line of /proc.
fn ticks_in(stat: &str) -> u64 {
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Each thread's name (with its id) and CPU ticks, to say which one spun.
fn thread_ticks(pid: u32) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?;
            let id = task.file_name().to_string_lossy().into_owned();
            Some((format!("{name}/{id}"), ticks_in(&stat)))
        })
        .collect()
}

#[test]
fn out_of_file_descriptors_the_listener_backs_off_and_recovers() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let hot_restart = dir.path().join("hot-restart.sock");
        // A hard limit of 64 descriptors: the runtime, listeners and logs take some,
        // the clients below take the rest and more wait in the backlog.
        let rw = Ringway::start_with_ulimit(
            &direct_config(port, admin),
            admin,
            &[
                "--driver",
                driver,
                "--log-level",
                "error",
                "--hot-restart-socket",
                hot_restart.to_str().unwrap(),
            ],
            "-n 64",
        );
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let held: Vec<_> = (0..100).map(|_| connect(addr).unwrap()).collect();
        // Every accept loop has something waiting: the workers' listeners, the admin
        // listener (the control thread) and the hot-restart socket (its own thread).
        let _admin_waiting = connect(rw.admin).unwrap();
        let _hot_restart_waiting = std::os::unix::net::UnixStream::connect(&hot_restart).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // Out of descriptors with connections still queued: backing off, not spinning
        // (a busy loop would burn the 100 ticks of a second).
        let before = cpu_ticks(rw.pid());
        let threads_before = thread_ticks(rw.pid());
        std::thread::sleep(Duration::from_millis(1000));
        let spent = cpu_ticks(rw.pid()) - before;
        let by_thread: Vec<String> = thread_ticks(rw.pid())
            .into_iter()
            .map(|(name, ticks)| {
                let earlier = threads_before.iter().find(|(n, _)| *n == name);
                format!("{name} {}", ticks - earlier.map_or(0, |(_, t)| *t))
            })
            .collect();
        assert!(
            spent < 30,
            "{driver}: {spent} CPU ticks in 1 s while out of descriptors (by thread: {by_thread:?})"
        );
        drop(held);
        // Descriptors free again: new connections are served.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match get(addr, "/healthz") {
                Ok(r) if r.status == 200 => break,
                _ => {
                    assert!(Instant::now() < deadline, "{driver}: not serving again");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        assert!(rw.terminate().success(), "{driver}");
    }
}
