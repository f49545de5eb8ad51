//! A worker's listeners: one snapshot slot and one accept stop per listener name.
//!
//! A reload hands the worker a new `Snapshot` plus sockets for listeners that are new
//! (or moved to another address). [`Listeners::apply`] then:
//!
//! - swaps the slot of every listener that survives, so its accept loops hand the new
//!   snapshot to new connections; the old snapshot is marked retired, so connections on
//!   it answer their current request with `connection: close` and end;
//! - starts accept loops for new sockets (a moved listener's old loops stop);
//! - stops the accept loops of listeners that are gone: each takes what is queued on its
//!   socket and closes it; their connections finish on the old snapshot.
//!
//! Everything here runs on the worker's thread; nothing waits for another thread.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use tracing::warn;

use super::{
    accept::{self, Acceptor, Shared, Slot},
    stop::Stop,
};
use crate::snapshot::Snapshot;

#[derive(Debug)]
struct Listening {
    slot: Slot,
    /// Stops this listener's accept loops (all of them: a worker may accept on several
    /// sockets of one group after a hot restart to a smaller worker count).
    stop: Rc<Stop>,
}

/// The listeners a worker accepts on, by name.
#[derive(Debug, Default)]
pub struct Listeners {
    by_name: HashMap<String, Listening>,
}

impl Listeners {
    /// Makes `snapshot` current; `sockets` are this worker's sockets of listeners that
    /// are new or moved, by listener name (a name may come more than once).
    pub fn apply(
        &mut self,
        snapshot: Snapshot,
        sockets: Vec<(String, crate::listen::ListenSocket)>,
        shared: &Shared,
    ) -> Result<(), String> {
        let mut fresh: HashMap<String, Vec<Acceptor>> = HashMap::new();
        for (name, socket) in sockets {
            let acceptor = Acceptor::new(socket).map_err(|e| format!("listener {name}: {e}"))?;
            fresh.entry(name).or_default().push(acceptor);
        }
        let mut next = HashMap::with_capacity(snapshot.listeners.len());
        for (name, listener) in snapshot.listeners {
            let old = self.by_name.remove(&name);
            match fresh.remove(&name) {
                Some(acceptors) => {
                    if let Some(old) = old {
                        old.stop.stop();
                        old.slot.borrow().retire();
                    }
                    let listening = Listening {
                        slot: Rc::new(RefCell::new(listener)),
                        stop: Stop::new(),
                    };
                    for acceptor in acceptors {
                        monoio::spawn(accept::accept_loop(
                            acceptor,
                            Rc::clone(&listening.slot),
                            Rc::clone(&listening.stop),
                            shared.clone(),
                        ));
                    }
                    next.insert(name, listening);
                }
                None => match old {
                    Some(old) => {
                        let replaced = old.slot.replace(listener);
                        replaced.retire();
                        next.insert(name, old);
                    }
                    None => warn!(listener = name, "no socket for listener; not accepting"),
                },
            }
        }
        // Listeners the new config no longer has.
        for (_, gone) in self.by_name.drain() {
            gone.stop.stop();
            gone.slot.borrow().retire();
        }
        self.by_name = next;
        Ok(())
    }

    /// New session-ticket keys for every TLS listener's current snapshot.
    pub fn set_ticket_keys(&self, keys: &crate::tls::ticket::TicketKeys) {
        for listening in self.by_name.values() {
            if let Some(Ok(tls)) = &listening.slot.borrow().tls {
                tls.set_ticket_keys(keys);
            }
        }
    }

    /// Stops accepting on every listener (each takes what is queued, then closes);
    /// open connections go on.
    pub fn stop_accepting(&mut self) {
        for (_, listening) in self.by_name.drain() {
            listening.stop.stop();
        }
    }
}
