//! What callers feel, tested against the interpreter with a fake clock.

#[path = "common/flow_call.rs"]
mod flow_call;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline::flow::flowset::FlowSet;
use hotline::flow::machine::{Audio, CallContext, Event, FlowMachine, MAX_SILENT_FAILURES};
use hotline::flow::story::{FailReason, FailureKind, KeyUse, Outcome, StoryEvent};
use serde_json::json;

use flow_call::{Call, MS, SECS, flow_set, heard};

const SHOP: &str = r##"
start: welcome
defaults: { language: en, timeout: 5s, retries: 2 }
global_keys:
  "0": advisor
steps:
  welcome:
    play: welcome
    next: main_menu
  main_menu:
    menu:
      prompt: main_menu
      options:
        "1": sales
        "2": order_status
        "9": main_menu
      no_input: please_choose
      invalid: invalid_option
      on_failure: advisor
  sales:
    play: sales_info
    tag: { reason: sales }
    next: hangup
  order_status:
    collect:
      prompt: enter_order_number
      into: order
      min_digits: 6
      max_digits: 10
      terminator: "#"
      inter_digit_timeout: 3s
      pattern: '^[0-9]{6,10}$'
      invalid: order_number_invalid
      next: order_noted
      on_failure: advisor
  order_noted:
    play:
      - order_noted
      - { say: digits, value: "{{ order }}" }
    tag: { reason: order_status, order: "{{ order }}" }
    next: anything_else
  anything_else:
    menu:
      prompt: anything_else
      options:
        "1": main_menu
        "2": goodbye
  advisor:
    play: advisors_busy
    tag: { reason: advisor }
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

fn shop() -> Arc<FlowSet> {
    flow_set(&[("main", SHOP)])
}

// ------------------------------------------------------------------ type-ahead, barge-in

#[test]
fn a_key_during_the_welcome_goes_straight_through_the_next_menu() {
    let mut c = Call::start(&shop(), "main");
    assert_eq!(c.expect_play(), heard(&["welcome"], true));
    c.wait(MS(800));
    c.press("1");
    // The welcome stops at once, the main menu is not even played: option 1 is taken.
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["sales_info"], true));
    c.expect_nothing();
    let story = c.m().story();
    assert_eq!(
        story.path(),
        ["main/welcome", "main/main_menu", "main/sales"]
    );
    let keys: Vec<(char, KeyUse, bool)> = story
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            StoryEvent::Key {
                key,
                went,
                typed_ahead,
            } => Some((*key, went.clone(), *typed_ahead)),
            _ => None,
        })
        .collect();
    assert_eq!(
        keys,
        [
            ('1', KeyUse::Buffered, false),
            (
                '1',
                KeyUse::Option {
                    to: "sales".to_owned()
                },
                true
            )
        ]
    );
}

#[test]
fn without_barge_in_the_prompt_plays_on_and_the_key_waits_for_the_menu() {
    let set = flow_set(&[(
        "main",
        r##"
steps:
  notice:
    play: legal_notice
    barge_in: false
    next: menu
  menu:
    menu:
      prompt: main_menu
      options: { "1": one }
  one:
    hangup: bye
"##,
    )]);
    let mut c = Call::start(&set, "main");
    assert_eq!(c.expect_play(), heard(&["legal_notice"], false));
    c.press("1");
    c.expect_nothing(); // no StopPlayback: the notice plays to its end
    c.wait(SECS(4));
    c.finish();
    // The buffered key is used by the menu at once; its prompt is not played.
    assert_eq!(c.expect_play(), heard(&["bye"], false));
}

#[test]
fn type_ahead_skips_a_following_barge_in_play_step() {
    let set = flow_set(&[(
        "main",
        r##"
steps:
  welcome:
    play: welcome
    next: news
  news:
    play: news
    next: menu
  menu:
    menu:
      prompt: main_menu
      options: { "2": two }
  two:
    hangup: two
"##,
    )]);
    let mut c = Call::start(&set, "main");
    c.expect_play();
    c.press("2");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["two"], false));
    assert!(c.events().iter().any(|e| matches!(
        e,
        StoryEvent::SkippedForTypeAhead { step } if step == "news"
    )));
}

#[test]
fn a_key_during_a_menu_prompt_stops_it_and_is_the_choice() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.finish();
    assert_eq!(c.expect_play(), heard(&["main_menu"], true));
    c.wait(MS(500));
    c.press("2");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["enter_order_number"], true));
}

/// The shop with a welcome that cannot be interrupted, so every key pressed during it is
/// typed ahead.
fn shop_with_notice() -> Arc<FlowSet> {
    let text = SHOP.replace(
        "    play: welcome\n",
        "    play: welcome\n    barge_in: false\n",
    );
    flow_set(&[("main", &text)])
}

#[test]
fn keys_typed_ahead_fill_a_collect() {
    let mut c = Call::start(&shop_with_notice(), "main");
    assert_eq!(c.expect_play(), heard(&["welcome"], false));
    c.press("212345678#");
    c.expect_nothing();
    c.finish();
    // The menu takes 2, the collect takes the rest: neither prompt is played.
    assert_eq!(
        c.expect_play(),
        heard(&["order_noted", "say:digits:12345678"], true)
    );
    assert_eq!(c.var("order"), Some(json!("12345678")));
}

#[test]
fn keys_left_after_a_collect_go_on_to_the_next_menu() {
    let mut c = Call::start(&shop_with_notice(), "main");
    c.expect_play();
    // 2 in "anything else" is goodbye. With that key waiting, the order_noted play step
    // (barge-in) is passed over, as a prompt the caller would have interrupted anyway.
    c.press("212345678#2");
    c.finish();
    assert_eq!(c.expect_play(), heard(&["goodbye"], true));
    assert_eq!(
        c.path(),
        [
            "main/welcome",
            "main/main_menu",
            "main/order_status",
            "main/order_noted",
            "main/anything_else",
            "main/goodbye"
        ]
    );
}

#[test]
fn keys_typed_ahead_arrive_one_by_one_when_the_prompt_can_be_interrupted() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    // The first key stops the welcome and chooses at once; the next ones barge into
    // the order number prompt and are the entry.
    c.press("212345678#");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["enter_order_number"], true));
    c.expect_stop();
    assert_eq!(c.expect_play().names[0], "order_noted");
    assert_eq!(c.var("order"), Some(json!("12345678")));
}

// ------------------------------------------------------------------ timeouts and retries

#[test]
fn the_timeout_counts_from_the_end_of_the_prompt() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.finish();
    assert_eq!(c.expect_play(), heard(&["main_menu"], true));
    // A long prompt: no timer while it plays.
    assert_eq!(c.m().poll_timeout(), None);
    c.wait(SECS(30));
    c.expect_nothing();
    c.finish();
    assert_eq!(c.m().poll_timeout(), Some(c.now() + SECS(5)));
    c.wait(MS(4_999));
    c.expect_nothing();
    c.wait(MS(1));
    assert_eq!(
        c.expect_play(),
        heard(&["please_choose", "main_menu"], true)
    );
}

#[test]
fn retries_two_means_three_tries_then_on_failure() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.finish();
    let mut offers = 0;
    loop {
        let h = c.expect_play();
        if h.names == ["advisors_busy"] {
            break;
        }
        offers += 1;
        assert!(offers <= 3, "offered more than three times");
        c.finish();
        c.wait(SECS(5));
    }
    assert_eq!(offers, 3);
    let failed = c
        .events()
        .iter()
        .filter(|e| matches!(e, StoryEvent::NoInput { .. }))
        .count();
    assert_eq!(failed, 3);
}

#[test]
fn invalid_and_no_input_play_their_own_prompt_and_count_together() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.finish();
    c.expect_play();
    c.finish();
    c.press("7");
    assert_eq!(
        c.expect_play(),
        heard(&["invalid_option", "main_menu"], true)
    );
    c.finish();
    c.wait(SECS(5));
    assert_eq!(
        c.expect_play(),
        heard(&["please_choose", "main_menu"], true)
    );
    c.finish();
    c.press("*");
    // Third failure: retries (2) used up, on_failure is advisor.
    assert_eq!(c.expect_play(), heard(&["advisors_busy"], true));
    assert_eq!(c.m().story().tag("reason"), Some("advisor"));
}

#[test]
fn without_on_failure_the_caller_hears_a_polite_goodbye() {
    let set = flow_set(&[(
        "main",
        r##"
steps:
  menu:
    menu:
      prompt: main_menu
      options: { "1": one }
      retries: 1
  one:
    hangup:
"##,
    )]);
    let mut c = Call::start(&set, "main");
    assert_eq!(c.expect_play(), heard(&["main_menu"], true));
    c.finish();
    c.wait(SECS(5));
    assert_eq!(c.expect_play(), heard(&["main_menu"], true));
    c.finish();
    c.wait(SECS(5));
    c.expect_default_goodbye();
    assert_eq!(
        c.outcome(),
        Some(Outcome::Failed(FailReason::RetriesExhausted {
            step: "menu".to_owned(),
            last: FailureKind::NoInput
        }))
    );
    assert_eq!(
        c.outcome().map(|o| o.to_string()).as_deref(),
        Some("failure: retries exhausted in 'menu'")
    );
}

#[test]
fn a_flow_that_runs_out_says_goodbye_and_hangs_up() {
    let set = flow_set(&[("main", "steps:\n  info:\n    play: info\n")]);
    let mut c = Call::start(&set, "main");
    c.expect_play();
    c.finish();
    c.expect_default_goodbye();
    assert_eq!(c.outcome(), Some(Outcome::FlowEnded));
}

#[test]
fn next_hangup_ends_the_call_at_once() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.press("1");
    c.expect_stop();
    c.expect_play();
    c.finish();
    c.expect_hangup();
    assert_eq!(c.outcome(), Some(Outcome::FlowHungUp));
    assert_eq!(
        c.outcome().map(|o| o.to_string()).as_deref(),
        Some("hangup by flow")
    );
}

#[test]
fn a_hangup_step_plays_its_prompt_without_barge_in_then_hangs_up() {
    let set = flow_set(&[("main", "steps:\n  bye:\n    hangup: goodbye\n")]);
    let mut c = Call::start(&set, "main");
    assert_eq!(c.expect_play(), heard(&["goodbye"], false));
    c.press("5");
    c.expect_nothing();
    c.finish();
    c.expect_hangup();
    assert_eq!(c.outcome(), Some(Outcome::FlowHungUp));
}

#[test]
fn a_stale_prompt_finished_is_ignored() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    let welcome = c.playing().expect("welcome plays");
    c.press("2");
    c.expect_stop();
    c.expect_play(); // enter_order_number
    c.send(Event::PromptFinished { id: welcome });
    assert_eq!(
        c.m().poll_timeout(),
        None,
        "the old prompt must not start the timer"
    );
}

#[test]
fn repeat_key_plays_the_menu_again_without_counting_a_failure() {
    let set = flow_set(&[(
        "main",
        r##"
steps:
  menu:
    menu:
      prompt: main_menu
      options: { "1": one }
      repeat_key: "*"
      retries: 0
  one:
    hangup: one
"##,
    )]);
    let mut c = Call::start(&set, "main");
    c.expect_play();
    c.finish();
    for _ in 0..3 {
        c.press("*");
        assert_eq!(c.expect_play(), heard(&["main_menu"], true));
        c.finish();
    }
    c.press("1");
    assert_eq!(c.expect_play(), heard(&["one"], false));
}

#[test]
fn an_invalid_key_discards_the_rest_of_the_type_ahead() {
    let mut c = Call::start(&shop_with_notice(), "main");
    c.expect_play();
    c.press("71");
    c.finish();
    // 7 is invalid in the main menu; the 1 after it is dropped, not taken as a choice.
    assert_eq!(
        c.expect_play(),
        heard(&["invalid_option", "main_menu"], true)
    );
    assert!(c.events().iter().any(|e| matches!(
        e,
        StoryEvent::TypeAheadDiscarded { keys } if keys == "1"
    )));
}

// ------------------------------------------------------------------ global keys

#[test]
fn a_global_key_works_in_a_menu_that_does_not_use_it() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.finish();
    c.expect_play();
    c.press("0");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["advisors_busy"], true));
}

#[test]
fn a_menu_option_wins_over_a_global_key() {
    let set = flow_set(&[(
        "main",
        r##"
global_keys: { "0": operator }
steps:
  menu:
    menu:
      prompt: main_menu
      options: { "0": own_zero, "1": operator }
  own_zero:
    hangup: own_zero
  operator:
    hangup: operator
"##,
    )]);
    let mut c = Call::start(&set, "main");
    c.expect_play();
    c.press("0");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["own_zero"], false));
}

#[test]
fn a_global_digit_works_as_the_first_key_of_a_collect_only() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.press("2");
    c.expect_stop();
    c.expect_play(); // enter_order_number
    c.finish();
    c.press("120");
    c.press("3456#");
    assert_eq!(c.var("order"), Some(json!("1203456")));
    assert_eq!(c.expect_play().names[0], "order_noted");

    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.press("2");
    c.expect_stop();
    c.expect_play();
    c.press("0");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["advisors_busy"], true));
}

// ------------------------------------------------------------------ collect

fn to_collect() -> Call {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.finish();
    c.expect_play();
    c.press("2");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["enter_order_number"], true));
    c
}

#[test]
fn collect_ends_at_the_terminator() {
    let mut c = to_collect();
    c.wait(SECS(2));
    c.press("1"); // barge-in
    c.expect_stop();
    c.press("2345678");
    c.expect_nothing();
    c.press("#");
    assert_eq!(c.var("order"), Some(json!("12345678")));
    assert_eq!(
        c.expect_play(),
        heard(&["order_noted", "say:digits:12345678"], true)
    );
    assert_eq!(c.m().story().tag("order"), Some("12345678"));
}

#[test]
fn collect_ends_at_max_digits_without_waiting() {
    let mut c = to_collect();
    c.finish();
    c.press("1234567890");
    assert_eq!(c.var("order"), Some(json!("1234567890")));
    assert_eq!(c.expect_play().names[0], "order_noted");
}

#[test]
fn collect_ends_after_the_inter_digit_timeout() {
    let mut c = to_collect();
    c.finish();
    c.wait(SECS(2));
    c.press("123456");
    // 3s inter-digit timeout, counted from the last digit.
    c.wait(MS(2_999));
    c.expect_nothing();
    c.wait(MS(1));
    assert_eq!(c.var("order"), Some(json!("123456")));
    assert_eq!(c.expect_play().names[0], "order_noted");
}

#[test]
fn too_short_an_entry_is_invalid() {
    let mut c = to_collect();
    c.finish();
    c.press("123");
    c.wait(SECS(3));
    assert_eq!(
        c.expect_play(),
        heard(&["order_number_invalid", "enter_order_number"], true)
    );
    assert_eq!(c.var("order"), None);
}

#[test]
fn a_pattern_mismatch_is_invalid_and_retries_end_in_on_failure() {
    let set = flow_set(&[(
        "main",
        r##"
steps:
  pin:
    collect:
      prompt: enter_pin
      into: pin
      max_digits: 4
      pattern: '^1[0-9]{3}$'
      invalid: wrong_pin
      no_input: please_enter_pin
      retries: 1
      next: ok
      on_failure: failed
  ok:
    hangup: ok
  failed:
    hangup: failed
"##,
    )]);
    let mut c = Call::start(&set, "main");
    c.expect_play();
    c.finish();
    c.press("2345");
    assert_eq!(c.expect_play(), heard(&["wrong_pin", "enter_pin"], true));
    c.finish();
    c.wait(SECS(5));
    assert_eq!(c.expect_play(), heard(&["failed"], false));
    let invalid: Vec<String> = c
        .events()
        .into_iter()
        .filter_map(|e| match e {
            StoryEvent::Invalid { input, .. } => Some(input),
            _ => None,
        })
        .collect();
    assert_eq!(invalid, ["2345"]);
}

#[test]
fn collect_waits_for_the_first_digit_from_the_end_of_its_prompt() {
    let mut c = to_collect();
    c.wait(SECS(20));
    c.expect_nothing();
    c.finish();
    c.wait(MS(4_999));
    c.expect_nothing();
    c.wait(MS(1));
    // No `no_input` prompt in this collect: the prompt alone is offered again.
    assert_eq!(c.expect_play(), heard(&["enter_order_number"], true));
}

#[test]
fn confirm_accepts_or_asks_again() {
    let set = flow_set(&[(
        "main",
        r##"
steps:
  account:
    collect:
      prompt: enter_account
      into: account
      max_digits: 4
      confirm:
        prompt: [you_entered, { say: digits, value: "{{ account }}" }, press_1_or_2]
      next: done
  done:
    hangup: done
"##,
    )]);
    let mut c = Call::start(&set, "main");
    c.expect_play();
    c.finish();
    c.press("1234");
    assert_eq!(
        c.expect_play(),
        heard(&["you_entered", "say:digits:1234", "press_1_or_2"], true)
    );
    c.press("2");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["enter_account"], true));
    c.finish();
    c.press("4321");
    c.expect_play();
    c.finish();
    c.press("1");
    assert_eq!(c.expect_play(), heard(&["done"], false));
    assert_eq!(c.var("account"), Some(json!("4321")));
}

#[test]
fn confirm_keys_can_be_chosen() {
    let set = flow_set(&[(
        "main",
        r##"
steps:
  account:
    collect:
      prompt: enter_account
      into: account
      max_digits: 2
      confirm: { prompt: is_that_right, yes: "9", no: "#" }
      next: done
  done:
    hangup: done
"##,
    )]);
    let mut c = Call::start(&set, "main");
    c.expect_play();
    c.finish();
    c.press("12");
    // A confirm prompt without a `say` item is followed by the entry, read back.
    assert_eq!(
        c.expect_play(),
        heard(&["is_that_right", "say:digits:12"], true)
    );
    c.press("#");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["enter_account"], true));
    c.press("34");
    c.expect_stop();
    c.expect_play();
    c.press("9");
    c.expect_stop();
    assert_eq!(c.expect_play(), heard(&["done"], false));
    assert_eq!(c.var("account"), Some(json!("34")));
}

// ------------------------------------------------------------------ language, goto

#[test]
fn a_language_option_switches_the_prompts_of_the_rest_of_the_call() {
    let set = flow_set(&[(
        "main",
        r##"
defaults: { language: en }
steps:
  choose:
    menu:
      prompt: choose_language
      options:
        "1": { language: en, next: welcome }
        "2": { language: de, next: welcome }
  welcome:
    play: [welcome, { say: number, value: "{{ language }}" }]
    next: fr
  fr:
    language: fr
    next: last
  last:
    hangup: bye
"##,
    )]);
    let mut c = Call::start(&set, "main");
    match c.expect_play_audio().as_slice() {
        [Audio::Prompt(p)] => {
            assert_eq!(
                (p.language.as_str(), p.fallback_language.as_str()),
                ("en", "en")
            );
        }
        other => panic!("{other:?}"),
    }
    c.press("2");
    c.expect_stop();
    match c.expect_play_audio().as_slice() {
        [
            Audio::Prompt(p),
            Audio::Say {
                language, value, ..
            },
        ] => {
            assert_eq!(p.name, "welcome");
            assert_eq!(p.language, "de");
            assert_eq!(p.fallback_language, "en");
            assert_eq!(language, "de");
            assert_eq!(value, "de");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.m().language(), "de");
    c.finish();
    match c.expect_play_audio().as_slice() {
        [Audio::Prompt(p)] => assert_eq!((p.name.as_str(), p.language.as_str()), ("bye", "fr")),
        other => panic!("{other:?}"),
    }
}

const WITH_SUB: &str = r##"
steps:
  hello:
    play: hello
    next: shared
  shared:
    goto: sub
    return: true
    next: after
  after:
    play: after
    next: leave
  leave:
    goto: sub
"##;

const SUB: &str = r##"
defaults: { language: en }
steps:
  sub_info:
    play: sub_info
"##;

#[test]
fn goto_with_return_comes_back_and_goto_without_ends_there() {
    let set = flow_set(&[("main", WITH_SUB), ("sub", SUB)]);
    let mut c = Call::start(&set, "main");
    assert_eq!(c.expect_play().names, ["hello"]);
    c.finish();
    assert_eq!(c.expect_play().names, ["sub_info"]);
    assert_eq!(c.m().position(), ("sub", "sub_info"));
    c.finish();
    assert_eq!(c.expect_play().names, ["after"]);
    assert_eq!(c.m().position(), ("main", "after"));
    c.finish();
    assert_eq!(c.expect_play().names, ["sub_info"]);
    c.finish();
    // No return point: the sub-flow running out ends the call.
    c.expect_default_goodbye();
    assert_eq!(
        c.path(),
        [
            "main/hello",
            "main/shared",
            "sub/sub_info",
            "main/after",
            "main/leave",
            "sub/sub_info"
        ]
    );
}

// ------------------------------------------------------------------ guards

#[test]
fn a_loop_without_the_caller_is_stopped_at_run_time() {
    // The loop goes through a goto with return, which the checker trusts to wait; with a
    // key typed ahead, the barge-in play in it is skipped and the loop would spin.
    let set = flow_set(&[
        (
            "main",
            "steps:\n  again:\n    goto: sub\n    return: true\n    next: again\n",
        ),
        ("sub", "steps:\n  news:\n    play: news\n"),
    ]);
    let mut c = Call::start(&set, "main");
    assert_eq!(c.expect_play().names, ["news"]);
    c.press("5");
    c.expect_stop();
    c.expect_default_goodbye();
    assert!(matches!(
        c.outcome(),
        Some(Outcome::Failed(FailReason::RunawayLoop { .. }))
    ));
}

#[test]
fn an_empty_line_is_not_kept_in_a_menu_forever() {
    let set = flow_set(&[(
        "main",
        r##"
steps:
  menu:
    menu:
      prompt: main_menu
      options: { "1": one }
      retries: 0
      on_failure: menu
  one:
    hangup: one
"##,
    )]);
    let mut c = Call::start(&set, "main");
    for _ in 0..MAX_SILENT_FAILURES {
        assert_eq!(c.expect_play().names, ["main_menu"]);
        c.finish();
        c.wait(SECS(5));
    }
    assert_eq!(c.expect_play().names, ["main_menu"]);
    c.finish();
    c.wait(SECS(5));
    c.expect_default_goodbye();
    assert!(matches!(
        c.outcome(),
        Some(Outcome::Failed(FailReason::NoCaller { .. }))
    ));
}

// ------------------------------------------------------------------ the story

#[test]
fn the_story_records_steps_keys_prompts_tags_and_the_end() {
    let mut c = Call::start(&shop(), "main");
    c.expect_play();
    c.wait(SECS(2));
    c.finish();
    c.expect_play();
    c.wait(SECS(1));
    c.press("1");
    c.expect_stop();
    c.expect_play();
    c.wait(MS(1500));
    c.send(Event::CallerHangup);
    c.expect_nothing();
    assert!(c.m().is_ended());

    let story = c.m().story();
    assert_eq!(story.call_id, "c1@host");
    assert_eq!(story.flow, "main");
    assert_eq!(story.outcome, Some(Outcome::CallerHungUp));
    assert_eq!(story.tags, [("reason".to_owned(), "sales".to_owned())]);
    assert_eq!(
        story.prompts_played(),
        ["welcome", "main_menu", "sales_info"]
    );
    let steps: Vec<(Duration, String)> = story
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            StoryEvent::StepEntered { step, .. } => Some((e.at, step.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            (SECS(0), "welcome".to_owned()),
            (SECS(2), "main_menu".to_owned()),
            (SECS(3), "sales".to_owned()),
        ]
    );
    let key_at = story
        .entries
        .iter()
        .find(|e| matches!(e.event, StoryEvent::Key { .. }))
        .map(|e| e.at);
    assert_eq!(key_at, Some(SECS(3)));
    assert_eq!(
        story.entries.last().map(|e| (e.at, &e.event)),
        Some((
            MS(4500),
            &StoryEvent::Ended {
                outcome: Outcome::CallerHungUp
            }
        ))
    );
    assert_eq!(Outcome::CallerHungUp.to_string(), "hangup by caller");
}

#[test]
fn an_unknown_flow_is_refused() {
    let err = FlowMachine::new(shop(), "nope", CallContext::default(), Instant::now())
        .err()
        .map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("no flow named 'nope' (loaded: main)"));
}
