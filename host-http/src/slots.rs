//! Connection slots: who may hold one of the service's connections, and
//! who gives theirs up when it is full.
//!
//! A client that has proved nothing must never keep a device or an
//! operator out. So every connection starts *unproven* and may be evicted:
//! when a new connection arrives and the unproven ones already hold
//! [`MAX_UNPROVEN`] slots (or all [`MAX_CONNECTIONS`] are taken), the
//! oldest unproven connection is closed to make room — one still in its
//! TLS handshake first, then one that finished it but proved nothing.
//! A connection is *proven* once the service admitted a device on it or
//! accepted a management caller's SAS token; proven connections are never
//! evicted, and only they can use the last `MAX_CONNECTIONS − MAX_UNPROVEN`
//! slots. A stalled socket, a TLS client without a certificate or a chain
//! that is refused therefore costs a legitimate client nothing but the
//! time an eviction takes.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Most connections served at once. Beyond it a new connection evicts the
/// oldest unproven one, or is closed at once if every slot is proven.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most connections that have not proved anything (see the module
/// documentation): the rest of [`MAX_CONNECTIONS`] is kept for admitted
/// devices and authenticated operators.
pub const MAX_UNPROVEN: usize = 768;
/// Most connections served at once from one IP address: one host holding
/// sockets cannot take more than this many slots, proven or not.
pub const MAX_CONNECTIONS_PER_PEER: usize = 64;

/// How far an unproven connection got: evicted in this order (then oldest
/// first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Progress {
    /// Accepted; its TLS handshake has not completed.
    Handshaking,
    /// Its TLS handshake completed; it has proved nothing yet.
    Connected,
}

/// The slot table, shared by every listener.
#[derive(Clone, Default)]
pub(crate) struct Slots(Arc<Mutex<Table>>);

#[derive(Default)]
struct Table {
    next: u64,
    /// Unproven connections, eviction order first.
    unproven: BTreeMap<(Progress, u64), Arc<Notify>>,
    proven: usize,
    peers: HashMap<IpAddr, usize>,
    evicted: u64,
}

/// Where one connection's slot stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Unproven(Progress),
    Proven,
    /// Evicted: its key is gone from the table.
    Evicted,
}

/// One connection's slot; freed when dropped.
pub(crate) struct Slot {
    slots: Slots,
    id: u64,
    ip: IpAddr,
    state: Mutex<State>,
    evict: Arc<Notify>,
}

impl Slots {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `ip`, evicting the oldest unproven
    /// connection if that is what it takes; `None` when `ip` holds
    /// [`MAX_CONNECTIONS_PER_PEER`] already or every slot is proven.
    pub(crate) fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let mut t = self.table();
        if t.peers.get(&ip).copied().unwrap_or(0) >= MAX_CONNECTIONS_PER_PEER {
            return None;
        }
        while t.unproven.len() >= MAX_UNPROVEN || t.unproven.len() + t.proven >= MAX_CONNECTIONS {
            let (_, victim) = t.unproven.pop_first()?;
            t.evicted += 1;
            // A stored permit: the connection sees it at its next await.
            victim.notify_one();
        }
        let id = t.next;
        t.next += 1;
        let evict = Arc::new(Notify::new());
        t.unproven
            .insert((Progress::Handshaking, id), Arc::clone(&evict));
        *t.peers.entry(ip).or_insert(0) += 1;
        Some(Slot {
            slots: self.clone(),
            id,
            ip,
            state: Mutex::new(State::Unproven(Progress::Handshaking)),
            evict,
        })
    }

    /// Connections evicted so far (for tests and logs).
    #[cfg(test)]
    fn evicted(&self) -> u64 {
        self.table().evicted
    }
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The TLS handshake completed: evicted after every connection still
    /// in its handshake.
    pub(crate) fn connected(&self) {
        let mut state = self.state();
        if *state != State::Unproven(Progress::Handshaking) {
            return;
        }
        let mut t = self.slots.table();
        if let Some(n) = t.unproven.remove(&(Progress::Handshaking, self.id)) {
            t.unproven.insert((Progress::Connected, self.id), n);
            *state = State::Unproven(Progress::Connected);
        }
    }

    /// The service admitted a device or an operator on this connection:
    /// it keeps its slot whatever arrives after it.
    pub(crate) fn prove(&self) {
        let mut state = self.state();
        let State::Unproven(progress) = *state else {
            return;
        };
        let mut t = self.slots.table();
        if t.unproven.remove(&(progress, self.id)).is_some() {
            t.proven += 1;
            *state = State::Proven;
        }
    }

    /// Whether the connection is proven.
    #[cfg(test)]
    fn is_proven(&self) -> bool {
        *self.state() == State::Proven
    }

    /// Resolves when the connection is evicted (never, once proven).
    pub(crate) async fn evicted(&self) {
        loop {
            self.evict.notified().await;
            // A permit can be left from an eviction that raced with
            // `prove`; a proven connection is not evicted.
            let mut state = self.state();
            if let State::Unproven(progress) = *state {
                let t = self.slots.table();
                if !t.unproven.contains_key(&(progress, self.id)) {
                    *state = State::Evicted;
                    return;
                }
            } else if *state == State::Evicted {
                return;
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let state = *self.state();
        let mut t = self.slots.table();
        match state {
            State::Unproven(progress) => {
                t.unproven.remove(&(progress, self.id));
            }
            State::Proven => t.proven -= 1,
            State::Evicted => {}
        }
        if let Some(n) = t.peers.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.peers.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x7f00_0000 + n))
    }

    fn is_evicted(slot: &Slot) -> bool {
        use std::future::Future;
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let fut = std::pin::pin!(slot.evicted());
        fut.poll(&mut cx).is_ready()
    }

    #[test]
    fn unproven_connections_make_room_oldest_handshake_first() {
        let slots = Slots::default();
        // Fill the unproven share from many addresses.
        let mut held: Vec<Slot> = (0..MAX_UNPROVEN)
            .map(|i| slots.admit(ip(i as u32 / 32)).unwrap())
            .collect();
        // Two of them finished their handshake; one proved itself.
        held[0].connected();
        held[1].prove();
        // The proven one left the unproven share: one more fits.
        held.push(slots.admit(ip(998)).unwrap());
        assert_eq!(slots.evicted(), 0);
        // The next connection evicts the oldest one still handshaking.
        let new = slots.admit(ip(999)).unwrap();
        assert_eq!(slots.evicted(), 1);
        assert!(!is_evicted(&held[0]), "connected goes after handshaking");
        assert!(!is_evicted(&held[1]), "proven is never evicted");
        assert!(is_evicted(&held[2]), "the oldest handshaking one goes");
        assert!(!is_evicted(&held[3]));
        drop(new);
        held.truncate(2);
    }

    #[test]
    fn proven_connections_keep_their_share_and_are_never_evicted() {
        let slots = Slots::default();
        let proven: Vec<Slot> = (0..MAX_CONNECTIONS)
            .map(|i| {
                let s = slots.admit(ip(i as u32 / 32)).unwrap();
                s.prove();
                s
            })
            .collect();
        // Every slot proven: a newcomer is closed, nobody is evicted.
        assert!(slots.admit(ip(5000)).is_none());
        assert_eq!(slots.evicted(), 0);
        assert!(proven.iter().all(|s| s.is_proven() && !is_evicted(s)));
        drop(proven);
        assert!(slots.admit(ip(5000)).is_some());
    }

    #[test]
    fn one_address_holds_at_most_its_share() {
        let slots = Slots::default();
        let held: Vec<Slot> = (0..MAX_CONNECTIONS_PER_PEER)
            .map(|_| slots.admit(ip(1)).unwrap())
            .collect();
        assert!(slots.admit(ip(1)).is_none());
        assert!(slots.admit(ip(2)).is_some());
        drop(held);
        assert!(slots.admit(ip(1)).is_some());
        let t = slots.table();
        assert!(t.unproven.is_empty() && t.proven == 0 && t.peers.is_empty());
    }
}
