//! Every step kind and the menu rules of the best IVRs, against the interpreter with a
//! fake clock: set, branch, hours, http, record, transfer, retry prompts, separate failure
//! limits, confirm, repeat and back.

#[path = "common/flow_call.rs"]
mod flow_call;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hotline::flow::check::FlowConfig;
use hotline::flow::flowset::FlowSet;
use hotline::flow::machine::{
    Action, BEEP, BEEP_HZ, CallContext, DEFAULT_TRANSFER_TIMEOUT, Event, HttpFailure, RecordEnd,
    RequestId, SHELL_GRACE, TransferOutcome,
};
use hotline::flow::model::HttpMethod;
use hotline::flow::story::{FailReason, KeyUse, Outcome, StoryEvent};
use serde_json::{Value, json};

use flow_call::{Call, SECS, context, flow_set_with};

fn config() -> FlowConfig {
    let mut c = FlowConfig::default();
    c.schedules.insert(
        "service_hours".to_owned(),
        "timezone: Europe/Berlin\nweekly: { mon-fri: 08:00-18:00 }\nholidays:\n  - { date: 12-25, name: christmas }\n  - { from: 2026-12-28, to: 2026-12-30, name: inventory }\n"
            .parse()
            .expect("schedule"),
    );
    c.vars
        .insert("crm_url".to_owned(), json!("http://127.0.0.1:8081"));
    c.vars.insert("max_items".to_owned(), json!(3));
    c
}

fn set_of(text: &str) -> Arc<FlowSet> {
    flow_set_with(&[("main", text)], &config())
}

/// A call to `main` on a Monday morning.
fn call(set: &Arc<FlowSet>) -> Call {
    call_at(set, monday_morning())
}

fn call_at(set: &Arc<FlowSet>, wall: DateTime<Utc>) -> Call {
    let ctx = CallContext {
        wall_clock_at_start: wall,
        ..context()
    };
    Call::start_with(set, "main", ctx)
}

/// Monday 2026-11-23, 10:00 in Berlin.
fn monday_morning() -> DateTime<Utc> {
    berlin(2026, 11, 23, 10, 0, 0)
}

fn berlin(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Berlin
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc)
}

// ------------------------------------------------------------------ set and branch

const ROUTING: &str = r##"
steps:
  remember:
    set:
      greeting: "Hello {{ caller }}"
      items: "{{ [1, 2, 3, 4] }}"
      count: "{{ [1, 2, 3, 4] | length }}"
      limit: "{{ config.max_items }}"
      crm: "{{ config.crm_url }}/customers/{{ caller }}"
      at: "{{ now }}"
      missing: "[{{ nobody.name }}]"
    next: route
  route:
    branch:
      when:
        - { if: 'count > limit', next: many }
        - { if: 'true', next: few }
      else: few
  many:
    hangup: many
  few:
    hangup: few
"##;

#[test]
fn set_keeps_types_of_single_expressions_and_sees_config_and_now() {
    let mut c = call(&set_of(ROUTING));
    assert_eq!(c.var("greeting"), Some(json!("Hello +4930123456")));
    assert_eq!(c.var("items"), Some(json!([1, 2, 3, 4])));
    assert_eq!(c.var("count"), Some(json!(4)));
    assert_eq!(c.var("limit"), Some(json!(3)));
    assert_eq!(
        c.var("crm"),
        Some(json!("http://127.0.0.1:8081/customers/+4930123456"))
    );
    assert_eq!(c.var("at"), Some(json!("2026-11-23T09:00:00Z")));
    // An undefined variable renders as empty text and is noted in the story.
    assert_eq!(c.var("missing"), Some(json!("[]")));
    assert!(c.events().contains(&StoryEvent::TemplateUndefined {
        template: "[{{ nobody.name }}]".to_owned(),
        variables: vec!["nobody.name".to_owned()],
    }));
    // 4 > 3: the first condition that holds decides.
    assert_eq!(c.heard(), ["many"]);
    assert!(c.events().contains(&StoryEvent::BranchTaken {
        condition: Some("count > limit".to_owned()),
        to: "many".to_owned(),
    }));
}

#[test]
fn branch_falls_to_else_and_conditions_see_json_results() {
    let set = set_of(
        r##"
steps:
  start:
    set: { result: '{{ {"status": "delayed", "eta": "2026-11-25"} }}' }
    next: route
  route:
    branch:
      when:
        - { if: 'result.status == "shipped"', next: shipped }
        - { if: 'result.missing.deeper', next: shipped }
      else: other
  shipped:
    hangup: shipped
  other:
    play:
      - { say: date, value: "{{ result.eta }}" }
    next: hangup
"##,
    );
    let mut c = call(&set);
    assert_eq!(c.heard(), ["say:date:2026-11-25"]);
    assert!(c.events().contains(&StoryEvent::BranchTaken {
        condition: None,
        to: "other".to_owned(),
    }));
}

#[test]
fn a_branch_without_a_match_or_else_ends_the_flow() {
    let set = set_of(
        r##"
steps:
  route:
    branch:
      when: [{ if: 'caller == "nobody"', next: x }]
  x:
    hangup: x
"##,
    );
    let mut c = call(&set);
    c.expect_default_goodbye();
    assert_eq!(c.outcome(), Some(Outcome::FlowEnded));
}

// ------------------------------------------------------------------ hours

const HOURS: &str = r##"
steps:
  welcome:
    play: welcome
    next: check
  check:
    hours: service_hours
    open: open
    closed: closed
  open:
    hangup: open
  closed:
    hangup: closed
"##;

const HOURS_WITH_HOLIDAY: &str = r##"
steps:
  check:
    hours: service_hours
    open: open
    closed: closed
    holiday: holiday
  open:
    hangup: open
  closed:
    hangup: closed
  holiday:
    hangup: holiday
"##;

/// What a call placed at `wall` hears after the welcome (which takes no time here).
fn hours_at(wall: DateTime<Utc>) -> Vec<String> {
    let mut c = call_at(&set_of(HOURS), wall);
    c.hears(&["welcome"]);
    c.heard()
}

#[test]
fn hours_decide_at_the_wall_clock_time_of_the_step_to_the_second() {
    // The call starts at 17:59:50; the schedule is asked when the welcome ends.
    let start = berlin(2026, 11, 23, 17, 59, 50);
    let mut c = call_at(&set_of(HOURS), start);
    assert_eq!(c.heard(), ["welcome"]);
    c.wait(SECS(9));
    c.finish();
    assert_eq!(c.heard(), ["open"]); // 17:59:59
    let mut c = call_at(&set_of(HOURS), start);
    assert_eq!(c.heard(), ["welcome"]);
    c.wait(SECS(10));
    c.finish();
    assert_eq!(c.heard(), ["closed"]); // 18:00:00
    assert!(c.events().contains(&StoryEvent::HoursChecked {
        schedule: "service_hours".to_owned(),
        state: "closed".to_owned(),
        local_time: "2026-11-23 18:00:00 CET".to_owned(),
    }));
    // Summer time does not move the hours.
    assert_eq!(hours_at(berlin(2026, 3, 30, 8, 0, 0)), ["open"]);
    assert_eq!(hours_at(berlin(2026, 3, 30, 7, 59, 59)), ["closed"]);
}

#[test]
fn holidays_go_to_holiday_or_else_to_closed() {
    let with = set_of(HOURS_WITH_HOLIDAY);
    let mut c = call_at(&with, berlin(2026, 12, 25, 10, 0, 0));
    assert_eq!(c.heard(), ["holiday"]);
    let mut c = call_at(&with, berlin(2026, 12, 29, 10, 0, 0));
    assert_eq!(c.heard(), ["holiday"]);
    let mut c = call_at(&with, berlin(2026, 12, 31, 10, 0, 0));
    assert_eq!(c.heard(), ["open"]);
    // Without `holiday:`, a holiday is closed.
    let mut c = call_at(&set_of(HOURS), berlin(2027, 12, 25, 10, 0, 0));
    c.hears(&["welcome"]);
    assert_eq!(c.heard(), ["closed"]);
    assert!(c.events().iter().any(|e| matches!(
        e,
        StoryEvent::HoursChecked { state, .. } if state == "holiday 'christmas'"
    )));
}

// ------------------------------------------------------------------ http

const LOOKUP: &str = r##"
steps:
  lookup:
    http:
      method: POST
      url: "{{ config.crm_url }}/orders/{{ caller }}"
      headers: { Authorization: "Bearer {{ config.max_items }}", X-Call: "{{ call_id }}" }
      body: { caller: "{{ caller }}", limit: "{{ config.max_items }}", note: "n={{ 1 + 1 }}" }
      timeout: 2s
      into: result
      next: say_status
      on_error: sorry
  say_status:
    play:
      - { say: date, value: "{{ result.eta }}" }
    next: hangup
  sorry:
    hangup: sorry
"##;

fn start_lookup() -> (Call, RequestId) {
    let mut c = call(&set_of(LOOKUP));
    let Some(Action::Http {
        id,
        method,
        url,
        headers,
        body,
        timeout,
    }) = c.action()
    else {
        panic!("expected an http request");
    };
    assert_eq!(method, HttpMethod::Post);
    assert_eq!(url, "http://127.0.0.1:8081/orders/%2B4930123456");
    assert_eq!(
        headers,
        [
            ("Authorization".to_owned(), "Bearer 3".to_owned()),
            ("X-Call".to_owned(), "c1@host".to_owned())
        ]
    );
    let body: Value = serde_json::from_str(&body.expect("a body")).expect("JSON");
    assert_eq!(
        body,
        json!({ "caller": "+4930123456", "limit": 3, "note": "n=2" })
    );
    assert_eq!(timeout, SECS(2));
    c.expect_nothing();
    // The machine guards the request with the timeout plus a grace for the shell.
    assert_eq!(c.m().poll_timeout(), Some(c.now() + SECS(2) + SHELL_GRACE));
    (c, id)
}

#[test]
fn http_success_stores_the_json_and_continues() {
    let (mut c, id) = start_lookup();
    c.send(Event::HttpDone {
        id,
        outcome: Ok(json!({ "eta": "2026-11-25", "status": "shipped" })),
    });
    assert_eq!(c.heard(), ["say:date:2026-11-25"]);
    assert_eq!(
        c.var("result"),
        Some(json!({ "eta": "2026-11-25", "status": "shipped" }))
    );
    let events = c.events();
    assert!(events.contains(&StoryEvent::HttpRequested {
        method: "POST".to_owned(),
        url: "http://127.0.0.1:8081/orders/%2B4930123456".to_owned(),
    }));
    assert!(events.contains(&StoryEvent::HttpFinished {
        outcome: "ok".to_owned()
    }));
}

#[test]
fn http_timeout_non_2xx_and_bad_json_go_to_on_error() {
    for failure in [
        HttpFailure::Timeout,
        HttpFailure::Connect,
        HttpFailure::Status(503),
        HttpFailure::BadJson,
    ] {
        let (mut c, id) = start_lookup();
        c.send(Event::HttpDone {
            id,
            outcome: Err(failure),
        });
        assert_eq!(c.heard(), ["sorry"], "{failure}");
        assert_eq!(c.var("result"), None);
        assert!(c.events().contains(&StoryEvent::HttpFinished {
            outcome: failure.to_string()
        }));
    }
}

#[test]
fn a_shell_that_never_answers_counts_as_a_timeout_and_late_answers_are_ignored() {
    let (mut c, id) = start_lookup();
    c.wait(SECS(2) + SHELL_GRACE);
    assert_eq!(c.heard(), ["sorry"]);
    c.send(Event::HttpDone {
        id,
        outcome: Ok(json!({})),
    });
    c.send(Event::HttpDone {
        id: RequestId(99),
        outcome: Ok(json!({})),
    });
    c.expect_nothing();
    assert_eq!(c.var("result"), None);
}

#[test]
fn keys_during_a_lookup_are_kept_for_the_next_menu() {
    let set = set_of(
        r##"
steps:
  lookup:
    http: { url: "http://127.0.0.1:8081/x", next: menu }
  menu:
    menu:
      prompt: main_menu
      options: { "2": two }
  two:
    hangup: two
"##,
    );
    let mut c = call(&set);
    let Some(Action::Http { id, body, .. }) = c.action() else {
        panic!("expected an http request");
    };
    assert_eq!(body, None);
    c.press("2");
    c.send(Event::HttpDone {
        id,
        outcome: Ok(Value::Null),
    });
    assert_eq!(c.heard(), ["two"]);
}

#[test]
fn without_on_error_a_failed_request_continues_with_next() {
    let set = set_of(
        r##"
steps:
  notify:
    http: { url: "http://127.0.0.1:8081/notify", method: post, body: "{{ caller }}" }
    next: bye
  bye:
    hangup: bye
"##,
    );
    let mut c = call(&set);
    let Some(Action::Http { id, body, .. }) = c.action() else {
        panic!("expected an http request");
    };
    assert_eq!(body.as_deref(), Some("+4930123456"));
    c.send(Event::HttpDone {
        id,
        outcome: Err(HttpFailure::Status(500)),
    });
    assert_eq!(c.heard(), ["bye"]);
}

// ------------------------------------------------------------------ record

const VOICEMAIL: &str = r##"
steps:
  voicemail:
    record:
      prompt: leave_a_message
      max_duration: 60s
      silence_timeout: 5s
      terminator: "#"
      beep: true
      into: message
      next: thanks
  thanks:
    hangup: thanks
"##;

fn start_recording() -> (Call, RequestId) {
    let mut c = call(&set_of(VOICEMAIL));
    assert_eq!(
        c.heard(),
        [
            "leave_a_message".to_owned(),
            format!("tone:{BEEP_HZ}:{}ms", BEEP.as_millis())
        ]
    );
    // The greeting cannot be interrupted; keys are not kept for later.
    c.press("5");
    c.expect_nothing();
    c.finish();
    let Some(Action::Record {
        id,
        max_duration,
        silence_timeout,
        terminator,
        name,
    }) = c.action()
    else {
        panic!("expected a recording");
    };
    assert_eq!(max_duration, SECS(60));
    assert_eq!(silence_timeout, Some(SECS(5)));
    assert_eq!(terminator, Some('#'));
    assert_eq!(name, "c1_host-voicemail-1");
    (c, id)
}

#[test]
fn a_recording_is_stored_in_into_and_the_flow_continues() {
    for reason in [RecordEnd::Terminator, RecordEnd::Silence, RecordEnd::Max] {
        let (mut c, id) = start_recording();
        // The terminator is the shell's: the machine leaves keys alone while recording.
        c.press("#");
        c.expect_nothing();
        c.send(Event::RecordDone {
            id,
            path: "/var/spool/hotline/c1_host-voicemail-1.wav".to_owned(),
            duration: Duration::from_millis(12_500),
            reason,
        });
        assert_eq!(c.heard(), ["thanks"]);
        assert_eq!(
            c.var("message"),
            Some(json!({
                "path": "/var/spool/hotline/c1_host-voicemail-1.wav",
                "duration": 12.5,
                "reason": reason.as_str(),
            }))
        );
    }
}

#[test]
fn a_caller_who_hangs_up_while_recording_leaves_the_message() {
    let (mut c, id) = start_recording();
    c.send(Event::RecordDone {
        id,
        path: "/tmp/m.wav".to_owned(),
        duration: SECS(30),
        reason: RecordEnd::Hangup,
    });
    c.send(Event::CallerHangup);
    c.expect_nothing();
    assert!(c.m().is_ended());
    assert_eq!(c.outcome(), Some(Outcome::CallerHungUp));
    assert_eq!(
        c.var("message").map(|m| m["path"].clone()),
        Some(json!("/tmp/m.wav"))
    );

    // The other order: the hang-up first, the recording's end after it.
    let (mut c, id) = start_recording();
    c.send(Event::CallerHangup);
    c.send(Event::RecordDone {
        id,
        path: "/tmp/m.wav".to_owned(),
        duration: SECS(30),
        reason: RecordEnd::Hangup,
    });
    c.expect_nothing();
    assert_eq!(c.outcome(), Some(Outcome::CallerHungUp));
    assert!(c.var("message").is_some());
}

#[test]
fn a_failed_recording_continues_without_a_message() {
    let (mut c, id) = start_recording();
    c.send(Event::RecordDone {
        id,
        path: String::new(),
        duration: Duration::ZERO,
        reason: RecordEnd::Failed,
    });
    assert_eq!(c.heard(), ["thanks"]);
    assert_eq!(c.var("message"), None);
    // The shell that never reports is guarded too: max_duration plus the grace.
    let (mut c, _) = start_recording();
    c.wait(SECS(60) + SHELL_GRACE);
    assert_eq!(c.heard(), ["thanks"]);
}

#[test]
fn a_record_step_without_prompt_or_beep_records_at_once() {
    let set = set_of(
        r##"
steps:
  comment:
    record: { beep: false, next: hangup }
"##,
    );
    let mut c = call(&set);
    let Some(Action::Record {
        id,
        max_duration,
        silence_timeout,
        terminator,
        ..
    }) = c.action()
    else {
        panic!("expected a recording");
    };
    assert_eq!(max_duration, SECS(120));
    assert_eq!((silence_timeout, terminator), (None, None));
    c.send(Event::RecordDone {
        id,
        path: "/tmp/x.wav".to_owned(),
        duration: SECS(3),
        reason: RecordEnd::Silence,
    });
    c.expect_hangup();
}

// ------------------------------------------------------------------ transfer

const TRANSFER: &str = r##"
global_keys: { "0": operator }
steps:
  menu:
    menu:
      prompt: main_menu
      options: { "1": desk }
  desk:
    transfer: "sip:desk@example.com"
  operator:
    transfer: "tel:+4930123456"
    timeout: 20s
    on_failure: voicemail
  voicemail:
    hangup: advisors_busy
"##;

fn transfer_from(key: &str) -> (Call, RequestId, String, Duration) {
    let mut c = call(&set_of(TRANSFER));
    c.heard();
    c.press(key);
    c.expect_stop();
    match c.action() {
        Some(Action::Transfer {
            id,
            target,
            timeout,
        }) => (c, id, target, timeout),
        other => panic!("expected a transfer, got {other:?}"),
    }
}

#[test]
fn a_connected_transfer_ends_the_flow_and_leaves_the_call_to_the_shell() {
    let (mut c, id, target, timeout) = transfer_from("0");
    assert_eq!(target, "tel:+4930123456");
    assert_eq!(timeout, SECS(20));
    c.press("5");
    c.expect_nothing();
    c.send(Event::TransferDone {
        id,
        outcome: TransferOutcome::Connected,
    });
    c.expect_nothing();
    assert!(c.m().is_ended());
    assert_eq!(
        c.outcome(),
        Some(Outcome::Transferred {
            target: "tel:+4930123456".to_owned()
        })
    );
}

#[test]
fn a_failed_transfer_goes_to_on_failure_or_the_goodbye() {
    for outcome in [
        TransferOutcome::Busy,
        TransferOutcome::NoAnswer,
        TransferOutcome::Failed("503".to_owned()),
    ] {
        let (mut c, id, _, _) = transfer_from("0");
        c.send(Event::TransferDone {
            id,
            outcome: outcome.clone(),
        });
        assert_eq!(c.heard(), ["advisors_busy"]);
        assert!(c.events().contains(&StoryEvent::TransferFinished {
            outcome: outcome.to_string()
        }));
    }
    let (mut c, id, target, timeout) = transfer_from("1");
    assert_eq!(
        (target.as_str(), timeout),
        ("sip:desk@example.com", DEFAULT_TRANSFER_TIMEOUT)
    );
    c.send(Event::TransferDone {
        id,
        outcome: TransferOutcome::NoAnswer,
    });
    c.expect_default_goodbye();
    assert_eq!(
        c.outcome(),
        Some(Outcome::Failed(FailReason::TransferFailed {
            step: "desk".to_owned(),
            outcome: "no answer".to_owned()
        }))
    );
}

// ------------------------------------------------------------------ menus

#[test]
fn retries_play_the_retry_prompt_instead_of_the_full_one() {
    let set = set_of(
        r##"
steps:
  menu:
    menu:
      prompt: main_menu
      retry_prompt: main_menu_short
      no_input: please_choose
      invalid: invalid_option
      options: { "1": one }
      retries: 2
      on_failure: bye
  one:
    hangup: one
  bye:
    hangup: bye
"##,
    );
    let mut c = call(&set);
    c.hears(&["main_menu"]);
    c.wait(SECS(5));
    c.hears(&["please_choose", "main_menu_short"]);
    c.press("7");
    c.hears(&["invalid_option", "main_menu_short"]);
    c.wait(SECS(5));
    assert_eq!(c.heard(), ["bye"]);
}

const LIMITS: &str = r##"
steps:
  menu:
    menu:
      prompt: main_menu
      no_input: please_choose
      invalid: invalid_option
      options: { "1": one }
      max_no_input: 1
      max_invalid: 3
      on_failure: bye
  one:
    hangup: one
  bye:
    hangup: bye
"##;

#[test]
fn no_input_and_invalid_count_apart_when_their_limits_are_set() {
    // Three wrong keys are tolerated, and a timeout besides.
    let mut c = call(&set_of(LIMITS));
    c.hears(&["main_menu"]);
    for _ in 0..3 {
        c.press("7");
        c.hears(&["invalid_option", "main_menu"]);
    }
    c.wait(SECS(5));
    c.hears(&["please_choose", "main_menu"]);
    c.press("1");
    assert_eq!(c.heard(), ["one"]);

    // The second timeout is one too many, whatever the wrong keys.
    let mut c = call(&set_of(LIMITS));
    c.hears(&["main_menu"]);
    c.wait(SECS(5));
    c.hears(&["please_choose", "main_menu"]);
    c.wait(SECS(5));
    assert_eq!(c.heard(), ["bye"]);

    // The fourth wrong key too.
    let mut c = call(&set_of(LIMITS));
    c.hears(&["main_menu"]);
    for _ in 0..3 {
        c.press("7");
        c.hears(&["invalid_option", "main_menu"]);
    }
    c.press("7");
    assert_eq!(c.heard(), ["bye"]);
}

#[test]
fn one_limit_set_leaves_the_other_kind_at_retries() {
    let set = set_of(
        r##"
steps:
  order:
    collect:
      prompt: enter_order_number
      into: order
      max_digits: 4
      pattern: '^1'
      invalid: order_number_invalid
      max_invalid: 0
      retries: 1
      next: hangup
      on_failure: bye
  bye:
    hangup: bye
"##,
    );
    // Timeouts: retries (1) apply, so two timeouts end it.
    let mut c = call(&set);
    c.hears(&["enter_order_number"]);
    c.wait(SECS(5));
    c.hears(&["enter_order_number"]);
    c.wait(SECS(5));
    assert_eq!(c.heard(), ["bye"]);
    // Wrong entries: none tolerated.
    let mut c = call(&set);
    c.hears(&["enter_order_number"]);
    c.press("2345");
    assert_eq!(c.heard(), ["bye"]);
}

#[test]
fn the_repeat_key_of_a_collect_replays_its_prompt_without_a_failure() {
    let set = set_of(
        r##"
steps:
  order:
    collect:
      prompt: enter_order_number
      into: order
      max_digits: 3
      terminator: "#"
      repeat_key: "*"
      retries: 0
      next: done
  done:
    hangup: done
"##,
    );
    let mut c = call(&set);
    c.hears(&["enter_order_number"]);
    for _ in 0..3 {
        c.press("*");
        c.hears(&["enter_order_number"]);
    }
    c.press("123");
    assert_eq!(c.heard(), ["done"]);
    assert_eq!(c.var("order"), Some(json!("123")));
}

const CONFIRM: &str = r##"
steps:
  account:
    collect:
      prompt: enter_account
      into: account
      max_digits: 4
      confirm: { prompt: you_entered, then: press_1_or_2 }
      next: done
  done:
    hangup: done
"##;

#[test]
fn confirm_reads_the_entry_back_and_accepts_it() {
    let mut c = call(&set_of(CONFIRM));
    c.hears(&["enter_account"]);
    c.press("1234");
    c.hears(&["you_entered", "say:digits:1234", "press_1_or_2"]);
    c.press("1");
    assert_eq!(c.heard(), ["done"]);
    assert_eq!(c.var("account"), Some(json!("1234")));
}

#[test]
fn confirm_re_enters_without_a_failure() {
    let mut c = call(&set_of(CONFIRM));
    c.hears(&["enter_account"]);
    c.press("1234");
    assert_eq!(
        c.heard(),
        ["you_entered", "say:digits:1234", "press_1_or_2"]
    );
    c.press("2");
    c.expect_stop();
    c.hears(&["enter_account"]);
    c.press("4321");
    c.hears(&["you_entered", "say:digits:4321", "press_1_or_2"]);
    c.press("1");
    assert_eq!(c.heard(), ["done"]);
    assert_eq!(c.var("account"), Some(json!("4321")));
    assert!(
        !c.events()
            .iter()
            .any(|e| matches!(e, StoryEvent::Invalid { .. } | StoryEvent::NoInput { .. }))
    );
}

const BACK: &str = r##"
global_keys: { "*": back, "0": operator }
steps:
  main:
    menu:
      prompt: main_menu
      options: { "1": sales, "2": order, "9": sub }
  sales:
    menu:
      prompt: sales_menu
      options: { "1": info }
  info:
    play: info
    next: sales
  order:
    collect:
      prompt: enter_order_number
      into: order
      max_digits: 6
      next: hangup
  sub:
    goto: shared
    return: true
    next: main
  operator:
    hangup: operator
"##;

fn back_set() -> Arc<FlowSet> {
    let shared = r##"
global_keys: { "*": back }
steps:
  shared_menu:
    menu:
      prompt: shared_menu
      options: { "1": leave }
  leave:
    play: left
"##;
    flow_set_with(&[("main", BACK), ("shared", shared)], &config())
}

#[test]
fn back_returns_to_the_previous_menu() {
    let mut c = call(&back_set());
    c.hears(&["main_menu"]);
    c.press("1");
    c.hears(&["sales_menu"]);
    // A play step between two visits of the same menu is not a menu to go back to.
    c.press("1");
    c.hears(&["info"]);
    c.hears(&["sales_menu"]);
    c.press("*");
    assert_eq!(c.heard(), ["main_menu"]);
    assert!(c.events().iter().any(|e| matches!(
        e,
        StoryEvent::Key { key: '*', went: KeyUse::Back { to }, .. } if to == "main"
    )));
}

#[test]
fn back_works_in_a_collect_as_global_keys_do() {
    let mut c = call(&back_set());
    c.hears(&["main_menu"]);
    c.press("2");
    c.hears(&["enter_order_number"]);
    c.press("*");
    assert_eq!(c.heard(), ["main_menu"]);
    c.finish();
    c.press("2");
    c.hears(&["enter_order_number"]);
    // A global key that is not a digit works after digits too; the digits are dropped.
    c.press("12*");
    assert_eq!(c.heard(), ["main_menu"]);
    assert_eq!(c.var("order"), None);
}

#[test]
fn back_with_nowhere_to_go_is_a_wrong_key() {
    let mut c = call(&back_set());
    c.hears(&["main_menu"]);
    c.press("*");
    assert_eq!(c.heard(), ["main_menu"]);
    assert!(
        c.events()
            .iter()
            .any(|e| matches!(e, StoryEvent::Invalid { input, .. } if input == "*"))
    );
}

#[test]
fn back_leaves_a_shared_flow_for_the_menu_that_called_it() {
    let mut c = call(&back_set());
    c.hears(&["main_menu"]);
    c.press("9");
    c.hears(&["shared_menu"]);
    c.press("*");
    assert_eq!(c.heard(), ["main_menu"]);
    c.finish();
    // The return point of the goto was dropped with it: the flow is main again, and
    // leaving main's menu for sales works as before.
    c.press("1");
    assert_eq!(c.heard(), ["sales_menu"]);
    assert_eq!(
        c.path(),
        [
            "main/main",
            "main/sub",
            "shared/shared_menu",
            "main/main",
            "main/sales"
        ]
    );
}

#[test]
fn back_into_a_shared_flow_already_left_returns_from_it_again() {
    let mut c = call(&back_set());
    c.hears(&["main_menu"]);
    c.press("9");
    c.hears(&["shared_menu"]);
    c.press("1");
    // The shared flow ends after `leave`: back to main's `next`, the main menu.
    c.hears(&["left"]);
    c.hears(&["main_menu"]);
    c.press("*");
    c.hears(&["shared_menu"]);
    c.press("1");
    c.hears(&["left"]);
    // The return point came back with the shared menu.
    assert_eq!(c.heard(), ["main_menu"]);
}
