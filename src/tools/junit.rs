//! A flow test run as JUnit XML, the report format CI systems read: one test suite per test
//! file, one test case per case, files that could not run as errors.
//!
//! Owns only the translation; running the tests and the text report are `flowtest`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::flowtest::{CaseResult, TestRun};
use super::sidebyside;

/// The run as a JUnit XML document.
pub fn render(run: &TestRun) -> String {
    let mut files: BTreeMap<PathBuf, Vec<&CaseResult>> = BTreeMap::new();
    for c in &run.cases {
        files.entry(c.file.clone()).or_default().push(c);
    }
    let mut report = Report::new("hotline flow tests");
    for (file, cases) in files {
        let mut suite = TestSuite::new(file.display().to_string());
        for c in cases {
            suite.add_test_case(case(c));
        }
        report.add_test_suite(suite);
    }
    if !run.errors.is_empty() {
        let mut suite = TestSuite::new("files that could not run");
        for d in &run.errors {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(d.message.clone());
            status.set_description(d.to_string());
            let mut t = TestCase::new(d.file.display().to_string(), status);
            t.set_classname(d.file.display().to_string());
            suite.add_test_case(t);
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot write the report: {e} -->\n"))
}

fn case(c: &CaseResult) -> TestCase {
    let status = match &c.failure {
        None => TestCaseStatus::success(),
        Some(f) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!(
                "{}:{}:{}: {}",
                c.file.display(),
                f.line,
                f.column,
                f.message
            ));
            let mut text = String::new();
            if let Some(h) = &f.help {
                text.push_str(&format!("help: {h}\n"));
            }
            text.push_str(&sidebyside::render(&f.rows, f.mark, ""));
            s.set_description(text);
            s
        }
    };
    let mut t = TestCase::new(c.name.clone(), status);
    t.set_classname(format!("{}:{}", c.file.display(), c.line));
    t
}

#[cfg(test)]
mod tests {
    use super::super::flowtest::Failure;
    use super::*;
    use crate::flow::diagnostic::Diagnostic;

    #[test]
    fn cases_failures_and_broken_files_become_junit() {
        let run = TestRun {
            cases: vec![
                CaseResult {
                    file: "flows/tests/main.yaml".into(),
                    name: "order status".into(),
                    line: 3,
                    failure: None,
                },
                CaseResult {
                    file: "flows/tests/main.yaml".into(),
                    name: "advisor <busy>".into(),
                    line: 20,
                    failure: Some(Failure {
                        message: "expected to hear 'advisors_busy'".into(),
                        help: None,
                        line: 24,
                        column: 9,
                        rows: Vec::new(),
                        mark: None,
                    }),
                },
            ],
            errors: vec![Diagnostic::error(
                std::path::Path::new("flows/tests/broken.yaml"),
                "unknown key 'expct'",
            )],
        };
        let xml = render(&run);
        assert!(xml.starts_with("<?xml"), "{xml}");
        assert!(xml.contains(r#"tests="3""#), "{xml}");
        assert!(xml.contains(r#"failures="1""#), "{xml}");
        assert!(xml.contains(r#"errors="1""#), "{xml}");
        assert!(
            xml.contains(r#"<testsuite name="flows/tests/main.yaml""#),
            "{xml}"
        );
        assert!(
            xml.contains("advisor &lt;busy&gt;"),
            "names are escaped: {xml}"
        );
        assert!(
            xml.contains("flows/tests/main.yaml:24:9: expected to hear"),
            "{xml}"
        );
        assert!(xml.contains("unknown key"), "{xml}");
    }
}
