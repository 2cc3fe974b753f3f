//! `hotline test` as a library call: the shipped flow tests of the sample pass, and
//! deliberately failing cases are reported with both transcripts side by side.

use std::path::{Path, PathBuf};

use hotline::config::Config;
use hotline::tools::flowtest::run_paths;

fn sample_config() -> Config {
    Config::load(Path::new("hotline.yaml")).expect("the sample configuration loads")
}

#[test]
fn the_sample_flow_tests_pass() {
    let run = run_paths(&sample_config(), &[]);
    assert!(run.success(), "{}", run.render());
    assert!(run.passed() >= 27, "{}", run.render());
    assert!(run.errors.is_empty());
    assert_eq!(run.summary(), format!("{} passed, 0 failed", run.passed()));
}

#[test]
fn failing_cases_show_expected_and_actual_side_by_side() {
    let run = run_paths(
        &sample_config(),
        &[PathBuf::from("tests/flow_tests/failing.yaml")],
    );
    assert!(!run.success());
    assert_eq!((run.passed(), run.failed()), (1, 3));
    let expected = "\
FAIL  expects the wrong prompt after option 2  (tests/flow_tests/failing.yaml:5)
  tests/flow_tests/failing.yaml:11:9: expected to hear 'order_noted', heard 'enter_order_number'
    expected           | actual
    hears: welcome     | hears: welcome
    press: 1           | press: 1
    hears: main_menu   | hears: main_menu
    press: 2           | press: 2
  > hears: order_noted | hears: enter_order_number
    hangs_up: true     | (waits for a key in 'order_status')
FAIL  expects a hang-up while the menu waits  (tests/flow_tests/failing.yaml:14)
  tests/flow_tests/failing.yaml:21:9: expected the flow to hang up, it waits for a key in 'main_menu'
    expected               | actual
    hears: welcome         | hears: welcome
    hears: choose_language | hears: choose_language
    press: 2               | press: 2
    hears: main_menu       | hears: main_menu
    language: de           | language: de
  > hangs_up: true         | (waits for a key in 'main_menu')
FAIL  expects a tag the call does not have  (tests/flow_tests/failing.yaml:23)
  tests/flow_tests/failing.yaml:30:9: expected tags { reason: shipping }, the call has { reason: advisor }
    expected                     | actual
    hears: welcome               | hears: welcome
    press: 1                     | press: 1
    hears: main_menu             | hears: main_menu
    press: 0                     | press: 0
    queued: support              | queued: support
  > tagged: { reason: shipping } | tagged: { reason: advisor }
                                 | hears: survey_rating
                                 | (waits for a key in 'rating')
ok    this one passes  (tests/flow_tests/failing.yaml:32)
1 passed, 3 failed
";
    assert_eq!(run.render(), expected);
}

/// Queue steps run on the simulated queue, whose outcome each case scripts.
#[test]
fn queue_outcomes_are_scripted_per_case() {
    let mut config = Config {
        flows_dir: PathBuf::from("tests/flow_tests/flows"),
        prompts_dir: PathBuf::from("prompts"),
        ..Config::default()
    };
    config
        .queues
        .insert("support".to_owned(), hotline::queue::QueueConfig::default());
    let run = run_paths(&config, &[PathBuf::from("tests/flow_tests/desk.yaml")]);
    assert!(run.success(), "{}", run.render());
    assert_eq!(run.passed(), 4, "{}", run.render());
}

#[test]
fn a_test_file_that_does_not_parse_is_a_failure_with_its_line() {
    let dir = std::env::temp_dir().join(format!("hotline-flowtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "flow: main\ncases:\n  - name: typo\n    script:\n      - hear: welcome\n",
    )
    .unwrap();
    let run = run_paths(&sample_config(), std::slice::from_ref(&file));
    assert_eq!(run.failed(), 1);
    let d = &run.errors[0];
    assert_eq!(d.line, 5, "{d}");
    assert!(d.message.contains("hear"), "{d}");
    let missing = run_paths(&sample_config(), &[dir.join("nothing-here")]);
    assert_eq!(missing.failed(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
