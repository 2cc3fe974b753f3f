//! The `queue` step of the interpreter with a fake clock: what it asks of the shell,
//! every way a caller's time in a queue ends, keys while waiting, and the facts kept.

#[path = "common/flow_call.rs"]
mod flow_call;

use std::time::Duration;

use hotline::flow::check::FlowConfig;
use hotline::flow::machine::{Action, DEFAULT_GOODBYE_PROMPT, Event, QueueOutcome, RequestId};
use hotline::flow::story::{FailReason, KeyUse, Outcome, StoryEvent};
use serde_json::json;

use flow_call::{Call, SECS, compile, flow_set_with};

const DESK: &str = r##"
steps:
  hello:
    play: welcome
    next: wait
  wait:
    queue: support
    priority: 5
    skills: [billing, french]
    after: survey
    on_timeout: sorry
    on_callback: noted
    keys: { "2": voicemail, "#": sorry }
  survey:
    hangup: survey
  sorry:
    hangup: sorry
  noted:
    hangup: callback_noted
  voicemail:
    hangup: voicemail
"##;

const BARE: &str = r##"
steps:
  wait:
    queue: support
"##;

fn call(text: &str) -> Call {
    Call::start(
        &flow_set_with(&[("main", text)], &FlowConfig::default()),
        "main",
    )
}

fn errors_of(text: &str) -> String {
    compile(&[("main", text)], Some(&FlowConfig::default())).1
}

/// The queue's side of a test call.
trait InQueue {
    /// Plays the greeting, if any, to its end; the queue action that follows.
    fn queued(&mut self) -> RequestId;
    /// The queue reports the end of the caller's time in it, `waited` seconds later.
    fn done(&mut self, id: RequestId, outcome: QueueOutcome, waited: u64);
}

impl InQueue for Call {
    fn queued(&mut self) -> RequestId {
        let mut acts = self.actions();
        if let Some(Action::Play { .. }) = acts.first() {
            self.finish();
            acts = self.actions();
        }
        match acts.as_slice() {
            [Action::Queue { id, queue, .. }] if queue == "support" => *id,
            other => panic!("expected a Queue action, got {other:?}"),
        }
    }

    fn done(&mut self, id: RequestId, outcome: QueueOutcome, waited: u64) {
        self.wait(SECS(waited));
        self.send(Event::QueueDone {
            id,
            outcome,
            waited: SECS(waited),
        });
    }
}

#[test]
fn a_queue_step_asks_the_shell_with_priority_and_skills_and_sets_no_timer() {
    let mut c = call(DESK);
    c.hears(&["welcome"]);
    assert_eq!(
        c.actions(),
        [Action::Queue {
            id: RequestId(0),
            queue: "support".into(),
            priority: 5,
            skills: vec!["billing".into(), "french".into()],
        }]
    );
    assert_eq!(
        c.m().poll_timeout(),
        None,
        "the queue's max_wait bounds the wait"
    );
    assert!(c.events().contains(&StoryEvent::QueueJoined {
        queue: "support".into()
    }));
}

#[test]
fn the_agent_hanging_up_first_leads_to_after_with_the_facts_kept() {
    let mut c = call(DESK);
    let id = c.queued();
    c.send(Event::QueueConnected {
        id,
        agent: "alice".into(),
    });
    // Keys during the conversation are not the flow's.
    c.press("2");
    assert!(c.actions().is_empty());
    c.done(
        id,
        QueueOutcome::AgentHungUp {
            agent: "alice".into(),
        },
        95,
    );
    assert_eq!(c.heard(), ["survey"]);
    assert_eq!(
        c.m().vars().get("queue"),
        Some(
            &json!({ "name": "support", "outcome": "agent_hung_up", "wait": 95, "agent": "alice" })
        )
    );
    let events = c.events();
    assert!(events.contains(&StoryEvent::QueueAnswered {
        agent: "alice".into()
    }));
    assert!(events.contains(&StoryEvent::QueueFinished {
        outcome: "agent_hung_up".into(),
        waited: Some(Duration::from_secs(95)),
    }));
}

#[test]
fn without_after_the_call_ends_answered() {
    let mut c = call(BARE);
    let id = c.queued();
    c.done(
        id,
        QueueOutcome::AgentHungUp {
            agent: "bob".into(),
        },
        3,
    );
    assert_eq!(c.actions(), [Action::Hangup]);
    assert_eq!(
        c.outcome(),
        Some(Outcome::Answered {
            queue: "support".into(),
            agent: "bob".into()
        })
    );
}

#[test]
fn a_caller_who_hangs_up_ends_the_call() {
    let mut c = call(DESK);
    let id = c.queued();
    c.done(id, QueueOutcome::CallerHungUp, 30);
    assert!(c.actions().is_empty());
    assert!(c.m().is_ended());
    assert_eq!(c.outcome(), Some(Outcome::CallerHungUp));
    // A late second report changes nothing.
    c.done(id, QueueOutcome::Callback, 1);
    assert!(c.actions().is_empty());
}

#[test]
fn overflow_goes_to_on_timeout_or_the_polite_goodbye() {
    let mut c = call(DESK);
    let id = c.queued();
    c.done(
        id,
        QueueOutcome::Overflow {
            reason: "max_wait".into(),
        },
        600,
    );
    assert_eq!(c.heard(), ["sorry"]);

    let mut c = call(BARE);
    let id = c.queued();
    c.done(
        id,
        QueueOutcome::Overflow {
            reason: "full".into(),
        },
        0,
    );
    assert_eq!(c.heard(), [DEFAULT_GOODBYE_PROMPT]);
    assert_eq!(
        c.outcome(),
        Some(Outcome::Failed(FailReason::QueueOverflow {
            step: "wait".into(),
            queue: "support".into(),
            reason: "full".into()
        }))
    );
    let mut c = call(BARE);
    let id = c.queued();
    c.done(
        id,
        QueueOutcome::Failed("no queue named 'support'".into()),
        0,
    );
    assert_eq!(c.heard(), [DEFAULT_GOODBYE_PROMPT]);
}

#[test]
fn a_callback_request_goes_to_on_callback_or_says_goodbye() {
    let mut c = call(DESK);
    let id = c.queued();
    c.done(id, QueueOutcome::Callback, 120);
    assert_eq!(c.heard(), ["callback_noted"]);
    assert_eq!(
        c.outcome(),
        Some(Outcome::CallbackRequested {
            queue: "support".into()
        })
    );
    let mut c = call(BARE);
    let id = c.queued();
    c.done(id, QueueOutcome::Callback, 120);
    assert_eq!(c.heard(), [DEFAULT_GOODBYE_PROMPT]);
    assert_eq!(
        c.outcome(),
        Some(Outcome::CallbackRequested {
            queue: "support".into()
        })
    );
}

#[test]
fn a_key_of_the_step_leaves_the_line_and_others_are_ignored() {
    let mut c = call(DESK);
    let id = c.queued();
    c.press("5");
    assert!(c.actions().is_empty());
    c.press("2");
    let acts = c.actions();
    assert_eq!(acts[0], Action::LeaveQueue { id });
    assert!(matches!(&acts[1], Action::Play { .. }));
    let events = c.events();
    assert!(events.iter().any(|e| matches!(
        e,
        StoryEvent::Key {
            key: '5',
            went: KeyUse::Ignored,
            ..
        }
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        StoryEvent::Key { key: '2', went: KeyUse::Option { to }, .. } if to == "voicemail"
    )));
    assert_eq!(c.m().vars()["queue"]["outcome"], "left with key 2");
    // The queue's own report of the departure comes too late to matter.
    c.done(id, QueueOutcome::CallerHungUp, 0);
    assert!(!c.m().is_ended());
}

#[test]
fn check_refuses_unknown_key_targets_and_next() {
    let errors = errors_of(
        r##"
steps:
  wait:
    queue: support
    keys: { "2": voicemial }
    next: wait
"##,
    );
    assert!(errors.contains("voicemial"), "{errors}");
    assert!(errors.contains("does not use 'next'"), "{errors}");
    let errors = errors_of(
        r##"
steps:
  wait:
    play: welcome
    on_callback: wait
"##,
    );
    assert!(
        errors.contains("'on_callback' does not belong in a 'play' step"),
        "{errors}"
    );
    let errors = errors_of(
        r##"
steps:
  wait:
    queue: support
    keys: { "22": wait }
"##,
    );
    assert!(errors.contains("expected one key"), "{errors}");
}
