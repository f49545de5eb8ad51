//! Installing the peers `compare` measures against: Debian's `nginx` and `haproxy`
//! packages, with apt-get, when they are missing, so one command reproduces every figure
//! on a fresh machine.
//!
//! Only as root (apt-get needs it; nothing here calls sudo), only where apt-get exists,
//! only for a peer whose binary is the default name (a `--nginx PATH` that is missing is
//! the user's path, not a package), and not with `--no-install`. Every step is printed;
//! a failed install leaves the peer missing, and `compare` then skips it with its reason.

use std::path::Path;
use std::process::{Command, Stdio};

use super::targets::{self, Setup, Target};

/// What to do about the missing peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is missing.
    Nothing,
    /// Install these packages.
    Install(Vec<&'static str>),
    /// Leave them missing, for this reason.
    Skip(String),
}

/// The decision for the `missing` packages: `allowed` is false with `--no-install`.
pub fn decide(missing: &[&'static str], allowed: bool, root: bool, apt: bool) -> Decision {
    if missing.is_empty() {
        Decision::Nothing
    } else if !allowed {
        Decision::Skip("--no-install".into())
    } else if !root {
        Decision::Skip("not running as root (install them, or run compare as root)".into())
    } else if !apt {
        Decision::Skip("apt-get is not available".into())
    } else {
        Decision::Install(missing.to_vec())
    }
}

/// Whether this process runs with effective user id 0 (from /proc, no `unsafe`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Runs one apt-get step, printing it; its output is shown only when it fails.
fn apt_get(args: &[&str]) -> Result<(), String> {
    eprintln!("compare:   apt-get {}", args.join(" "));
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("apt-get: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(8).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "apt-get {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        tail.join("\n")
    ))
}

/// Installs the missing peers among `wanted` when allowed and possible; prints what it
/// does and why it does not.
pub fn install_missing(wanted: &[Target], setup: &Setup, allowed: bool) {
    let mut missing = Vec::new();
    for (target, program, package) in [
        (Target::Nginx, &setup.nginx, "nginx"),
        (Target::Haproxy, &setup.haproxy, "haproxy"),
    ] {
        let wanted_here = wanted.contains(&target)
            || (target == Target::Haproxy && wanted.contains(&Target::HaproxyTcp));
        if wanted_here
            && program.as_os_str() == package
            && targets::unavailable(target, setup).is_some()
        {
            missing.push(package);
        }
    }
    match decide(
        &missing,
        allowed,
        is_root(),
        targets::works(Path::new("apt-get"), "--version"),
    ) {
        Decision::Nothing => {}
        Decision::Skip(why) => eprintln!(
            "compare: {} not installed; not installing: {why}",
            missing.join(" and ")
        ),
        Decision::Install(packages) => {
            eprintln!(
                "compare: {} missing: installing with apt-get (--no-install to skip)",
                packages.join(" and ")
            );
            let mut install = vec!["install", "-y"];
            install.extend(&packages);
            let result = apt_get(&["update"]).and_then(|()| apt_get(&install));
            match result {
                Ok(()) => eprintln!("compare:   installed {}", packages.join(" and ")),
                Err(e) => eprintln!("compare:   {e}\ncompare:   the missing peers are skipped"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_only_as_root_with_apt_and_when_allowed() {
        assert_eq!(decide(&[], true, true, true), Decision::Nothing);
        assert_eq!(
            decide(&["nginx", "haproxy"], true, true, true),
            Decision::Install(vec!["nginx", "haproxy"])
        );
        for (allowed, root, apt, why) in [
            (false, true, true, "--no-install"),
            (true, false, true, "root"),
            (true, true, false, "apt-get"),
        ] {
            match decide(&["haproxy"], allowed, root, apt) {
                Decision::Skip(reason) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
        // This test runs as whoever runs it; the answer is a plain boolean either way.
        let _ = is_root();
    }
}
