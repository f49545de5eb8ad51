//! The listening sockets the control thread keeps a copy of, one group per address.
//!
//! Workers accept on their own descriptors; the control thread keeps one more descriptor
//! of every socket so that it can
//!
//! - hand them to a successor process (hot restart: the successor accepts from the very
//!   same sockets, so nothing queued is lost when this process closes its descriptors),
//! - keep a listener's sockets across a reload (same address: nothing is rebound, the
//!   group and its queued connections stay), and
//! - give a new worker set the right share: with `W` workers and `S` sockets in a group,
//!   worker `i` accepts on every socket `j` with `j % W == i` when `S >= W` (no socket
//!   is left without an acceptor, or connections hashed to it would wait forever), and
//!   `W - S` sockets are added to the group when `S < W`. A socket inherited without
//!   SO_REUSEPORT (systemd's default) cannot gain siblings: then workers share it, and so
//!   do they a Unix-socket listener's one socket.
//!
//! Before workers stop accepting for good (drain, shutdown) the control thread drops its
//! copies, so that each worker's close is the socket's real close, after that worker's
//! last accept pass.
//!
//! A Unix-socket listener's file is removed when its group closes for good (shutdown, a
//! reload without it, `/drain_listeners`) by the process that owns it: the one that bound
//! it, or a hot restart's successor, which takes ownership with the sockets (the old
//! process then leaves the file alone). A file passed by systemd belongs to its socket
//! unit and is never removed.

use std::{io, path::PathBuf};

use tracing::{info, warn};

use crate::{
    config::{Address, Listener},
    listen::{self, ListenSocket},
};

/// Listening sockets handed over by a predecessor or by systemd, by local address.
#[derive(Debug, Default)]
pub struct Inherited {
    pub listeners: Vec<(Address, ListenSocket)>,
    pub admin: Option<std::net::TcpListener>,
    /// From a hot restart's predecessor (which hands over its Unix socket files too), not
    /// from systemd.
    pub from_predecessor: bool,
    /// The predecessor's TLS session-ticket keys.
    pub ticket_keys: Option<crate::tls::ticket::TicketKeys>,
}

impl Inherited {
    fn take(&mut self, addr: &Address) -> Vec<ListenSocket> {
        let mut taken = Vec::new();
        let mut i = 0;
        while i < self.listeners.len() {
            if self.listeners[i].0 == *addr {
                taken.push(self.listeners.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        taken
    }

    /// Warns about inherited sockets no listener claimed (they are closed).
    pub fn finish(self) {
        for (addr, _) in self.listeners {
            warn!(%addr, "inherited socket matches no listener; closing it");
        }
    }
}

/// One listener's socket group.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    /// The configured address (a reload keeps the group when it is unchanged).
    pub address: Address,
    pub sockets: Vec<ListenSocket>,
    /// This process removes the Unix socket file when the group closes for good.
    pub owns_path: bool,
}

impl Group {
    /// Adopts inherited sockets for `listener`, or binds a new group (after checking that
    /// nothing listens there).
    pub fn open(
        listener: &Listener,
        workers: usize,
        inherited: &mut Inherited,
    ) -> Result<Group, String> {
        let err = |e: io::Error| format!("listener {} ({}): {e}", listener.name, listener.address);
        let mut sockets = inherited.take(&listener.address);
        let owns_path = sockets.is_empty() || inherited.from_predecessor;
        if sockets.is_empty() {
            sockets = listen::bind(&listener.address, workers).map_err(err)?;
        } else {
            info!(
                listener = listener.name,
                sockets = sockets.len(),
                "adopted inherited sockets"
            );
            if let (Address::Tcp(addr), true) = (&listener.address, sockets.len() < workers) {
                match listen::join_group(*addr, workers - sockets.len()) {
                    Ok(more) => sockets.extend(more.into_iter().map(ListenSocket::Tcp)),
                    Err(e) => info!(
                        listener = listener.name,
                        error = %e,
                        "inherited socket has no SO_REUSEPORT group to join; workers share it"
                    ),
                }
            }
        }
        Ok(Group {
            name: listener.name.clone(),
            address: listener.address.clone(),
            sockets,
            owns_path,
        })
    }

    /// The Unix socket file to remove when this group closes for good, if this process
    /// owns one.
    pub fn owned_path(&self) -> Option<PathBuf> {
        match &self.address {
            Address::Unix(path) if self.owns_path => Some(path.clone()),
            _ => None,
        }
    }

    /// Worker `worker`'s descriptors of this group (see the module note).
    pub fn for_worker(&self, worker: usize, workers: usize) -> io::Result<Vec<ListenSocket>> {
        let n = self.sockets.len();
        if n >= workers {
            (worker..n)
                .step_by(workers)
                .map(|j| self.sockets[j].try_clone())
                .collect()
        } else {
            Ok(vec![self.sockets[worker % n].try_clone()?])
        }
    }

    /// Every worker's descriptors, by worker, under this group's listener name.
    pub fn share(&self, workers: usize) -> io::Result<Vec<Vec<(String, ListenSocket)>>> {
        (0..workers)
            .map(|w| {
                Ok(self
                    .for_worker(w, workers)?
                    .into_iter()
                    .map(|s| (self.name.clone(), s))
                    .collect())
            })
            .collect()
    }
}

/// What a reload does to the socket groups.
#[derive(Debug)]
pub struct Plan {
    /// The groups of the new config, in its order.
    pub groups: Vec<Group>,
    /// Per worker: descriptors of groups that are new, or kept under a new name.
    pub sockets: Vec<Vec<(String, ListenSocket)>>,
}

/// Plans the groups for `listeners`: a group whose address is unchanged is kept (under
/// the new name if it was renamed); others are bound now, so a taken port fails the
/// reload before anything changes. `current` is not touched: on success the caller
/// replaces it with the plan's groups, which closes the groups left out.
pub fn plan(current: &[Group], listeners: &[Listener], workers: usize) -> Result<Plan, String> {
    let mut groups = Vec::with_capacity(listeners.len());
    let mut sockets: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
    for l in listeners {
        let group = match current.iter().find(|g| g.address == l.address) {
            Some(old) => {
                let copies = old
                    .sockets
                    .iter()
                    .map(ListenSocket::try_clone)
                    .collect::<io::Result<_>>()
                    .map_err(|e| format!("listener {}: {e}", l.name))?;
                let group = Group {
                    name: l.name.clone(),
                    address: l.address.clone(),
                    sockets: copies,
                    owns_path: old.owns_path,
                };
                if old.name != l.name {
                    share_into(&group, workers, &mut sockets, &l.name)?;
                }
                group
            }
            None => {
                let group = Group::open(l, workers, &mut Inherited::default())?;
                share_into(&group, workers, &mut sockets, &l.name)?;
                group
            }
        };
        groups.push(group);
    }
    Ok(Plan { groups, sockets })
}

/// Closes `groups` (the control thread's copies) and returns the socket files to remove
/// once the workers have closed theirs.
pub fn close(groups: Vec<Group>) -> Vec<PathBuf> {
    groups.iter().filter_map(Group::owned_path).collect()
}

/// Removes socket files returned by [`close`].
pub fn remove_files(paths: &[PathBuf]) {
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => info!(path = %path.display(), "removed the listener's socket file"),
            Err(e) => warn!(path = %path.display(), error = %e, "removing a socket file"),
        }
    }
}

fn share_into(
    group: &Group,
    workers: usize,
    sockets: &mut [Vec<(String, ListenSocket)>],
    name: &str,
) -> Result<(), String> {
    let shares = group
        .share(workers)
        .map_err(|e| format!("listener {name}: {e}"))?;
    for (w, share) in shares.into_iter().enumerate() {
        sockets[w].extend(share);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(n: usize) -> Group {
        Group {
            name: "l".into(),
            address: Address::Tcp("127.0.0.1:0".parse().unwrap()),
            sockets: listen::bind(&Address::Tcp("127.0.0.1:0".parse().unwrap()), n).unwrap(),
            owns_path: true,
        }
    }

    #[test]
    fn every_socket_has_an_acceptor_whatever_the_worker_count() {
        // More sockets than workers (a hot restart to fewer workers): spread, none left.
        let g = group(5);
        let counts: Vec<usize> = (0..2).map(|w| g.for_worker(w, 2).unwrap().len()).collect();
        assert_eq!(counts, [3, 2]);
        // Fewer sockets than workers (an inherited socket without a group): shared.
        let g = group(1);
        assert!((0..3).all(|w| g.for_worker(w, 3).unwrap().len() == 1));
    }

    #[test]
    fn a_reload_plan_keeps_a_group_at_the_same_address_and_binds_a_new_one() {
        let mut g = group(2);
        let addr = g.sockets[0].local_address().unwrap();
        g.address = addr.clone();
        let config = |yaml: &str| {
            crate::config::Config::parse(yaml, std::path::Path::new("t.yaml")).unwrap()
        };
        let next = config(&format!(
            "listeners:\n  - name: renamed\n    address: {addr}\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200 }}\n  - name: new\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200 }}\n"
        ));
        let plan = plan(&[g], &next.listeners, 2).unwrap();
        assert_eq!(plan.groups.len(), 2);
        assert_eq!(plan.groups[0].sockets[0].local_address().unwrap(), addr);
        // The renamed group is handed out again under its new name, plus the new group.
        let names: Vec<&str> = plan.sockets[0].iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["renamed", "new"]);
    }
}
