//! Reloads when a certificate, key, CA or CRL file of the serving config changes, or a
//! JWKS file or API-key consumers file (their new content is checked the same way: a
//! file that does not parse fails the reload and the old keys keep working).
//!
//! A thread of its own polls the files once a second: their metadata after following
//! symlinks (device, inode, size, modification time), so an in-place write, an atomic
//! rename and Kubernetes' secret volumes (which swap a `..data` symlink to a new
//! directory) are all seen. A change waits a moment for the writer to finish (a
//! certificate and its key are two files), then asks the control loop for a reload, the
//! same one SIGHUP runs: new material is used only if it parses and each key matches its
//! certificate; otherwise the reload fails, the old certificates keep serving, and the
//! log says why. Open connections are not touched either way.

use std::path::PathBuf;
use std::time::Duration;

use tracing::{info, warn};

use super::AdminRequest;

/// How often the files are looked at.
const POLL: Duration = Duration::from_secs(1);
/// How long a change settles before the reload (both halves of a pair written).
const SETTLE: Duration = Duration::from_millis(200);

/// The files of `config` to watch.
pub(super) fn files(config: &crate::config::Config) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for tls in config.listeners.iter().filter_map(|l| l.tls.as_ref()) {
        for material in &tls.certificates {
            out.extend(material.files().map(PathBuf::from));
        }
        if let Some(auth) = &tls.client_auth {
            out.extend(auth.validation.files().map(PathBuf::from));
        }
    }
    for tls in config.clusters.iter().filter_map(|c| c.tls.as_ref()) {
        if let Some(material) = &tls.certificate {
            out.extend(material.files().map(PathBuf::from));
        }
        if let Some(v) = &tls.validation {
            out.extend(v.files().map(PathBuf::from));
        }
    }
    for provider in &config.auth.jwt_providers {
        if let crate::config::auth::JwksSource::File { path, .. } = &provider.jwks {
            out.push(path.clone());
        }
    }
    if let Some((path, _)) = config.auth.api_keys.as_ref().and_then(|k| k.file.as_ref()) {
        out.push(path.clone());
    }
    out.sort();
    out.dedup();
    out
}

/// What identifies a file's content without reading it.
type Signature = Option<(u64, u64, u64, i64, i64)>;

fn signature(path: &std::path::Path) -> Signature {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Starts the watcher on `files`; later lists come on `updates` (after each reload).
pub(super) fn spawn(
    files: Vec<PathBuf>,
    updates: flume::Receiver<Vec<PathBuf>>,
    requests: flume::Sender<AdminRequest>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ringway-cert-watch".into())
        .spawn(move || run(files, &updates, &requests))
        .map(drop)
}

fn run(
    mut files: Vec<PathBuf>,
    updates: &flume::Receiver<Vec<PathBuf>>,
    requests: &flume::Sender<AdminRequest>,
) {
    let mut seen: Vec<Signature> = files.iter().map(|f| signature(f)).collect();
    loop {
        match updates.recv_timeout(POLL) {
            Ok(next) => {
                seen = next.iter().map(|f| signature(f)).collect();
                files = next;
                continue;
            }
            Err(flume::RecvTimeoutError::Disconnected) => return,
            Err(flume::RecvTimeoutError::Timeout) => {}
        }
        let now: Vec<Signature> = files.iter().map(|f| signature(f)).collect();
        if now == seen {
            continue;
        }
        std::thread::sleep(SETTLE);
        seen = files.iter().map(|f| signature(f)).collect();
        let changed: Vec<_> = files.iter().map(|f| f.display().to_string()).collect();
        let (tx, rx) = flume::bounded(1);
        if requests.send(AdminRequest::Reload(tx)).is_err() {
            return;
        }
        match rx.recv() {
            Ok(Ok(version)) => info!(
                files = changed.join(", "),
                version, "certificate files changed: reloaded"
            ),
            Ok(Err(e)) => warn!(
                files = changed.join(", "),
                "certificate files changed, but the reload was refused; the old certificates \
                 keep serving: {e}"
            ),
            Err(_) => return,
        }
    }
}
