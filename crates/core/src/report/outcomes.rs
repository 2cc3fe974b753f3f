//! How the calls ended: a count for each of the nine outcomes, and the self-service rate.
//!
//! Owns the counting of outcomes only; what an outcome means is `record`'s.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::record::CallOutcome;

use super::select::{Call, ratio};

/// A count per outcome; every outcome is present, in `CallOutcome::ALL`'s order, even at 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeCounts([u64; CallOutcome::ALL.len()]);

impl OutcomeCounts {
    pub fn get(&self, outcome: CallOutcome) -> u64 {
        self.0[index(outcome)]
    }

    /// Every outcome with its count, in the order reports show them.
    pub fn iter(&self) -> impl Iterator<Item = (CallOutcome, u64)> + '_ {
        CallOutcome::ALL.into_iter().map(|o| (o, self.get(o)))
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

fn index(outcome: CallOutcome) -> usize {
    CallOutcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or_default()
}

impl Serialize for OutcomeCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (o, n) in self.iter() {
            map.serialize_entry(o.as_str(), &n)?;
        }
        map.end()
    }
}

// Every outcome is a required count, as `serialize` writes them.
impl schemars::JsonSchema for OutcomeCounts {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OutcomeCounts".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = CallOutcome::ALL.iter().map(|o| o.as_str()).collect();
        let properties: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .map(|n| {
                (
                    (*n).to_owned(),
                    serde_json::json!({ "type": "integer", "minimum": 0 }),
                )
            })
            .collect();
        schemars::json_schema!({
            "description": "the number of calls that ended with each outcome",
            "type": "object",
            "properties": properties,
            "required": names,
            "additionalProperties": false
        })
    }
}

/// The outcomes of the calls that ended, and how many have none yet.
pub fn count(calls: &[Call<'_>]) -> (OutcomeCounts, u64) {
    let mut counts = OutcomeCounts::default();
    let mut in_progress = 0;
    for c in calls {
        match c.record.outcome {
            Some(o) => counts.0[index(o)] += 1,
            None => in_progress += 1,
        }
    }
    (counts, in_progress)
}

/// True self-service: calls whose outcome is `self_service` over the calls that ended (a
/// call still in progress has no outcome yet, so it is in neither part).
pub fn self_service_rate(counts: &OutcomeCounts) -> Option<f64> {
    ratio(counts.get(CallOutcome::SelfService), counts.total())
}
