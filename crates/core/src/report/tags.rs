//! Why customers call: the reasons counted, and every tag value the flows set.
//!
//! Owns the counting of the record's `reason` and `tags`. It must not guess a reason for a
//! call that has none.

use std::collections::HashMap;

use serde::Serialize;

use super::select::Call;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TagFigures {
    /// The reasons for calling, most frequent first.
    pub reasons: Vec<ReasonCount>,
    /// Calls that reached no `reason` tag.
    pub without_reason: u64,
    /// Every tag's values with the calls that had them, by name, most frequent first.
    pub values: Vec<TagCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ReasonCount {
    pub reason: String,
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TagCount {
    pub name: String,
    pub value: String,
    pub calls: u64,
}

pub fn compute(calls: &[Call<'_>]) -> TagFigures {
    let mut reasons: HashMap<&str, u64> = HashMap::new();
    let mut without_reason = 0;
    let mut values: HashMap<(&str, &str), u64> = HashMap::new();
    for c in calls {
        match c.record.reason.as_deref() {
            Some(r) => *reasons.entry(r).or_default() += 1,
            None => without_reason += 1,
        }
        for (name, value) in &c.record.tags {
            *values.entry((name, value)).or_default() += 1;
        }
    }
    let mut reasons: Vec<ReasonCount> = reasons
        .into_iter()
        .map(|(r, calls)| ReasonCount {
            reason: r.to_owned(),
            calls,
        })
        .collect();
    reasons.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.reason.cmp(&b.reason)));
    let mut values: Vec<TagCount> = values
        .into_iter()
        .map(|((name, value), calls)| TagCount {
            name: name.to_owned(),
            value: value.to_owned(),
            calls,
        })
        .collect();
    values.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| b.calls.cmp(&a.calls))
            .then_with(|| a.value.cmp(&b.value))
    });
    TagFigures {
        reasons,
        without_reason,
        values,
    }
}
