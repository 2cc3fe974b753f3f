//! `CallerLost`, and the vocabulary as JSON.

use std::time::{Duration, Instant};

use super::{Acd, AcdError, Action, CallbackRefusal, Input, OfferFailure, OverflowReason};
use crate::queue::agent::AgentCommand;
use crate::queue::config::{AgentsConfig, QueuesConfig};
use crate::queue::store::{CallbackId, MemoryStore};

const CONFIG: &str = "\
queues:
  support: { ring_timeout: 15s, wrap_up: 20s, service_level: 30s, callback: { key: \"1\", offer_after_wait: 1m, attempts: 2, retry_after: 1m, dial: \"sip:{number}@127.0.0.1:5080\" } }
agents:
  alice: { uri: \"sip:alice@192.0.2.1\", queues: { support: 0 } }
  bob: { uri: \"sip:bob@192.0.2.2\", queues: { support: 0 } }
";

fn acd(now: Instant) -> Acd {
    #[derive(serde::Deserialize)]
    struct Both {
        queues: QueuesConfig,
        agents: AgentsConfig,
    }
    let b: Both = serde_saphyr::from_str(CONFIG).expect("config");
    Acd::new(&b.queues, &b.agents, Box::new(MemoryStore::new()), now).expect("acd")
}

fn drain(acd: &mut Acd) -> Vec<Action> {
    std::iter::from_fn(|| acd.poll_action()).collect()
}

fn join(call: &str) -> Input {
    Input::Join {
        call: call.into(),
        queue: "support".into(),
        priority: 0,
        skills: vec![],
        caller: "0301234567".into(),
    }
}

fn lost(call: &str) -> Input {
    Input::CallerLost { call: call.into() }
}

fn pause(agent: &str) -> Input {
    Input::Agent {
        agent: agent.into(),
        command: AgentCommand::Pause { reason: "x".into() },
    }
}

/// A waiting caller that is lost leaves without being abandoned: counted as lost, out of
/// the service level, no `Abandoned`.
#[test]
fn a_lost_waiting_caller_is_not_abandoned() {
    let t0 = Instant::now();
    let mut acd = acd(t0);
    acd.handle(t0, pause("alice")).expect("pause");
    acd.handle(t0, pause("bob")).expect("pause");
    acd.handle(t0, join("c1")).expect("join");
    drain(&mut acd);
    let t1 = t0 + Duration::from_secs(12);
    acd.handle(t1, lost("c1")).expect("lost");
    let actions = drain(&mut acd);
    assert_eq!(
        actions,
        [Action::Lost {
            call: "c1".into(),
            queue: "support".into(),
            waited: Duration::from_secs(12),
        }]
    );
    let stats = acd.stats("support").expect("stats");
    assert_eq!((stats.lost, stats.abandoned), (1, 0));
    assert_eq!(stats.service_level(), None);
    let snap = acd.snapshot(t1);
    assert_eq!(snap.queues[0].stats.lost, 1);
    assert!(snap.queues[0].waiting.is_empty());
    assert!(matches!(
        acd.handle(t1, lost("c1")),
        Err(AcdError::UnknownCall { .. })
    ));
}

/// The agent rung for a lost caller is released without a miss and takes the next one.
#[test]
fn a_lost_caller_being_rung_frees_the_agent_without_a_miss() {
    let t0 = Instant::now();
    let mut acd = acd(t0);
    acd.handle(t0, pause("bob")).expect("pause");
    acd.handle(t0, join("c1")).expect("join");
    acd.handle(t0, join("c2")).expect("join");
    drain(&mut acd);
    assert_eq!(acd.agent("alice").expect("alice").state().name(), "ringing");
    acd.handle(t0 + Duration::from_secs(3), lost("c1"))
        .expect("lost");
    let actions = drain(&mut acd);
    assert!(actions.contains(&Action::CancelOffer {
        call: "c1".into(),
        agent: "alice".into(),
        missed: false,
    }));
    assert!(actions.contains(&Action::Offer {
        call: "c2".into(),
        agent: "alice".into(),
        contact: "sip:alice@192.0.2.1".into(),
        queue: "support".into(),
    }));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Abandoned { .. }))
    );
    assert_eq!(acd.agent("alice").expect("alice").misses(), 0);
}

/// A lost caller talking to an agent ends the call as `AgentLeft` does: wrap-up.
#[test]
fn a_lost_bridged_caller_ends_the_call() {
    let t0 = Instant::now();
    let mut acd = acd(t0);
    acd.handle(t0, pause("bob")).expect("pause");
    acd.handle(t0, join("c1")).expect("join");
    acd.handle(
        t0,
        Input::OfferAnswered {
            call: "c1".into(),
            agent: "alice".into(),
        },
    )
    .expect("answered");
    drain(&mut acd);
    let t1 = t0 + Duration::from_secs(40);
    acd.handle(t1, lost("c1")).expect("lost");
    assert_eq!(acd.agent("alice").expect("alice").state().name(), "wrap_up");
    let stats = acd.stats("support").expect("stats");
    assert_eq!((stats.handled, stats.lost, stats.answered), (1, 0, 1));
    assert!(
        !drain(&mut acd)
            .iter()
            .any(|a| matches!(a, Action::Lost { .. } | Action::Abandoned { .. }))
    );
}

/// A caller called back and then lost: its request goes back in line as a failed
/// attempt, retried after `retry_after`, then given up when the attempts are used.
#[test]
fn a_lost_called_back_caller_is_a_failed_attempt() {
    let t0 = Instant::now();
    let mut acd = acd(t0);
    acd.handle(t0, pause("alice")).expect("pause");
    acd.handle(t0, pause("bob")).expect("pause");
    acd.handle(t0, join("c1")).expect("join");
    acd.handle(
        t0,
        Input::CallbackRequested {
            call: "c1".into(),
            number: None,
        },
    )
    .expect("callback");
    let resume = Input::Agent {
        agent: "alice".into(),
        command: AgentCommand::Resume,
    };
    acd.handle(t0, resume).expect("resume");
    let id = CallbackId(1);
    assert!(
        drain(&mut acd)
            .iter()
            .any(|a| matches!(a, Action::PlaceCallback { id: i, attempt: 1, .. } if *i == id))
    );
    acd.handle(
        t0,
        Input::CallbackAnswered {
            id,
            call: "cb1".into(),
        },
    )
    .expect("answered");
    drain(&mut acd);
    let t1 = t0 + Duration::from_secs(5);
    acd.handle(t1, lost("cb1")).expect("lost");
    let actions = drain(&mut acd);
    assert!(actions.contains(&Action::Lost {
        call: "cb1".into(),
        queue: "support".into(),
        waited: Duration::from_secs(5),
    }));
    let snap = acd.snapshot(t1);
    let w = &snap.queues[0].waiting;
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].state.as_str(), w[0].callback), ("callback", Some(1)));
    assert_eq!(snap.queues[0].stats.lost, 0);
    // Retried after a minute.
    assert_eq!(acd.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    let t2 = t1 + Duration::from_secs(60);
    acd.handle_timeout(t2);
    assert!(
        drain(&mut acd)
            .iter()
            .any(|a| matches!(a, Action::PlaceCallback { attempt: 2, .. }))
    );
    // The second (last) attempt lost as well: given up.
    acd.handle(
        t2,
        Input::CallbackAnswered {
            id,
            call: "cb2".into(),
        },
    )
    .expect("answered");
    acd.handle(t2, lost("cb2")).expect("lost");
    assert!(
        drain(&mut acd)
            .iter()
            .any(|a| matches!(a, Action::CallbackGivenUp { .. }))
    );
    assert!(acd.snapshot(t2).queues[0].waiting.is_empty());
}

fn round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value).expect("to json");
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(&back, value, "{json}");
}

#[test]
fn every_input_and_action_goes_through_json() {
    let d = Duration::from_millis(1500);
    let inputs = [
        join("c1"),
        Input::CallerLeft { call: "c1".into() },
        Input::AgentLeft { call: "c1".into() },
        lost("c1"),
        Input::CallbackRequested {
            call: "c1".into(),
            number: Some("0301".into()),
        },
        Input::CallbackAnswered {
            id: CallbackId(7),
            call: "c2".into(),
        },
        Input::CallbackFailed { id: CallbackId(7) },
        Input::AgentRegistered {
            agent: "alice".into(),
            contact: "sip:a@h".into(),
            expires: d,
        },
        Input::AgentUnregistered {
            agent: "alice".into(),
        },
        pause("alice"),
        Input::Agent {
            agent: "alice".into(),
            command: AgentCommand::Login,
        },
        Input::Agent {
            agent: "alice".into(),
            command: AgentCommand::Logout,
        },
        Input::Agent {
            agent: "alice".into(),
            command: AgentCommand::Resume,
        },
        Input::OfferAnswered {
            call: "c1".into(),
            agent: "alice".into(),
        },
        Input::OfferFailed {
            call: "c1".into(),
            agent: "alice".into(),
            reason: OfferFailure::Busy,
        },
        Input::OfferFailed {
            call: "c1".into(),
            agent: "alice".into(),
            reason: OfferFailure::Declined,
        },
        Input::OfferFailed {
            call: "c1".into(),
            agent: "alice".into(),
            reason: OfferFailure::Error,
        },
    ];
    for input in &inputs {
        round_trip(input);
    }
    let actions = [
        Action::Offer {
            call: "c1".into(),
            agent: "alice".into(),
            contact: "sip:a@h".into(),
            queue: "support".into(),
        },
        Action::CancelOffer {
            call: "c1".into(),
            agent: "alice".into(),
            missed: true,
        },
        Action::Connect {
            call: "c1".into(),
            agent: "alice".into(),
            queue: "support".into(),
            waited: d,
            wrap_up: d,
        },
        Action::Announce {
            call: "c1".into(),
            queue: "support".into(),
            prompt: Some("still_waiting".into()),
            position: Some(3),
            ewt: Some(d),
        },
        Action::Announce {
            call: "c1".into(),
            queue: "support".into(),
            prompt: None,
            position: None,
            ewt: None,
        },
        Action::OfferCallback {
            call: "c1".into(),
            key: '#',
        },
        Action::CallbackRefused {
            call: "c1".into(),
            queue: "support".into(),
            number: "0301".into(),
            reason: CallbackRefusal::NotAllowed,
        },
        Action::CallbackRefused {
            call: "c1".into(),
            queue: "support".into(),
            number: "0301".into(),
            reason: CallbackRefusal::AlreadyPending,
        },
        Action::CallbackRefused {
            call: "c1".into(),
            queue: "support".into(),
            number: "0301".into(),
            reason: CallbackRefusal::DailyCap,
        },
        Action::PlaceCallback {
            id: CallbackId(7),
            number: "0301".into(),
            queue: "support".into(),
            for_call: "c1".into(),
            attempt: 2,
        },
        Action::CallbackGivenUp {
            id: CallbackId(7),
            number: "0301".into(),
            queue: "support".into(),
        },
        Action::Overflow {
            call: "c1".into(),
            queue: "support".into(),
            reason: OverflowReason::MaxWait,
            waited: d,
        },
        Action::Overflow {
            call: "c1".into(),
            queue: "support".into(),
            reason: OverflowReason::Full,
            waited: d,
        },
        Action::Overflow {
            call: "c1".into(),
            queue: "support".into(),
            reason: OverflowReason::NoAgents,
            waited: d,
        },
        Action::Abandoned {
            call: "c1".into(),
            queue: "support".into(),
            waited: d,
        },
        Action::Lost {
            call: "c1".into(),
            queue: "support".into(),
            waited: d,
        },
        Action::AgentStateChanged {
            agent: "alice".into(),
            state: "paused".into(),
            reason: Some("lunch".into()),
        },
        Action::StoreFailed {
            message: "disk".into(),
        },
    ];
    for action in &actions {
        round_trip(action);
    }
    // The tag is `type`, in snake case.
    let json = serde_json::to_value(&actions[1]).expect("json");
    assert_eq!(json["type"], "cancel_offer");
    let json = serde_json::to_value(&inputs[9]).expect("json");
    assert_eq!(json["command"]["type"], "pause");
}

/// The snapshot reads back from its JSON (an admin API client, another node).
#[test]
fn the_snapshot_goes_through_json() {
    let t0 = Instant::now();
    let mut acd = acd(t0);
    acd.handle(t0, join("c1")).expect("join");
    let snap = acd.snapshot(t0 + Duration::from_secs(2));
    round_trip(&snap);
}
