//! What a new version of the flows changes for the calls in progress: the steps it removes
//! or changes, and which calls sit on them now.
//!
//! Calls keep the version they started with, so nothing here changes a call; the result
//! only tells the admin who is in a step that the new version deleted or rewrote ("these
//! two callers finish on the old version"). A step is compared by its compiled definition
//! with references written as names, so adding a step elsewhere (which renumbers the
//! others), moving it in the file or re-recording a prompt it plays is not a change.
//! Pure: no clock, no IO.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::flowset::{CompiledFlow, CompiledStep, FlowSet};

/// Flow name → step name → fingerprint of the step's definition.
pub type Signatures = BTreeMap<String, BTreeMap<String, String>>;

/// What a new version does to a step that exists now.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepChange {
    Removed,
    Changed,
}

impl fmt::Display for StepChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepChange::Removed => "removed",
            StepChange::Changed => "changed",
        })
    }
}

/// A step of the running version that the new version removes or changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepDiff {
    pub flow: String,
    pub step: String,
    pub change: StepChange,
}

/// Where a call in progress stands, with the fingerprint of its step in its own version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CallPosition {
    pub call_id: String,
    pub caller: String,
    pub version: u64,
    pub flow: String,
    pub step: String,
    pub fingerprint: String,
}

/// A call in progress sitting on a step the new version removes or changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Affected {
    pub call_id: String,
    pub caller: String,
    /// The version the call runs on (and finishes on).
    pub version: u64,
    pub flow: String,
    pub step: String,
    pub change: StepChange,
}

impl fmt::Display for Affected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}/{} ({})",
            self.call_id, self.flow, self.step, self.change
        )
    }
}

/// The fingerprints of every step of a set.
pub fn signatures(set: &FlowSet) -> Signatures {
    set.flows()
        .map(|f| {
            let steps = f
                .steps
                .iter()
                .map(|s| (s.name.clone(), fingerprint(set, f, s)))
                .collect();
            (f.name.clone(), steps)
        })
        .collect()
}

/// The fingerprint of one step: a short hash of its definition, references by name.
pub fn step_fingerprint(set: &FlowSet, flow: &str, step: &str) -> Option<String> {
    let f = set.get(flow)?;
    let s = f.steps.iter().find(|s| s.name == step)?;
    Some(fingerprint(set, f, s))
}

fn fingerprint(set: &FlowSet, flow: &CompiledFlow, step: &CompiledStep) -> String {
    let text = definition(set, flow, step);
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(digest.get(..8).unwrap_or(&digest[..]))
}

/// The step's compiled definition as text, with step and flow indices replaced by names:
/// indices change whenever a step is added before it, names only when the admin renames.
/// Built from the `Debug` form so every field of every kind of step counts, including
/// kinds added later.
fn definition(set: &FlowSet, flow: &CompiledFlow, step: &CompiledStep) -> String {
    static REFS: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let raw = format!("{:?} {:?}", step.tags, step.action);
    let Some(re) = REFS
        .get_or_init(|| regex::Regex::new(r"(StepId|FlowId)\((\d+)\)").ok())
        .as_ref()
    else {
        return raw;
    };
    re.replace_all(&raw, |c: &regex::Captures| {
        let index: usize = c
            .get(2)
            .and_then(|m| m.as_str().parse().ok())
            .unwrap_or(usize::MAX);
        let name = if c.get(1).is_some_and(|m| m.as_str() == "StepId") {
            flow.steps.get(index).map(|s| s.name.as_str())
        } else {
            set.flows().nth(index).map(|f| f.name.as_str())
        };
        format!("<{}>", name.unwrap_or("?"))
    })
    .into_owned()
}

/// The steps of `old` that `new` removes or changes (steps only `new` has are not listed:
/// no call can be in them).
pub fn diff(old: &Signatures, new: &Signatures) -> Vec<StepDiff> {
    let mut out = Vec::new();
    for (flow, steps) in old {
        let new_steps = new.get(flow);
        for (step, print) in steps {
            let change = match new_steps.and_then(|s| s.get(step)) {
                None => StepChange::Removed,
                Some(p) if p != print => StepChange::Changed,
                Some(_) => continue,
            };
            out.push(StepDiff {
                flow: flow.clone(),
                step: step.clone(),
                change,
            });
        }
    }
    out
}

/// The calls whose step (compared as of their own version) `new` removes or changes.
pub fn affected(calls: &[CallPosition], new: &Signatures) -> Vec<Affected> {
    calls
        .iter()
        .filter(|c| !c.step.is_empty())
        .filter_map(|c| {
            let change = match new.get(&c.flow).and_then(|s| s.get(&c.step)) {
                None => StepChange::Removed,
                Some(p) if *p != c.fingerprint => StepChange::Changed,
                Some(_) => return None,
            };
            Some(Affected {
                call_id: c.call_id.clone(),
                caller: c.caller.clone(),
                version: c.version,
                flow: c.flow.clone(),
                step: c.step.clone(),
                change,
            })
        })
        .collect()
}

/// The positions of the calls in progress, fingerprinted in their own versions.
pub fn positions(calls: &[crate::registry::LiveCall]) -> Vec<CallPosition> {
    calls
        .iter()
        .map(|c| CallPosition {
            call_id: c.call_id.clone(),
            caller: c.caller.clone(),
            version: c.version,
            flow: c.current_flow.clone(),
            step: c.step.clone(),
            fingerprint: step_fingerprint(&c.flows, &c.current_flow, &c.step).unwrap_or_default(),
        })
        .collect()
}

/// `2 calls in progress sit on changed steps: A at main/x (changed), B at main/y (removed)`
pub fn summary(affected: &[Affected]) -> String {
    match affected.len() {
        0 => "no call in progress sits on a changed step".to_owned(),
        n => format!(
            "{n} call{} in progress sit{} on changed steps: {}",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
            affected
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::load::{AnyPrompt, FlowSource, compile_flows};

    fn set(main: &str) -> FlowSet {
        let sources = vec![
            FlowSource {
                name: "main".to_owned(),
                file: "flows/main.yaml".into(),
                text: main.to_owned(),
            },
            FlowSource {
                name: "survey".to_owned(),
                file: "flows/survey.yaml".into(),
                text: "steps:\n  ask:\n    hangup: thanks\n".to_owned(),
            },
        ];
        let (set, diags) = compile_flows(sources, &AnyPrompt);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        set
    }

    const V1: &str = "steps:
  welcome:
    play: welcome
    next: menu
  menu:
    menu:
      prompt: main_menu
      options: { \"1\": order, \"2\": survey, \"3\": bye }
  order:
    collect: { prompt: enter_order_number, into: order }
    next: bye
  survey:
    goto: survey
  bye:
    hangup: goodbye
";

    #[test]
    fn the_same_flows_change_nothing() {
        let a = signatures(&set(V1));
        assert!(diff(&a, &signatures(&set(V1))).is_empty());
        assert_eq!(a["main"].len(), 5);
        assert_eq!(a["survey"].len(), 1);
    }

    #[test]
    fn added_steps_moved_lines_and_comments_change_nothing() {
        // A new first step renumbers every other step, and every line moves.
        let v2 = V1.replacen(
            "steps:\n",
            "# a comment\nstart: welcome\nsteps:\n  extra:\n    play: extra\n    next: bye\n",
            1,
        );
        assert!(diff(&signatures(&set(V1)), &signatures(&set(&v2))).is_empty());
    }

    #[test]
    fn removed_and_changed_steps_are_found() {
        let v2 = V1
            .replace("into: order }", "into: order, max_digits: 8 }")
            .replace("  survey:\n    goto: survey\n", "")
            .replace(", \"2\": survey", "");
        let d = diff(&signatures(&set(V1)), &signatures(&set(&v2)));
        let got: Vec<(&str, &str, StepChange)> = d
            .iter()
            .map(|s| (s.flow.as_str(), s.step.as_str(), s.change))
            .collect();
        assert_eq!(
            got,
            [
                ("main", "menu", StepChange::Changed),
                ("main", "order", StepChange::Changed),
                ("main", "survey", StepChange::Removed),
            ]
        );
    }

    #[test]
    fn a_renamed_target_changes_the_steps_that_lead_there() {
        let v2 = V1.replace("bye", "farewell");
        let d = diff(&signatures(&set(V1)), &signatures(&set(&v2)));
        let got: Vec<(&str, StepChange)> = d.iter().map(|s| (s.step.as_str(), s.change)).collect();
        assert_eq!(
            got,
            [
                ("bye", StepChange::Removed),
                ("menu", StepChange::Changed),
                ("order", StepChange::Changed),
            ]
        );
    }

    #[test]
    fn a_prompt_is_named_not_its_recording() {
        // The step plays the prompt by name: re-recording welcome.wav changes no step, and
        // the fingerprint does not depend on the prompt library at all.
        let a = step_fingerprint(&set(V1), "main", "welcome");
        assert!(a.is_some());
        assert_eq!(a, step_fingerprint(&set(V1), "main", "welcome"));
        let renamed = V1.replacen("play: welcome", "play: hello", 1);
        assert_ne!(a, step_fingerprint(&set(&renamed), "main", "welcome"));
    }

    #[test]
    fn calls_on_removed_or_changed_steps_are_affected_in_their_own_version() {
        let old = set(V1);
        let v2 = V1
            .replace("  survey:\n    goto: survey\n", "")
            .replace(", \"2\": survey", "");
        let new = signatures(&set(&v2));
        let at = |id: &str, flow: &str, step: &str| CallPosition {
            call_id: id.to_owned(),
            caller: "+49".to_owned(),
            version: 1,
            flow: flow.to_owned(),
            step: step.to_owned(),
            fingerprint: step_fingerprint(&old, flow, step).unwrap_or_default(),
        };
        let calls = [
            at("a", "main", "menu"),
            at("b", "main", "survey"),
            at("c", "main", "order"),
            at("d", "survey", "ask"),
            CallPosition {
                step: String::new(),
                ..at("e", "main", "welcome")
            },
        ];
        let hit = affected(&calls, &new);
        assert_eq!(
            hit.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["a at main/menu (changed)", "b at main/survey (removed)"]
        );
        assert_eq!(
            summary(&hit),
            "2 calls in progress sit on changed steps: a at main/menu (changed), b at main/survey (removed)"
        );
        assert_eq!(summary(&[]), "no call in progress sits on a changed step");
    }
}
