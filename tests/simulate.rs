//! `hotline simulate` as library calls on the sample hotline: key groups pressed at the
//! waits, during prompts (barge-in and type-ahead), silences, and the real-time loop fed
//! from a channel.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use hotline::config::Config;
use hotline::flow::machine::CallContext;
use hotline::tools::phone::{VirtualCall, World};
use hotline::tools::simulate::{Input, parse_keys, run_realtime, simulate_keys};

/// A call on a Monday morning, when the sample's opening hours say open.
fn call() -> VirtualCall {
    let config = Config::load(Path::new("hotline.yaml")).unwrap();
    let loaded = hotline::preflight::load_all(&config);
    let world = World {
        at: Some("2026-11-23T10:00:00+01:00".to_owned()),
        ..World::default()
    };
    VirtualCall::start(
        Arc::new(loaded.flows),
        loaded.prompts,
        "main",
        CallContext {
            wall_clock_at_start: world.wall_clock(),
            ..CallContext::default()
        },
        world,
        Instant::now(),
    )
    .unwrap()
}

fn run(keys: &str, times: bool) -> String {
    simulate_keys(&mut call(), &parse_keys(keys).unwrap(), times)
}

#[test]
fn keys_pressed_where_the_flow_waits() {
    let expected = "  step: welcome
  hears: Hello, and welcome to Acme customer service. Willkommen beim Kundenservice von Acme.
  step: choose_language
  hears: For English, press 1. Für Deutsch drücken Sie 2.
  press: 1
  language: en
  step: opening_hours
  hours: service_hours is open at 2026-11-23 10:00:10 CET
  step: main_menu
  hears: For questions before a purchase, press 1. For an order you have already placed, press 2. For repairs and returns, press 3. To speak to an advisor, press 0. To hear these options again, press 9.
  press: 0
  (key 0: global key to 'advisor')
  step: advisor
  tag: reason = advisor
  queued: support
  agent answers: agent
  queue: agent_hung_up after 0s
  set: queue = {\"agent\":\"agent\",\"name\":\"support\",\"outcome\":\"agent_hung_up\",\"wait\":0}
  step: survey
  goto: survey
  step: survey/rating
  hears: Before you go: how satisfied were you with our service today? Press 1 for not satisfied at all, up to 5 for very satisfied.
  press: 2
  set: survey_score = 2
  survey: satisfaction = 2
  step: survey/rated
  tag: survey_score = 2
  set: satisfaction = 2
  step: survey/comment_offer
  hears: Thank you. To leave a comment after the tone, press 1. Otherwise, press 2 or simply hang up.
  press: 3
  (invalid entry '3' in 'comment_offer', failure 1)
  (gives up on 'comment_offer')
  step: survey/thanks
  hears: Thank you for your feedback.
  back in: main
  step: goodbye
  hears: Thank you for calling Acme. Goodbye.
  hangs up
tags: reason=advisor, survey_score=2
outcome: hangup by flow, after 47.5s
";
    assert_eq!(run("1,0,2,3", false), expected);
}

#[test]
fn keys_during_prompts_barge_in_and_type_ahead() {
    let out = run(">2,>1", true);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[2], " 0:01.0  press: 2", "{out}");
    assert!(out.contains(" 0:01.0  (the key stops the prompt)\n 0:01.0  step: choose_language\n 0:01.0  (typed-ahead key 2: option to 'opening_hours')\n 0:01.0  language: de\n"), "{out}");
    assert!(out.contains(" 0:02.0  press: 1\n 0:02.0  (the key stops the prompt)\n 0:02.0  tag: reason = before_purchase\n 0:02.0  step: before_purchase\n"), "{out}");
    // After the last key the silent caller meets the retries and the goodbye.
    assert!(out.contains("(gives up on 'before_purchase')"), "{out}");
    assert!(
        out.ends_with("outcome: hangup by flow, after 2m 15.1s\n"),
        "{out}"
    );
}

#[test]
fn an_empty_group_lets_the_timeout_pass() {
    let out = run("1,,2,12345678#", false);
    assert!(out.contains("  (no input in 'main_menu', failure 1)\n  hears: Sorry, we did not receive your choice.\n"), "{out}");
    assert!(
        out.contains("  press: 12345678#\n  set: order = 12345678\n  step: lookup_order\n"),
        "{out}"
    );
    // The simulated lookup has no service to ask: the order is not found.
    assert!(
        out.contains("  step: order_not_found\n  tag: order_status = not_found\n  tag: reason = order_status\n"),
        "{out}"
    );
}

#[test]
fn the_real_time_loop_takes_keys_as_they_come() {
    let mut c = call();
    let (tx, rx) = mpsc::channel();
    // Queued before the loop starts: pressed at once, during the welcome.
    tx.send(Input::Keys("1x".to_owned())).unwrap();
    tx.send(Input::HangUp).unwrap();
    let mut out = Vec::new();
    run_realtime(&mut c, &rx, &mut out);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("  press: 1\n"), "{out}");
    assert!(out.contains("(not telephone keys, ignored: x)"), "{out}");
    assert!(out.contains("  caller hangs up\n"), "{out}");
    assert!(out.contains("outcome: hangup by caller"), "{out}");
}
