//! The report laid out as named tables of typed cells, the one shape both the CSV and the
//! text renderings print.
//!
//! Owns which columns each table has and in which order. It must not format numbers: the
//! renderings do, each for its reader (a spreadsheet wants 0.8333, a person 83.3%).

use chrono::DateTime;

use super::compute::Report;
use super::survey::Scores;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Count(u64),
    /// A fraction from 0 to 1.
    Rate(Option<f64>),
    Seconds(Option<f64>),
    /// A mean survey score.
    Score(Option<f64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name (`--table NAME`, the CSV file's stem).
    pub name: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

/// The names of the tables, in the order [`tables`] gives them.
pub const NAMES: [&str; 10] = [
    "summary",
    "outcomes",
    "steps",
    "reasons",
    "tags",
    "queues",
    "agents",
    "survey",
    "repeat_callers",
    "hours",
];

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn date(ms: Option<i64>, report: &Report) -> Cell {
    let tz: chrono_tz::Tz = report
        .period
        .time_zone
        .parse()
        .unwrap_or(chrono_tz::Tz::UTC);
    match ms.and_then(DateTime::from_timestamp_millis) {
        Some(d) => text(
            d.with_timezone(&tz)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string(),
        ),
        None => text(""),
    }
}

pub fn tables(r: &Report) -> Vec<Table> {
    let p = &r.period;
    let summary = Table {
        name: "summary",
        columns: vec!["figure", "value"],
        rows: vec![
            vec![text("since"), date(p.since_ms, r)],
            vec![text("until"), date(p.until_ms, r)],
            vec![text("flow"), text(p.flow.clone().unwrap_or_default())],
            vec![text("queue"), text(p.queue.clone().unwrap_or_default())],
            vec![text("time_zone"), text(p.time_zone.clone())],
            vec![text("calls"), Cell::Count(r.calls)],
            vec![text("in_progress"), Cell::Count(r.in_progress)],
            vec![text("self_service_rate"), Cell::Rate(r.self_service_rate)],
            vec![
                text("short_abandon_seconds"),
                Cell::Seconds(Some(p.short_abandon_seconds)),
            ],
            vec![
                text("service_level_seconds"),
                Cell::Seconds(Some(p.service_level_seconds)),
            ],
        ],
    };
    let outcomes = Table {
        name: "outcomes",
        columns: vec!["outcome", "calls"],
        rows: r
            .outcomes
            .iter()
            .map(|(o, n)| vec![text(o.as_str()), Cell::Count(n)])
            .collect(),
    };
    let steps = Table {
        name: "steps",
        columns: vec![
            "flow", "step", "visits", "calls", "hangups", "timeouts", "invalid", "keys",
        ],
        rows: r
            .steps
            .iter()
            .map(|s| {
                let keys: Vec<String> = s.keys.iter().map(|(k, n)| format!("{k}={n}")).collect();
                vec![
                    text(s.flow.clone()),
                    text(s.step.clone()),
                    Cell::Count(s.visits),
                    Cell::Count(s.calls),
                    Cell::Count(s.hangups),
                    Cell::Count(s.timeouts),
                    Cell::Count(s.invalid),
                    text(keys.join(" ")),
                ]
            })
            .collect(),
    };
    let mut reason_rows: Vec<Vec<Cell>> = r
        .tags
        .reasons
        .iter()
        .map(|x| vec![text(x.reason.clone()), Cell::Count(x.calls)])
        .collect();
    reason_rows.push(vec![text(""), Cell::Count(r.tags.without_reason)]);
    let reasons = Table {
        name: "reasons",
        columns: vec!["reason", "calls"],
        rows: reason_rows,
    };
    let tags = Table {
        name: "tags",
        columns: vec!["name", "value", "calls"],
        rows: r
            .tags
            .values
            .iter()
            .map(|t| {
                vec![
                    text(t.name.clone()),
                    text(t.value.clone()),
                    Cell::Count(t.calls),
                ]
            })
            .collect(),
    };
    let queues = Table {
        name: "queues",
        columns: vec![
            "queue",
            "offered",
            "answered",
            "answered_in_time",
            "abandoned",
            "short_abandoned",
            "overflowed",
            "left_for_callback",
            "lost",
            "failed",
            "waiting",
            "abandon_rate",
            "service_level",
            "asa_seconds",
            "handled",
            "aht_seconds",
            "longest_wait_seconds",
            "callbacks_requested",
            "callbacks_completed",
            "callbacks_unanswered",
        ],
        rows: r
            .queues
            .iter()
            .map(|q| {
                vec![
                    text(q.queue.clone()),
                    Cell::Count(q.offered),
                    Cell::Count(q.answered),
                    Cell::Count(q.answered_in_time),
                    Cell::Count(q.abandoned),
                    Cell::Count(q.short_abandoned),
                    Cell::Count(q.overflowed),
                    Cell::Count(q.left_for_callback),
                    Cell::Count(q.lost),
                    Cell::Count(q.failed),
                    Cell::Count(q.waiting),
                    Cell::Rate(q.abandon_rate),
                    Cell::Rate(q.service_level),
                    Cell::Seconds(q.asa_seconds),
                    Cell::Count(q.handled),
                    Cell::Seconds(q.aht_seconds),
                    Cell::Seconds(q.longest_wait_seconds),
                    Cell::Count(q.callbacks_requested),
                    Cell::Count(q.callbacks_completed),
                    Cell::Count(q.callbacks_unanswered),
                ]
            })
            .collect(),
    };
    let agents = Table {
        name: "agents",
        columns: vec![
            "agent",
            "calls_handled",
            "talk_seconds",
            "hold_seconds",
            "wrap_up_seconds",
            "aht_seconds",
            "occupancy",
            "no_answers",
        ],
        rows: r
            .agents
            .iter()
            .map(|a| {
                vec![
                    text(a.agent.clone()),
                    Cell::Count(a.calls_handled),
                    Cell::Seconds(Some(a.talk_seconds)),
                    Cell::Seconds(a.hold_seconds),
                    Cell::Seconds(a.wrap_up_seconds),
                    Cell::Seconds(a.aht_seconds),
                    Cell::Rate(a.occupancy),
                    Cell::Count(a.no_answers),
                ]
            })
            .collect(),
    };
    let score_row = |scope: &str, name: &str, s: &Scores| {
        vec![
            text(scope),
            text(name),
            Cell::Count(s.responses),
            Cell::Score(s.mean_score),
            Cell::Rate(s.csat),
        ]
    };
    let mut survey_rows = vec![score_row("all", "", &r.survey.overall)];
    survey_rows.extend(
        r.survey
            .queues
            .iter()
            .map(|g| score_row("queue", &g.name, &g.scores)),
    );
    survey_rows.extend(
        r.survey
            .agents
            .iter()
            .map(|g| score_row("agent", &g.name, &g.scores)),
    );
    let survey = Table {
        name: "survey",
        columns: vec!["scope", "name", "responses", "mean_score", "csat"],
        rows: survey_rows,
    };
    let rc = &r.repeat_callers;
    let mut repeat_rows = vec![vec![
        text(""),
        Cell::Count(rc.callers),
        Cell::Count(rc.calls),
        Cell::Count(rc.within_24h.callers),
        Cell::Count(rc.within_24h.calls),
        Cell::Rate(rc.within_24h.rate),
        Cell::Count(rc.within_7d.callers),
        Cell::Count(rc.within_7d.calls),
        Cell::Rate(rc.within_7d.rate),
    ]];
    repeat_rows.extend(rc.reasons.iter().map(|x| {
        vec![
            text(x.reason.clone()),
            text(""),
            Cell::Count(x.calls),
            text(""),
            Cell::Count(x.repeated_24h),
            Cell::Rate(x.rate_24h),
            text(""),
            Cell::Count(x.repeated_7d),
            Cell::Rate(x.rate_7d),
        ]
    }));
    let repeat_callers = Table {
        name: "repeat_callers",
        columns: vec![
            "reason",
            "callers",
            "calls",
            "callers_again_24h",
            "calls_repeated_24h",
            "rate_24h",
            "callers_again_7d",
            "calls_repeated_7d",
            "rate_7d",
        ],
        rows: repeat_rows,
    };
    let hours = Table {
        name: "hours",
        columns: vec!["hour", "calls", "answered", "abandoned"],
        rows: r
            .hours
            .iter()
            .map(|h| {
                vec![
                    Cell::Count(u64::from(h.hour)),
                    Cell::Count(h.calls),
                    Cell::Count(h.answered),
                    Cell::Count(h.abandoned),
                ]
            })
            .collect(),
    };
    vec![
        summary,
        outcomes,
        steps,
        reasons,
        tags,
        queues,
        agents,
        survey,
        repeat_callers,
        hours,
    ]
}
