//! Builds a call's record and its events from the call's story and what the engine knows
//! about the call (its numbers, its wall-clock times, how its dialog ended).
//!
//! Owns the mapping from story events to record events and the outcome rules. It must not
//! read a clock, write anything or know where records go: it is handed the wall-clock
//! times and returns plain data.
//!
//! The outcome, first rule that holds:
//!
//! 0. `interrupted`: the engine ended the call because it stopped (the drain of a graceful
//!    shutdown ran out);
//! 1. `transferred`: a transfer connected the caller elsewhere;
//! 2. `agent`: an agent answered (whatever happened after, the survey included);
//! 3. `callback`: the caller asked a queue to call back;
//! 4. `voicemail`: the caller left a message in a `record` step marked `voicemail: true`
//!    (a recording of some length, saved);
//! 5. `self_service`: the flow entered a step marked `resolved:`;
//! 6. `failed`: an engine or network fault (the engine saw one, e.g. no media or a refused
//!    INVITE, or the flow failed for a reason that is not the caller's: a runaway loop, a
//!    transfer that did not connect, a queue that could not take the caller...);
//! 7. `abandoned_in_queue`: the call ended while the caller waited in a queue;
//! 8. `abandoned_in_menu`: anything else. The caller hung up in the menu, ran out of
//!    retries, or the flow said goodbye without a resolving step: never self-service.
//!
//! The store also gives `interrupted` to calls still open after a restart (the engine
//! stopped without ending them).
//!
//! An agent's segment runs from the answer to the end of the conversation (either side's
//! hang-up, the call's end, or a transfer that connected). Its `talk_ms` leaves out the
//! time on hold (`hold_ms`: from the first side's hold to both sides back), so that
//! talk + hold + wrap-up is the handling time. `wrap_up_ms` is the wrap-up the queue gave
//! the agent for the call, known when the conversation ends (the call's record is written
//! then, while the wrap-up runs; an agent who resumes early is not subtracted).

use std::time::Duration;

use serde_json::json;

use super::{CallEvent, CallKind, CallOutcome, CallRecord, HungUpBy, RecordingRef, SurveyAnswer};
use crate::flow::story::{CallStory, FailReason, KeyUse, Outcome, REASON_TAG, StoryEvent};

/// What the engine knows of a call beside its story.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallFacts {
    pub call_id: String,
    pub kind: CallKind,
    pub caller: String,
    pub dialed: String,
    /// The flow the call was routed to (the story's own flow wins when it has one).
    pub flow: String,
    pub flow_version: String,
    /// The language the call started in (a later `language` change in the story wins).
    pub language: String,
    /// Wall-clock milliseconds since the Unix epoch; the story's times count from
    /// `started_ms`.
    pub started_ms: i64,
    pub answered_ms: Option<i64>,
    pub ended_ms: i64,
    pub hung_up_by: Option<HungUpBy>,
    /// An engine or network fault that ended the call (no media, no ACK, refused), if any.
    pub fault: Option<String>,
    /// The engine ended the call because it stopped.
    pub interrupted: bool,
}

/// The row a call is written with when it begins: no end, no outcome yet.
pub fn begin(facts: &CallFacts) -> CallRecord {
    CallRecord {
        call_id: facts.call_id.clone(),
        kind: facts.kind,
        caller: facts.caller.clone(),
        dialed: facts.dialed.clone(),
        started_ms: facts.started_ms,
        answered_ms: facts.answered_ms,
        ended_ms: None,
        flow: facts.flow.clone(),
        flow_version: facts.flow_version.clone(),
        language: facts.language.clone(),
        outcome: None,
        hung_up_by: None,
        last_step: None,
        reason: None,
        tags: Vec::new(),
        queue: None,
        agent: None,
        wait_ms: None,
        talk_ms: None,
        survey: Vec::new(),
        recordings: Vec::new(),
    }
}

/// The ended call's whole row and its events, in order (`seq` from 0).
pub fn build(facts: &CallFacts, story: &CallStory) -> (CallRecord, Vec<CallEvent>) {
    let mut b = Builder::new(facts);
    for entry in &story.entries {
        b.event(entry.at, &entry.event);
    }
    b.finish(story)
}

/// A queue visit while it lasts.
struct Visit {
    queue: String,
    joined: Duration,
    answered: Option<(String, Duration)>,
    /// Agents ringing for the caller, since when.
    ringing: Vec<(String, Duration)>,
    /// The sides holding the conversation (`agent`, `caller`), since when it is on hold,
    /// and the hold before.
    holding: Vec<String>,
    hold_since: Option<Duration>,
    held: Duration,
    /// The wrap-up the queue gave the answering agent, once told.
    wrap_up: Option<Duration>,
}

impl Visit {
    fn new(queue: &str, joined: Duration) -> Visit {
        Visit {
            queue: queue.to_owned(),
            joined,
            answered: None,
            ringing: Vec::new(),
            holding: Vec::new(),
            hold_since: None,
            held: Duration::ZERO,
            wrap_up: None,
        }
    }

    /// How long `agent` has been ringing at `at`, and no longer ringing.
    fn stop_ringing(&mut self, agent: &str, at: Duration) -> Option<Duration> {
        let i = self.ringing.iter().position(|(a, _)| a == agent)?;
        let (_, since) = self.ringing.remove(i);
        Some(at.saturating_sub(since))
    }

    /// The hold so far, an open one counted up to `at`.
    fn hold_at(&self, at: Duration) -> Duration {
        self.held
            + self
                .hold_since
                .map_or(Duration::ZERO, |s| at.saturating_sub(s))
    }
}

struct Builder<'a> {
    facts: &'a CallFacts,
    record: CallRecord,
    events: Vec<CallEvent>,
    http: Option<(String, String, Duration)>,
    visit: Option<Visit>,
    transferred: bool,
    answered: bool,
    callback: bool,
    voicemail: bool,
    resolved: bool,
    /// The caller hung up while waiting in a queue (not answered).
    left_queue_hung_up: bool,
    talk: Duration,
}

impl<'a> Builder<'a> {
    fn new(facts: &'a CallFacts) -> Builder<'a> {
        Builder {
            facts,
            record: begin(facts),
            events: Vec::new(),
            http: None,
            visit: None,
            transferred: false,
            answered: false,
            callback: false,
            voicemail: false,
            resolved: false,
            left_queue_hung_up: false,
            talk: Duration::ZERO,
        }
    }

    fn at_ms(&self, at: Duration) -> i64 {
        self.facts
            .started_ms
            .saturating_add(i64::try_from(at.as_millis()).unwrap_or(i64::MAX))
    }

    fn push(&mut self, at: Duration, kind: &str, detail: serde_json::Value) {
        let at_ms = self.at_ms(at);
        self.push_ms(at_ms, kind, detail);
    }

    fn push_ms(&mut self, at_ms: i64, kind: &str, detail: serde_json::Value) {
        self.events.push(CallEvent {
            call_id: self.facts.call_id.clone(),
            seq: u32::try_from(self.events.len()).unwrap_or(u32::MAX),
            at_ms,
            kind: kind.to_owned(),
            detail,
        });
    }

    fn event(&mut self, at: Duration, ev: &StoryEvent) {
        match ev {
            StoryEvent::StepEntered { flow, step } => {
                self.record.last_step = Some(format!("{flow}/{step}"));
                self.push(at, "step", json!({ "flow": flow, "step": step }));
            }
            StoryEvent::Key {
                key,
                went,
                typed_ahead,
            } => {
                let (name, to) = key_use(went);
                let mut d = json!({ "key": key.to_string(), "went": name });
                if let Some(to) = to {
                    d["to"] = to.into();
                }
                if *typed_ahead {
                    d["typed_ahead"] = true.into();
                }
                self.push(at, "key", d);
            }
            StoryEvent::NoInput { step, failures } => self.push(
                at,
                "no_input",
                json!({ "step": step, "failures": failures }),
            ),
            StoryEvent::Invalid {
                step,
                input,
                failures,
            } => self.push(
                at,
                "invalid",
                json!({ "step": step, "input": input, "failures": failures }),
            ),
            StoryEvent::HttpRequested { method, url } => {
                self.http = Some((method.clone(), url.clone(), at));
            }
            StoryEvent::HttpFinished { outcome } => {
                let (method, url, since) = self.http.take().unwrap_or_default();
                self.push(
                    at,
                    "http",
                    json!({
                        "method": method,
                        "url": url,
                        "outcome": outcome,
                        "latency_ms": millis(at.saturating_sub(since)),
                    }),
                );
            }
            StoryEvent::Tagged { name, value } => {
                if name == REASON_TAG {
                    self.record.reason = Some(value.clone());
                }
                self.push(at, "tag", json!({ "name": name, "value": value }));
            }
            StoryEvent::LanguageChanged { language } => {
                self.record.language = language.clone();
                self.push(at, "language", json!({ "language": language }));
            }
            StoryEvent::Resolved { reason } => {
                self.resolved = true;
                self.push(at, "resolved", json!({ "reason": reason }));
            }
            StoryEvent::QueueJoined { queue } => {
                self.close_visit(at, "failed", None);
                self.record.queue = Some(queue.clone());
                self.visit = Some(Visit::new(queue, at));
                self.push(at, "queue_joined", json!({ "queue": queue }));
            }
            StoryEvent::QueueAnswered { agent } => self.agent_answered(at, agent),
            StoryEvent::QueueFinished { outcome, waited } => {
                self.close_visit(at, outcome, *waited);
            }
            StoryEvent::TransferStarted { target } => self.push(
                at,
                "transfer",
                json!({ "target": target, "outcome": "started" }),
            ),
            StoryEvent::TransferFinished { outcome } => {
                if outcome == "connected" {
                    self.transferred = true;
                    // The agent who was talking hands the caller on: their segment ends.
                    if self.visit.as_ref().is_some_and(|v| v.answered.is_some()) {
                        self.close_visit(at, "transferred", None);
                    }
                }
                let target = self
                    .events
                    .iter()
                    .rev()
                    .find(|e| e.kind == "transfer")
                    .and_then(|e| e.detail.get("target").cloned())
                    .unwrap_or_default();
                self.push(
                    at,
                    "transfer",
                    json!({ "target": target, "outcome": outcome }),
                );
            }
            StoryEvent::RecordingFinished {
                path,
                duration,
                reason,
                voicemail,
            } => {
                if reason == "failed" {
                    return;
                }
                if *voicemail && !duration.is_zero() {
                    self.voicemail = true;
                }
                self.record.recordings.push(RecordingRef {
                    path: path.clone(),
                    duration_ms: millis(*duration),
                });
                self.push(
                    at,
                    "recording",
                    json!({
                        "path": path,
                        "duration_ms": millis(*duration),
                        "voicemail": voicemail,
                    }),
                );
            }
            StoryEvent::SurveyAnswered { question, score } => {
                match self
                    .record
                    .survey
                    .iter_mut()
                    .find(|s| &s.question == question)
                {
                    Some(s) => s.score = *score,
                    None => self.record.survey.push(SurveyAnswer {
                        question: question.clone(),
                        score: *score,
                    }),
                }
                self.push(
                    at,
                    "survey",
                    json!({ "question": question, "score": score }),
                );
            }
            StoryEvent::AgentRinging { agent } => {
                let Some(v) = self.visit.as_mut() else {
                    return;
                };
                v.ringing.retain(|(a, _)| a != agent);
                v.ringing.push((agent.clone(), at));
                let queue = v.queue.clone();
                self.push(
                    at,
                    "agent_ringing",
                    json!({ "queue": queue, "agent": agent }),
                );
            }
            StoryEvent::AgentNoAnswer { agent, reason } => {
                let Some(v) = self.visit.as_mut() else {
                    return;
                };
                let ring = v.stop_ringing(agent, at).unwrap_or_default();
                let queue = v.queue.clone();
                self.push(
                    at,
                    "agent_no_answer",
                    json!({
                        "queue": queue,
                        "agent": agent,
                        "reason": reason,
                        "ring_ms": millis(ring),
                    }),
                );
            }
            StoryEvent::Hold { on, by } => self.hold(at, *on, by),
            StoryEvent::MaxCallReached { after } => self.push(
                at,
                "max_call_reached",
                json!({ "after_ms": millis(*after) }),
            ),
            StoryEvent::WrapUp { agent, wrap_up } => {
                if let Some(v) = self.visit.as_mut()
                    && v.answered.as_ref().is_some_and(|(a, _)| a == agent)
                {
                    v.wrap_up = Some(*wrap_up);
                }
            }
            StoryEvent::CallbackPlaced {
                queue,
                request,
                for_call,
                attempt,
            } => self.push(
                at,
                "callback_placed",
                json!({
                    "queue": queue,
                    "request": request,
                    "for_call": for_call,
                    "attempt": attempt,
                }),
            ),
            _ => {}
        }
    }

    /// A side held the conversation with the agent, or let it go.
    fn hold(&mut self, at: Duration, on: bool, by: &str) {
        let Some(v) = self.visit.as_mut() else {
            return;
        };
        let Some((agent, _)) = v.answered.clone() else {
            return;
        };
        let queue = v.queue.clone();
        let was_held = !v.holding.is_empty();
        if on {
            if v.holding.iter().any(|s| s == by) {
                return;
            }
            v.holding.push(by.to_owned());
            if !was_held {
                v.hold_since = Some(at);
            }
            self.push(
                at,
                "hold",
                json!({ "queue": queue, "agent": agent, "by": by }),
            );
        } else {
            let Some(i) = v.holding.iter().position(|s| s == by) else {
                return;
            };
            v.holding.remove(i);
            let mut d = json!({ "queue": queue, "agent": agent, "by": by });
            if v.holding.is_empty()
                && let Some(since) = v.hold_since.take()
            {
                let this = at.saturating_sub(since);
                v.held += this;
                d["hold_ms"] = millis(this).into();
            }
            self.push(at, "hold_ended", d);
        }
    }

    fn agent_answered(&mut self, at: Duration, agent: &str) {
        let Some(v) = self.visit.as_mut() else {
            return;
        };
        v.answered = Some((agent.to_owned(), at));
        let ring = v.stop_ringing(agent, at);
        // The others rang for a caller someone else took: not a no-answer.
        v.ringing.clear();
        let queue = v.queue.clone();
        let wait = at.saturating_sub(v.joined);
        self.answered = true;
        self.record.agent = Some(agent.to_owned());
        self.record.wait_ms = Some(millis(wait));
        self.push(
            at,
            "queue_left",
            json!({ "queue": queue, "outcome": "agent", "wait_ms": millis(wait) }),
        );
        let mut d = json!({ "queue": queue, "agent": agent, "wait_ms": millis(wait) });
        if let Some(ring) = ring {
            d["ring_ms"] = millis(ring).into();
        }
        self.push(at, "agent_answered", d);
    }

    /// The visit in progress ends at `at` with the queue's `outcome`.
    fn close_visit(&mut self, at: Duration, outcome: &str, waited: Option<Duration>) {
        let Some(v) = self.visit.take() else {
            return;
        };
        match &v.answered {
            Some((agent, since)) => {
                let hold = v.hold_at(at);
                let talk = at.saturating_sub(*since).saturating_sub(hold);
                self.talk += talk;
                let by = match outcome {
                    "agent_hung_up" => "agent",
                    "transferred" => "transfer",
                    _ => "caller",
                };
                let mut d = json!({
                    "queue": v.queue,
                    "agent": agent,
                    "talk_ms": millis(talk),
                    "hold_ms": millis(hold),
                    "by": by,
                });
                if let Some(w) = v.wrap_up {
                    d["wrap_up_ms"] = millis(w).into();
                }
                self.push(at, "agent_ended", d);
            }
            None => {
                let wait = waited.unwrap_or_else(|| at.saturating_sub(v.joined));
                self.record.wait_ms = Some(millis(wait));
                let mut d = json!({ "queue": v.queue, "wait_ms": millis(wait) });
                match outcome.strip_prefix("left with key ") {
                    Some(key) => {
                        d["outcome"] = "key".into();
                        d["key"] = key.into();
                    }
                    None => d["outcome"] = outcome.into(),
                }
                if outcome == "caller_hung_up" {
                    self.left_queue_hung_up = true;
                }
                self.push(at, "queue_left", d);
                if outcome == "callback" {
                    self.callback = true;
                    self.push(at, "callback_requested", json!({ "queue": v.queue }));
                }
            }
        }
    }

    fn finish(mut self, story: &CallStory) -> (CallRecord, Vec<CallEvent>) {
        let end = Duration::from_millis(
            u64::try_from(self.facts.ended_ms.saturating_sub(self.facts.started_ms)).unwrap_or(0),
        );
        // What the story left open ends with the call.
        if self.visit.is_some() {
            let waiting = self.visit.as_ref().is_some_and(|v| v.answered.is_none());
            let outcome = match self.facts.hung_up_by {
                Some(HungUpBy::Caller) => "caller_hung_up",
                Some(HungUpBy::Agent) => "agent_hung_up",
                _ => "failed",
            };
            self.close_visit(end, outcome, None);
            if waiting {
                // The call ended while the caller waited: given up in the queue (unless
                // a fault explains it, which the outcome rules put first).
                self.left_queue_hung_up = true;
            }
        }
        if let Some((method, url, since)) = self.http.take() {
            self.push(
                end,
                "http",
                json!({
                    "method": method,
                    "url": url,
                    "outcome": "unfinished",
                    "latency_ms": millis(end.saturating_sub(since)),
                }),
            );
        }
        if !story.flow.is_empty() {
            self.record.flow = story.flow.clone();
        }
        self.record.tags = story.tags.clone();
        if let Some(r) = story.tag(REASON_TAG) {
            self.record.reason = Some(r.to_owned());
        }
        if self.answered {
            self.record.talk_ms = Some(millis(self.talk));
        }
        match &story.outcome {
            Some(Outcome::Transferred { .. }) => self.transferred = true,
            Some(Outcome::CallbackRequested { .. }) => self.callback = true,
            _ => {}
        }
        let outcome = self.outcome(story);
        self.record.outcome = Some(outcome);
        self.record.hung_up_by = self.facts.hung_up_by;
        self.record.ended_ms = Some(self.facts.ended_ms);
        let mut d = json!({ "outcome": outcome.as_str() });
        if let Some(h) = self.facts.hung_up_by {
            d["hung_up_by"] = h.as_str().into();
        }
        if let Some(f) = &self.facts.fault {
            d["fault"] = f.as_str().into();
        }
        let ended_ms = self.facts.ended_ms;
        self.push_ms(ended_ms, "ended", d);
        (self.record, self.events)
    }

    fn outcome(&self, story: &CallStory) -> CallOutcome {
        let flow_failed = matches!(&story.outcome, Some(Outcome::Failed(r)) if !callers_failure(r));
        if self.facts.interrupted {
            CallOutcome::Interrupted
        } else if self.transferred {
            CallOutcome::Transferred
        } else if self.answered {
            CallOutcome::Agent
        } else if self.callback {
            CallOutcome::Callback
        } else if self.voicemail {
            CallOutcome::Voicemail
        } else if self.resolved {
            CallOutcome::SelfService
        } else if self.facts.fault.is_some() || flow_failed {
            CallOutcome::Failed
        } else if self.left_queue_hung_up {
            CallOutcome::AbandonedInQueue
        } else {
            CallOutcome::AbandonedInMenu
        }
    }
}

/// Failures that are the caller's doing (no keys, wrong keys): the caller gave up in the
/// menu, the engine did nothing wrong.
fn callers_failure(r: &FailReason) -> bool {
    matches!(
        r,
        FailReason::RetriesExhausted { .. } | FailReason::NoCaller { .. }
    )
}

/// A key's use as the record names it, and where it led.
fn key_use(went: &KeyUse) -> (&'static str, Option<&str>) {
    match went {
        KeyUse::Buffered => ("buffered", None),
        KeyUse::Option { to } => ("option", Some(to)),
        KeyUse::Repeat => ("repeat", None),
        KeyUse::Global { to } => ("global", Some(to)),
        KeyUse::Back { to } => ("back", Some(to)),
        KeyUse::Digit => ("digit", None),
        KeyUse::Terminator => ("terminator", None),
        KeyUse::ConfirmYes => ("confirm_yes", None),
        KeyUse::ConfirmNo => ("confirm_no", None),
        KeyUse::Invalid => ("invalid", None),
        KeyUse::Ignored => ("ignored", None),
        KeyUse::Dropped => ("dropped", None),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::flow::load::{AnyPrompt, FlowSource, compile_flows};
    use crate::flow::machine::{Action, CallContext, Event, FlowMachine, RecordEnd};
    use crate::flow::story::StoryEntry;

    const START: i64 = 1_700_000_000_000;

    pub(crate) fn facts(hung_up_by: HungUpBy) -> CallFacts {
        CallFacts {
            call_id: "c1".into(),
            kind: CallKind::Inbound,
            caller: "+4930123".into(),
            dialed: "100".into(),
            flow: "main".into(),
            flow_version: "v1".into(),
            language: "en".into(),
            started_ms: START,
            answered_ms: Some(START + 100),
            ended_ms: START + 60_000,
            hung_up_by: Some(hung_up_by),
            fault: None,
            interrupted: false,
        }
    }

    fn story(events: Vec<(u64, StoryEvent)>, outcome: Outcome) -> CallStory {
        CallStory {
            call_id: "c1".into(),
            flow: "main".into(),
            entries: events
                .into_iter()
                .map(|(s, event)| StoryEntry {
                    at: Duration::from_secs(s),
                    event,
                })
                .collect(),
            tags: Vec::new(),
            outcome: Some(outcome),
        }
    }

    fn step(name: &str) -> StoryEvent {
        StoryEvent::StepEntered {
            flow: "main".into(),
            step: name.into(),
        }
    }

    fn kinds(events: &[CallEvent]) -> Vec<&str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    fn outcome_of(f: &CallFacts, s: &CallStory) -> CallOutcome {
        build(f, s).0.outcome.expect("an ended call has an outcome")
    }

    fn queued(agent: Option<&str>, finished: &str) -> Vec<(u64, StoryEvent)> {
        let mut v = vec![
            (1, step("advisor")),
            (
                1,
                StoryEvent::QueueJoined {
                    queue: "support".into(),
                },
            ),
        ];
        if let Some(a) = agent {
            v.push((41, StoryEvent::QueueAnswered { agent: a.into() }));
        }
        v.push((
            50,
            StoryEvent::QueueFinished {
                outcome: finished.into(),
                waited: Some(Duration::from_secs(40)),
            },
        ));
        v
    }

    #[test]
    fn a_caller_who_hangs_up_after_a_resolving_step_is_self_service() {
        let s = story(
            vec![
                (1, step("order_shipped")),
                (
                    1,
                    StoryEvent::Resolved {
                        reason: "order_status".into(),
                    },
                ),
                (5, step("anything_else")),
                (9, StoryEvent::CallerHungUp),
            ],
            Outcome::CallerHungUp,
        );
        let (r, events) = build(&facts(HungUpBy::Caller), &s);
        assert_eq!(r.outcome, Some(CallOutcome::SelfService));
        assert_eq!(r.last_step.as_deref(), Some("main/anything_else"));
        assert_eq!(kinds(&events), ["step", "resolved", "step", "ended"]);
        assert_eq!(events[1].at_ms, START + 1000);
        assert_eq!(events[1].detail, json!({ "reason": "order_status" }));
        assert_eq!(events.last().unwrap().detail["hung_up_by"], "caller");
        let seqs: Vec<u32> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
    }

    #[test]
    fn a_call_the_engine_ended_when_it_stopped_is_interrupted_even_after_a_resolving_step() {
        let s = story(
            vec![
                (1, step("order_shipped")),
                (
                    1,
                    StoryEvent::Resolved {
                        reason: "order_status".into(),
                    },
                ),
            ],
            Outcome::FlowHungUp,
        );
        let mut f = facts(HungUpBy::Engine);
        f.interrupted = true;
        f.fault = Some("engine stopped".into());
        let (r, events) = build(&f, &s);
        assert_eq!(r.outcome, Some(CallOutcome::Interrupted));
        assert_eq!(events.last().unwrap().detail["outcome"], "interrupted");
        assert_eq!(events.last().unwrap().detail["fault"], "engine stopped");
    }

    #[test]
    fn a_hang_up_in_a_menu_without_a_resolving_step_is_abandoned_in_menu() {
        let s = story(
            vec![(1, step("main_menu")), (3, StoryEvent::CallerHungUp)],
            Outcome::CallerHungUp,
        );
        assert_eq!(
            outcome_of(&facts(HungUpBy::Caller), &s),
            CallOutcome::AbandonedInMenu
        );
        // Running out of retries is the caller's doing, not a fault.
        let s = story(
            vec![(1, step("main_menu"))],
            Outcome::Failed(FailReason::RetriesExhausted {
                step: "main_menu".into(),
                last: crate::flow::story::FailureKind::NoInput,
            }),
        );
        assert_eq!(
            outcome_of(&facts(HungUpBy::Engine), &s),
            CallOutcome::AbandonedInMenu
        );
    }

    #[test]
    fn an_answered_call_is_agent_with_wait_and_talk() {
        let s = story(queued(Some("alice"), "agent_hung_up"), Outcome::FlowHungUp);
        let (r, events) = build(&facts(HungUpBy::Engine), &s);
        assert_eq!(r.outcome, Some(CallOutcome::Agent));
        assert_eq!(r.agent.as_deref(), Some("alice"));
        assert_eq!(r.queue.as_deref(), Some("support"));
        assert_eq!(r.wait_ms, Some(40_000));
        assert_eq!(r.talk_ms, Some(9_000));
        assert_eq!(
            kinds(&events),
            [
                "step",
                "queue_joined",
                "queue_left",
                "agent_answered",
                "agent_ended",
                "ended"
            ]
        );
        assert_eq!(events[2].detail["outcome"], "agent");
        assert_eq!(
            events[4].detail,
            json!({ "queue": "support", "agent": "alice", "talk_ms": 9000, "hold_ms": 0, "by": "agent" })
        );
    }

    fn at(s: u64, event: StoryEvent) -> (u64, StoryEvent) {
        (s, event)
    }

    fn rings(agent: &str) -> StoryEvent {
        StoryEvent::AgentRinging {
            agent: agent.into(),
        }
    }

    fn hold(on: bool, by: &str) -> StoryEvent {
        StoryEvent::Hold { on, by: by.into() }
    }

    /// bob rings 15 s and misses; alice rings 4 s and answers 19 s after joining; hold
    /// by alice 50-60 s, then caller 70-80 s and alice 75-85 s (one hold, 70-85 s); alice
    /// hangs up at 100 s with 30 s of wrap-up.
    pub(crate) fn agent_story() -> CallStory {
        story(
            vec![
                at(1, step("advisor")),
                at(
                    1,
                    StoryEvent::QueueJoined {
                        queue: "support".into(),
                    },
                ),
                at(1, rings("bob")),
                at(
                    16,
                    StoryEvent::AgentNoAnswer {
                        agent: "bob".into(),
                        reason: "ring_timeout".into(),
                    },
                ),
                at(16, rings("alice")),
                at(
                    20,
                    StoryEvent::QueueAnswered {
                        agent: "alice".into(),
                    },
                ),
                at(50, hold(true, "agent")),
                at(60, hold(false, "agent")),
                at(70, hold(true, "caller")),
                at(75, hold(true, "agent")),
                at(80, hold(false, "caller")),
                at(85, hold(false, "agent")),
                at(
                    100,
                    StoryEvent::WrapUp {
                        agent: "alice".into(),
                        wrap_up: Duration::from_secs(30),
                    },
                ),
                at(
                    100,
                    StoryEvent::QueueFinished {
                        outcome: "agent_hung_up".into(),
                        waited: Some(Duration::from_secs(19)),
                    },
                ),
            ],
            Outcome::FlowHungUp,
        )
    }

    #[test]
    fn an_agent_who_misses_then_one_who_answers_with_hold_and_wrap_up() {
        let (r, events) = build(&facts(HungUpBy::Agent), &agent_story());
        assert_eq!(r.outcome, Some(CallOutcome::Agent));
        assert_eq!(r.agent.as_deref(), Some("alice"));
        assert_eq!(r.wait_ms, Some(19_000));
        // 80 s with alice, 25 s of it on hold: 55 s of talk.
        assert_eq!(r.talk_ms, Some(55_000));
        assert_eq!(
            kinds(&events),
            [
                "step",
                "queue_joined",
                "agent_ringing",
                "agent_no_answer",
                "agent_ringing",
                "queue_left",
                "agent_answered",
                "hold",
                "hold_ended",
                "hold",
                "hold",
                "hold_ended",
                "hold_ended",
                "agent_ended",
                "ended"
            ]
        );
        assert_eq!(
            events[3].detail,
            json!({ "queue": "support", "agent": "bob", "reason": "ring_timeout", "ring_ms": 15000 })
        );
        assert_eq!(events[3].at_ms, START + 16_000);
        assert_eq!(
            events[6].detail,
            json!({ "queue": "support", "agent": "alice", "wait_ms": 19000, "ring_ms": 4000 })
        );
        assert_eq!(
            events[8].detail,
            json!({ "queue": "support", "agent": "alice", "by": "agent", "hold_ms": 10000 })
        );
        // The caller lets go while alice still holds: the hold goes on.
        assert_eq!(
            events[11].detail,
            json!({ "queue": "support", "agent": "alice", "by": "caller" })
        );
        assert_eq!(events[12].detail["hold_ms"], 15000);
        assert_eq!(
            events[13].detail,
            json!({
                "queue": "support", "agent": "alice", "talk_ms": 55000, "hold_ms": 25000,
                "wrap_up_ms": 30000, "by": "agent"
            })
        );
    }

    #[test]
    fn a_hold_still_on_when_the_caller_hangs_up_counts_up_to_the_end() {
        let mut s = agent_story();
        // The story up to the caller's hold at 70 s; the caller hangs up, held, at 90 s.
        s.entries.truncate(9);
        s.entries.push(StoryEntry {
            at: Duration::from_secs(90),
            event: StoryEvent::CallerHungUp,
        });
        let mut f = facts(HungUpBy::Caller);
        f.ended_ms = START + 90_000;
        let (r, events) = build(&f, &s);
        let ended = events.iter().find(|e| e.kind == "agent_ended").unwrap();
        // With alice 20-90 s; held 50-60 s and 70-90 s.
        assert_eq!(ended.detail["hold_ms"], 30000);
        assert_eq!(ended.detail["talk_ms"], 40000);
        assert_eq!(ended.detail["by"], "caller");
        assert!(ended.detail.get("wrap_up_ms").is_none(), "{events:?}");
        assert_eq!(r.talk_ms, Some(40_000));
    }

    #[test]
    fn a_transfer_that_connects_closes_the_agents_talk_segment_there() {
        let mut s = agent_story();
        s.entries.truncate(6); // up to alice's answer at 20 s
        s.entries.push(StoryEntry {
            at: Duration::from_secs(40),
            event: StoryEvent::TransferStarted {
                target: "sip:desk@x".into(),
            },
        });
        s.entries.push(StoryEntry {
            at: Duration::from_secs(45),
            event: StoryEvent::TransferFinished {
                outcome: "connected".into(),
            },
        });
        let (r, events) = build(&facts(HungUpBy::Caller), &s);
        assert_eq!(r.outcome, Some(CallOutcome::Transferred));
        let ended: Vec<_> = events.iter().filter(|e| e.kind == "agent_ended").collect();
        assert_eq!(ended.len(), 1, "{events:?}");
        assert_eq!(ended[0].at_ms, START + 45_000);
        assert_eq!(ended[0].detail["talk_ms"], 25000);
        assert_eq!(ended[0].detail["by"], "transfer");
        assert_eq!(r.talk_ms, Some(25_000));
    }

    #[test]
    fn a_call_back_names_the_call_that_asked_for_it() {
        let s = story(
            vec![
                at(
                    0,
                    StoryEvent::CallbackPlaced {
                        queue: "support".into(),
                        request: 7,
                        for_call: "asked-1".into(),
                        attempt: 2,
                    },
                ),
                at(
                    3,
                    StoryEvent::QueueJoined {
                        queue: "support".into(),
                    },
                ),
                at(
                    5,
                    StoryEvent::QueueAnswered {
                        agent: "alice".into(),
                    },
                ),
            ],
            Outcome::CallerHungUp,
        );
        let mut f = facts(HungUpBy::Caller);
        f.kind = CallKind::Callback;
        let (r, events) = build(&f, &s);
        assert_eq!(r.kind, CallKind::Callback);
        assert_eq!(r.outcome, Some(CallOutcome::Agent));
        assert_eq!(events[0].kind, "callback_placed");
        assert_eq!(
            events[0].detail,
            json!({ "queue": "support", "request": 7, "for_call": "asked-1", "attempt": 2 })
        );
    }

    #[test]
    fn an_agent_beats_a_resolving_step_and_a_survey_after_it() {
        let mut events = queued(Some("alice"), "caller_hung_up");
        events.push((50, StoryEvent::Resolved { reason: "x".into() }));
        let s = story(events, Outcome::CallerHungUp);
        assert_eq!(outcome_of(&facts(HungUpBy::Caller), &s), CallOutcome::Agent);
        let (_, ev) = build(&facts(HungUpBy::Caller), &s);
        assert_eq!(ev[4].detail["by"], "caller");
    }

    #[test]
    fn a_hang_up_while_waiting_is_abandoned_in_queue() {
        let s = story(queued(None, "caller_hung_up"), Outcome::CallerHungUp);
        let (r, events) = build(&facts(HungUpBy::Caller), &s);
        assert_eq!(r.outcome, Some(CallOutcome::AbandonedInQueue));
        assert_eq!(r.wait_ms, Some(40_000));
        assert_eq!(r.agent, None);
        assert_eq!(events[2].kind, "queue_left");
        assert_eq!(events[2].detail["outcome"], "caller_hung_up");
        // A call that drops while waiting, with no story of the end, too.
        let mut s = story(queued(None, "x"), Outcome::CallerHungUp);
        s.entries.pop();
        assert_eq!(
            outcome_of(&facts(HungUpBy::Caller), &s),
            CallOutcome::AbandonedInQueue
        );
    }

    #[test]
    fn a_callback_request_is_callback() {
        let s = story(
            queued(None, "callback"),
            Outcome::CallbackRequested {
                queue: "support".into(),
            },
        );
        let (r, events) = build(&facts(HungUpBy::Engine), &s);
        assert_eq!(r.outcome, Some(CallOutcome::Callback));
        assert!(kinds(&events).contains(&"callback_requested"));
    }

    #[test]
    fn a_voicemail_message_is_voicemail_and_a_survey_comment_is_not() {
        let rec = |voicemail: bool, secs: u64| StoryEvent::RecordingFinished {
            path: "/r/m.wav".into(),
            duration: Duration::from_secs(secs),
            reason: "terminator".into(),
            voicemail,
        };
        let s = story(
            vec![(1, step("voicemail")), (20, rec(true, 18))],
            Outcome::FlowHungUp,
        );
        let (r, events) = build(&facts(HungUpBy::Engine), &s);
        assert_eq!(r.outcome, Some(CallOutcome::Voicemail));
        assert_eq!(
            r.recordings,
            vec![RecordingRef {
                path: "/r/m.wav".into(),
                duration_ms: 18_000
            }]
        );
        assert_eq!(events[1].kind, "recording");
        // Silence only: no message was left.
        let s = story(vec![(20, rec(true, 0))], Outcome::FlowHungUp);
        assert_eq!(
            outcome_of(&facts(HungUpBy::Engine), &s),
            CallOutcome::AbandonedInMenu
        );
        let s = story(vec![(20, rec(false, 9))], Outcome::FlowHungUp);
        assert_eq!(
            outcome_of(&facts(HungUpBy::Engine), &s),
            CallOutcome::AbandonedInMenu
        );
    }

    #[test]
    fn a_connected_transfer_is_transferred_and_a_failed_one_is_failed() {
        let s = story(
            vec![
                (1, step("desk")),
                (
                    1,
                    StoryEvent::TransferStarted {
                        target: "sip:desk@x".into(),
                    },
                ),
                (
                    4,
                    StoryEvent::TransferFinished {
                        outcome: "connected".into(),
                    },
                ),
            ],
            Outcome::Transferred {
                target: "sip:desk@x".into(),
            },
        );
        let (r, events) = build(&facts(HungUpBy::Caller), &s);
        assert_eq!(r.outcome, Some(CallOutcome::Transferred));
        assert_eq!(
            events[2].detail,
            json!({ "target": "sip:desk@x", "outcome": "connected" })
        );
        let s = story(
            vec![(1, step("desk"))],
            Outcome::Failed(FailReason::TransferFailed {
                step: "desk".into(),
                outcome: "busy".into(),
            }),
        );
        assert_eq!(
            outcome_of(&facts(HungUpBy::Engine), &s),
            CallOutcome::Failed
        );
    }

    #[test]
    fn a_fault_or_a_refused_call_is_failed_unless_the_need_was_met() {
        let mut f = facts(HungUpBy::Engine);
        f.fault = Some("no media".into());
        let s = story(vec![(1, step("main_menu"))], Outcome::CallerHungUp);
        let (r, events) = build(&f, &s);
        assert_eq!(r.outcome, Some(CallOutcome::Failed));
        assert_eq!(events.last().unwrap().detail["fault"], "no media");
        let s = story(
            vec![(
                1,
                StoryEvent::Resolved {
                    reason: "hours".into(),
                },
            )],
            Outcome::CallerHungUp,
        );
        assert_eq!(outcome_of(&f, &s), CallOutcome::SelfService);
        // Refused: no story at all, never answered.
        f.answered_ms = None;
        f.fault = Some("refused 404".into());
        let (r, events) = build(&f, &CallStory::default());
        assert_eq!(r.outcome, Some(CallOutcome::Failed));
        assert_eq!(r.flow, "main");
        assert_eq!(kinds(&events), ["ended"]);
    }

    #[test]
    fn keys_http_tags_language_and_survey_become_events_and_fields() {
        let mut s = story(
            vec![
                (
                    1,
                    StoryEvent::Key {
                        key: '2',
                        went: KeyUse::Option {
                            to: "order_status".into(),
                        },
                        typed_ahead: false,
                    },
                ),
                (
                    2,
                    StoryEvent::NoInput {
                        step: "order_status".into(),
                        failures: 1,
                    },
                ),
                (
                    3,
                    StoryEvent::Invalid {
                        step: "order_status".into(),
                        input: "12".into(),
                        failures: 2,
                    },
                ),
                (
                    4,
                    StoryEvent::HttpRequested {
                        method: "GET".into(),
                        url: "http://shop/orders/1".into(),
                    },
                ),
                (
                    6,
                    StoryEvent::HttpFinished {
                        outcome: "ok".into(),
                    },
                ),
                (
                    6,
                    StoryEvent::Tagged {
                        name: "reason".into(),
                        value: "order_status".into(),
                    },
                ),
                (
                    7,
                    StoryEvent::LanguageChanged {
                        language: "de".into(),
                    },
                ),
                (
                    8,
                    StoryEvent::SurveyAnswered {
                        question: "satisfaction".into(),
                        score: 2,
                    },
                ),
                (
                    9,
                    StoryEvent::SurveyAnswered {
                        question: "satisfaction".into(),
                        score: 4,
                    },
                ),
            ],
            Outcome::FlowHungUp,
        );
        s.tags = vec![("reason".into(), "order_status".into())];
        let (r, events) = build(&facts(HungUpBy::Engine), &s);
        assert_eq!(
            kinds(&events),
            [
                "key", "no_input", "invalid", "http", "tag", "language", "survey", "survey",
                "ended"
            ]
        );
        assert_eq!(
            events[0].detail,
            json!({ "key": "2", "went": "option", "to": "order_status" })
        );
        assert_eq!(
            events[3].detail,
            json!({ "method": "GET", "url": "http://shop/orders/1", "outcome": "ok", "latency_ms": 2000 })
        );
        assert_eq!(r.reason.as_deref(), Some("order_status"));
        assert_eq!(r.language, "de");
        assert_eq!(
            r.survey,
            vec![SurveyAnswer {
                question: "satisfaction".into(),
                score: 4
            }]
        );
        assert_eq!(r.tags, s.tags);
        assert_eq!(r.outcome, Some(CallOutcome::AbandonedInMenu));
        assert_eq!(r.ended_ms, Some(START + 60_000));
    }

    // ------------------------------------------------------------ from real flow runs

    const FLOW: &str = r#"
start: menu
steps:
  menu:
    menu:
      prompt: main_menu
      options:
        "1": { next: hours, reason: opening_hours }
        "2": rating
        "3": voicemail
  hours:
    play: opening_hours_info
    resolved: opening_hours
    next: menu
  rating:
    collect: { prompt: survey_rating, into: score, max_digits: 1 }
    survey: satisfaction
    next: hangup
  voicemail:
    record: { prompt: leave_a_message, voicemail: true, next: hangup }
"#;

    struct Run {
        m: FlowMachine,
        now: Instant,
        t0: Instant,
    }

    impl Run {
        fn new() -> Run {
            let (set, diags) = compile_flows(
                vec![FlowSource {
                    name: "main".into(),
                    file: "flows/main.yaml".into(),
                    text: FLOW.into(),
                }],
                &AnyPrompt,
            );
            assert!(!crate::flow::diagnostic::has_errors(&diags), "{diags:?}");
            let t0 = Instant::now();
            let ctx = CallContext {
                call_id: "c1".into(),
                ..CallContext::default()
            };
            let mut m = FlowMachine::new(Arc::new(set), "main", ctx, t0).expect("flow");
            m.handle(t0, Event::Started);
            Run { m, now: t0, t0 }
        }

        /// Ends every prompt at once and answers a recording, one second later each.
        fn settle(&mut self) {
            while let Some(a) = self.m.poll_action() {
                self.now += Duration::from_secs(1);
                match a {
                    Action::Play { id, .. } => {
                        self.m.handle(self.now, Event::PromptFinished { id })
                    }
                    Action::Record { id, .. } => self.m.handle(
                        self.now,
                        Event::RecordDone {
                            id,
                            path: "/r/c1.wav".into(),
                            duration: Duration::from_secs(12),
                            reason: RecordEnd::Terminator,
                        },
                    ),
                    _ => {}
                }
            }
        }

        fn press(&mut self, keys: &str) {
            for k in keys.chars() {
                self.now += Duration::from_millis(300);
                self.m.handle(self.now, Event::Key(k));
                self.settle();
            }
        }

        fn hang_up(&mut self) {
            self.now += Duration::from_secs(1);
            self.m.handle(self.now, Event::CallerHangup);
            self.settle();
        }

        fn record(&self, hung_up_by: HungUpBy) -> (CallRecord, Vec<CallEvent>) {
            let mut f = facts(hung_up_by);
            f.ended_ms = START + i64::try_from((self.now - self.t0).as_millis()).unwrap();
            build(&f, self.m.story())
        }
    }

    #[test]
    fn a_flow_run_through_a_resolving_option_is_self_service_with_its_reason() {
        let mut r = Run::new();
        r.settle();
        r.press("1");
        let (rec, _) = r.record(HungUpBy::Caller);
        assert_eq!(rec.reason.as_deref(), Some("opening_hours"));
        r.hang_up();
        let (rec, events2) = r.record(HungUpBy::Caller);
        assert_eq!(rec.outcome, Some(CallOutcome::SelfService));
        assert_eq!(rec.reason.as_deref(), Some("opening_hours"));
        assert!(kinds(&events2).contains(&"resolved"));
    }

    #[test]
    fn a_flow_run_hung_up_in_the_menu_is_abandoned_in_menu() {
        let mut r = Run::new();
        r.settle();
        r.hang_up();
        let (rec, _) = r.record(HungUpBy::Caller);
        assert_eq!(rec.outcome, Some(CallOutcome::AbandonedInMenu));
        assert_eq!(rec.last_step.as_deref(), Some("main/menu"));
    }

    #[test]
    fn a_flow_run_survey_keeps_the_score_and_refuses_other_answers() {
        let mut r = Run::new();
        r.settle();
        r.press("2");
        r.press("7");
        r.press("4");
        let (rec, events) = r.record(HungUpBy::Engine);
        assert_eq!(
            rec.survey,
            vec![SurveyAnswer {
                question: "satisfaction".into(),
                score: 4
            }]
        );
        let invalid: Vec<_> = events.iter().filter(|e| e.kind == "invalid").collect();
        assert_eq!(invalid.len(), 1, "{events:?}");
        assert_eq!(invalid[0].detail["input"], "7");
    }

    #[test]
    fn a_flow_run_leaving_a_message_is_voicemail() {
        let mut r = Run::new();
        r.settle();
        r.press("3");
        let (rec, _) = r.record(HungUpBy::Engine);
        assert_eq!(rec.outcome, Some(CallOutcome::Voicemail));
        assert_eq!(rec.recordings.len(), 1);
    }
}
