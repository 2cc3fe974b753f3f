//! The transaction table: every live client and server transaction of one endpoint, found
//! by `TransactionKey`, with one deadline queue for all of them and one queue of outputs
//! for the shell. Terminated transactions are removed at once, so memory follows the number
//! of live transactions. No IO and no clock: the shell passes `now` and drains outputs.

use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use super::client_invite::ClientInvite;
use super::client_non_invite::ClientNonInvite;
use super::server_invite::ServerInvite;
use super::server_non_invite::ServerNonInvite;
use super::timers::{Reliability, TimerConfig};
use super::{Event, Output, Role, State, StatusClass, TransactionError, TransactionKey};

/// How many transactions a table holds unless told otherwise: about 4 minutes of traffic
/// at 1 000 new transactions a second, far above what one IVR node sees, yet a bound on
/// what a flood of distinct requests can make it allocate.
pub const DEFAULT_MAX_TRANSACTIONS: usize = 262_144;

/// Heap entries left behind by changed deadlines are dropped lazily; past this slack over
/// the live count the heap is rebuilt, so churn cannot grow it without bound.
const HEAP_SLACK: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handle {
    index: u32,
    generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    index: u32,
    generation: u32,
}

#[derive(Debug)]
enum Machine<M> {
    InviteServer(ServerInvite<M>),
    NonInviteServer(ServerNonInvite<M>),
    InviteClient(ClientInvite<M>),
    NonInviteClient(ClientNonInvite<M>),
}

impl<M: Clone> Machine<M> {
    fn state(&self) -> State {
        match self {
            Machine::InviteServer(m) => m.state(),
            Machine::NonInviteServer(m) => m.state(),
            Machine::InviteClient(m) => m.state(),
            Machine::NonInviteClient(m) => m.state(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Machine::InviteServer(m) => m.poll_timeout(),
            Machine::NonInviteServer(m) => m.poll_timeout(),
            Machine::InviteClient(m) => m.poll_timeout(),
            Machine::NonInviteClient(m) => m.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Event<M>>) {
        match self {
            Machine::InviteServer(m) => m.handle_timeout(now, out),
            Machine::NonInviteServer(m) => m.handle_timeout(now, out),
            Machine::InviteClient(m) => m.handle_timeout(now, out),
            Machine::NonInviteClient(m) => m.handle_timeout(now, out),
        }
    }

    fn transport_error(&mut self, out: &mut Vec<Event<M>>) {
        match self {
            Machine::InviteServer(m) => m.transport_error(out),
            Machine::NonInviteServer(m) => m.transport_error(out),
            Machine::InviteClient(m) => m.transport_error(out),
            Machine::NonInviteClient(m) => m.transport_error(out),
        }
    }
}

#[derive(Debug)]
struct Entry<M> {
    key: TransactionKey,
    role: Role,
    machine: Machine<M>,
    /// The deadline this entry has in the heap; any other heap entry for it is stale.
    scheduled: Option<Instant>,
}

#[derive(Debug)]
struct Slot<M> {
    generation: u32,
    entry: Option<Entry<M>>,
}

/// All transactions of one endpoint. See the module documentation of
/// `sip::transaction` for how the shell and the TU drive it.
#[derive(Debug)]
pub struct TransactionTable<M> {
    timers: TimerConfig,
    max_transactions: usize,
    servers: HashMap<TransactionKey, Handle>,
    clients: HashMap<TransactionKey, Handle>,
    slots: Vec<Slot<M>>,
    free: Vec<u32>,
    live: usize,
    deadlines: BinaryHeap<Reverse<Deadline>>,
    outputs: VecDeque<Output<M>>,
    /// Reused for every machine call, so steady-state traffic allocates no event buffers.
    scratch: Vec<Event<M>>,
}

impl<M: Clone> TransactionTable<M> {
    pub fn new(timers: TimerConfig) -> Self {
        TransactionTable {
            timers,
            max_transactions: DEFAULT_MAX_TRANSACTIONS,
            servers: HashMap::new(),
            clients: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            deadlines: BinaryHeap::new(),
            outputs: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// Caps the number of live transactions; creating one more fails with `TableFull`
    /// (answer such a request statelessly with 503).
    pub fn with_max_transactions(mut self, limit: usize) -> Self {
        self.max_transactions = limit.min(u32::MAX as usize);
        self
    }

    pub fn timers(&self) -> &TimerConfig {
        &self.timers
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// A request arrived. `key` comes from [`TransactionKey::for_request`]. A new request
    /// creates a server transaction and yields `RequestToTu`; a retransmission is answered
    /// here; an ACK either completes its INVITE transaction or yields `AckToTu`.
    pub fn handle_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        msg: M,
        reliability: Reliability,
    ) -> Result<(), TransactionError> {
        if let Some(&handle) = self.servers.get(&key) {
            let Some(entry) = entry_mut(&mut self.slots, handle) else {
                return Ok(());
            };
            match &mut entry.machine {
                Machine::InviteServer(m) if key.is_ack() => {
                    m.receive_ack(now, msg, &mut self.scratch)
                }
                Machine::InviteServer(m) => m.receive_invite(&mut self.scratch),
                Machine::NonInviteServer(m) => m.receive_request(&mut self.scratch),
                // Server keys only ever map to server machines.
                Machine::InviteClient(_) | Machine::NonInviteClient(_) => {}
            }
            self.settle(handle);
            return Ok(());
        }
        if key.is_ack() {
            // The ACK of a 2xx is a transaction of its own that the UAC never answers:
            // nothing to create, the dialog takes it.
            self.outputs.push_back(Output::AckToTu { key, msg });
            return Ok(());
        }
        let machine = if key.is_invite() {
            Machine::InviteServer(ServerInvite::new(reliability, self.timers))
        } else {
            Machine::NonInviteServer(ServerNonInvite::new(reliability, self.timers))
        };
        self.insert(Role::Server, key.clone(), machine)?;
        self.outputs.push_back(Output::RequestToTu { key, msg });
        Ok(())
    }

    /// A response arrived. `key` is [`TransactionKey::client`] built from its top Via
    /// branch and CSeq method. `make_ack(request, response)` builds the ACK for a non-2xx
    /// final to an INVITE; it is called at most once per transaction.
    pub fn handle_response<F>(
        &mut self,
        now: Instant,
        key: TransactionKey,
        status: u16,
        msg: M,
        make_ack: F,
    ) -> Result<(), TransactionError>
    where
        F: FnOnce(&M, &M) -> M,
    {
        StatusClass::of(status)?;
        let Some(&handle) = self.clients.get(&key) else {
            self.outputs
                .push_back(Output::StrayResponse { key, status, msg });
            return Ok(());
        };
        let Some(entry) = entry_mut(&mut self.slots, handle) else {
            return Ok(());
        };
        let result = match &mut entry.machine {
            Machine::InviteClient(m) => {
                m.receive_response(now, status, msg, make_ack, &mut self.scratch)
            }
            Machine::NonInviteClient(m) => m.receive_response(now, status, msg, &mut self.scratch),
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => Ok(()),
        };
        self.settle(handle);
        result
    }

    /// The TU answers the request of the server transaction `key`.
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        status: u16,
        msg: M,
    ) -> Result<(), TransactionError> {
        let Some(&handle) = self.servers.get(key) else {
            return Err(TransactionError::NoSuchTransaction {
                role: Role::Server,
                key: key.clone(),
            });
        };
        let Some(entry) = entry_mut(&mut self.slots, handle) else {
            return Ok(());
        };
        let result = match &mut entry.machine {
            Machine::InviteServer(m) => m.send_response(now, status, msg, &mut self.scratch),
            Machine::NonInviteServer(m) => m.send_response(now, status, msg, &mut self.scratch),
            Machine::InviteClient(_) | Machine::NonInviteClient(_) => Ok(()),
        };
        self.settle(handle);
        result
    }

    /// The TU sends a request through a new client transaction: INVITE for
    /// [`ClientInvite`], anything but ACK for [`ClientNonInvite`]. `key` is
    /// [`TransactionKey::client`] with the branch written in the request's Via.
    pub fn start_client(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: M,
        reliability: Reliability,
    ) -> Result<(), TransactionError> {
        if key.is_ack() {
            return Err(TransactionError::AckIsNotATransaction);
        }
        if self.clients.contains_key(&key) {
            return Err(TransactionError::DuplicateKey {
                role: Role::Client,
                key,
            });
        }
        self.check_capacity()?;
        let machine = if key.is_invite() {
            Machine::InviteClient(ClientInvite::start(
                now,
                request,
                reliability,
                self.timers,
                &mut self.scratch,
            ))
        } else {
            Machine::NonInviteClient(ClientNonInvite::start(
                now,
                request,
                reliability,
                self.timers,
                &mut self.scratch,
            ))
        };
        match self.insert(Role::Client, key, machine) {
            Ok(handle) => {
                self.settle(handle);
                Ok(())
            }
            Err(e) => {
                // The request never left: drop the Transmit the machine queued.
                self.scratch.clear();
                Err(e)
            }
        }
    }

    /// The transport could not send a message a `Transmit` output carried.
    pub fn transport_error(&mut self, role: Role, key: &TransactionKey) {
        let map = match role {
            Role::Client => &self.clients,
            Role::Server => &self.servers,
        };
        let Some(&handle) = map.get(key) else {
            return;
        };
        if let Some(entry) = entry_mut(&mut self.slots, handle) {
            entry.machine.transport_error(&mut self.scratch);
            self.settle(handle);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse(deadline)) = self.deadlines.peek() {
            if deadline.at > now {
                break;
            }
            self.deadlines.pop();
            let handle = Handle {
                index: deadline.index,
                generation: deadline.generation,
            };
            let Some(entry) = entry_mut(&mut self.slots, handle) else {
                continue;
            };
            if entry.scheduled != Some(deadline.at) {
                continue;
            }
            // The popped heap entry was this one's only live copy.
            entry.scheduled = None;
            entry.machine.handle_timeout(now, &mut self.scratch);
            self.settle(handle);
        }
    }

    /// The earliest moment `handle_timeout` has work to do.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse(deadline)) = self.deadlines.peek() {
            if self.is_current(&deadline) {
                return Some(deadline.at);
            }
            self.deadlines.pop();
        }
        None
    }

    /// The next thing for the shell or the TU to act on, oldest first.
    pub fn poll_output(&mut self) -> Option<Output<M>> {
        self.outputs.pop_front()
    }

    /// The state of a live transaction.
    pub fn state(&self, role: Role, key: &TransactionKey) -> Option<State> {
        let map = match role {
            Role::Client => &self.clients,
            Role::Server => &self.servers,
        };
        let handle = map.get(key)?;
        self.entry(*handle).map(|e| e.machine.state())
    }

    /// For a CANCEL's key, the INVITE server transaction it cancels (RFC 3261 §9.2) and
    /// its state. None means no such INVITE: answer the CANCEL with 481. If the INVITE is
    /// still Proceeding, answer the CANCEL with 200 and the INVITE with 487; otherwise
    /// just answer the CANCEL with 200.
    pub fn find_invite_for_cancel(
        &self,
        cancel_key: &TransactionKey,
    ) -> Option<(TransactionKey, State)> {
        let invite_key = cancel_key.invite_key_for_cancel()?;
        let handle = self.servers.get(&invite_key)?;
        let entry = self.entry(*handle)?;
        match entry.machine {
            Machine::InviteServer(ref m) => Some((entry.key.clone(), m.state())),
            _ => None,
        }
    }

    fn check_capacity(&self) -> Result<(), TransactionError> {
        if self.live >= self.max_transactions {
            return Err(TransactionError::TableFull {
                limit: self.max_transactions,
            });
        }
        Ok(())
    }

    fn insert(
        &mut self,
        role: Role,
        key: TransactionKey,
        machine: Machine<M>,
    ) -> Result<Handle, TransactionError> {
        self.check_capacity()?;
        let map = match role {
            Role::Client => &mut self.clients,
            Role::Server => &mut self.servers,
        };
        let MapEntry::Vacant(vacant) = map.entry(key.clone()) else {
            return Err(TransactionError::DuplicateKey { role, key });
        };
        let entry = Entry {
            key,
            role,
            machine,
            scheduled: None,
        };
        let handle = match self.free.pop() {
            Some(index) => {
                let Some(slot) = self.slots.get_mut(index as usize) else {
                    return Err(TransactionError::TableFull {
                        limit: self.max_transactions,
                    });
                };
                slot.entry = Some(entry);
                Handle {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                let index =
                    u32::try_from(self.slots.len()).map_err(|_| TransactionError::TableFull {
                        limit: self.max_transactions,
                    })?;
                self.slots.push(Slot {
                    generation: 0,
                    entry: Some(entry),
                });
                Handle {
                    index,
                    generation: 0,
                }
            }
        };
        vacant.insert(handle);
        self.live += 1;
        Ok(handle)
    }

    fn entry(&self, handle: Handle) -> Option<&Entry<M>> {
        self.slots
            .get(handle.index as usize)
            .filter(|slot| slot.generation == handle.generation)
            .and_then(|slot| slot.entry.as_ref())
    }

    fn is_current(&self, deadline: &Deadline) -> bool {
        self.entry(Handle {
            index: deadline.index,
            generation: deadline.generation,
        })
        .is_some_and(|e| e.scheduled == Some(deadline.at))
    }

    /// After any machine call: turns its events into outputs, then removes the
    /// transaction if it terminated or files its next deadline.
    fn settle(&mut self, handle: Handle) {
        let Some(entry) = entry_mut(&mut self.slots, handle) else {
            self.scratch.clear();
            return;
        };
        let role = entry.role;
        for event in self.scratch.drain(..) {
            let key = entry.key.clone();
            self.outputs.push_back(match event {
                Event::Transmit(msg) => Output::Transmit { role, key, msg },
                Event::AckToTu(msg) => Output::AckToTu { key, msg },
                Event::ResponseToTu { status, msg } => Output::ResponseToTu { key, status, msg },
                Event::Timeout => Output::Timeout { role, key },
                Event::TransportError => Output::TransportError { role, key },
            });
        }
        if entry.machine.state() == State::Terminated {
            self.remove(handle);
            return;
        }
        let next = entry.machine.poll_timeout();
        if next == entry.scheduled {
            return;
        }
        entry.scheduled = next;
        if let Some(at) = next {
            self.deadlines.push(Reverse(Deadline {
                at,
                index: handle.index,
                generation: handle.generation,
            }));
            if self.deadlines.len() > self.live.saturating_mul(2).saturating_add(HEAP_SLACK) {
                self.rebuild_deadlines();
            }
        }
    }

    fn remove(&mut self, handle: Handle) {
        let Some(slot) = self.slots.get_mut(handle.index as usize) else {
            return;
        };
        if slot.generation != handle.generation {
            return;
        }
        let Some(entry) = slot.entry.take() else {
            return;
        };
        // Any heap entry still naming the old generation is now stale.
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(handle.index);
        self.live = self.live.saturating_sub(1);
        match entry.role {
            Role::Client => self.clients.remove(&entry.key),
            Role::Server => self.servers.remove(&entry.key),
        };
        self.outputs.push_back(Output::Terminated {
            role: entry.role,
            key: entry.key,
        });
    }

    fn rebuild_deadlines(&mut self) {
        let live = self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let at = slot.entry.as_ref()?.scheduled?;
            Some(Reverse(Deadline {
                at,
                index: u32::try_from(index).ok()?,
                generation: slot.generation,
            }))
        });
        self.deadlines = live.collect();
    }
}

/// A free function rather than a method so the caller can keep using the table's other
/// fields (the scratch event buffer) while holding the entry.
fn entry_mut<M>(slots: &mut [Slot<M>], handle: Handle) -> Option<&mut Entry<M>> {
    slots
        .get_mut(handle.index as usize)
        .filter(|slot| slot.generation == handle.generation)
        .and_then(|slot| slot.entry.as_mut())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::Clock;

    fn key(i: usize) -> TransactionKey {
        TransactionKey::client(&format!("z9hG4bK{i}"), "OPTIONS")
    }

    #[test]
    fn stale_deadlines_do_not_pile_up() {
        let clock = Clock::new();
        let mut table: TransactionTable<u32> = TransactionTable::new(TimerConfig::default());
        // Each client INVITE files Timer A; a provisional cancels both A and B, leaving
        // stale heap entries behind.
        for i in 0..5_000 {
            let k = TransactionKey::client(&format!("z9hG4bK{i}"), "INVITE");
            table
                .start_client(clock.at(0.0), k.clone(), 0, Reliability::Unreliable)
                .unwrap();
            table
                .handle_response(clock.at(0.1), k, 180, 1, |_, _| 2)
                .unwrap();
        }
        assert_eq!(table.len(), 5_000);
        assert!(table.deadlines.len() <= 2 * table.len() + HEAP_SLACK);
        assert_eq!(table.poll_timeout(), None, "no timer runs in Proceeding");
        assert!(table.deadlines.is_empty());
    }

    #[test]
    fn slots_are_reused() {
        let clock = Clock::new();
        let mut table: TransactionTable<u32> = TransactionTable::new(TimerConfig::default());
        for round in 0..3 {
            for i in 0..100 {
                table
                    .start_client(clock.at(0.0), key(i), 0, Reliability::Reliable)
                    .unwrap();
            }
            for i in 0..100 {
                table
                    .handle_response(clock.at(0.0), key(i), 200, 1, |_, _| 2)
                    .unwrap();
            }
            assert!(table.is_empty(), "round {round}");
        }
        assert_eq!(table.slots.len(), 100);
        assert!(table.clients.is_empty() && table.servers.is_empty());
    }
}
