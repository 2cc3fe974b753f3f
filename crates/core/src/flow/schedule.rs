//! Opening hours: weekly times, holidays and a time zone, as `schedules:` in hotline.yaml
//! describes them, and whether a schedule is open at an instant.
//!
//! Owns the schedule's text forms (`mon-fri: 08:00-18:00`, `date: 12-25`), their checks
//! and the evaluation [`is_open`]. Hours are wall-clock times in the schedule's own time
//! zone, so a change to or from daylight saving time does not move them. It never reads a
//! clock: the instant is always given.
//!
//! ```yaml
//! schedules:
//!   service_hours:
//!     timezone: Europe/Berlin
//!     weekly:
//!       mon-fri: 08:00-18:00
//!       sat: [10:00-12:00, 13:00-16:00]
//!     holidays:
//!       - { date: 12-25, name: christmas }                         # every year
//!       - { date: 2026-04-03, name: good_friday }                  # once
//!       - { from: 12-31, to: 01-01, name: new_year }               # every year
//!       - { from: 2026-08-03, to: 2026-08-14, name: summer_break } # once
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

use super::diagnostic::did_you_mean_help;

/// The answer of a schedule at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenState {
    Open,
    Closed,
    /// A holiday, by its name.
    Holiday(String),
}

impl fmt::Display for OpenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenState::Open => f.write_str("open"),
            OpenState::Closed => f.write_str("closed"),
            OpenState::Holiday(name) => write!(f, "holiday '{name}'"),
        }
    }
}

/// A checked schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub timezone: Tz,
    /// Opening times per weekday, Monday first.
    pub weekly: [Vec<Slot>; 7],
    pub holidays: Vec<Holiday>,
}

/// Open from `start` until `end`, in seconds since midnight. An `end` not after `start`
/// means the slot runs past midnight into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub start: u32,
    pub end: u32,
}

impl Slot {
    fn crosses_midnight(self) -> bool {
        self.end <= self.start
    }
}

/// A day in a calendar: every year (`12-25`) or one date (`2026-04-03`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    Yearly { month: u32, day: u32 },
    Once(NaiveDate),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub name: String,
    pub from: Day,
    /// Inclusive; the same as `from` for a single day.
    pub to: Day,
}

impl Holiday {
    fn covers(&self, date: NaiveDate) -> bool {
        match (self.from, self.to) {
            (Day::Once(a), Day::Once(b)) => a <= date && date <= b,
            (Day::Yearly { month: m1, day: d1 }, Day::Yearly { month: m2, day: d2 }) => {
                let x = (date.month(), date.day());
                let (a, b) = ((m1, d1), (m2, d2));
                if a <= b {
                    a <= x && x <= b
                } else {
                    // Across the turn of the year: 12-31 to 01-01.
                    x >= a || x <= b
                }
            }
            _ => false,
        }
    }
}

/// Whether `schedule` is open at `at`. Holidays close the whole local day; a slot that runs
/// past midnight belongs to the day it starts on (and does not open on a holiday).
pub fn is_open(schedule: &Schedule, at: DateTime<Utc>) -> OpenState {
    let local = at.with_timezone(&schedule.timezone);
    let date = local.date_naive();
    if let Some(h) = schedule.holidays.iter().find(|h| h.covers(date)) {
        return OpenState::Holiday(h.name.clone());
    }
    let secs = local.num_seconds_from_midnight();
    let today = day_index(date.weekday());
    let open_today = schedule.weekly.get(today).is_some_and(|slots| {
        slots.iter().any(|s| {
            if s.crosses_midnight() {
                secs >= s.start
            } else {
                s.start <= secs && secs < s.end
            }
        })
    });
    let from_yesterday = date.pred_opt().is_some_and(|y| {
        !schedule.holidays.iter().any(|h| h.covers(y))
            && schedule
                .weekly
                .get(day_index(y.weekday()))
                .is_some_and(|slots| slots.iter().any(|s| s.crosses_midnight() && secs < s.end))
    });
    if open_today || from_yesterday {
        OpenState::Open
    } else {
        OpenState::Closed
    }
}

fn day_index(w: Weekday) -> usize {
    w.num_days_from_monday() as usize
}

// ---------------------------------------------------------------------------------------
// The text forms
// ---------------------------------------------------------------------------------------

/// One value or a list of them (`sat: 10:00-14:00` or `sat: [10:00-12:00, 13:00-16:00]`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    date: Option<String>,
    from: Option<String>,
    to: Option<String>,
    name: Option<String>,
}

/// `schedules.NAME` as written; `Schedule::from_raw` checks it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Schedule")]
struct RawSchedule {
    timezone: String,
    #[serde(default)]
    weekly: std::collections::BTreeMap<String, OneOrMany>,
    #[serde(default)]
    holidays: Vec<RawHoliday>,
}

// A schedule is written as its raw form.
impl schemars::JsonSchema for Schedule {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        RawSchedule::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawSchedule::json_schema(generator)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawSchedule::deserialize(d)?;
        Schedule::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

/// A schedule that cannot be used, with what was expected and found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

impl Schedule {
    fn from_raw(raw: RawSchedule) -> Result<Schedule, ScheduleError> {
        let timezone = parse_timezone(&raw.timezone)?;
        let mut weekly: [Vec<Slot>; 7] = Default::default();
        let mut given = [false; 7];
        for (days, times) in &raw.weekly {
            let days_list = parse_days(days)?;
            let texts = match times {
                OneOrMany::One(s) => vec![s.clone()],
                OneOrMany::Many(v) => v.clone(),
            };
            let mut slots = Vec::new();
            for t in &texts {
                if t.trim().eq_ignore_ascii_case("closed") && texts.len() == 1 {
                    continue;
                }
                slots.push(parse_slot(t)?);
            }
            for d in days_list {
                if std::mem::replace(&mut given[d], true) {
                    return Err(ScheduleError(format!(
                        "'{}' is given more than once in 'weekly'",
                        DAY_NAMES[d]
                    )));
                }
                if let Some(w) = weekly.get_mut(d) {
                    w.extend(slots.iter().copied());
                }
            }
        }
        let holidays = raw
            .holidays
            .iter()
            .map(parse_holiday)
            .collect::<Result<_, _>>()?;
        Ok(Schedule {
            timezone,
            weekly,
            holidays,
        })
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    /// Reads one schedule written in YAML (what hotline.yaml holds under its name).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_saphyr::from_str::<Schedule>(s).map_err(|e| ScheduleError(e.to_string()))
    }
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const LONG_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn parse_timezone(s: &str) -> Result<Tz, ScheduleError> {
    s.trim().parse::<Tz>().map_err(|_| {
        let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
        let hint =
            did_you_mean_help(s.trim(), names).map_or_else(String::new, |h| format!(" ({h})"));
        ScheduleError(format!(
            "expected a time zone like Europe/Berlin, found '{s}'{hint}"
        ))
    })
}

fn parse_day(s: &str) -> Result<usize, ScheduleError> {
    let l = s.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|d| *d == l)
        .or_else(|| LONG_DAY_NAMES.iter().position(|d| *d == l))
        .ok_or_else(|| {
            let hint = did_you_mean_help(&l, DAY_NAMES.iter().copied())
                .map_or_else(String::new, |h| format!(" ({h})"));
            ScheduleError(format!(
                "expected a weekday like mon or mon-fri, found '{}'{hint}",
                s.trim()
            ))
        })
}

/// `mon`, `mon-fri`, `sat, sun`, `fri-mon` (wrapping over the weekend).
fn parse_days(s: &str) -> Result<Vec<usize>, ScheduleError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a)?, parse_day(b)?);
                let mut d = a;
                loop {
                    out.push(d);
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => out.push(parse_day(part)?),
        }
    }
    Ok(out)
}

/// `08:00` or `8:00`; `24:00` only as an end.
fn parse_time(s: &str, end: bool) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
        return None;
    }
    Some(h * 3600 + m * 60)
}

fn parse_slot(s: &str) -> Result<Slot, ScheduleError> {
    let bad = || {
        ScheduleError(format!(
            "expected opening times like 08:00-18:00, found '{}'",
            s.trim()
        ))
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start = parse_time(a, false).ok_or_else(bad)?;
    let end = parse_time(b, true).ok_or_else(bad)?;
    if start == end {
        return Err(ScheduleError(format!(
            "'{}' opens and closes at the same time",
            s.trim()
        )));
    }
    Ok(Slot { start, end })
}

fn parse_date(s: &str) -> Result<Day, ScheduleError> {
    let t = s.trim();
    let bad = || {
        ScheduleError(format!(
            "expected a date like 2026-12-24 (once) or 12-24 (every year), found '{t}'"
        ))
    };
    let parts: Vec<&str> = t.split('-').collect();
    match parts.as_slice() {
        [y, m, d] if y.len() == 4 => {
            let date = NaiveDate::from_ymd_opt(
                y.parse().map_err(|_| bad())?,
                m.parse().map_err(|_| bad())?,
                d.parse().map_err(|_| bad())?,
            )
            .ok_or_else(bad)?;
            Ok(Day::Once(date))
        }
        [m, d] if m.len() <= 2 && d.len() <= 2 => {
            let month: u32 = m.parse().map_err(|_| bad())?;
            let day: u32 = d.parse().map_err(|_| bad())?;
            // 2024 is a leap year, so 02-29 is a valid yearly date (seen in leap years).
            NaiveDate::from_ymd_opt(2024, month, day).ok_or_else(bad)?;
            Ok(Day::Yearly { month, day })
        }
        _ => Err(bad()),
    }
}

fn parse_holiday(h: &RawHoliday) -> Result<Holiday, ScheduleError> {
    let (from_text, to_text) = match (&h.date, &h.from, &h.to) {
        (Some(d), None, None) => (d, d),
        (None, Some(f), Some(t)) => (f, t),
        _ => {
            return Err(ScheduleError(
                "a holiday is { date: 12-25 } or { from: 12-24, to: 12-26 }, with an optional name"
                    .to_owned(),
            ));
        }
    };
    let (from, to) = (parse_date(from_text)?, parse_date(to_text)?);
    match (from, to) {
        (Day::Once(a), Day::Once(b)) if a > b => {
            return Err(ScheduleError(format!(
                "the holiday from {from_text} to {to_text} ends before it starts"
            )));
        }
        (Day::Once(_), Day::Yearly { .. }) | (Day::Yearly { .. }, Day::Once(_)) => {
            return Err(ScheduleError(format!(
                "'from' and 'to' must both have a year or both have none, found {from_text} and {to_text}"
            )));
        }
        _ => {}
    }
    let name = match &h.name {
        Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
        _ if from_text == to_text => from_text.trim().to_owned(),
        _ => format!("{}..{}", from_text.trim(), to_text.trim()),
    };
    Ok(Holiday { name, from, to })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(yaml: &str) -> Schedule {
        yaml.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid")
    }

    /// The instant a wall clock in `tz` shows the given time.
    fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("unambiguous")
            .with_timezone(&Utc)
    }

    const BERLIN: &str = "timezone: Europe/Berlin\nweekly:\n  mon-fri: 08:00-18:00\n  sat: [10:00-12:00, 13:00-14:00]\n";

    #[test]
    fn the_last_second_before_closing_is_open_and_closing_time_is_closed() {
        let s = schedule(BERLIN);
        let tz = chrono_tz::Europe::Berlin;
        // Monday 2026-11-23.
        assert_eq!(
            is_open(&s, local(tz, 2026, 11, 23, 7, 59, 59)),
            OpenState::Closed
        );
        assert_eq!(
            is_open(&s, local(tz, 2026, 11, 23, 8, 0, 0)),
            OpenState::Open
        );
        assert_eq!(
            is_open(&s, local(tz, 2026, 11, 23, 17, 59, 59)),
            OpenState::Open
        );
        assert_eq!(
            is_open(&s, local(tz, 2026, 11, 23, 18, 0, 0)),
            OpenState::Closed
        );
        // In UTC (winter, UTC+1) 17:59:59 local is 16:59:59.
        assert_eq!(is_open(&s, utc(2026, 11, 23, 16, 59, 59)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 11, 23, 17, 0, 0)), OpenState::Closed);
        // Saturday's lunch break, Sunday closed.
        assert_eq!(
            is_open(&s, local(tz, 2026, 11, 28, 11, 59, 0)),
            OpenState::Open
        );
        assert_eq!(
            is_open(&s, local(tz, 2026, 11, 28, 12, 30, 0)),
            OpenState::Closed
        );
        assert_eq!(
            is_open(&s, local(tz, 2026, 11, 28, 13, 0, 0)),
            OpenState::Open
        );
        assert_eq!(
            is_open(&s, local(tz, 2026, 11, 29, 10, 0, 0)),
            OpenState::Closed
        );
    }

    #[test]
    fn daylight_saving_changes_do_not_shift_the_hours_in_berlin() {
        let s = schedule(BERLIN);
        // Summer time starts Sunday 2026-03-29 01:00 UTC: 08:00 local is 07:00 UTC on the
        // Friday before and 06:00 UTC on the Monday after.
        assert_eq!(is_open(&s, utc(2026, 3, 27, 6, 59, 59)), OpenState::Closed);
        assert_eq!(is_open(&s, utc(2026, 3, 27, 7, 0, 0)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 3, 30, 5, 59, 59)), OpenState::Closed);
        assert_eq!(is_open(&s, utc(2026, 3, 30, 6, 0, 0)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 3, 30, 15, 59, 59)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 3, 30, 16, 0, 0)), OpenState::Closed);
        // Summer time ends Sunday 2026-10-25 01:00 UTC: 18:00 local is 16:00 UTC on the
        // Friday before and 17:00 UTC on the Monday after.
        assert_eq!(is_open(&s, utc(2026, 10, 23, 15, 59, 59)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 10, 23, 16, 0, 0)), OpenState::Closed);
        assert_eq!(is_open(&s, utc(2026, 10, 26, 16, 59, 59)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 10, 26, 17, 0, 0)), OpenState::Closed);
    }

    #[test]
    fn daylight_saving_changes_do_not_shift_the_hours_in_new_york() {
        let s = schedule(
            "timezone: America/New_York\nweekly:\n  sun: 00:00-24:00\n  mon-fri: 09:00-17:00\n",
        );
        // DST starts Sunday 2026-03-08 at 02:00 local (07:00 UTC): 09:00 local is 14:00 UTC
        // on the Friday before and 13:00 UTC on the Monday after.
        assert_eq!(is_open(&s, utc(2026, 3, 6, 13, 59, 59)), OpenState::Closed);
        assert_eq!(is_open(&s, utc(2026, 3, 6, 14, 0, 0)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 3, 9, 12, 59, 59)), OpenState::Closed);
        assert_eq!(is_open(&s, utc(2026, 3, 9, 13, 0, 0)), OpenState::Open);
        // Sunday of the change (23 hours long) is open throughout, in local days.
        // Saturday 23:59:59 EST, Sunday 00:00 EST, Sunday 23:59:59 EDT, Monday 00:00 EDT.
        assert_eq!(is_open(&s, utc(2026, 3, 8, 4, 59, 59)), OpenState::Closed);
        assert_eq!(is_open(&s, utc(2026, 3, 8, 5, 0, 0)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 3, 9, 3, 59, 59)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 3, 9, 4, 0, 0)), OpenState::Closed);
        // DST ends Sunday 2026-11-01: 17:00 local is 21:00 UTC on the Friday before and
        // 22:00 UTC on the Monday after.
        assert_eq!(is_open(&s, utc(2026, 10, 30, 20, 59, 59)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 10, 30, 21, 0, 0)), OpenState::Closed);
        assert_eq!(is_open(&s, utc(2026, 11, 2, 21, 59, 59)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 11, 2, 22, 0, 0)), OpenState::Closed);
    }

    #[test]
    fn holidays_yearly_once_and_ranges() {
        let s = schedule(
            "timezone: Europe/Berlin\nweekly: { mon-sun: 00:00-24:00 }\nholidays:\n  - { date: 12-25, name: christmas }\n  - { date: 2026-04-03, name: good_friday }\n  - { from: 12-31, to: 01-01, name: new_year }\n  - { from: 2026-08-03, to: 2026-08-14, name: summer_break }\n  - { date: 02-29 }\n",
        );
        let tz = chrono_tz::Europe::Berlin;
        let h = |n: &str| OpenState::Holiday(n.to_owned());
        for year in [2026, 2027, 2031] {
            assert_eq!(
                is_open(&s, local(tz, year, 12, 25, 0, 0, 0)),
                h("christmas")
            );
            assert_eq!(
                is_open(&s, local(tz, year, 12, 25, 23, 59, 59)),
                h("christmas")
            );
            assert_eq!(
                is_open(&s, local(tz, year, 12, 26, 0, 0, 0)),
                OpenState::Open
            );
            assert_eq!(
                is_open(&s, local(tz, year, 12, 31, 12, 0, 0)),
                h("new_year")
            );
            assert_eq!(is_open(&s, local(tz, year, 1, 1, 12, 0, 0)), h("new_year"));
            assert_eq!(is_open(&s, local(tz, year, 1, 2, 0, 0, 0)), OpenState::Open);
        }
        // Holidays are local days: 23:30 UTC on the 24th is already the 25th in Berlin.
        assert_eq!(is_open(&s, utc(2026, 12, 24, 23, 30, 0)), h("christmas"));
        assert_eq!(is_open(&s, utc(2026, 12, 24, 22, 59, 59)), OpenState::Open);
        assert_eq!(
            is_open(&s, local(tz, 2026, 4, 3, 9, 0, 0)),
            h("good_friday")
        );
        assert_eq!(is_open(&s, local(tz, 2027, 4, 3, 9, 0, 0)), OpenState::Open);
        assert_eq!(is_open(&s, local(tz, 2026, 8, 2, 9, 0, 0)), OpenState::Open);
        assert_eq!(
            is_open(&s, local(tz, 2026, 8, 3, 0, 0, 0)),
            h("summer_break")
        );
        assert_eq!(
            is_open(&s, local(tz, 2026, 8, 14, 23, 0, 0)),
            h("summer_break")
        );
        assert_eq!(
            is_open(&s, local(tz, 2026, 8, 15, 0, 0, 0)),
            OpenState::Open
        );
        assert_eq!(is_open(&s, local(tz, 2027, 8, 5, 0, 0, 0)), OpenState::Open);
        assert_eq!(is_open(&s, local(tz, 2028, 2, 29, 9, 0, 0)), h("02-29"));
    }

    #[test]
    fn a_slot_past_midnight_belongs_to_the_day_it_starts() {
        let s = schedule(
            "timezone: UTC\nweekly:\n  fri: 22:00-06:00\nholidays: [{ date: 2026-12-04, name: off }]\n",
        );
        // Friday 2026-11-27 22:00 until Saturday 06:00.
        assert_eq!(
            is_open(&s, utc(2026, 11, 27, 21, 59, 59)),
            OpenState::Closed
        );
        assert_eq!(is_open(&s, utc(2026, 11, 27, 22, 0, 0)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 11, 28, 5, 59, 59)), OpenState::Open);
        assert_eq!(is_open(&s, utc(2026, 11, 28, 6, 0, 0)), OpenState::Closed);
        // Not after a Friday that is a holiday.
        assert_eq!(
            is_open(&s, utc(2026, 12, 4, 23, 0, 0)),
            OpenState::Holiday("off".to_owned())
        );
        assert_eq!(is_open(&s, utc(2026, 12, 5, 1, 0, 0)), OpenState::Closed);
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        let err = |y: &str| Schedule::from_str(y).expect_err("refused").to_string();
        assert!(err("timezone: Europe/Berln\n").contains(
            "expected a time zone like Europe/Berlin, found 'Europe/Berln' (did you mean 'Europe/Berlin'?)"
        ));
        assert!(
            err("timezone: UTC\nweekly: { mon: 8-18 }\n")
                .contains("expected opening times like 08:00-18:00, found '8-18'")
        );
        assert!(
            err("timezone: UTC\nweekly: { mon: 25:00-26:00 }\n")
                .contains("expected opening times like 08:00-18:00")
        );
        assert!(
            err("timezone: UTC\nweekly: { mnday: 08:00-18:00 }\n")
                .contains("expected a weekday like mon or mon-fri, found 'mnday'")
        );
        assert!(
            err("timezone: UTC\nweekly: { mon-fri: 08:00-18:00, fri: 09:00-10:00 }\n")
                .contains("'fri' is given more than once in 'weekly'")
        );
        assert!(
            err("timezone: UTC\nholidays: [{ date: 13-01 }]\n").contains(
                "expected a date like 2026-12-24 (once) or 12-24 (every year), found '13-01'"
            )
        );
        assert!(
            err("timezone: UTC\nholidays: [{ from: 2026-08-14, to: 2026-08-03 }]\n")
                .contains("ends before it starts")
        );
        assert!(
            err("timezone: UTC\nholidays: [{ from: 12-24, to: 2026-12-26 }]\n")
                .contains("both have a year or both have none")
        );
        assert!(err("timezone: UTC\nholidays: [{ name: x }]\n").contains("a holiday is"));
        assert!(
            err("timezone: UTC\nweekly: { mon: 08:00-08:00 }\n")
                .contains("opens and closes at the same time")
        );
    }

    #[test]
    fn days_and_closed_days() {
        let s = schedule("timezone: UTC\nweekly:\n  fri-mon: 10:00-11:00\n  tue: closed\n");
        let open_days: Vec<usize> = (0..7).filter(|d| !s.weekly[*d].is_empty()).collect();
        assert_eq!(open_days, [0, 4, 5, 6]);
        let s = schedule("timezone: UTC\nweekly:\n  \"sat, sunday\": 10:00-11:00\n");
        let open_days: Vec<usize> = (0..7).filter(|d| !s.weekly[*d].is_empty()).collect();
        assert_eq!(open_days, [5, 6]);
    }
}
