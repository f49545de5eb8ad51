//! `ringway-load compare --quick` end to end: the upstream, the direct path, ringway on
//! both drivers, nginx and HAProxy when installed; tables printed, JSON per run, the page.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The ringway binary of this build, built first if the workspace has not built it yet
/// (this crate's tests do not build the proxy's binary on their own).
fn ringway_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_ringway-load"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = dir.join("ringway");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = dir.ends_with("release");
        let mut c = Command::new(cargo);
        c.args(["build", "-p", "ringway", "--bin", "ringway"]);
        if release {
            c.arg("--release");
        }
        assert!(c.status().unwrap().success(), "cannot build ringway");
    }
    bin
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn quick_compare_measures_every_target_in_three_regimes() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_ringway-load"))
        .args(["compare", "--quick", "--warmup", "100ms", "--ringway"])
        .arg(ringway_binary())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let mut expected = vec!["direct", "ringway", "ringway-epoll"];
    for proxy in ["nginx", "haproxy"] {
        if installed(proxy) {
            expected.push(proxy);
        } else {
            assert!(stderr.contains(&format!("skipping {proxy}")), "{stderr}");
        }
    }
    for heading in [
        "### 1. Saturated cost",
        "proxy CPU µs/request",
        "### 2. Hop cost at a fixed rate",
        "hop cost µs/request (− direct)",
        "### 3. Added latency",
        "added p99.9",
    ] {
        assert!(stdout.contains(heading), "no {heading:?} in\n{stdout}");
    }
    for target in &expected {
        // One row per regime.
        let rows = stdout.matches(&format!("| {target} |")).count();
        assert_eq!(rows, 3, "{target}: {rows} rows in\n{stdout}\n{stderr}");
        assert!(
            !stderr.contains(&format!("{target} #0: skipped")),
            "{stderr}"
        );
    }
    // Every run's JSON reads back; every target is on the page's plots.
    let runs: Vec<_> = std::fs::read_dir(out.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 3 * expected.len(), "{runs:?}");
    for run in &runs {
        let r = ringway_load::output::fortio::from_json(&std::fs::read_to_string(run).unwrap())
            .unwrap();
        assert!(r.ringway_load.completed > 0, "{}", run.display());
    }
    let page = std::fs::read_to_string(out.path().join("compare.html")).unwrap();
    assert_eq!(page.matches("<svg").count(), 3);
    for target in &expected {
        assert!(
            page.contains(&format!(">{target}<")),
            "{target} not on the plot"
        );
    }
    let svg = std::fs::read_to_string(out.path().join("latency.svg")).unwrap();
    assert!(svg.contains(">ringway-epoll<") && svg.contains(">99.9%<"));
    assert!(std::fs::read_to_string(out.path().join("summary.md"))
        .unwrap()
        .contains("| direct |"));
}
