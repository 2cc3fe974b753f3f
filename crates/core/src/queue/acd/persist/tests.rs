use std::time::{Duration, Instant};

use crate::queue::acd::{Acd, AcdState, Action, Input};
use crate::queue::agent::AgentCommand;
use crate::queue::config::{AgentsConfig, QueuesConfig};
use crate::queue::store::{CallbackId, MemoryStore};

const CONFIG: &str = "\
queues:
  sales: { ring_timeout: 15s, wrap_up: 30s, announce: [position, wait], announce_every: 30s, max_wait: 10m, callback: { key: \"1\", offer_after_wait: 1m, attempts: 3, retry_after: 1m, dial: \"sip:{number}@127.0.0.1:5080\" } }
  support: { ring_timeout: 15s, wrap_up: 60s, announce_every: 20s, max_wait: 5m }
agents:
  alice: { uri: \"sip:alice@192.0.2.1\", queues: { sales: 0, support: 0 } }
  bob: { uri: \"sip:bob@192.0.2.2\", queues: { sales: 0 } }
  carol: { queues: { support: 0 } }
  dave: { uri: \"sip:dave@192.0.2.4\", queues: { sales: 0 } }
";

fn config(text: &str) -> (QueuesConfig, AgentsConfig) {
    #[derive(serde::Deserialize)]
    struct Both {
        queues: QueuesConfig,
        agents: AgentsConfig,
    }
    let b: Both = serde_saphyr::from_str(text).expect("config");
    (b.queues, b.agents)
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn drain(acd: &mut Acd) -> Vec<Action> {
    std::iter::from_fn(|| acd.poll_action()).collect()
}

fn join(call: &str, queue: &str, priority: i32, caller: &str) -> Input {
    Input::Join {
        call: call.into(),
        queue: queue.into(),
        priority,
        skills: vec![],
        caller: caller.into(),
    }
}

fn command(agent: &str, command: AgentCommand) -> Input {
    Input::Agent {
        agent: agent.into(),
        command,
    }
}

fn pause(reason: &str) -> AgentCommand {
    AgentCommand::Pause {
        reason: reason.into(),
    }
}

fn answered(call: &str, agent: &str) -> Input {
    Input::OfferAnswered {
        call: call.into(),
        agent: agent.into(),
    }
}

/// Two queues with callers of several priorities, one being rung for, an agent on call
/// who asked for a pause, one in wrap-up, a paused one, a callback request that failed
/// once and waits for its retry, and figures that are not zero. Returns it at `t0 + 90s`.
fn busy(t0: Instant) -> Acd {
    let (queues, agents) = config(CONFIG);
    let mut acd = Acd::new(&queues, &agents, Box::new(MemoryStore::new()), t0).expect("acd");
    let steps: Vec<(u64, Input)> = vec![
        (
            0,
            Input::AgentRegistered {
                agent: "carol".into(),
                contact: "sip:carol@192.0.2.3".into(),
                expires: Duration::from_secs(3600),
            },
        ),
        (0, command("bob", pause("meeting"))),
        (0, command("dave", pause("training"))),
        (0, join("c1", "sales", 0, "0301111111")),
        (2, answered("c1", "alice")),
        (3, command("alice", pause("break"))),
        (3, join("c2", "support", 0, "0302222222")),
        (5, answered("c2", "carol")),
        (6, join("c7", "sales", 9, "0307777777")),
        (
            7,
            Input::CallbackRequested {
                call: "c7".into(),
                number: None,
            },
        ),
        (65, Input::CallerLeft { call: "c2".into() }),
        (66, command("dave", AgentCommand::Resume)),
        (80, Input::CallbackFailed { id: CallbackId(1) }),
        (81, join("c3", "sales", 0, "0303333333")),
        // Dave declines once (a miss) and is rung again: nobody else is free.
        (
            82,
            Input::OfferFailed {
                call: "c3".into(),
                agent: "dave".into(),
                reason: crate::queue::acd::OfferFailure::Declined,
            },
        ),
        (82, join("c4", "sales", 5, "0304444444")),
        (83, join("c5", "support", 0, "0305555555")),
        (84, join("c6", "support", 2, "0306666666")),
        (84, join("c8", "support", 0, "0308888888")),
        (86, Input::CallerLeft { call: "c8".into() }),
    ];
    for (at, input) in steps {
        acd.handle(secs(t0, at), input.clone())
            .unwrap_or_else(|e| panic!("{input:?}: {e}"));
    }
    acd.handle_timeout(secs(t0, 90));
    drain(&mut acd);
    acd
}

/// Gives both the same input (or timeout) and checks they answer alike; the number of
/// actions.
fn step(original: &mut Acd, restored: &mut Acd, now: Instant, input: Option<Input>) -> usize {
    match input {
        Some(input) => {
            let a = original
                .handle(now, input.clone())
                .map_err(|e| e.to_string());
            let b = restored.handle(now, input).map_err(|e| e.to_string());
            assert_eq!(a, b);
        }
        None => {
            original.handle_timeout(now);
            restored.handle_timeout(now);
        }
    }
    let actions = drain(original);
    assert_eq!(actions, drain(restored));
    assert_eq!(original.snapshot(now), restored.snapshot(now));
    assert_eq!(original.poll_timeout(), restored.poll_timeout());
    actions.len()
}

fn round_trip(state: &AcdState) -> AcdState {
    let json = serde_json::to_string(state).expect("to json");
    let back: AcdState = serde_json::from_str(&json).expect("from json");
    assert_eq!(&back, state);
    back
}

/// Saved, written as JSON, read back and restored, the ACD answers every later input and
/// timeout exactly as the one that kept running.
#[test]
fn a_restored_acd_goes_on_exactly_like_the_original() {
    let t0 = Instant::now();
    let mut original = busy(t0);
    let t = secs(t0, 90);
    let snap = original.snapshot(t);
    // The scene is what the test says it is.
    let agent = |n: &str| {
        snap.agents
            .iter()
            .find(|a| a.name == n)
            .map(|a| (a.state.clone(), a.after_call.clone()))
    };
    assert_eq!(
        agent("alice"),
        Some(("on_call".into(), Some("pause".into())))
    );
    assert_eq!(agent("bob"), Some(("paused".into(), None)));
    assert_eq!(agent("carol"), Some(("wrap_up".into(), None)));
    assert_eq!(agent("dave"), Some(("ringing".into(), None)));
    assert_eq!(original.agent("dave").map(|a| a.misses()), Some(1));
    let sales = &snap.queues[0];
    assert_eq!(sales.name, "sales");
    let states: Vec<&str> = sales.waiting.iter().map(|w| w.state.as_str()).collect();
    assert_eq!(states, ["callback", "waiting", "ringing"]);
    assert_eq!(snap.queues[1].stats.abandoned, 1);
    assert_eq!(snap.queues[1].stats.answered, 1);

    let state = round_trip(&original.save(t));
    let (queues, agents) = config(CONFIG);
    let mut restored = Acd::restore(&queues, &agents, state, t, t).expect("restore");
    assert_eq!(restored.snapshot(t), snap);
    assert_eq!(restored.save(t), original.save(t));
    assert_eq!(restored.poll_timeout(), original.poll_timeout());

    let later: Vec<(u64, Option<Input>)> = vec![
        (97, None),
        (100, Some(answered("c4", "dave"))),
        (110, Some(Input::AgentLeft { call: "c1".into() })),
        (125, None),
        (130, Some(Input::CallerLost { call: "c5".into() })),
        (140, None),
        (141, Some(command("bob", AgentCommand::Resume))),
        (
            150,
            Some(Input::CallbackAnswered {
                id: CallbackId(1),
                call: "cb1".into(),
            }),
        ),
        (155, Some(Input::CallerLost { call: "cb1".into() })),
        (
            156,
            Some(Input::CallbackRequested {
                call: "c3".into(),
                number: Some("0309999999".into()),
            }),
        ),
    ];
    let mut seen = 0;
    for (at, input) in later {
        seen += step(&mut original, &mut restored, secs(t0, at), input);
    }
    // Then the timers alone, to the end of every deadline.
    for _ in 0..100 {
        let Some(next) = original.poll_timeout() else {
            break;
        };
        seen += step(&mut original, &mut restored, next, None);
    }
    assert!(seen > 10, "the later inputs did things: {seen} actions");
    let end = secs(t0, 2000);
    assert_eq!(original.save(end), restored.save(end));
}

/// Restored 10 s after the save: a ring deadline that passed meanwhile is a miss at the
/// first timeout, and the waits include the 10 s.
#[test]
fn deadlines_passed_while_no_leader_ran_fire_at_once() {
    let t0 = Instant::now();
    let original = busy(t0);
    let t = secs(t0, 90);
    let state = round_trip(&original.save(t));
    let c3_waited = original.snapshot(t).queues[0]
        .waiting
        .iter()
        .find(|w| w.call.as_deref() == Some("c3"))
        .map(|w| w.waited_secs);
    assert_eq!(c3_waited, Some(9.0));

    // Another node's clock: it restores at its own `now`, the save being 10 s ago.
    let now = Instant::now() + Duration::from_secs(500);
    let saved_at = now - Duration::from_secs(10);
    let (queues, agents) = config(CONFIG);
    let mut acd = Acd::restore(&queues, &agents, state, saved_at, now).expect("restore");
    let snap = acd.snapshot(now);
    let c3 = snap.queues[0]
        .waiting
        .iter()
        .find(|w| w.call.as_deref() == Some("c3"))
        .expect("c3 waits");
    assert_eq!(c3.waited_secs, 19.0);
    assert_eq!(c3.state, "ringing");
    assert!(acd.poll_timeout().is_some_and(|t| t <= now));

    acd.handle_timeout(now);
    let actions = drain(&mut acd);
    assert!(
        actions.contains(&Action::CancelOffer {
            call: "c3".into(),
            agent: "dave".into(),
            missed: true,
        }),
        "{actions:?}"
    );
    let dave = acd.agent("dave").expect("dave");
    assert_eq!(dave.misses(), 2);
    // Dave is offered the best caller next: c4, priority 5.
    assert!(actions.contains(&Action::Offer {
        call: "c4".into(),
        agent: "dave".into(),
        contact: "sip:dave@192.0.2.4".into(),
        queue: "sales".into(),
    }));
}

/// New callback requests after a restore get ids above the restored ones.
#[test]
fn callback_ids_go_on_above_the_restored_ones() {
    let t0 = Instant::now();
    let original = busy(t0);
    let t = secs(t0, 90);
    let (queues, agents) = config(CONFIG);
    let mut acd =
        Acd::restore(&queues, &agents, round_trip(&original.save(t)), t, t).expect("restore");
    acd.handle(
        t,
        Input::CallbackRequested {
            call: "c4".into(),
            number: None,
        },
    )
    .expect("request");
    let ids: Vec<u64> = acd.snapshot(t).queues[0]
        .waiting
        .iter()
        .filter_map(|w| w.callback)
        .collect();
    assert_eq!(ids, [1, 2]);
}

/// A queue no longer configured is dropped with its line; its callback requests count
/// as orphans, and the agent rung for one of its callers is free again.
#[test]
fn a_queue_removed_from_the_configuration_drops_its_line() {
    let t0 = Instant::now();
    let original = busy(t0);
    let t = secs(t0, 90);
    let state = round_trip(&original.save(t));
    let without_sales = CONFIG
        .lines()
        .filter(|l| !l.starts_with("  sales:"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("sales: 0, ", "")
        .replace("queues: { sales: 0 }", "queues: {}");
    let (queues, agents) = config(&without_sales);
    let mut acd = Acd::restore(&queues, &agents, state, t, t).expect("restore");
    let snap = acd.snapshot(t);
    let names: Vec<&str> = snap.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["support"]);
    assert_eq!(snap.queues[0].waiting.len(), 2);
    assert_eq!(acd.orphaned_callbacks(), 1);
    assert_eq!(acd.position("c4"), None);
    assert!(matches!(
        acd.handle(t, Input::CallerLeft { call: "c4".into() }),
        Err(crate::queue::acd::AcdError::UnknownCall { .. })
    ));
    // Dave rang for c3 of sales: free again. Alice still talks to c1.
    let dave = acd.agent("dave").expect("dave");
    assert_eq!(dave.state().name(), "available");
    assert_eq!(acd.agent("alice").expect("alice").state().name(), "on_call");
    // The restore says so to the shell (the agent's state changed).
    let actions = drain(&mut acd);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::AgentStateChanged { agent, .. } if agent == "dave")),
        "{actions:?}"
    );
}

/// Instants that cannot be represented are clamped, not a panic.
#[test]
fn offsets_out_of_range_are_clamped() {
    let base = Instant::now();
    let clock = super::Clock { base };
    assert_eq!(clock.offset(base + Duration::from_millis(1500)), 1500);
    assert_eq!(clock.offset(base), 0);
    if let Some(before) = base.checked_sub(Duration::from_millis(20)) {
        assert_eq!(clock.offset(before), -20);
        assert_eq!(clock.at(-20), before);
    }
    assert!(clock.at(i64::MAX) > base);
    assert!(clock.at(i64::MIN) <= base);
}
