//! What callers thought: survey responses and scores, overall, per queue and per agent.
//!
//! Owns the scoring (mean, CSAT as the share of 4 and 5). A score outside 1-5 is not an
//! answer and is left out. It must not decide which queue or agent served a call: the
//! record's `queue` and `agent` say.

use std::collections::BTreeMap;

use serde::Serialize;

use super::params::ReportParams;
use super::select::{Call, ratio};

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SurveyFigures {
    pub overall: Scores,
    pub queues: Vec<GroupScores>,
    pub agents: Vec<GroupScores>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Scores {
    pub responses: u64,
    pub mean_score: Option<f64>,
    /// Customer satisfaction: the share of responses scoring 4 or 5.
    pub csat: Option<f64>,
}

/// Scores of one queue or one agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct GroupScores {
    pub name: String,
    #[serde(flatten)]
    pub scores: Scores,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    responses: u64,
    total: u64,
    satisfied: u64,
}

impl Sums {
    fn add(&mut self, score: u8) {
        self.responses += 1;
        self.total += u64::from(score);
        if score >= 4 {
            self.satisfied += 1;
        }
    }

    fn scores(self) -> Scores {
        Scores {
            responses: self.responses,
            mean_score: ratio(self.total, self.responses),
            csat: ratio(self.satisfied, self.responses),
        }
    }
}

pub fn compute(calls: &[Call<'_>], params: &ReportParams) -> SurveyFigures {
    let mut overall = Sums::default();
    let mut queues: BTreeMap<&str, Sums> = BTreeMap::new();
    let mut agents: BTreeMap<&str, Sums> = BTreeMap::new();
    for c in calls {
        let queue = c.record.queue.as_deref().filter(|q| params.wants_queue(q));
        for a in c
            .record
            .survey
            .iter()
            .filter(|a| (1..=5).contains(&a.score))
        {
            overall.add(a.score);
            if let Some(q) = queue {
                queues.entry(q).or_default().add(a.score);
            }
            if let Some(agent) = c.record.agent.as_deref() {
                agents.entry(agent).or_default().add(a.score);
            }
        }
    }
    let groups = |m: BTreeMap<&str, Sums>| {
        m.into_iter()
            .map(|(name, s)| GroupScores {
                name: name.to_owned(),
                scores: s.scores(),
            })
            .collect()
    };
    SurveyFigures {
        overall: overall.scores(),
        queues: groups(queues),
        agents: groups(agents),
    }
}
