//! The report's figures on hand-built call sets, each expected value worked out by hand in
//! the comments beside it.

use chrono::TimeZone;
use serde_json::{Value, json};

use super::*;
use crate::record::{CallEvent, CallKind, CallOutcome, CallRecord, HungUpBy, SurveyAnswer};

const SECOND: i64 = 1000;
const HOUR: i64 = 3600 * SECOND;
const DAY: i64 = 24 * HOUR;

/// 2026-11-02 09:00:00 UTC, a Monday.
fn t0() -> i64 {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .unwrap()
        .timestamp_millis()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    chrono::Utc
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

/// One call under construction: its row and its events, offsets in ms from its start.
struct CallBuilder {
    record: CallRecord,
    events: Vec<CallEvent>,
}

fn call(id: &str, caller: &str, started_ms: i64) -> CallBuilder {
    CallBuilder {
        record: CallRecord {
            call_id: id.to_owned(),
            kind: CallKind::Inbound,
            caller: caller.to_owned(),
            dialed: "100".to_owned(),
            started_ms,
            answered_ms: Some(started_ms),
            ended_ms: None,
            flow: "main".to_owned(),
            flow_version: "v1".to_owned(),
            language: "en".to_owned(),
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
        },
        events: Vec::new(),
    }
}

impl CallBuilder {
    fn event(mut self, at: i64, kind: &str, detail: Value) -> Self {
        self.events.push(CallEvent {
            call_id: self.record.call_id.clone(),
            seq: self.events.len() as u32,
            at_ms: self.record.started_ms + at,
            kind: kind.to_owned(),
            detail,
        });
        self
    }
    fn ended(mut self, at: i64, outcome: CallOutcome) -> Self {
        self.record.ended_ms = Some(self.record.started_ms + at);
        self.record.outcome = Some(outcome);
        self.event(
            at,
            "ended",
            json!({ "outcome": outcome.as_str(), "hung_up_by": "caller" }),
        )
    }
    fn outcome(mut self, outcome: CallOutcome) -> Self {
        self.record.ended_ms = Some(self.record.started_ms + 600 * SECOND);
        self.record.outcome = Some(outcome);
        self
    }
    fn flow(mut self, flow: &str) -> Self {
        self.record.flow = flow.to_owned();
        self
    }
    fn agent(mut self, agent: &str) -> Self {
        self.record.agent = Some(agent.to_owned());
        self
    }
    fn kind(mut self, kind: CallKind) -> Self {
        self.record.kind = kind;
        self
    }
    fn reason(mut self, reason: &str) -> Self {
        self.record.reason = Some(reason.to_owned());
        self
    }
    fn tag(mut self, name: &str, value: &str) -> Self {
        self.record.tags.push((name.to_owned(), value.to_owned()));
        self
    }
    fn last_step(mut self, step: &str) -> Self {
        self.record.last_step = Some(step.to_owned());
        self
    }
    fn survey(mut self, score: u8) -> Self {
        self.record.survey.push(SurveyAnswer {
            question: "main/survey".to_owned(),
            score,
        });
        self
    }
    fn step(self, at: i64, flow: &str, step: &str) -> Self {
        self.event(at, "step", json!({ "flow": flow, "step": step }))
    }
    fn key(self, at: i64, key: &str, went: &str) -> Self {
        self.event(at, "key", json!({ "key": key, "went": went }))
    }
    fn no_input(self, at: i64, step: &str) -> Self {
        self.event(at, "no_input", json!({ "step": step, "failures": 1 }))
    }
    fn invalid(self, at: i64, step: &str, input: &str) -> Self {
        self.event(
            at,
            "invalid",
            json!({ "step": step, "input": input, "failures": 1 }),
        )
    }
    fn joined(mut self, at: i64, queue: &str) -> Self {
        self.record.queue = Some(queue.to_owned());
        self.event(at, "queue_joined", json!({ "queue": queue }))
    }
    fn left(self, at: i64, queue: &str, outcome: &str, wait_ms: i64) -> Self {
        self.event(
            at,
            "queue_left",
            json!({ "queue": queue, "outcome": outcome, "wait_ms": wait_ms }),
        )
    }
    /// The caller asks to be called back `wait_ms` after joining at `joined_at`:
    /// `callback_requested`, then `queue_left` with outcome `callback`.
    fn asked_callback(self, joined_at: i64, queue: &str, wait_ms: i64) -> Self {
        let at = joined_at + wait_ms;
        self.event(at, "callback_requested", json!({ "queue": queue }))
            .left(at, queue, "callback", wait_ms)
    }
    /// An agent answers after `wait_ms` in the queue, joined at `joined_at`, and talks
    /// `talk_ms`: `agent_answered`, `queue_left`, then `agent_ended`.
    fn served(
        mut self,
        joined_at: i64,
        queue: &str,
        agent: &str,
        wait_ms: i64,
        talk_ms: i64,
    ) -> Self {
        self.record.agent = Some(agent.to_owned());
        self.record.wait_ms = Some(wait_ms as u64);
        self.record.talk_ms = Some(talk_ms as u64);
        let at = joined_at + wait_ms;
        self.event(
            at,
            "agent_answered",
            json!({ "queue": queue, "agent": agent, "wait_ms": wait_ms }),
        )
        .left(at, queue, "agent", wait_ms)
        .event(
            at + talk_ms,
            "agent_ended",
            json!({ "queue": queue, "agent": agent, "talk_ms": talk_ms, "by": "caller" }),
        )
    }
}

#[derive(Default)]
struct Set {
    records: Vec<CallRecord>,
    events: Vec<CallEvent>,
}

impl Set {
    fn of(calls: Vec<CallBuilder>) -> Set {
        let mut set = Set::default();
        for c in calls {
            set.records.push(c.record);
            set.events.extend(c.events);
        }
        set
    }
    fn report(&self, params: &ReportParams) -> Report {
        Report::compute(&self.records, &self.events, params)
    }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[track_caller]
fn assert_close(a: Option<f64>, b: f64) {
    assert!(close(a, b), "{a:?} != {b}");
}

#[test]
fn empty_input_gives_every_table_with_zeros_and_no_rates() {
    let r = Set::default().report(&ReportParams::default());
    assert_eq!(r.calls, 0);
    assert_eq!(r.self_service_rate, None);
    assert!(r.steps.is_empty() && r.queues.is_empty() && r.agents.is_empty());
    assert_eq!(r.survey.overall.responses, 0);
    assert_eq!(r.survey.overall.mean_score, None);
    assert_eq!(r.repeat_callers.within_24h.rate, None);
    assert_eq!(r.hours.len(), 24);
    assert!(r.hours.iter().all(|h| h.calls == 0));
    let v = serde_json::to_value(&r).unwrap();
    let outcomes = v["outcomes"].as_object().unwrap();
    assert_eq!(outcomes.len(), 9);
    for o in CallOutcome::ALL {
        assert_eq!(outcomes[o.as_str()], 0, "{o}");
    }
    assert!(v["self_service_rate"].is_null());
    assert_eq!(csv::tables(&r).len(), csv::NAMES.len());
    assert!(text::render(&r).contains("(none)"));
}

#[test]
fn outcomes_and_true_self_service_rate() {
    use CallOutcome::*;
    let ended = [
        SelfService,
        SelfService,
        SelfService,
        Agent,
        Agent,
        AbandonedInMenu,
        AbandonedInMenu,
        Voicemail,
        Failed,
    ];
    let mut calls: Vec<CallBuilder> = ended
        .iter()
        .enumerate()
        .map(|(i, o)| call(&format!("c{i}"), "555", t0() + i as i64 * HOUR).outcome(*o))
        .collect();
    calls.push(call("live", "556", t0()));
    let r = Set::of(calls).report(&ReportParams::default());
    // 10 calls, one still in progress: 9 ended.
    assert_eq!(r.calls, 10);
    assert_eq!(r.in_progress, 1);
    assert_eq!(r.outcomes.get(SelfService), 3);
    assert_eq!(r.outcomes.get(Agent), 2);
    assert_eq!(r.outcomes.get(AbandonedInMenu), 2);
    assert_eq!(r.outcomes.get(Voicemail), 1);
    assert_eq!(r.outcomes.get(Failed), 1);
    assert_eq!(r.outcomes.get(Callback), 0);
    assert_eq!(r.outcomes.total(), 9);
    // 3 self-service calls of 9 that ended; a menu hang-up is never self-service.
    assert_close(r.self_service_rate, 3.0 / 9.0);
}

#[test]
fn steps_count_visits_hangups_timeouts_invalid_and_keys() {
    use CallOutcome::*;
    let s1 = call("s1", "1", t0())
        .step(0, "main", "welcome")
        .step(3000, "main", "menu")
        .key(5000, "1", "option")
        .step(5000, "main", "billing")
        .last_step("main/billing")
        .ended(9000, SelfService);
    let s2 = call("s2", "2", t0())
        .step(0, "main", "welcome")
        .step(3000, "main", "menu")
        .no_input(8000, "menu")
        .key(9000, "9", "invalid")
        .invalid(9000, "menu", "9")
        .key(10000, "2", "option")
        .step(10000, "main", "orders")
        .last_step("main/orders")
        .ended(12000, AbandonedInMenu);
    let s3 = call("s3", "3", t0())
        .step(0, "main", "welcome")
        .step(3000, "main", "menu")
        .no_input(8000, "menu")
        .last_step("main/menu")
        .ended(9000, AbandonedInMenu);
    // Types 1 during the welcome (kept, counted when used), keys an account number in
    // billing (digits: not choices), goes back to the menu and presses the global 9.
    let s4 = call("s4", "4", t0())
        .step(0, "main", "welcome")
        .key(1000, "1", "buffered")
        .step(3000, "main", "menu")
        .key(3000, "1", "option")
        .step(3000, "main", "billing")
        .key(4000, "2", "digit")
        .key(4500, "3", "digit")
        .key(5000, "*", "back")
        .step(5000, "main", "menu")
        .key(6000, "9", "global")
        .step(6000, "main", "operator")
        .last_step("main/operator")
        .ended(60000, Agent);
    let r = Set::of(vec![s1, s2, s3, s4]).report(&ReportParams::default());
    let step = |name: &str| r.steps.iter().find(|s| s.step == name).unwrap().clone();
    let names: Vec<&str> = r.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(names, ["billing", "menu", "operator", "orders", "welcome"]);

    let welcome = step("welcome");
    // Every call came in here once; the buffered 1 is not a choice made here.
    assert_eq!((welcome.visits, welcome.calls, welcome.hangups), (4, 4, 0));
    assert!(welcome.keys.is_empty());

    let menu = step("menu");
    // s1, s2, s3 once, s4 twice: 5 visits by 4 calls. s3 hung up here. Timeouts: s2, s3.
    // Invalid: s2's 9. Keys: 1 (s1, s4's buffered one used here), 2 (s2), 9 global (s4).
    assert_eq!((menu.visits, menu.calls), (5, 4));
    assert_eq!(menu.hangups, 1);
    assert_eq!(menu.timeouts, 2);
    assert_eq!(menu.invalid, 1);
    let keys: Vec<(&str, u64)> = menu.keys.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(keys, [("1", 2), ("2", 1), ("9", 1)]);

    let billing = step("billing");
    // s1 and s4; s4's account digits are not counted, its back key (*) is.
    assert_eq!((billing.visits, billing.calls, billing.hangups), (2, 2, 0));
    let keys: Vec<(&str, u64)> = billing.keys.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(keys, [("*", 1)]);

    // s2 hung up in orders.
    assert_eq!(step("orders").hangups, 1);
    // s4 ended with an agent: no hang-up counted for operator.
    assert_eq!(step("operator").hangups, 0);
}

#[test]
fn reasons_and_tags_are_counted() {
    let r = Set::of(vec![
        call("a", "1", t0())
            .reason("billing")
            .tag("reason", "billing")
            .tag("segment", "gold"),
        call("b", "2", t0())
            .reason("billing")
            .tag("reason", "billing"),
        call("c", "3", t0()).reason("orders").tag("segment", "gold"),
        call("d", "4", t0()),
    ])
    .report(&ReportParams::default());
    let reasons: Vec<(&str, u64)> = r
        .tags
        .reasons
        .iter()
        .map(|x| (x.reason.as_str(), x.calls))
        .collect();
    assert_eq!(reasons, [("billing", 2), ("orders", 1)]);
    assert_eq!(r.tags.without_reason, 1);
    let values: Vec<(&str, &str, u64)> = r
        .tags
        .values
        .iter()
        .map(|t| (t.name.as_str(), t.value.as_str(), t.calls))
        .collect();
    assert_eq!(values, [("reason", "billing", 2), ("segment", "gold", 2)]);
}

/// Queue `support` (service level 20 s, short abandon 5 s) and `sales`, with agents alice,
/// bob and carol.
fn queue_set() -> Set {
    use CallOutcome::*;
    let t = t0();
    let j = 10 * SECOND; // every caller joins 10 s into the call
    // Answered after 12 s by alice, 60 s of talk.
    let c1 = call("c1", "201", t)
        .joined(j, "support")
        .served(j, "support", "alice", 12000, 60000)
        .survey(5)
        .ended(200 * SECOND, Agent);
    // Answered after exactly 20 s by bob: within the service level. 120 s talk, 10 s hold
    // and 5 s wrap-up, which the event carries.
    let c2 = call("c2", "202", t + 1000)
        .agent("bob")
        .joined(j, "support")
        .event(
            j + 20000,
            "agent_answered",
            json!({ "queue": "support", "agent": "bob", "wait_ms": 20000 }),
        )
        .left(j + 20000, "support", "agent", 20000)
        .event(
            j + 20000 + 120000,
            "agent_ended",
            json!({ "queue": "support", "agent": "bob", "talk_ms": 120000,
                    "hold_ms": 10000, "wrap_up_ms": 5000, "by": "agent" }),
        )
        .survey(3)
        .ended(300 * SECOND, Agent);
    // Answered after 20.001 s by alice: one millisecond too late. 30 s talk.
    let c3 = call("c3", "203", t + 100 * SECOND)
        .joined(j, "support")
        .served(j, "support", "alice", 20001, 30000)
        .survey(4)
        .ended(100 * SECOND, Agent);
    // Hung up after exactly 5 s: a short abandon.
    let c4 = call("c4", "204", t)
        .joined(j, "support")
        .left(j + 5000, "support", "caller_hung_up", 5000)
        .ended(j + 5000, AbandonedInQueue);
    // Hung up after 5.001 s: abandoned.
    let c5 = call("c5", "205", t)
        .joined(j, "support")
        .left(j + 5001, "support", "caller_hung_up", 5001)
        .survey(9) // not a score: left out
        .ended(j + 5001, AbandonedInQueue);
    // Hung up after 95 s, the longest wait; the row only, no queue_left event.
    let c6 = call("c6", "206", t)
        .joined(j, "support")
        .ended(j + 95000, AbandonedInQueue);
    // Sent on after the queue's maximum wait of 90 s.
    let c7 = call("c7", "207", t)
        .joined(j, "support")
        .left(j + 90000, "support", "max_wait", 90000)
        .ended(j + 100000, Voicemail);
    // Asked to be called back after 30 s.
    let c8 = call("c8", "208", t)
        .joined(j, "support")
        .asked_callback(j, "support", 30000)
        .ended(j + 40000, Callback);
    // The call back for c8: answered by bob after 2 s, 40 s talk. Not offered again.
    let c9 = call("c9", "208", t + HOUR)
        .kind(CallKind::Callback)
        .joined(j, "support")
        .served(j, "support", "bob", 2000, 40000)
        .ended(100 * SECOND, Agent);
    // Sales: carol answers after 3 s, 10 s talk.
    let c10 = call("c10", "210", t)
        .joined(j, "sales")
        .served(j, "sales", "carol", 3000, 10000)
        .survey(2)
        .ended(100 * SECOND, Agent);
    Set::of(vec![c1, c2, c3, c4, c5, c6, c7, c8, c9, c10])
}

#[test]
fn queue_figures_with_short_abandons_apart_and_the_service_level_boundary() {
    let r = queue_set().report(&ReportParams::default());
    let names: Vec<&str> = r.queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["sales", "support"]);
    let q = &r.queues[1];
    // c1..c8 waited in support; c9 is the call back, not a new offer.
    assert_eq!(q.offered, 8);
    // c1 (12 s), c2 (20 s), c3 (20.001 s); in time: c1 and c2 (the boundary counts).
    assert_eq!(q.answered, 3);
    assert_eq!(q.answered_in_time, 2);
    // c4 (exactly 5 s) is short; c5 (5.001 s) and c6 (95 s) are abandoned.
    assert_eq!(q.short_abandoned, 1);
    assert_eq!(q.abandoned, 2);
    assert_eq!(q.overflowed, 1);
    assert_eq!(q.left_for_callback, 1);
    assert_eq!((q.failed, q.waiting), (0, 0));
    // Abandon rate: 2 / (8 offered - 1 short) = 2/7.
    assert_close(q.abandon_rate, 2.0 / 7.0);
    // Service level: 2 in time / (3 answered + 2 abandoned + 1 overflowed) = 1/3.
    assert_close(q.service_level, 2.0 / 6.0);
    // ASA: (12 + 20 + 20.001) / 3 = 17.333667 s.
    assert_close(q.asa_seconds, 52.001 / 3.0);
    // Handled: c1, c2, c3 and the call back c9. AHT: (60 + 120+10+5 + 30 + 40) / 4.
    assert_eq!(q.handled, 4);
    assert_close(q.aht_seconds, 265.0 / 4.0);
    assert_close(q.longest_wait_seconds, 95.0);
    assert_eq!(q.callbacks_requested, 1);
    assert_eq!(q.callbacks_completed, 1);

    let s = &r.queues[0];
    assert_eq!((s.offered, s.answered, s.answered_in_time), (1, 1, 1));
    assert_close(s.service_level, 1.0);
    assert_close(s.abandon_rate, 0.0);
    assert_close(s.asa_seconds, 3.0);
}

#[test]
fn thresholds_come_from_the_params() {
    let params = ReportParams {
        short_abandon: std::time::Duration::from_millis(5001),
        service_level: std::time::Duration::from_millis(20001),
        ..ReportParams::default()
    };
    let r = queue_set().report(&params);
    let q = r.queues.iter().find(|q| q.queue == "support").unwrap();
    // Now c5 is short too, and c3 is in time.
    assert_eq!((q.short_abandoned, q.abandoned), (2, 1));
    assert_eq!(q.answered_in_time, 3);
    assert_close(q.abandon_rate, 1.0 / 6.0);
    assert_close(q.service_level, 3.0 / 5.0);
    assert_eq!(r.period.service_level_seconds, 20.001);
}

#[test]
fn agent_figures() {
    let r = queue_set().report(&ReportParams::default());
    let names: Vec<&str> = r.agents.iter().map(|a| a.agent.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    let alice = &r.agents[0];
    // c1 (60 s) and c3 (30 s); no hold or wrap-up known.
    assert_eq!(alice.calls_handled, 2);
    assert_eq!(alice.talk_seconds, 90.0);
    assert_eq!((alice.hold_seconds, alice.wrap_up_seconds), (None, None));
    assert_close(alice.aht_seconds, 45.0);
    // First answer: c1 at t+22 s; last end: c3 at t+100 s+10 s+20.001 s+30 s = t+160.001 s.
    // Occupancy: 90 s of calls over 138.001 s.
    assert_close(alice.occupancy, 90.0 / 138.001);
    let bob = &r.agents[1];
    // c2 (120 s talk, 10 s hold, 5 s wrap-up) and the call back c9 (40 s).
    assert_eq!(bob.calls_handled, 2);
    assert_eq!(bob.talk_seconds, 160.0);
    assert_eq!(
        (bob.hold_seconds, bob.wrap_up_seconds),
        (Some(10.0), Some(5.0))
    );
    assert_close(bob.aht_seconds, 175.0 / 2.0);
    // One call: busy for the whole of its own span.
    assert_close(r.agents[2].occupancy, 1.0);
}

#[test]
fn survey_scores_per_queue_and_agent() {
    let r = queue_set().report(&ReportParams::default());
    // Scores 5 (c1 alice support), 3 (c2 bob support), 4 (c3 alice support), 2 (c10 carol
    // sales); c5's 9 is not a score.
    let all = &r.survey.overall;
    assert_eq!(all.responses, 4);
    assert_close(all.mean_score, 14.0 / 4.0);
    assert_close(all.csat, 2.0 / 4.0);
    let by = |groups: &[GroupScores], name: &str| {
        groups
            .iter()
            .find(|g| g.name == name)
            .unwrap()
            .scores
            .clone()
    };
    let support = by(&r.survey.queues, "support");
    assert_eq!(support.responses, 3);
    assert_close(support.mean_score, 4.0);
    assert_close(support.csat, 2.0 / 3.0);
    let sales = by(&r.survey.queues, "sales");
    assert_close(sales.mean_score, 2.0);
    assert_close(sales.csat, 0.0);
    let alice = by(&r.survey.agents, "alice");
    assert_eq!(alice.responses, 2);
    assert_close(alice.mean_score, 4.5);
    assert_close(alice.csat, 1.0);
    assert_close(by(&r.survey.agents, "bob").csat, 0.0);
    let v = serde_json::to_value(&r.survey).unwrap();
    assert_eq!(v["agents"][0]["name"], "alice");
    assert_eq!(v["agents"][0]["responses"], 2);
}

#[test]
fn repeat_callers_within_24_hours_and_7_days() {
    let t = t0();
    let r = Set::of(vec![
        // A calls again exactly 24 h later (repeat within both windows), then 7 d + 1 ms
        // after that (no repeat).
        call("a1", "A", t).reason("billing"),
        call("a2", "A", t + DAY).reason("billing"),
        call("a3", "A", t + DAY + 7 * DAY + 1).reason("orders"),
        // The hotline calling A back is not A calling again.
        call("a-cb", "A", t + DAY + HOUR).kind(CallKind::Callback),
        // B calls again 24 h + 1 ms later: within 7 d only.
        call("b1", "B", t + HOUR).reason("billing"),
        call("b2", "B", t + HOUR + DAY + 1),
        call("c1", "C", t).reason("orders"),
        // Not one person each.
        call("x1", "anonymous", t),
        call("x2", "anonymous", t + 60 * SECOND),
        call("y1", "", t),
        call("y2", "", t + 1),
    ])
    .report(&ReportParams::default());
    let rc = &r.repeat_callers;
    // Callers A, B, C; their calls a1 a2 a3 b1 b2 c1.
    assert_eq!((rc.callers, rc.calls), (3, 6));
    // Within 24 h: a1 only. Within 7 d: a1 and b1.
    assert_eq!((rc.within_24h.callers, rc.within_24h.calls), (1, 1));
    assert_close(rc.within_24h.rate, 1.0 / 6.0);
    assert_eq!((rc.within_7d.callers, rc.within_7d.calls), (2, 2));
    assert_close(rc.within_7d.rate, 2.0 / 6.0);
    // billing: a1 a2 b1, repeated a1 (24 h) and a1 b1 (7 d); orders: a3 c1, none.
    let billing = &rc.reasons[0];
    assert_eq!(billing.reason, "billing");
    assert_eq!(
        (billing.calls, billing.repeated_24h, billing.repeated_7d),
        (3, 1, 2)
    );
    assert_close(billing.rate_7d, 2.0 / 3.0);
    let orders = &rc.reasons[1];
    assert_eq!(
        (orders.reason.as_str(), orders.calls, orders.repeated_7d),
        ("orders", 2, 0)
    );
}

#[test]
fn hours_in_a_zone_with_daylight_saving_changes() {
    use CallOutcome::*;
    let r = Set::of(vec![
        // 29 March 2026, Paris goes from 02:00 CET to 03:00 CEST at 01:00 UTC.
        call("s1", "1", utc(2026, 3, 29, 0, 30)).outcome(SelfService), // 01:30 CET
        call("s2", "2", utc(2026, 3, 29, 1, 30)).outcome(SelfService), // 03:30 CEST
        // 25 October 2026, Paris goes from 03:00 CEST back to 02:00 CET at 01:00 UTC.
        call("f1", "3", utc(2026, 10, 25, 0, 30)).outcome(AbandonedInQueue), // 02:30 CEST
        {
            // 02:30 CET
            call("f2", "4", utc(2026, 10, 25, 1, 30))
                .agent("alice")
                .outcome(Agent)
        },
    ])
    .report(&ReportParams {
        time_zone: chrono_tz::Europe::Paris,
        ..ReportParams::default()
    });
    let calls: Vec<u64> = r.hours.iter().map(|h| h.calls).collect();
    let mut expected = vec![0; 24];
    expected[1] = 1;
    expected[2] = 2; // both 02:30s of the autumn night
    expected[3] = 1; // 02:xx did not exist in spring
    assert_eq!(calls, expected);
    assert_eq!((r.hours[2].answered, r.hours[2].abandoned), (1, 1));
    assert_eq!(r.period.time_zone, "Europe/Paris");
    // The same calls in UTC: 00:30 twice and 01:30 twice.
    let r = Set::of(vec![
        call("s1", "1", utc(2026, 3, 29, 0, 30)),
        call("s2", "2", utc(2026, 3, 29, 1, 30)),
        call("f1", "3", utc(2026, 10, 25, 0, 30)),
        call("f2", "4", utc(2026, 10, 25, 1, 30)),
    ])
    .report(&ReportParams::default());
    assert_eq!(
        (r.hours[0].calls, r.hours[1].calls, r.hours[2].calls),
        (2, 2, 0)
    );
}

#[test]
fn filters_by_period_flow_and_queue() {
    use CallOutcome::*;
    let t = t0();
    let until = t + 2 * HOUR;
    let set = Set::of(vec![
        call("early", "1", t - 1).outcome(SelfService),
        call("first", "2", t).outcome(SelfService),
        call("sales", "3", t + HOUR)
            .flow("sales")
            .joined(0, "sales")
            .served(0, "sales", "carol", 1000, 5000)
            .outcome(Agent),
        // Overflowed from support to sales.
        call("both", "4", t + HOUR)
            .joined(0, "support")
            .left(60000, "support", "max_wait", 60000)
            .joined(60000, "sales")
            .served(60000, "sales", "dave", 2000, 5000)
            .outcome(Agent),
        call("support", "5", t + HOUR)
            .joined(0, "support")
            .served(0, "support", "alice", 1000, 5000)
            .outcome(Agent),
        call("late", "6", until).outcome(SelfService),
    ]);
    // The period includes its start and excludes its end.
    let r = set.report(&ReportParams {
        since_ms: Some(t),
        until_ms: Some(until),
        ..ReportParams::default()
    });
    assert_eq!(r.calls, 4);
    assert_eq!(r.outcomes.get(SelfService), 1);
    assert_eq!(
        (r.period.since_ms, r.period.until_ms),
        (Some(t), Some(until))
    );

    let r = set.report(&ReportParams {
        flow: Some("sales".into()),
        ..ReportParams::default()
    });
    assert_eq!(r.calls, 1);

    // Calls that went through sales, and only sales' figures and agents.
    let r = set.report(&ReportParams {
        queue: Some("sales".into()),
        ..ReportParams::default()
    });
    assert_eq!(r.calls, 2);
    assert_eq!(r.queues.len(), 1);
    assert_eq!((r.queues[0].offered, r.queues[0].answered), (2, 2));
    let agents: Vec<&str> = r.agents.iter().map(|a| a.agent.as_str()).collect();
    assert_eq!(agents, ["carol", "dave"]);

    let r = set.report(&ReportParams::default());
    let support = r.queues.iter().find(|q| q.queue == "support").unwrap();
    assert_eq!((support.offered, support.overflowed), (2, 1));
}

#[test]
fn untidy_input_is_counted_once_and_never_panics() {
    let t = t0();
    // The row written at the start (no outcome) and the whole row at the end.
    let open = call("c1", "1", t);
    let whole = call("c1", "1", t)
        .joined(0, "support")
        .served(0, "support", "alice", 4000, 6000)
        .ended(20000, CallOutcome::Agent);
    let mut set = Set::default();
    set.records.push(whole.record.clone());
    set.records.push(open.record);
    // Events shuffled, one repeated, one for a call not in the set, odd fields.
    let mut events = whole.events.clone();
    events.reverse();
    events.push(whole.events[0].clone());
    let mut stray = whole.events[0].clone();
    stray.call_id = "other".into();
    events.push(stray);
    set.events = events;
    let odd = call("c2", "2", t)
        .event(0, "queue_joined", json!({ "queue": 5 }))
        .event(
            0,
            "queue_left",
            json!({ "queue": "support", "wait_ms": -3 }),
        )
        .event(
            0,
            "agent_ended",
            json!({ "agent": "bob", "talk_ms": "long" }),
        )
        .event(0, "key", json!(null))
        .event(0, "step", json!({ "flow": "main" }))
        .event(0, "no_input", json!({}))
        .event(0, "mystery", json!([1, 2]));
    set.records.push(odd.record);
    set.events.extend(odd.events);
    let r = set.report(&ReportParams::default());
    assert_eq!(r.calls, 2);
    assert_eq!(r.outcomes.get(CallOutcome::Agent), 1);
    let q = r.queues.iter().find(|q| q.queue == "support").unwrap();
    // c1 answered after 4 s once; c2's queue_left without a join or outcome: failed.
    assert_eq!((q.offered, q.answered, q.failed), (2, 1, 1));
    assert_close(q.asa_seconds, 4.0);
    let alice = r.agents.iter().find(|a| a.agent == "alice").unwrap();
    assert_eq!(alice.calls_handled, 1);
}

#[test]
fn a_call_still_waiting_is_offered_but_not_ended() {
    let r = Set::of(vec![call("live", "1", t0()).joined(1000, "support")])
        .report(&ReportParams::default());
    let q = &r.queues[0];
    assert_eq!((q.offered, q.waiting, q.abandoned, q.failed), (1, 1, 0, 0));
    assert_eq!(q.service_level, None);
    assert_eq!(r.in_progress, 1);
}

#[test]
fn a_hang_up_in_queue_without_its_event_is_an_abandon() {
    let mut c = call("c", "1", t0()).joined(1000, "support");
    c.record.ended_ms = Some(t0() + 31000);
    c.record.outcome = Some(CallOutcome::AbandonedInQueue);
    c.record.hung_up_by = Some(HungUpBy::Caller);
    let r = Set::of(vec![c]).report(&ReportParams::default());
    // Waited from 1 s to 31 s.
    assert_eq!(r.queues[0].abandoned, 1);
    assert_close(r.queues[0].longest_wait_seconds, 30.0);
}

#[test]
fn csv_tables_quote_what_must_be_quoted() {
    let r = Set::of(vec![
        call("a", "1", t0())
            .reason("billing, \"urgent\"")
            .outcome(CallOutcome::SelfService),
    ])
    .report(&ReportParams::default());
    let names: Vec<&str> = csv::tables(&r).iter().map(|(n, _)| *n).collect();
    assert_eq!(names, csv::NAMES);
    let reasons = csv::table(&r, "reasons").unwrap();
    assert_eq!(
        reasons,
        "reason,calls\r\n\"billing, \"\"urgent\"\"\",1\r\n,0\r\n"
    );
    let summary = csv::table(&r, "summary").unwrap();
    assert!(
        summary.contains("self_service_rate,1.0000\r\n"),
        "{summary}"
    );
    assert!(summary.contains("since,\r\n"), "{summary}");
    let outcomes = csv::table(&r, "outcomes").unwrap();
    assert_eq!(outcomes.lines().count(), 10);
    assert!(outcomes.contains("self_service,1\r\n"));
    assert_eq!(csv::table(&r, "nothing"), None);
    let hours = csv::table(&r, "hours").unwrap();
    assert_eq!(hours.lines().count(), 25);
    assert!(hours.contains("9,1,0,0\r\n"), "{hours}");
}

#[test]
fn csv_queue_table_carries_the_figures() {
    let r = queue_set().report(&ReportParams::default());
    let queues = csv::table(&r, "queues").unwrap();
    let mut lines = queues.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let support: Vec<&str> = lines.nth(1).unwrap().split(',').collect();
    let col = |name: &str| support[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("queue"), "support");
    assert_eq!(col("offered"), "8");
    assert_eq!(col("abandon_rate"), "0.2857");
    assert_eq!(col("service_level"), "0.3333");
    assert_eq!(col("asa_seconds"), "17.334");
    assert_eq!(col("aht_seconds"), "66.250");
}

#[test]
fn text_rendering_aligns_columns_and_shows_percentages() {
    let r = queue_set().report(&ReportParams::default());
    let out = text::render(&r);
    for title in [
        "SUMMARY",
        "OUTCOMES",
        "QUEUES",
        "AGENTS",
        "SURVEY",
        "REPEAT CALLERS",
        "HOURS",
    ] {
        assert!(out.contains(title), "{title} missing:\n{out}");
    }
    // Service level of support, as a percentage.
    assert!(out.contains("33.3%"), "{out}");
    let agents: Vec<&str> = out
        .split("AGENTS\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.is_empty())
        .collect();
    // Header, rule, then alice, bob, carol, each as wide as the rule or narrower.
    assert_eq!(agents.len(), 5);
    let width = agents[1].len();
    assert!(agents.iter().all(|l| l.len() <= width), "{agents:?}");
    assert!(agents[2].starts_with("alice"));
}

#[test]
fn json_has_the_issue_s_fields() {
    let r = queue_set().report(&ReportParams::default());
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "calls",
        "outcomes",
        "self_service_rate",
        "steps",
        "tags",
        "queues",
        "agents",
        "survey",
        "repeat_callers",
        "hours",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    let q = &v["queues"][1];
    for key in [
        "offered",
        "answered",
        "abandoned",
        "short_abandoned",
        "abandon_rate",
        "service_level",
        "asa_seconds",
        "aht_seconds",
        "longest_wait_seconds",
        "callbacks_requested",
        "callbacks_completed",
    ] {
        assert!(q.get(key).is_some(), "{key}");
    }
    assert_eq!(q["queue"], "support");
    assert_eq!(v["hours"].as_array().unwrap().len(), 24);
}

/// The record the builder makes of a call where bob misses and alice answers with hold and
/// wrap-up (see `record::build`'s `agent_story`), and of the call back for another caller
/// that alice answers, read back by the report.
#[test]
fn agent_no_answers_hold_and_wrap_up_from_built_records() {
    use crate::record::build::{build, tests as built};
    let facts = built::facts(HungUpBy::Agent);
    let (r1, e1) = build(&facts, &built::agent_story());
    // The call back: alice answers 5 s after it joined, talks 40 s, no hold; 10 s wrap-up.
    let story = crate::flow::story::CallStory {
        call_id: "cb".into(),
        entries: [
            (
                0,
                crate::flow::story::StoryEvent::CallbackPlaced {
                    queue: "support".into(),
                    request: 1,
                    for_call: "c0".into(),
                    attempt: 1,
                },
            ),
            (
                3,
                crate::flow::story::StoryEvent::QueueJoined {
                    queue: "support".into(),
                },
            ),
            (
                5,
                crate::flow::story::StoryEvent::AgentRinging {
                    agent: "alice".into(),
                },
            ),
            (
                8,
                crate::flow::story::StoryEvent::QueueAnswered {
                    agent: "alice".into(),
                },
            ),
            (
                48,
                crate::flow::story::StoryEvent::WrapUp {
                    agent: "alice".into(),
                    wrap_up: std::time::Duration::from_secs(10),
                },
            ),
            (
                48,
                crate::flow::story::StoryEvent::QueueFinished {
                    outcome: "agent_hung_up".into(),
                    waited: Some(std::time::Duration::from_secs(5)),
                },
            ),
        ]
        .into_iter()
        .map(|(s, event)| crate::flow::story::StoryEntry {
            at: std::time::Duration::from_secs(s),
            event,
        })
        .collect(),
        ..Default::default()
    };
    let mut cb_facts = facts.clone();
    cb_facts.call_id = "cb".into();
    cb_facts.kind = CallKind::Callback;
    cb_facts.started_ms = facts.started_ms + HOUR;
    cb_facts.ended_ms = cb_facts.started_ms + 48 * SECOND;
    let (r2, e2) = build(&cb_facts, &story);
    let records = vec![r1, r2];
    let events: Vec<CallEvent> = e1.into_iter().chain(e2).collect();
    let r = Report::compute(&records, &events, &ReportParams::default());
    let names: Vec<&str> = r.agents.iter().map(|a| a.agent.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    let alice = &r.agents[0];
    // Talk: 55 s (80 s with the caller less 25 s on hold) + 40 s. Hold 25 s. Wrap-up 30 s +
    // 10 s. AHT: (55 + 25 + 30 + 40 + 10) / 2 = 80 s.
    assert_eq!(alice.calls_handled, 2);
    assert_close(Some(alice.talk_seconds), 95.0);
    assert_close(alice.hold_seconds, 25.0);
    assert_close(alice.wrap_up_seconds, 40.0);
    assert_close(alice.aht_seconds, 80.0);
    assert_eq!(alice.no_answers, 0);
    // bob rang once and let the ring time run out: no call handled, one no-answer.
    let bob = &r.agents[1];
    assert_eq!((bob.calls_handled, bob.no_answers), (0, 1));
    assert_eq!(bob.aht_seconds, None);
    let q = &r.queues[0];
    assert_eq!(q.queue, "support");
    // Handled: both segments; AHT (110 + 50) / 2 = 80 s. The call back completed.
    assert_eq!(q.handled, 2);
    assert_close(q.aht_seconds, 80.0);
    assert_eq!(q.callbacks_completed, 1);
    // The no-answers reach every rendering.
    let agents_csv = csv::table(&r, "agents").unwrap();
    let mut lines = agents_csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "no_answers").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!((rows[0][col], rows[1][col]), ("0", "1"));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["agents"][1]["no_answers"], 1);
    assert!(text::render(&r).contains("no_answers"));
}

/// A caller whose engine stopped (or whose node died) while waiting is lost: reported
/// apart, never abandoned, and left out of the service level.
#[test]
fn a_wait_cut_by_the_engine_is_lost_not_abandoned() {
    let j = 10 * SECOND;
    let lost = call("l1", "301", 0)
        .joined(j, "support")
        .outcome(CallOutcome::Interrupted);
    let gave_up = call("l2", "302", 0)
        .joined(j, "support")
        .ended(90 * SECOND, CallOutcome::AbandonedInQueue);
    let r = Set::of(vec![lost, gave_up]).report(&ReportParams::default());
    let q = &r.queues[0];
    assert_eq!((q.offered, q.lost, q.abandoned, q.failed), (2, 1, 1, 0));
    assert_close(q.abandon_rate, 1.0 / 2.0);
    assert_eq!(q.service_level, Some(0.0));
}

/// A call back the caller did not answer is a record (kind callback, never answered,
/// outcome failed) but no call: it counts only in its queue's `callbacks_unanswered`.
#[test]
fn an_unanswered_call_back_is_counted_in_its_queue_and_nowhere_else() {
    let j = 10 * SECOND;
    let asked = call("a1", "401", 0)
        .joined(j, "support")
        .asked_callback(j, "support", 5000)
        .ended(j + 8000, CallOutcome::Callback);
    let mut tried = call("a1-try1", "401", HOUR)
        .kind(CallKind::Callback)
        .event(
            0,
            "callback_placed",
            json!({ "queue": "support", "request": 1, "for_call": "a1", "attempt": 1 }),
        )
        .outcome(CallOutcome::Failed);
    tried.record.answered_ms = None;
    let r = Set::of(vec![asked, tried]).report(&ReportParams::default());
    assert_eq!(r.calls, 1, "the attempt is not a call");
    assert_eq!(r.outcomes.get(CallOutcome::Failed), 0);
    let q = &r.queues[0];
    assert_eq!(
        (
            q.callbacks_requested,
            q.callbacks_completed,
            q.callbacks_unanswered
        ),
        (1, 0, 1)
    );
}
