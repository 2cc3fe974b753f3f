//! The ACD on a fake clock: strategies, ring timeouts, misses, wrap-up, priority,
//! announcements, callbacks, abandon, overflow, the estimated wait, figures, snapshot.

use std::time::{Duration, Instant};

use super::acd::{Acd, Action, CallbackRefusal, Input, OfferFailure, OverflowReason};
use super::agent::{AgentCommand, MISSED_CALLS_REASON};
use super::config::{AgentsConfig, QueuesConfig};
use super::store::{CallbackStore, MemoryStore, SqliteStore};

struct World {
    acd: Acd,
    now: Instant,
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn config(text: &str) -> (QueuesConfig, AgentsConfig) {
    #[derive(serde::Deserialize)]
    struct Both {
        queues: QueuesConfig,
        agents: AgentsConfig,
    }
    let b: Both = serde_saphyr::from_str(text).unwrap();
    let problems = super::config::check(&b.queues, &b.agents);
    assert!(problems.is_empty(), "{problems:?}");
    (b.queues, b.agents)
}

fn world_with(text: &str, store: Box<dyn CallbackStore>) -> World {
    let (q, a) = config(text);
    let now = Instant::now();
    World {
        acd: Acd::new(&q, &a, store, now).unwrap(),
        now,
    }
}

/// A national number of its own for each call ("c2" -> "030099050"), one that the
/// default `callback.allowed` lets through.
fn caller_number(call: &str) -> String {
    let digits: String = call.bytes().map(|b| format!("{b:03}")).collect();
    format!("030{digits}")
}

fn world(text: &str) -> World {
    world_with(text, Box::new(MemoryStore::new()))
}

impl World {
    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.acd.poll_action()).collect()
    }

    /// The actions other than agent state changes.
    fn said(&mut self) -> Vec<Action> {
        self.actions()
            .into_iter()
            .filter(|a| !matches!(a, Action::AgentStateChanged { .. }))
            .collect()
    }

    /// The actions other than agent state changes and announcements.
    fn plain(&mut self) -> Vec<Action> {
        self.said()
            .into_iter()
            .filter(|a| !matches!(a, Action::Announce { .. }))
            .collect()
    }

    fn input(&mut self, input: Input) {
        self.acd.handle(self.now, input).unwrap();
    }

    fn join(&mut self, call: &str, queue: &str) {
        self.join_with(call, queue, 0, &[]);
    }

    fn join_with(&mut self, call: &str, queue: &str, priority: i32, skills: &[&str]) {
        self.input(Input::Join {
            call: call.into(),
            queue: queue.into(),
            priority,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            caller: caller_number(call),
        });
    }

    fn answer(&mut self, call: &str, agent: &str) {
        self.input(Input::OfferAnswered {
            call: call.into(),
            agent: agent.into(),
        });
    }

    fn agent_hangs_up(&mut self, call: &str) {
        self.input(Input::AgentLeft { call: call.into() });
    }

    fn command(&mut self, agent: &str, command: AgentCommand) {
        self.input(Input::Agent {
            agent: agent.into(),
            command,
        });
    }

    /// Moves the clock to `at`, firing every timeout on the way, in order.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(t) = self.acd.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.acd.handle_timeout(self.now);
        }
        self.now = end;
    }

    /// The agents offered `call` in the actions given.
    fn offered(actions: &[Action], call: &str) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Offer { call: c, agent, .. } if c == call => Some(agent.clone()),
                _ => None,
            })
            .collect()
    }

    fn state(&self, agent: &str) -> &'static str {
        self.acd.agent(agent).unwrap().state().name()
    }

    /// Serves `call` with `agent` for `talk`, then the agent hangs up.
    fn serve(&mut self, call: &str, agent: &str, talk: Duration) {
        self.answer(call, agent);
        self.advance(talk);
        self.agent_hangs_up(call);
    }
}

const THREE: &str = r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
  bob:   { uri: "sip:bob@192.0.2.2", queues: { support: 0 } }
  carol: { uri: "sip:carol@192.0.2.3", queues: { support: 0 } }
queues:
  support: { strategy: STRATEGY }
"#;

fn three(strategy: &str) -> World {
    world(&THREE.replace("STRATEGY", strategy))
}

#[test]
fn longest_idle_offers_the_agent_free_the_longest() {
    let mut w = three("longest_idle");
    // Make everyone busy, then free them in the order carol, alice, bob.
    for (call, agent) in [("c1", "alice"), ("c2", "bob"), ("c3", "carol")] {
        w.join(call, "support");
        assert_eq!(World::offered(&w.said(), call), [agent]);
        w.answer(call, agent);
    }
    for call in ["c3", "c1", "c2"] {
        w.advance(secs(10));
        w.agent_hangs_up(call);
    }
    w.said();
    w.join("c4", "support");
    assert_eq!(World::offered(&w.said(), "c4"), ["carol"]);
}

#[test]
fn round_robin_goes_round() {
    let mut w = three("round_robin");
    let mut got = Vec::new();
    for i in 0..4 {
        let call = format!("c{i}");
        w.join(&call, "support");
        let agent = World::offered(&w.said(), &call).remove(0);
        w.serve(&call, &agent, secs(5));
        got.push(agent);
    }
    assert_eq!(got, ["alice", "bob", "carol", "alice"]);
}

#[test]
fn fewest_calls_offers_the_agent_with_fewest_answered() {
    let mut w = three("fewest_calls");
    // alice takes two calls, bob one; carol none, but she is busy with the third.
    for (call, agent) in [("c1", "alice"), ("c2", "bob"), ("c3", "carol")] {
        w.join(call, "support");
        assert_eq!(World::offered(&w.said(), call), [agent]);
        w.answer(call, agent);
    }
    w.agent_hangs_up("c1");
    w.join("c4", "support");
    assert_eq!(World::offered(&w.said(), "c4"), ["alice"]);
    w.answer("c4", "alice");
    w.agent_hangs_up("c4");
    w.agent_hangs_up("c2");
    w.said();
    // alice: 2 calls, bob: 1, carol busy: bob, although alice was idle longer.
    w.advance(secs(1));
    w.join("c5", "support");
    assert_eq!(World::offered(&w.said(), "c5"), ["bob"]);
}

#[test]
fn ring_all_rings_everyone_and_the_first_answer_wins() {
    let mut w = three("ring_all");
    w.join("c1", "support");
    assert_eq!(World::offered(&w.said(), "c1"), ["alice", "bob", "carol"]);
    w.answer("c1", "bob");
    let said = w.said();
    assert!(said.contains(&Action::CancelOffer {
        call: "c1".into(),
        agent: "alice".into(),
        missed: false,
    }));
    assert!(said.contains(&Action::CancelOffer {
        call: "c1".into(),
        agent: "carol".into(),
        missed: false,
    }));
    assert!(matches!(&said[2], Action::Connect { agent, .. } if agent == "bob"));
    assert_eq!(w.state("alice"), "available");
    assert_eq!(w.state("bob"), "on_call");
    // A late answer of a cancelled offer is refused: the shell hangs that leg up.
    assert!(
        w.acd
            .handle(
                w.now,
                Input::OfferAnswered {
                    call: "c1".into(),
                    agent: "alice".into()
                }
            )
            .is_err()
    );
}

#[test]
fn skills_needs_the_skills_and_prefers_the_lowest_penalty() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 5 }, skills: [french, billing] }
  bob:   { uri: "sip:bob@192.0.2.2", queues: { support: 1 }, skills: [billing] }
  carol: { uri: "sip:carol@192.0.2.3", queues: { support: 0 } }
queues:
  support: { strategy: skills }
"#,
    );
    w.join_with("c1", "support", 0, &["billing"]);
    assert_eq!(World::offered(&w.said(), "c1"), ["bob"]);
    w.join_with("c2", "support", 0, &["french"]);
    assert_eq!(World::offered(&w.said(), "c2"), ["alice"]);
    w.join_with("c3", "support", 0, &["german"]);
    assert!(World::offered(&w.said(), "c3").is_empty());
    w.join("c4", "support");
    assert_eq!(World::offered(&w.said(), "c4"), ["carol"]);
}

#[test]
fn ring_timeout_tries_the_next_agent_and_misses_pause_the_agent() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
  bob:   { uri: "sip:bob@192.0.2.2", queues: { support: 0 } }
queues:
  support: { ring_timeout: 10s, max_misses: 2 }
"#,
    );
    w.join("c1", "support");
    assert_eq!(World::offered(&w.said(), "c1"), ["alice"]);
    w.advance(secs(10));
    let said = w.said();
    assert_eq!(
        said[0],
        Action::CancelOffer {
            call: "c1".into(),
            agent: "alice".into(),
            missed: true,
        }
    );
    assert_eq!(World::offered(&said, "c1"), ["bob"]);
    assert_eq!(w.acd.agent("alice").unwrap().misses(), 1);
    // bob declines: everyone free has missed, so alice rings again, misses again, and
    // is paused after her second miss in a row.
    w.input(Input::OfferFailed {
        call: "c1".into(),
        agent: "bob".into(),
        reason: OfferFailure::Declined,
    });
    assert_eq!(World::offered(&w.said(), "c1"), ["alice"]);
    w.advance(secs(10));
    assert_eq!(w.state("alice"), "paused");
    let snap = w.acd.snapshot(w.now);
    let alice = snap.agents.iter().find(|a| a.name == "alice").unwrap();
    assert_eq!(alice.reason.as_deref(), Some(MISSED_CALLS_REASON));
    // bob rings again; answering resets his misses.
    w.answer("c1", "bob");
    assert_eq!(w.acd.agent("bob").unwrap().misses(), 0);
    // Resume brings alice back.
    w.command("alice", AgentCommand::Resume);
    assert_eq!(w.state("alice"), "available");
}

#[test]
fn wrap_up_is_honoured_across_all_queues_of_the_agent() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0, sales: 0 } }
queues:
  support: { wrap_up: 10s }
  sales: {}
"#,
    );
    w.join("c1", "support");
    w.said();
    w.serve("c1", "alice", secs(60));
    assert_eq!(w.state("alice"), "wrap_up");
    w.join("c2", "sales");
    assert!(World::offered(&w.said(), "c2").is_empty());
    w.advance(secs(9));
    assert!(World::offered(&w.said(), "c2").is_empty());
    w.advance(secs(1));
    assert_eq!(World::offered(&w.said(), "c2"), ["alice"]);
    // After a transfer (the agent's leg ends), the wrap-up of the call's queue applies;
    // sales has none.
    w.answer("c2", "alice");
    w.agent_hangs_up("c2");
    assert_eq!(w.state("alice"), "available");
}

#[test]
fn higher_priority_is_served_first_then_the_earlier_caller() {
    let mut w = world(
        r#"
agents:
  alice: { password: "x", queues: { support: 0 } }
queues:
  support: {}
"#,
    );
    w.join_with("early", "support", 0, &[]);
    w.join_with("vip", "support", 5, &[]);
    w.join_with("late", "support", 0, &[]);
    assert_eq!(w.acd.position("vip"), Some(1));
    assert_eq!(w.acd.position("early"), Some(2));
    assert_eq!(w.acd.position("late"), Some(3));
    w.said();
    w.input(Input::AgentRegistered {
        agent: "alice".into(),
        contact: "sip:alice@192.0.2.7:5062".into(),
        expires: secs(3600),
    });
    let said = w.said();
    assert_eq!(World::offered(&said, "vip"), ["alice"]);
    assert!(
        matches!(&said[0], Action::Offer { contact, .. } if contact == "sip:alice@192.0.2.7:5062")
    );
}

#[test]
fn position_is_announced_when_it_changed_and_never_while_offered() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
queues:
  support: { announce_every: 30s, announce: [position], ring_timeout: 60s }
"#,
    );
    w.command(
        "alice",
        AgentCommand::Pause {
            reason: "lunch".into(),
        },
    );
    w.join("c1", "support");
    w.join("c2", "support");
    let said = w.said();
    let positions: Vec<(String, Option<usize>)> = said
        .iter()
        .filter_map(|a| match a {
            Action::Announce { call, position, .. } => Some((call.clone(), *position)),
            _ => None,
        })
        .collect();
    assert_eq!(positions, [("c1".into(), Some(1)), ("c2".into(), Some(2))]);
    // Nothing changed: nothing said at the periodic time.
    w.advance(secs(30));
    assert!(w.said().is_empty());
    // c1 leaves; at the next period c2 hears it is first now.
    w.advance(secs(5));
    w.input(Input::CallerLeft { call: "c1".into() });
    w.said();
    w.advance(secs(25));
    assert_eq!(
        w.said(),
        [Action::Announce {
            call: "c2".into(),
            queue: "support".into(),
            prompt: None,
            position: Some(1),
            ewt: None
        }]
    );
    // c3 joins behind; alice is back and rings for c2: c2 hears nothing while offered.
    w.join("c3", "support");
    w.command("alice", AgentCommand::Resume);
    let said = w.said();
    assert_eq!(World::offered(&said, "c2"), ["alice"]);
    w.advance(secs(30));
    let said = w.said();
    assert!(
        !said
            .iter()
            .any(|a| matches!(a, Action::Announce { call, .. } if call == "c2")),
        "{said:?}"
    );
    // The agent answers during the announcement period: connected at once.
    w.answer("c2", "alice");
    assert!(matches!(&w.said()[0], Action::Connect { call, .. } if call == "c2"));
    // c3 moved from 2 to 1: told at its next period.
    w.advance(secs(30));
    assert!(
        w.said()
            .iter()
            .any(|a| matches!(a, Action::Announce { call, position: Some(1), .. } if call == "c3"))
    );
}

#[test]
fn the_estimated_wait_comes_from_recent_handle_times() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
  bob:   { uri: "sip:bob@192.0.2.2", queues: { support: 0 } }
queues:
  support: { announce: [position, wait], wrap_up: 30s }
"#,
    );
    // Two handled calls: 90s + 30s wrap-up and 210s + 30s: AHT 180s.
    w.join("a", "support");
    w.join("b", "support");
    w.said();
    w.answer("a", "alice");
    w.answer("b", "bob");
    w.advance(secs(90));
    w.agent_hangs_up("a");
    w.advance(secs(120));
    w.agent_hangs_up("b");
    w.command("alice", AgentCommand::Pause { reason: "x".into() });
    w.command("bob", AgentCommand::Pause { reason: "x".into() });
    w.command("bob", AgentCommand::Resume);
    w.said();
    // bob is busy with one call, alice paused: one agent serving.
    w.join("c", "support");
    w.answer("c", "bob");
    w.said();
    for call in ["d", "e", "f"] {
        w.join(call, "support");
    }
    let ewts: Vec<Option<Duration>> = w
        .said()
        .iter()
        .filter_map(|a| match a {
            Action::Announce { ewt, .. } => Some(*ewt),
            _ => None,
        })
        .collect();
    assert_eq!(ewts, [Some(secs(180)), Some(secs(360)), Some(secs(540))]);
    // With alice back, two agents serve: the third caller now expects 270s.
    w.command("alice", AgentCommand::Resume);
    let snap = w.acd.snapshot(w.now);
    let q = &snap.queues[0];
    // alice took d; e and f wait: a new caller would be fourth... third in line.
    assert_eq!(q.waiting.len(), 3);
    assert_eq!(q.estimated_wait_secs, Some(360.0));
}

#[test]
fn callback_keeps_the_place_and_calls_back_at_the_front() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
queues:
  support: { announce: [wait], callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@127.0.0.1:5080" }, wrap_up: 0s }
"#,
    );
    // One handled call of 100s gives an AHT for the estimate.
    w.join("warm", "support");
    w.said();
    w.serve("warm", "alice", secs(100));
    w.command("alice", AgentCommand::Pause { reason: "x".into() });
    w.said();
    w.join("c1", "support");
    assert_eq!(w.acd.callback_key("c1"), None);
    w.said();
    // Position 1 with 0 serving agents: no estimate, no offer. Bring alice back busy.
    w.command("alice", AgentCommand::Resume);
    w.said();
    w.answer("c1", "alice");
    w.said();
    w.join("c2", "support");
    w.join("c3", "support");
    let said = w.said();
    // c2: 100s, c3: 200s, both over a minute.
    assert!(said.contains(&Action::OfferCallback {
        call: "c2".into(),
        key: '1'
    }));
    assert_eq!(w.acd.callback_key("c2"), Some('1'));
    w.input(Input::CallbackRequested {
        call: "c2".into(),
        number: None,
    });
    assert_eq!(w.acd.position("c2"), None);
    assert_eq!(w.acd.position("c3"), Some(2), "the request holds place 1");
    // alice is free: the request is at the front, so the caller is called back first
    // and alice is held for it.
    w.agent_hangs_up("c1");
    let said = w.said();
    let Some(Action::PlaceCallback {
        id,
        number,
        queue,
        for_call,
        attempt,
    }) = said.first().cloned()
    else {
        panic!("{said:?}");
    };
    assert_eq!(
        (number.as_str(), queue.as_str()),
        (caller_number("c2").as_str(), "support")
    );
    // The call back names the call that asked, and counts its attempts.
    assert_eq!((for_call.as_str(), attempt), ("c2", 1));
    assert!(World::offered(&said, "c3").is_empty());
    // Not answered: tried again later; c3 gets alice meanwhile.
    w.input(Input::CallbackFailed { id });
    assert_eq!(World::offered(&w.said(), "c3"), ["alice"]);
    w.serve("c3", "alice", secs(10));
    w.said();
    w.advance(secs(120));
    let said = w.said();
    assert!(
        matches!(&said[..], [Action::PlaceCallback { attempt: 2, .. }]),
        "{said:?}"
    );
    w.input(Input::CallbackAnswered {
        id,
        call: "cb-1".into(),
    });
    assert_eq!(World::offered(&w.said(), "cb-1"), ["alice"]);
    w.answer("cb-1", "alice");
    let stats = w.acd.stats("support").unwrap();
    assert_eq!(stats.callbacks_requested, 1);
}

#[test]
fn callbacks_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("hotline-acd-cb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("queue.sqlite");
    let _ = std::fs::remove_file(&path);
    let text = r#"
agents:
  alice: { password: "x", queues: { support: 0 } }
queues:
  support: { callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@127.0.0.1:5080" } }
"#;
    {
        let mut w = world_with(text, Box::new(SqliteStore::open(&path).unwrap()));
        for c in ["c1", "c2", "c3"] {
            w.join(c, "support");
            w.advance(secs(10));
        }
        w.input(Input::CallbackRequested {
            call: "c3".into(),
            number: Some("0303330000".into()),
        });
        w.input(Input::CallbackRequested {
            call: "c1".into(),
            number: Some("0301110000".into()),
        });
    }
    let mut w = world_with(text, Box::new(SqliteStore::open(&path).unwrap()));
    let snap = w.acd.snapshot(w.now);
    let line: Vec<(&str, &str, f64)> = snap.queues[0]
        .waiting
        .iter()
        .map(|e| (e.caller.as_str(), e.state.as_str(), e.waited_secs))
        .collect();
    assert_eq!(
        line,
        [
            ("0301110000", "callback", 30.0),
            ("0303330000", "callback", 10.0)
        ]
    );
    w.input(Input::AgentRegistered {
        agent: "alice".into(),
        contact: "sip:alice@192.0.2.1".into(),
        expires: secs(60),
    });
    let said = w.said();
    assert!(
        matches!(&said[..], [Action::PlaceCallback { number, .. }] if number == "0301110000"),
        "{said:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_caller_who_leaves_is_abandoned_with_its_wait() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
queues:
  support: { ring_timeout: 30s }
"#,
    );
    w.join("c1", "support");
    w.advance(secs(12));
    w.said();
    w.input(Input::CallerLeft { call: "c1".into() });
    assert_eq!(
        w.said(),
        [
            Action::CancelOffer {
                call: "c1".into(),
                agent: "alice".into(),
                missed: false,
            },
            Action::Abandoned {
                call: "c1".into(),
                queue: "support".into(),
                waited: secs(12)
            }
        ]
    );
    assert_eq!(w.state("alice"), "available");
    assert_eq!(w.acd.agent("alice").unwrap().misses(), 0);
    let s = w.acd.stats("support").unwrap();
    assert_eq!((s.offered, s.abandoned), (1, 1));
    assert_eq!(s.average_abandon_wait(), Some(secs(12)));
    assert!(
        w.acd
            .handle(w.now, Input::CallerLeft { call: "c1".into() })
            .is_err()
    );
}

#[test]
fn overflow_on_max_wait_and_on_size() {
    let mut w = world(
        r#"
agents:
  alice: { password: "x", queues: { support: 0 } }
queues:
  support: { max_wait: 2m, max_callers: 2 }
"#,
    );
    w.join("c1", "support");
    w.advance(secs(30));
    w.join("c2", "support");
    w.join("c3", "support");
    assert_eq!(
        w.plain(),
        [Action::Overflow {
            call: "c3".into(),
            queue: "support".into(),
            reason: OverflowReason::Full,
            waited: Duration::ZERO
        }]
    );
    w.advance(secs(90));
    assert_eq!(
        w.plain(),
        [Action::Overflow {
            call: "c1".into(),
            queue: "support".into(),
            reason: OverflowReason::MaxWait,
            waited: secs(120)
        }]
    );
    assert_eq!(w.acd.position("c2"), Some(1));
    assert_eq!(w.acd.stats("support").unwrap().overflowed, 2);
}

#[test]
fn when_empty_join_waits_and_leave_goes_on_at_once() {
    let text = r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0, sales: 0 } }
queues:
  support: { when_empty: join }
  sales: { when_empty: leave }
"#;
    let mut w = world(text);
    w.command("alice", AgentCommand::Logout);
    w.plain();
    w.join("c1", "support");
    assert!(w.plain().is_empty());
    assert_eq!(w.acd.position("c1"), Some(1));
    w.join("c2", "sales");
    assert!(matches!(
        &w.plain()[..],
        [Action::Overflow {
            reason: OverflowReason::NoAgents,
            ..
        }]
    ));
    // A paused agent is logged in: callers wait; when it logs out they are sent on.
    w.command("alice", AgentCommand::Login);
    w.command("alice", AgentCommand::Pause { reason: "x".into() });
    w.join("c3", "sales");
    w.plain();
    assert_eq!(w.acd.position("c3"), Some(1));
    w.command("alice", AgentCommand::Logout);
    let said = w.plain();
    assert!(said.contains(&Action::Overflow {
        call: "c3".into(),
        queue: "sales".into(),
        reason: OverflowReason::NoAgents,
        waited: Duration::ZERO
    }));
    assert_eq!(w.acd.position("c1"), Some(1), "support says join");
}

#[test]
fn registration_logs_in_and_expiry_logs_out() {
    let mut w = world(
        r#"
agents:
  alice: { password: "x", queues: { support: 0 } }
queues:
  support: {}
"#,
    );
    assert_eq!(w.state("alice"), "logged_out");
    w.join("c1", "support");
    assert!(
        w.plain().is_empty(),
        "an unregistered agent is not offered calls"
    );
    let reg = |w: &mut World, expires| {
        w.input(Input::AgentRegistered {
            agent: "alice".into(),
            contact: "sip:alice@192.0.2.1".into(),
            expires,
        })
    };
    reg(&mut w, secs(60));
    w.answer("c1", "alice");
    w.plain();
    // Expiry during a call: logged out when the call ends.
    w.advance(secs(61));
    assert_eq!(w.state("alice"), "on_call");
    w.agent_hangs_up("c1");
    assert_eq!(w.state("alice"), "logged_out");
    // An admin logout is not undone by the phone's next REGISTER.
    reg(&mut w, secs(60));
    assert_eq!(w.state("alice"), "available");
    w.command("alice", AgentCommand::Logout);
    reg(&mut w, secs(60));
    assert_eq!(w.state("alice"), "logged_out");
    w.command("alice", AgentCommand::Login);
    assert_eq!(w.state("alice"), "available");
    reg(&mut w, Duration::ZERO);
    assert_eq!(w.state("alice"), "logged_out");
    assert!(
        w.acd
            .handle(
                w.now,
                Input::Agent {
                    agent: "alice".into(),
                    command: AgentCommand::Login
                }
            )
            .is_err(),
        "no contact to log in with"
    );
}

#[test]
fn pause_during_a_call_takes_effect_when_it_ends() {
    let mut w = three("longest_idle");
    w.join("c1", "support");
    w.said();
    w.answer("c1", "alice");
    w.command(
        "alice",
        AgentCommand::Pause {
            reason: "break".into(),
        },
    );
    assert_eq!(w.state("alice"), "on_call");
    w.input(Input::CallerLeft { call: "c1".into() });
    assert_eq!(w.state("alice"), "paused");
    // Pausing a ringing agent cancels the offer and rings the next.
    w.join("c2", "support");
    assert_eq!(World::offered(&w.said(), "c2"), ["bob"]);
    w.command("bob", AgentCommand::Pause { reason: "x".into() });
    let said = w.said();
    assert_eq!(
        said[0],
        Action::CancelOffer {
            call: "c2".into(),
            agent: "bob".into(),
            missed: false,
        }
    );
    assert_eq!(World::offered(&said, "c2"), ["carol"]);
}

#[test]
fn figures_service_level_asa_aht_and_longest_wait() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
queues:
  support: { service_level: 20s, wrap_up: 10s }
"#,
    );
    w.join("c1", "support");
    w.advance(secs(5));
    w.serve("c1", "alice", secs(50)); // answered in 5s, handled 60s
    w.join("c2", "support");
    w.join("c3", "support");
    w.advance(secs(40));
    // c2 was offered when alice's wrap-up ended at 10s: answered after 40s.
    w.answer("c2", "alice");
    w.advance(secs(10));
    w.input(Input::CallerLeft { call: "c2".into() }); // handled 10s + 10s
    w.advance(secs(3));
    let snap = w.acd.snapshot(w.now);
    let s = &snap.queues[0].stats;
    assert_eq!((s.offered, s.answered, s.abandoned), (3, 2, 0));
    assert_eq!(s.service_level_percent, Some(50.0));
    assert_eq!(s.average_speed_of_answer_secs, Some(22.5));
    assert_eq!(s.average_handling_time_secs, Some(40.0));
    assert_eq!(s.longest_wait_secs, Some(53.0));
    assert_eq!(s.waiting, 1);
}

#[test]
fn snapshot_shows_queues_and_agents_and_serialises() {
    let mut w = three("ring_all");
    w.command(
        "carol",
        AgentCommand::Pause {
            reason: "training".into(),
        },
    );
    w.join("c1", "support");
    w.advance(secs(3));
    let snap = w.acd.snapshot(w.now);
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["queues"][0]["name"], "support");
    assert_eq!(json["queues"][0]["strategy"], "ring_all");
    assert_eq!(json["queues"][0]["waiting"][0]["call"], "c1");
    assert_eq!(json["queues"][0]["waiting"][0]["state"], "ringing");
    assert_eq!(json["queues"][0]["waiting"][0]["waited_secs"], 3.0);
    assert_eq!(
        json["queues"][0]["waiting"][0]["ringing"],
        serde_json::json!(["alice", "bob"])
    );
    let carol = &json["agents"][2];
    assert_eq!(carol["state"], "paused");
    assert_eq!(carol["reason"], "training");
    assert_eq!(carol["since_secs"], 3.0);
    assert_eq!(json["agents"][0]["state"], "ringing");
    assert_eq!(json["agents"][0]["call"], "c1");
}

#[test]
fn unknown_names_are_errors_not_panics() {
    let mut w = three("longest_idle");
    let err = w
        .acd
        .handle(
            w.now,
            Input::Join {
                call: "c".into(),
                queue: "suport".into(),
                priority: 0,
                skills: vec![],
                caller: String::new(),
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("no queue named 'suport'"), "{err}");
    assert!(
        w.acd
            .handle(
                w.now,
                Input::AgentUnregistered {
                    agent: "zed".into()
                }
            )
            .is_err()
    );
    w.join("c", "support");
    assert!(
        w.acd
            .handle(
                w.now,
                Input::CallbackRequested {
                    call: "c".into(),
                    number: None
                }
            )
            .is_err(),
        "the queue offers no callback"
    );
}

/// A store that refuses every write: the ACD must say so and keep serving.
struct BrokenStore;

impl CallbackStore for BrokenStore {
    fn load(&mut self) -> Result<Vec<super::store::StoredCallback>, super::store::StoreError> {
        Ok(Vec::new())
    }
    fn add(
        &mut self,
        _: &super::store::StoredCallback,
    ) -> Result<super::store::CallbackId, super::store::StoreError> {
        Err(super::store::StoreError::Damaged {
            path: "broken".into(),
            what: "read-only".into(),
        })
    }
    fn set_attempts(
        &mut self,
        _: super::store::CallbackId,
        _: u32,
    ) -> Result<(), super::store::StoreError> {
        Ok(())
    }
    fn remove(&mut self, _: super::store::CallbackId) -> Result<(), super::store::StoreError> {
        Ok(())
    }
}

#[test]
fn a_callback_that_cannot_be_stored_is_refused_and_the_caller_keeps_waiting() {
    let mut w = world_with(
        r#"
agents:
  alice: { password: "x", queues: { support: 0 } }
queues:
  support: { callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@127.0.0.1:5080" } }
"#,
        Box::new(BrokenStore),
    );
    w.join("c1", "support");
    let err = w
        .acd
        .handle(
            w.now,
            Input::CallbackRequested {
                call: "c1".into(),
                number: None,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(w.acd.position("c1"), Some(1));
}

#[test]
fn an_unanswered_callback_is_given_up_after_its_attempts() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
queues:
  support: { callback: { key: "1", offer_after_wait: 1m, attempts: 2, retry_after: 1m, dial: "sip:{number}@127.0.0.1:5080" } }
"#,
    );
    w.command("alice", AgentCommand::Pause { reason: "x".into() });
    w.join("c1", "support");
    w.input(Input::CallbackRequested {
        call: "c1".into(),
        number: Some("0309990000".into()),
    });
    w.command("alice", AgentCommand::Resume);
    let Some(Action::PlaceCallback { id, .. }) = w.said().pop() else {
        panic!("a callback is placed");
    };
    w.input(Input::CallbackFailed { id });
    assert!(w.said().is_empty(), "not before retry_after");
    w.advance(secs(60));
    assert!(matches!(&w.said()[..], [Action::PlaceCallback { .. }]));
    w.input(Input::CallbackFailed { id });
    assert_eq!(
        w.said(),
        [Action::CallbackGivenUp {
            id,
            number: "0309990000".into(),
            queue: "support".into()
        }]
    );
    assert!(w.acd.snapshot(w.now).queues[0].waiting.is_empty());
}

#[test]
fn periodic_announcements_carry_the_prompt_and_ring_all_timeouts_are_misses_for_all() {
    let mut w = world(
        r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
  bob:   { uri: "sip:bob@192.0.2.2", queues: { support: 0 } }
queues:
  support: { strategy: ring_all, ring_timeout: 10s, announce_every: 20s, announce_prompt: still_waiting }
"#,
    );
    w.command("alice", AgentCommand::Pause { reason: "x".into() });
    w.command("bob", AgentCommand::Pause { reason: "x".into() });
    w.join("c1", "support");
    // At joining: the position only, no prompt.
    assert!(matches!(
        &w.said()[..],
        [Action::Announce {
            prompt: None,
            position: Some(1),
            ..
        }]
    ));
    w.advance(secs(20));
    // Periodic: the prompt; the position did not change, so it is not said again.
    assert_eq!(
        w.said(),
        [Action::Announce {
            call: "c1".into(),
            queue: "support".into(),
            prompt: Some("still_waiting".into()),
            position: None,
            ewt: None
        }]
    );
    w.command("alice", AgentCommand::Resume);
    w.command("bob", AgentCommand::Resume);
    assert_eq!(World::offered(&w.said(), "c1"), ["alice", "bob"]);
    w.advance(secs(10));
    assert_eq!(w.acd.agent("alice").unwrap().misses(), 1);
    assert_eq!(w.acd.agent("bob").unwrap().misses(), 1);
}

// ---------------------------------------------------------------- reconfiguration

const ONE_AGENT: &str = r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
queues:
  support: { ring_timeout: 20s }
  sales: {}
"#;

impl World {
    fn reconfigure(&mut self, text: &str) -> Result<Vec<String>, super::acd::Refusal> {
        let (q, a) = config(text);
        self.acd.reconfigure(self.now, &q, &a)
    }
}

#[test]
fn an_agent_added_by_a_reload_takes_the_waiting_caller() {
    let mut w = world(ONE_AGENT);
    w.join("c1", "support");
    assert_eq!(World::offered(&w.said(), "c1"), ["alice"]);
    w.answer("c1", "alice");
    w.join("c2", "support");
    w.said();
    let changes = w
        .reconfigure(
            r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
  bob:   { uri: "sip:bob@192.0.2.2", queues: { support: 0 } }
queues:
  support: { ring_timeout: 20s, wrap_up: 5s }
  sales: {}
"#,
        )
        .unwrap();
    assert_eq!(changes, ["queue support changed", "agent bob added"]);
    // bob is offered the waiting caller at once; alice is still on her call.
    assert_eq!(World::offered(&w.said(), "c2"), ["bob"]);
    assert_eq!(w.state("alice"), "on_call");
    // The edited wrap-up applies to the next call's end.
    w.agent_hangs_up("c1");
    assert_eq!(w.state("alice"), "wrap_up");
}

#[test]
fn a_reload_that_would_lose_someone_is_refused_and_changes_nothing() {
    let mut w = world(ONE_AGENT);
    w.join("c1", "support");
    w.said();
    // alice rings: she cannot be removed, nor can the queue the caller waits in.
    let err = w
        .reconfigure("agents:\n  bob: { uri: \"sip:bob@192.0.2.2\", queues: { support: 0 } }\nqueues:\n  support: {}\n")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("agents.alice: cannot remove the agent while it is ringing"),
        "{err}"
    );
    let err = w
        .reconfigure("agents:\n  alice: { uri: \"sip:alice@192.0.2.1\", queues: { sales: 0 } }\nqueues:\n  sales: {}\n")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("queues.support: cannot remove the queue while 1 caller"),
        "{err}"
    );
    assert_eq!(w.state("alice"), "ringing");
    assert!(w.acd.queue_config("support").is_some());
    // An empty queue goes; the caller is still offered to alice.
    let changes = w
        .reconfigure("agents:\n  alice: { uri: \"sip:alice@192.0.2.1\", queues: { support: 0 } }\nqueues:\n  support: { ring_timeout: 20s }\n")
        .unwrap();
    assert_eq!(changes, ["queue sales removed"]);
    assert!(w.acd.queue_config("sales").is_none());
    w.answer("c1", "alice");
    assert_eq!(w.state("alice"), "on_call");
}

#[test]
fn callbacks_cannot_be_switched_off_while_requests_wait() {
    let text = r#"
agents:
  alice: { uri: "sip:alice@192.0.2.1", queues: { support: 0 } }
queues:
  support: { callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@127.0.0.1:5080" } }
"#;
    let mut w = world(text);
    w.command("alice", AgentCommand::Pause { reason: "x".into() });
    w.join("c1", "support");
    w.input(Input::CallbackRequested {
        call: "c1".into(),
        number: Some("0301110000".into()),
    });
    w.said();
    let err = w
        .reconfigure("agents:\n  alice: { uri: \"sip:alice@192.0.2.1\", queues: { support: 0 } }\nqueues:\n  support: {}\n")
        .unwrap_err();
    assert!(err.to_string().contains("1 request(s) wait"), "{err}");
    // An idle agent can be removed; a fixed address removed logs an agent out.
    let changes = w
        .reconfigure(&text.replace(
            "alice: { uri: \"sip:alice@192.0.2.1\",",
            "alice: { password: x,",
        ))
        .unwrap();
    assert_eq!(changes, ["agent alice changed"]);
    assert_eq!(w.state("alice"), "paused");
}

#[test]
fn callbacks_only_to_allowed_numbers_one_at_a_time_within_the_daily_cap() {
    let mut w = world(
        r#"
agents:
  alice: { password: "x", queues: { support: 0 } }
queues:
  support: { callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@127.0.0.1:5080", daily_cap: 2 } }
"#,
    );
    for c in ["c1", "c2", "c3", "c4", "c5", "c6"] {
        w.join(c, "support");
    }
    w.said();
    let ask = |w: &mut World, call: &str, number: &str| {
        let r = w.acd.handle(
            w.now,
            Input::CallbackRequested {
                call: call.into(),
                number: Some(number.into()),
            },
        );
        let refused: Vec<_> = w
            .said()
            .into_iter()
            .filter_map(|a| match a {
                Action::CallbackRefused { number, reason, .. } => Some((number, reason)),
                _ => None,
            })
            .collect();
        (r.is_ok(), refused)
    };
    // The default patterns: national numbers, not international nor premium ones.
    for number in ["+4930123456", "0044207946000", "0900123456"] {
        let (ok, refused) = ask(&mut w, "c1", number);
        assert!(!ok, "{number}");
        assert_eq!(refused, [(number.to_string(), CallbackRefusal::NotAllowed)]);
    }
    assert_eq!(ask(&mut w, "c1", "030123456"), (true, vec![]));
    // The same number again, from another call: one request at a time.
    assert_eq!(
        ask(&mut w, "c2", "030123456"),
        (
            false,
            vec![("030123456".to_string(), CallbackRefusal::AlreadyPending)]
        )
    );
    assert_eq!(ask(&mut w, "c3", "040123456"), (true, vec![]));
    // Two taken today: the cap.
    assert_eq!(
        ask(&mut w, "c4", "050123456"),
        (
            false,
            vec![("050123456".to_string(), CallbackRefusal::DailyCap)]
        )
    );
    // A day later the cap has room again.
    w.advance(Duration::from_secs(24 * 3600));
    w.said();
    assert_eq!(ask(&mut w, "c5", "050123456"), (true, vec![]));
}
