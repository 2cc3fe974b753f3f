//! Callback requests in the line: a caller's place kept when it asks to be called back,
//! the call back when the place reaches an agent, retries and giving up. Writes go to the
//! `CallbackStore`; a failed write other than the request itself is reported, not fatal.
//! Also which numbers may be called back: the queue's patterns, one pending request per
//! number, and the daily cap.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{Acd, AcdError, Action, CallbackRefusal, Entry, Kind, Pending, Place, Waiter};
use crate::queue::store::{CallbackId, StoredCallback};

/// The window of `callback.daily_cap`.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Acd {
    pub(super) fn callback_requested(
        &mut self,
        now: Instant,
        call: String,
        number: Option<String>,
    ) -> Result<(), AcdError> {
        let Some(Place::Waiting { queue }) = self.calls.get(&call).cloned() else {
            return Err(AcdError::UnknownCall { call });
        };
        let q = self
            .queues
            .get(&queue)
            .ok_or_else(|| AcdError::UnknownCall { call: call.clone() })?;
        if q.cfg.callback.is_none() {
            return Err(AcdError::NoCallback { queue });
        }
        let i = q
            .index_of(&call)
            .ok_or_else(|| AcdError::UnknownCall { call: call.clone() })?;
        let Some(entry) = q.line.get(i) else {
            return Err(AcdError::UnknownCall { call });
        };
        let Kind::Caller(w) = &entry.kind else {
            return Err(AcdError::UnknownCall { call });
        };
        if w.from_callback.is_some() {
            return Err(AcdError::NoCallback { queue });
        }
        let number = number.unwrap_or_else(|| w.caller.clone());
        if number.trim().is_empty() {
            return Err(AcdError::NoNumber { call });
        }
        let stored = StoredCallback {
            id: CallbackId(0),
            queue: queue.clone(),
            number: number.clone(),
            priority: entry.priority,
            skills: entry.skills.clone(),
            waited: now.saturating_duration_since(entry.joined),
            attempts: 0,
            place: entry.seq,
            for_call: call.clone(),
        };
        if let Some(reason) = self.number_refusal(now, &queue, &number) {
            self.actions.push_back(Action::CallbackRefused {
                call: call.clone(),
                queue,
                number,
                reason,
            });
            return Err(AcdError::CallbackRefused { call, reason });
        }
        let id = self.store.add(&stored)?;
        self.last_callback_id = self.last_callback_id.max(id.0);
        // Out of the line as a caller, back in at the same place as a request.
        let Some(mut entry) = self.take_at(now, &queue, &call) else {
            return Err(AcdError::UnknownCall { call });
        };
        entry.kind = Kind::Callback(Pending {
            id,
            for_call: call.clone(),
            number,
            attempts: 0,
            dialing: false,
            retry_at: None,
        });
        if let Some(q) = self.queues.get_mut(&queue) {
            q.stats.callback();
            q.callbacks_taken.push_back(now);
            q.insert(entry);
        }
        Ok(())
    }

    /// Why the caller of `call`, waiting in `queue`, may not be offered a callback now.
    pub(super) fn callback_refusal(
        &mut self,
        now: Instant,
        queue: &str,
        call: &str,
    ) -> Option<CallbackRefusal> {
        let q = self.queues.get(queue)?;
        q.cfg.callback.as_ref()?;
        let i = q.index_of(call)?;
        let Kind::Caller(w) = &q.line.get(i)?.kind else {
            return None;
        };
        let number = w.caller.clone();
        self.number_refusal(now, queue, &number)
    }

    /// Why `number` may not be called back for `queue` now: the queue's patterns, a
    /// request for it waiting already, the queue's daily cap.
    fn number_refusal(
        &mut self,
        now: Instant,
        queue: &str,
        number: &str,
    ) -> Option<CallbackRefusal> {
        let pending = self.queues.values().any(|q| {
            q.line
                .iter()
                .any(|e| matches!(&e.kind, Kind::Callback(p) if p.number == number))
        });
        let q = self.queues.get_mut(queue)?;
        let cb = q.cfg.callback.as_ref()?;
        if !cb.allows(number) {
            return Some(CallbackRefusal::NotAllowed);
        }
        if pending {
            return Some(CallbackRefusal::AlreadyPending);
        }
        while q
            .callbacks_taken
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= DAY)
        {
            q.callbacks_taken.pop_front();
        }
        if q.callbacks_taken.len() >= cb.daily_cap as usize {
            return Some(CallbackRefusal::DailyCap);
        }
        None
    }

    pub(super) fn find_callback(&self, id: CallbackId) -> Option<(String, usize)> {
        self.queues.iter().find_map(|(name, q)| {
            q.line
                .iter()
                .position(|e| matches!(&e.kind, Kind::Callback(p) if p.id == id))
                .map(|i| (name.clone(), i))
        })
    }

    pub(super) fn callback_answered(
        &mut self,
        id: CallbackId,
        call: String,
    ) -> Result<(), AcdError> {
        if self.calls.contains_key(&call) {
            return Err(AcdError::AlreadyQueued { call });
        }
        let (queue, i) = self
            .find_callback(id)
            .ok_or(AcdError::UnknownCallback { id })?;
        let Some(q) = self.queues.get_mut(&queue) else {
            return Err(AcdError::UnknownCallback { id });
        };
        let Some(entry) = q.line.get_mut(i) else {
            return Err(AcdError::UnknownCallback { id });
        };
        let Kind::Callback(p) = &entry.kind else {
            return Err(AcdError::UnknownCallback { id });
        };
        let caller = p.number.clone();
        let request = Some(p.clone());
        entry.kind = Kind::Caller(Box::new(Waiter {
            call: call.clone(),
            caller,
            offers: Vec::new(),
            tried: BTreeSet::new(),
            announced_position: None,
            announcements: 0,
            next_announce: None,
            deadline: None,
            callback_offered: false,
            from_callback: Some(id),
            request,
        }));
        self.calls.insert(call, Place::Waiting { queue });
        Ok(())
    }

    pub(super) fn callback_failed(&mut self, now: Instant, id: CallbackId) -> Result<(), AcdError> {
        let (queue, i) = self
            .find_callback(id)
            .ok_or(AcdError::UnknownCallback { id })?;
        let Some(q) = self.queues.get_mut(&queue) else {
            return Err(AcdError::UnknownCallback { id });
        };
        let (max, retry) = q
            .cfg
            .callback
            .as_ref()
            .map_or((1, Duration::ZERO), |c| (c.attempts, c.retry_after));
        let Some(Entry {
            kind: Kind::Callback(p),
            ..
        }) = q.line.get_mut(i)
        else {
            return Err(AcdError::UnknownCallback { id });
        };
        p.attempts = p.attempts.saturating_add(1);
        p.dialing = false;
        let attempts = p.attempts;
        if attempts >= max {
            let number = p.number.clone();
            q.line.remove(i);
            self.forget_callback(id);
            self.actions
                .push_back(Action::CallbackGivenUp { id, number, queue });
        } else {
            p.retry_at = now.checked_add(retry);
            if let Err(e) = self.store.set_attempts(id, attempts) {
                self.actions.push_back(Action::StoreFailed {
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }

    pub(super) fn forget_callback(&mut self, id: CallbackId) {
        if let Err(e) = self.store.remove(id) {
            self.actions.push_back(Action::StoreFailed {
                message: e.to_string(),
            });
        }
    }
}
