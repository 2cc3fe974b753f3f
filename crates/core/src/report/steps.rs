//! The IVR funnel: for each flow and step, how often callers came, where they hung up,
//! where they said nothing or pressed a wrong key, and which keys they chose.
//!
//! Owns the walk through a call's `step`, `key`, `no_input` and `invalid` events. It must
//! not decide outcomes: a hang-up is the record's `abandoned_in_menu`.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::record::CallOutcome;

use super::select::{Call, text};

/// Where a key "chose" something: the key moved the caller on. Digits of a collect (an
/// account number), type-ahead kept for later (counted when it is used) and ignored keys
/// are not choices; invalid keys are counted apart.
const CHOICES: [&str; 4] = ["option", "global", "back", "repeat"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct StepFigures {
    pub flow: String,
    pub step: String,
    /// Times the step was entered (a caller who comes back counts again).
    pub visits: u64,
    /// Calls that entered it at least once.
    pub calls: u64,
    /// Calls that ended `abandoned_in_menu` with this as their last step.
    pub hangups: u64,
    /// `no_input` events in the step.
    pub timeouts: u64,
    /// `invalid` events in the step.
    pub invalid: u64,
    /// Keys that chose a way on, with how often.
    pub keys: BTreeMap<String, u64>,
}

type StepKey = (String, String);

pub fn compute(calls: &[Call<'_>]) -> Vec<StepFigures> {
    let mut steps: BTreeMap<StepKey, StepFigures> = BTreeMap::new();
    for call in calls {
        let mut current: Option<StepKey> = None;
        let mut seen: HashSet<StepKey> = HashSet::new();
        for e in &call.events {
            match e.kind.as_str() {
                "step" => {
                    let (Some(flow), Some(step)) = (text(e, "flow"), text(e, "step")) else {
                        continue;
                    };
                    let key = (flow.to_owned(), step.to_owned());
                    let s = entry(&mut steps, &key);
                    s.visits += 1;
                    if seen.insert(key.clone()) {
                        s.calls += 1;
                    }
                    current = Some(key);
                }
                "key" => {
                    let (Some(key), Some(went)) = (text(e, "key"), text(e, "went")) else {
                        continue;
                    };
                    if let Some(cur) = &current
                        && CHOICES.contains(&went)
                    {
                        *entry(&mut steps, cur)
                            .keys
                            .entry(key.to_owned())
                            .or_default() += 1;
                    }
                }
                kind @ ("no_input" | "invalid") => {
                    let Some(key) = failure_step(e.detail.get("step"), &current, call) else {
                        continue;
                    };
                    let s = entry(&mut steps, &key);
                    if kind == "no_input" {
                        s.timeouts += 1;
                    } else {
                        s.invalid += 1;
                    }
                }
                _ => {}
            }
        }
        if call.record.outcome == Some(CallOutcome::AbandonedInMenu) {
            let last = call
                .record
                .last_step
                .as_deref()
                .and_then(|s| s.rsplit_once('/'))
                .map(|(f, s)| (f.to_owned(), s.to_owned()))
                .or(current);
            if let Some(key) = last {
                entry(&mut steps, &key).hangups += 1;
            }
        }
    }
    steps.into_values().collect()
}

fn entry<'m>(steps: &'m mut BTreeMap<StepKey, StepFigures>, key: &StepKey) -> &'m mut StepFigures {
    steps.entry(key.clone()).or_insert_with(|| StepFigures {
        flow: key.0.clone(),
        step: key.1.clone(),
        ..StepFigures::default()
    })
}

/// The step a failure event names, in the flow the call is in (the event carries the
/// step's name only).
fn failure_step(
    step: Option<&serde_json::Value>,
    current: &Option<StepKey>,
    call: &Call<'_>,
) -> Option<StepKey> {
    let named = step.and_then(|v| v.as_str());
    match (named, current) {
        (Some(s), Some((flow, _))) => Some((flow.clone(), s.to_owned())),
        (Some(s), None) => Some((call.record.flow.clone(), s.to_owned())),
        (None, cur) => cur.clone(),
    }
}
