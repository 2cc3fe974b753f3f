//! Loading and checking flow files: the messages admins read, at the right place.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hotline::flow::check::FlowConfig;
use hotline::flow::diagnostic::{Diagnostic, Severity, has_errors};
use hotline::flow::flowset::{StepAction, Target};
use hotline::flow::load::{
    AnyPrompt, FlowSource, MAX_FLOW_FILE_BYTES, compile_flows, compile_flows_with, load_flow,
    load_flows_dir, parse_flow, read_flow_file,
};

const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;

/// File name, severity, line, column, message, help.
type Expected = (
    &'static str,
    Severity,
    u32,
    u32,
    &'static str,
    Option<&'static str>,
);

/// What `tests/broken_flows/NAME.yaml` must produce. Each file holds one mistake, so each
/// gives one diagnostic.
const EXPECTED: &[Expected] = &[
    (
        "bad_duration",
        E,
        8,
        16,
        "expected a duration like 5s or 500ms, found '5 secs'",
        None,
    ),
    (
        "bad_language_code",
        E,
        4,
        15,
        "'../de' is not a language code",
        Some("use a code like en, de or pt-BR: prompts come from prompts/<code>/"),
    ),
    (
        "bad_pattern",
        E,
        7,
        16,
        "'pattern' is not a valid regular expression: unclosed character class",
        Some("for example '^[0-9]{6,10}$'"),
    ),
    (
        "bad_say_kind",
        E,
        6,
        16,
        "unknown value 'digit'",
        Some("did you mean 'digits'?"),
    ),
    (
        "collect_digit_repeat_key",
        E,
        7,
        19,
        "the repeat key of a collect must be * or #, found '9'",
        Some("a digit would be part of the entry"),
    ),
    (
        "condition_syntax",
        E,
        6,
        25,
        "the condition does not parse: unexpected input after expression",
        Some(
            "conditions are Jinja expressions, e.g. result.status == \"shipped\" and caller != \"\"",
        ),
    ),
    (
        "digit_terminator",
        E,
        7,
        19,
        "the terminator must be * or #, found '5'",
        Some("a digit cannot both be part of the number and end it"),
    ),
    (
        "duplicate_menu_key",
        E,
        8,
        9,
        "duplicate menu key '1'",
        Some("'1' is already an option on line 7"),
    ),
    (
        "duplicate_step",
        E,
        5,
        3,
        "duplicate key 'welcome'",
        Some("each key may appear only once in a mapping"),
    ),
    (
        "duration_without_unit",
        E,
        3,
        12,
        "expected a duration like 5s or 500ms, found '5'",
        Some("add a unit: 5s for seconds, 5ms for milliseconds"),
    ),
    (
        "empty_next",
        E,
        5,
        9,
        "'next' needs a value",
        Some("write the value after the colon, or remove the key"),
    ),
    (
        "goto_missing_flow",
        E,
        4,
        11,
        "no flow named 'shared_menuu'",
        Some("did you mean 'shared_menu'?"),
    ),
    (
        "goto_next_without_return",
        E,
        5,
        5,
        "'next' after a goto is only used with 'return: true'",
        Some("add 'return: true' to come back here when flow 'shared_menu' ends"),
    ),
    (
        "hours_without_closed",
        E,
        4,
        5,
        "an 'hours' step needs 'closed'",
        Some("add 'closed: STEP' beside 'hours:'"),
    ),
    (
        "key_of_other_action",
        E,
        5,
        5,
        "'priority' does not belong in a 'play' step",
        Some("'priority' is used with 'queue'"),
    ),
    (
        "loop_without_waiting",
        E,
        3,
        3,
        "these steps loop forever without waiting for the caller: welcome → news → welcome",
        Some("put a menu or collect in the loop, or end it with 'next: hangup'"),
    ),
    (
        "menu_key_letter",
        E,
        8,
        9,
        "expected one key: 0-9, * or #, found 'A'",
        None,
    ),
    (
        "menu_key_two_digits",
        E,
        8,
        9,
        "expected one key: 0-9, * or #, found '10'",
        Some("a key is one press; to read several digits use a collect step"),
    ),
    (
        "menu_with_next",
        E,
        8,
        5,
        "a 'menu' step does not use 'next'",
        Some("each option says where to go; add 'on_failure' for callers who choose nothing"),
    ),
    (
        "min_more_than_max",
        E,
        7,
        19,
        "'min_digits' (10) is more than 'max_digits' (6)",
        None,
    ),
    (
        "missing_menu_options",
        E,
        6,
        7,
        "missing key 'options'",
        Some("a menu needs 'options': which key leads to which step"),
    ),
    (
        "missing_next_step",
        E,
        5,
        11,
        "no step named 'main_menuu'",
        Some("did you mean 'main_menu'?"),
    ),
    (
        "missing_on_failure_step",
        E,
        8,
        19,
        "no step named 'goodby'",
        Some("did you mean 'goodbye'?"),
    ),
    (
        "missing_option_step",
        E,
        8,
        14,
        "no step named 'suport'",
        Some("did you mean 'support'?"),
    ),
    (
        "missing_prompt",
        E,
        5,
        11,
        "prompt 'missing_welcome' not found for language 'en'",
        Some("record prompts/en/missing_welcome.wav"),
    ),
    (
        "missing_start_step",
        E,
        2,
        8,
        "no step named 'welcom'",
        Some("did you mean 'welcome'?"),
    ),
    (
        "no_action",
        E,
        3,
        3,
        "step 'welcome' has no action",
        Some(
            "add one of: play, menu, collect, set, branch, hours, language, http, record, queue, transfer, goto, hangup",
        ),
    ),
    (
        "no_steps",
        E,
        3,
        1,
        "missing key 'steps'",
        Some("a flow lists its steps under 'steps:'"),
    ),
    (
        "on_failure_beside_menu",
        E,
        8,
        5,
        "'on_failure' does not belong in a 'menu' step",
        Some("move it inside 'menu:'"),
    ),
    (
        "prompt_with_extension",
        E,
        4,
        11,
        "'welcome.wav' is not a usable prompt name",
        Some("leave out '.wav': write 'welcome'"),
    ),
    (
        "reserved_variable",
        E,
        6,
        13,
        "'caller' is set by the engine and cannot be assigned",
        Some("choose another variable name"),
    ),
    (
        "step_named_back",
        E,
        9,
        3,
        "'back' is the name global keys use to return to the previous menu",
        Some("give this step another name, e.g. 'go_back'"),
    ),
    (
        "step_named_hangup",
        E,
        6,
        3,
        "'hangup' is the name of the built-in step that ends the call",
        Some("give this step another name, e.g. 'goodbye'"),
    ),
    (
        "template_unclosed",
        E,
        5,
        35,
        "the template does not parse: unexpected end of input, expected end of variable block",
        Some(
            "templates use Jinja syntax: {{ order }}, {{ result.eta }}, {% if ... %}...{% endif %}",
        ),
    ),
    (
        "template_unknown_filter",
        E,
        5,
        29,
        "the template cannot run: filter upperr is unknown",
        Some(
            "templates use Jinja syntax: {{ order }}, {{ result.eta }}, {% if ... %}...{% endif %}",
        ),
    ),
    (
        "too_many_invalid",
        E,
        7,
        20,
        "'max_invalid' is at most 10, found 20",
        Some("a caller who failed this often needs another way: use on_failure"),
    ),
    (
        "too_many_retries",
        E,
        2,
        22,
        "'retries' is at most 10, found 50",
        Some("a caller who failed this often needs another way: use on_failure"),
    ),
    (
        "transfer_template",
        E,
        4,
        15,
        "a transfer target cannot use templates",
        Some("write the address out: a caller's input must never choose where a call goes"),
    ),
    (
        "two_actions",
        E,
        5,
        5,
        "step 'welcome' has more than one action: 'play' and 'menu'",
        Some("a step does one thing: split it into two steps joined by 'next'"),
    ),
    (
        "two_documents",
        E,
        6,
        1,
        "a flow file holds one YAML document; this is a second one",
        Some("remove the '---' line, or put the second flow in its own file"),
    ),
    (
        "unclosed_quote",
        E,
        4,
        11,
        "YAML syntax: unclosed quote",
        Some("check the indentation and quoting of this line and the lines above"),
    ),
    (
        "unknown_action",
        E,
        4,
        5,
        "unknown key 'plya'",
        Some("did you mean 'play'?"),
    ),
    (
        "unknown_config_var",
        E,
        5,
        16,
        "no config variable 'crm_ur'",
        Some("did you mean 'crm_url'?"),
    ),
    (
        "unknown_key",
        E,
        8,
        7,
        "unknown key 'timout'",
        Some("did you mean 'timeout'?"),
    ),
    (
        "unknown_schedule",
        E,
        4,
        12,
        "no schedule named 'service_hour'",
        Some("did you mean 'service_hours'?"),
    ),
    (
        "unquoted_hash_key",
        E,
        8,
        9,
        "'#' starts a comment in YAML, so this line is ignored",
        Some("quote the key: \"#\": ..."),
    ),
    (
        "unquoted_star_key",
        E,
        8,
        9,
        "'*' starts an alias in YAML",
        Some("quote the key: \"*\": ..."),
    ),
    (
        "unquoted_terminator",
        E,
        7,
        19,
        "'#' starts a comment in YAML, so 'terminator' has no value",
        Some("quote it: terminator: \"#\""),
    ),
    (
        "unreachable_step",
        W,
        6,
        3,
        "step 'forgotten' is never reached",
        Some("no step, option or global key leads to it from the start"),
    ),
    (
        "untranslated_prompt",
        W,
        11,
        11,
        "prompt 'untranslated_welcome' not found for language 'de'",
        Some("callers in 'de' hear the 'en' recording"),
    ),
    (
        "wrong_type_list",
        E,
        5,
        11,
        "expected a text value for 'next', found a list",
        None,
    ),
    (
        "wrong_type_number",
        E,
        8,
        16,
        "expected a whole number (0 or more) for 'retries', found 'many'",
        None,
    ),
    (
        "yaml_syntax",
        E,
        5,
        4,
        "YAML syntax: while parsing a block mapping, did not find expected key",
        Some("check the indentation and quoting of this line and the lines above"),
    ),
    (
        "zero_timeout",
        E,
        8,
        16,
        "'timeout' must be longer than 0s",
        Some("a zero wait ends before the caller can do anything"),
    ),
];

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The server configuration the broken flows are checked with: one schedule, one variable.
fn test_config() -> FlowConfig {
    let mut c = FlowConfig::default();
    c.schedules.insert(
        "service_hours".to_owned(),
        "timezone: Europe/Berlin\nweekly: { mon-fri: 08:00-18:00 }\n"
            .parse()
            .expect("schedule"),
    );
    c.vars.insert(
        "crm_url".to_owned(),
        serde_json::json!("http://127.0.0.1:8081"),
    );
    c
}

/// Loads one broken file next to a valid `shared_menu` flow (a goto target) with a prompt
/// check where `missing_*` prompts do not exist and `untranslated_*` exist in English only,
/// and the schedule and variable of `test_config`.
fn diagnostics_of(name: &str) -> Vec<Diagnostic> {
    let path = tests_dir()
        .join("broken_flows")
        .join(format!("{name}.yaml"));
    let source = read_flow_file(&path).expect("readable");
    let shared = FlowSource {
        name: "shared_menu".to_owned(),
        file: "flows/shared_menu.yaml".into(),
        text: "steps:\n  ask:\n    hangup: goodbye\n".to_owned(),
    };
    let prompts = |language: &str, prompt: &str| {
        !(prompt.starts_with("missing_")
            || (language == "de" && prompt.starts_with("untranslated_")))
    };
    let (_, diags) = compile_flows_with(vec![source, shared], &prompts, &test_config());
    diags
}

#[test]
fn every_broken_flow_reports_its_mistake_exactly() {
    let mut names: Vec<String> = std::fs::read_dir(tests_dir().join("broken_flows"))
        .expect("folder")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "yaml").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    assert_eq!(
        names, listed,
        "every broken flow needs its expectation here"
    );

    for &(name, severity, line, column, message, help) in EXPECTED {
        let diags = diagnostics_of(name);
        let got: Vec<_> = diags
            .iter()
            .map(|d| {
                (
                    d.severity,
                    d.line,
                    d.column,
                    d.message.as_str(),
                    d.help.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [(severity, line, column, message, help)],
            "{name}.yaml:\n{}",
            diags.iter().map(ToString::to_string).collect::<String>()
        );
        assert!(
            diags
                .iter()
                .all(|d| d.file.ends_with(format!("{name}.yaml")))
        );
    }
}

#[test]
fn diagnostics_print_like_a_compiler() {
    let diags = diagnostics_of("unknown_key");
    let text: String = diags.iter().map(ToString::to_string).collect();
    let file = tests_dir().join("broken_flows/unknown_key.yaml");
    assert_eq!(
        text,
        format!(
            "error: unknown key 'timout'\n --> {}:8:7\n  |\n8 |       timout: 5s\n  |       ^^^^^^\nhelp: did you mean 'timeout'?\n",
            file.display()
        )
    );
}

#[test]
fn the_sample_flow_of_the_language_doc_parses_and_its_gaps_are_found() {
    let dir = tests_dir().join("flows");
    let sample = dir.join("sample.yaml");
    let doc = std::fs::read_to_string(&sample).expect("sample");
    let flow = parse_flow(&sample, &doc).expect("the whole language parses");
    assert_eq!(flow.steps.value.len(), 11);
    assert_eq!(
        flow.start.as_ref().map(|s| s.value.as_str()),
        Some("welcome")
    );

    // The doc's example refers to steps it leaves out; they are reported, nothing else.
    let (set, diags) = load_flows_dir(&dir, &AnyPrompt);
    let got: Vec<_> = diags
        .iter()
        .map(|d| (d.severity, d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (E, 5, 8, "no step named 'operator'"),
            (E, 21, 14, "no step named 'before_purchase'"),
            (E, 52, 11, "no step named 'anything_else'"),
            (E, 56, 13, "no step named 'after_hours'"),
        ]
    );
    assert_eq!(set.names(), ["satisfaction_survey"]);
    assert!(load_flow(&sample).is_err());
}

/// The sample with the steps its text leaves out, so every kind of step is compiled.
fn completed_sample() -> String {
    let doc = std::fs::read_to_string(tests_dir().join("flows/sample.yaml")).expect("sample");
    doc + r#"  operator:
    transfer: "sip:desk@example.com"
    timeout: 30s
    on_failure: voicemail
  before_purchase:
    set: { topic: before_purchase }
    next: route
  route:
    branch:
      when:
        - { if: 'topic == "before_purchase"', next: support }
      else: anything_else
  anything_else:
    menu:
      prompt: anything_else
      options: { "1": main_menu, "2": goodbye }
  after_hours:
    hangup: [closed_now, { silence: 500ms }, goodbye]
"#
}

#[test]
fn the_completed_sample_compiles_every_kind_of_step() {
    let sources = vec![
        FlowSource {
            name: "sample".to_owned(),
            file: "flows/sample.yaml".into(),
            text: completed_sample(),
        },
        read_flow_file(&tests_dir().join("flows/satisfaction_survey.yaml")).expect("survey"),
    ];
    let (set, diags) = compile_flows(sources, &AnyPrompt);
    assert!(diags.is_empty(), "{diags:?}");
    let sample = set.get("sample").expect("compiled");
    let mut kinds: Vec<&str> = sample.steps.iter().map(|s| s.action.kind_name()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "branch", "collect", "goto", "hangup", "hours", "http", "menu", "play", "queue",
            "record", "set", "transfer"
        ]
    );
    // References are indices into the compiled flow.
    let main_menu = sample.step_id("main_menu").expect("main_menu");
    let StepAction::Menu(menu) = &sample.step(main_menu).action else {
        panic!("main_menu is a menu");
    };
    let order_status = sample.step_id("order_status").expect("order_status");
    assert_eq!(
        menu.option('2').map(|o| o.target),
        Some(Target::Step(order_status))
    );
    assert_eq!(
        sample.global_key('0'),
        sample.step_id("operator").map(Target::Step)
    );
    let survey = sample.step_id("survey").expect("survey");
    let StepAction::Goto { flow, return_to } = &sample.step(survey).action else {
        panic!("survey is a goto");
    };
    assert_eq!(set.flow(*flow).name, "satisfaction_survey");
    assert_eq!(*return_to, None);
    assert_eq!(sample.retries, 3);
    assert_eq!(sample.language, "en");
}

#[test]
fn a_language_switch_asks_for_prompts_in_every_language() {
    let text = completed_sample();
    let prompts = |language: &str, prompt: &str| language == "en" || prompt == "welcome";
    let sources = vec![
        FlowSource {
            name: "sample".to_owned(),
            file: "flows/sample.yaml".into(),
            text,
        },
        read_flow_file(&tests_dir().join("flows/satisfaction_survey.yaml")).expect("survey"),
    ];
    let (set, diags) = compile_flows(sources, &prompts);
    assert!(!has_errors(&diags));
    assert_eq!(set.len(), 2);
    // Once per prompt, at its first use, for German only (English is the default).
    let diags: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.file == Path::new("flows/sample.yaml"))
        .collect();
    let first = diags.first().expect("warnings");
    assert_eq!(first.severity, W);
    assert_eq!(
        (first.line, first.column, first.message.as_str()),
        (
            12,
            15,
            "prompt 'choose_language' not found for language 'de'"
        )
    );
    assert!(
        diags
            .iter()
            .all(|d| d.message.ends_with("for language 'de'"))
    );
    assert!(!diags.iter().any(|d| d.message.contains("'welcome'")));
}

#[test]
fn a_flow_whose_goto_target_fails_is_left_out_of_the_set() {
    let sources = vec![
        FlowSource {
            name: "main".to_owned(),
            file: "flows/main.yaml".into(),
            text: "steps:\n  a:\n    goto: sub\n".to_owned(),
        },
        FlowSource {
            name: "sub".to_owned(),
            file: "flows/sub.yaml".into(),
            text: "steps:\n  a:\n    play: x\n    next: nowhere\n".to_owned(),
        },
        FlowSource {
            name: "other".to_owned(),
            file: "flows/other.yaml".into(),
            text: "steps:\n  a:\n    hangup:\n".to_owned(),
        },
    ];
    let (set, diags) = compile_flows(sources, &AnyPrompt);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].message, "no step named 'nowhere'");
    assert_eq!(set.names(), ["other"]);
}

#[test]
fn load_flow_checks_one_file_alone() {
    let loaded = load_flow(&tests_dir().join("flows/satisfaction_survey.yaml")).expect("valid");
    assert_eq!(loaded.name, "satisfaction_survey");
    assert!(loaded.warnings.is_empty());
    let errors =
        load_flow(&tests_dir().join("broken_flows/missing_next_step.yaml")).expect_err("broken");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "no step named 'main_menuu'");
    // A goto is only checked against other flows when a whole folder is loaded.
    assert!(load_flow(&tests_dir().join("broken_flows/goto_missing_flow.yaml")).is_ok());
}

/// A flow whose one http step sends `body`, the one place that takes any YAML value.
fn with_body(body: &str) -> String {
    format!(
        "steps:\n  send:\n    http:\n      url: http://127.0.0.1:8081/\n      body: {body}\n      next: done\n  done:\n    hangup:\n"
    )
}

#[test]
fn an_alias_bomb_fails_fast() {
    // Ten levels of ten aliases each: 10^10 strings if expanded.
    let mut body = String::from("{ a0: &a0 [x, x, x, x, x, x, x, x, x, x]");
    for i in 1..=10 {
        let p = i - 1;
        body.push_str(&format!(
            ", a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]"
        ));
    }
    body.push_str(" }");
    let started = Instant::now();
    let errors = parse_flow(Path::new("flows/bomb.yaml"), &with_body(&body)).expect_err("refused");
    assert!(
        started.elapsed().as_secs() < 5,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "YAML aliases (*name) expand to too much for a flow file"
    );
    assert_eq!(errors[0].line, 5);
}

#[test]
fn deep_nesting_is_refused() {
    let body = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let errors = parse_flow(Path::new("flows/deep.yaml"), &with_body(&body)).expect_err("refused");
    assert_eq!(
        errors[0].message,
        "the file goes beyond the limits of a flow file (too many or too deeply nested entries)"
    );
}

#[test]
fn a_huge_file_is_refused_before_reading() {
    let dir = std::env::temp_dir().join(format!("hotline-flow-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("huge.yaml");
    let file = std::fs::File::create(&path).expect("file");
    file.set_len(50 * 1024 * 1024).expect("sparse 50 MB");
    let errors = load_flow(&path).expect_err("refused");
    assert_eq!(
        errors[0].message,
        format!(
            "the file is 52428800 bytes; a flow file may have at most {MAX_FLOW_FILE_BYTES} bytes"
        )
    );
    assert_eq!(errors[0].line, 0);
    let (set, diags) = load_flows_dir(&dir, &AnyPrompt);
    assert!(set.is_empty());
    assert_eq!(diags.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);

    let big = "#".repeat(usize::try_from(MAX_FLOW_FILE_BYTES).unwrap_or(0) + 1);
    assert!(parse_flow(Path::new("flows/big.yaml"), &big).is_err());
}

#[test]
fn a_flow_folder_holds_yaml_files_only_and_flow_tests_are_not_flows() {
    let dir = std::env::temp_dir().join(format!("hotline-flow-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tests")).expect("temp dir");
    std::fs::write(dir.join("main.yaml"), "steps:\n  a:\n    goto: extra\n").expect("write");
    std::fs::write(dir.join("extra.yml"), "steps:\n  b:\n    hangup:\n").expect("write");
    std::fs::write(dir.join("README.md"), "not a flow").expect("write");
    std::fs::write(dir.join("tests/main.yaml"), "flow: main\ncases: []\n").expect("write");
    let (set, diags) = load_flows_dir(&dir, &AnyPrompt);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(set.names(), ["extra", "main"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every ```yaml block of docs/flows.md that is not marked `# fragment` is a whole flow
/// that loads without a problem, with the sample prompts and the sample hotline.yaml.
#[test]
fn every_complete_example_of_the_flow_reference_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/flows.md")).expect("docs/flows.md");
    let config = hotline::config::Config::load(&root.join("hotline.yaml")).expect("hotline.yaml");
    let prompts = |language: &str, name: &str| {
        root.join("prompts")
            .join(language)
            .join(format!("{name}.wav"))
            .is_file()
    };
    let mut complete = 0;
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```yaml\n") {
        let after = &rest[start + 8..];
        let end = after.find("```").expect("closed block");
        let block = &after[..end];
        rest = &after[end + 3..];
        if block.starts_with("# fragment") {
            continue;
        }
        complete += 1;
        let source = FlowSource {
            name: format!("example{complete}"),
            file: format!("docs/flows.md#example{complete}").into(),
            text: block.to_owned(),
        };
        let (set, diags) = compile_flows_with(vec![source], &prompts, &config.flow_config());
        assert!(
            diags.is_empty() && set.len() == 1,
            "example {complete}:\n{block}\n{}",
            diags.iter().map(ToString::to_string).collect::<String>()
        );
    }
    assert!(complete >= 12, "only {complete} complete examples");
}
