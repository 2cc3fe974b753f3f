//! The load tool's figures: a fixed-size histogram for inter-arrival gaps and latencies,
//! the summary of a run, its human-readable table and its one-line JSON. Pure: it is
//! handed numbers and returns text; it must not measure anything itself.

use std::fmt::Write as _;

use serde::Serialize;

use super::procfs::CpuUse;

/// Bucket width of the histogram, in microseconds.
const BUCKET_US: u32 = 10;
/// Values at or above this land in the last bucket (their exact maximum is still kept).
const TOP_US: u32 = 2_000_000;

/// A histogram of microsecond values with 10 µs buckets up to 2 s: bounded memory however
/// many packets a run sees, and percentiles exact to a bucket.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: u64,
    max: u32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; (TOP_US / BUCKET_US) as usize + 1],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, us: u32) {
        let i = (us.min(TOP_US) / BUCKET_US) as usize;
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.sum = self.sum.saturating_add(u64::from(us));
        self.max = self.max.max(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_us(&self) -> u32 {
        self.max
    }

    pub fn mean_us(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value below which a fraction `q` (0..=1) of the samples fall: the upper edge of
    /// the bucket holding that rank, capped at the true maximum. Zero when empty.
    pub fn quantile_us(&self, q: f64) -> u32 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = (i as u32 + 1).saturating_mul(BUCKET_US);
                return upper.min(self.max);
            }
        }
        self.max
    }

    /// How many samples are at or above `us`.
    pub fn count_at_least(&self, us: u32) -> u64 {
        let first = (us.min(TOP_US) / BUCKET_US) as usize;
        self.buckets.iter().skip(first).sum()
    }
}

/// Percentiles of a distribution in milliseconds, for the report.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spread {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl From<&Histogram> for Spread {
    fn from(h: &Histogram) -> Self {
        let ms = |us: u32| f64::from(us) / 1000.0;
        Spread {
            count: h.count(),
            p50_ms: ms(h.quantile_us(0.50)),
            p99_ms: ms(h.quantile_us(0.99)),
            p999_ms: ms(h.quantile_us(0.999)),
            max_ms: ms(h.max_us()),
        }
    }
}

/// The calls an overload run places once the load has dropped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    pub calls: usize,
    pub set_up: usize,
    pub refused: usize,
    /// From the end of the overload to the first of these calls (the longest Retry-After).
    pub waited_s: f64,
}

/// Everything a run found, as printed and as the JSON line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub target: String,
    pub spawned_engine: bool,
    pub media_workers: Option<usize>,
    /// SCHED_FIFO priority of the media threads, when asked for.
    pub realtime: Option<i32>,
    pub calls: usize,
    pub rate_per_s: f64,
    pub hold_s: f64,
    pub calls_attempted: usize,
    pub calls_set_up: usize,
    pub calls_failed: usize,
    /// Calls the engine refused with 503 (over its limits).
    pub calls_refused: usize,
    /// The shortest and longest `Retry-After` of those refusals, seconds.
    pub retry_after_s: Option<(u32, u32)>,
    /// An overload run's (`--recovery-calls`) calls after the load dropped; in such a run
    /// refusals are expected, not failures.
    pub recovery: Option<Recovery>,
    /// The first few failure reasons with their counts.
    pub failures: Vec<(String, usize)>,
    pub welcome_missing: usize,
    pub keys_pressed: u64,
    pub keys_lost: u64,
    pub key_latency: Spread,
    pub setup_latency: Spread,
    pub gap: Spread,
    pub gap_mean_ms: f64,
    /// Gaps of 40 ms or more (a whole frame late or missing).
    pub gaps_over_40ms: u64,
    pub packets_received: u64,
    pub packets_expected: u64,
    /// Calls that were up together during the steady-state window.
    pub concurrent_in_window: usize,
    pub window_s: f64,
    pub engine_cpu: Option<CpuUse>,
    pub engine_cpu_per_call_pct: Option<f64>,
    pub engine_rss_peak_kib: Option<u64>,
    pub engine_rss_idle_kib: Option<u64>,
    pub engine_rss_per_call_kib: Option<f64>,
    pub engine_hwm_kib: Option<u64>,
    pub tool_cpu: Option<CpuUse>,
    /// The callers' media clock: mean work per tick in the window, the longest tick and the
    /// worst lateness of the run, and ticks more than 5 ms late in the window.
    pub caller_tick_mean_ms: Option<f64>,
    pub caller_tick_max_ms: Option<f64>,
    pub caller_max_lateness_ms: Option<f64>,
    pub caller_late_ticks: Option<u64>,
    /// The whole machine's busy time in the window, % of one core (all processes).
    pub machine_busy_pct: Option<f64>,
    /// The kernel's softirq threads, % of one core.
    pub softirq_threads_pct: Option<f64>,
    /// What other processes (neither the engine nor the load tool) used, % of one core.
    pub others_cpu_pct: Option<f64>,
    pub cpus: usize,
    pub cpu_model: String,
    pub max_p99_gap_ms: f64,
    pub passed: bool,
    pub verdicts: Vec<String>,
}

impl Summary {
    /// Decides `passed` and `verdicts` from the figures and the limit on the p99 gap.
    pub fn judge(&mut self) {
        let mut v = Vec::new();
        if self.calls_failed > 0 {
            v.push(format!("{} call(s) failed", self.calls_failed));
        }
        if self.calls_refused > 0 && self.recovery.is_none() {
            v.push(format!("{} call(s) refused (503)", self.calls_refused));
        }
        if let Some(r) = &self.recovery
            && r.set_up < r.calls
        {
            v.push(format!(
                "{} of {} call(s) after the load dropped were not served ({} refused)",
                r.calls - r.set_up,
                r.calls,
                r.refused
            ));
        }
        if self.keys_lost > 0 {
            v.push(format!("{} key(s) lost", self.keys_lost));
        }
        if self.gap.count == 0 {
            v.push("no steady-state audio was measured".into());
        } else if self.gap.p99_ms > self.max_p99_gap_ms {
            v.push(format!(
                "p99 gap {:.2} ms exceeds {:.2} ms",
                self.gap.p99_ms, self.max_p99_gap_ms
            ));
        }
        self.passed = v.is_empty();
        self.verdicts = v;
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "hotline load: {} calls at {}/s, {} s each, against {}{}{}",
            self.calls,
            self.rate_per_s,
            self.hold_s,
            self.target,
            match (self.spawned_engine, self.media_workers) {
                (true, Some(w)) => format!(" (spawned, {w} media worker(s))"),
                _ => " (attached)".into(),
            },
            self.realtime
                .map(|p| format!(", media threads SCHED_FIFO {p}"))
                .unwrap_or_default()
        );
        row(
            &mut t,
            "calls attempted/set up/failed",
            format!(
                "{} / {} / {}",
                self.calls_attempted, self.calls_set_up, self.calls_failed
            ),
        );
        if self.calls_refused > 0 || self.recovery.is_some() {
            row(
                &mut t,
                "refused (503)",
                match self.retry_after_s {
                    Some((lo, hi)) => {
                        format!("{}, Retry-After {lo}-{hi} s", self.calls_refused)
                    }
                    None => self.calls_refused.to_string(),
                },
            );
        }
        if let Some(r) = &self.recovery {
            row(
                &mut t,
                "after the load dropped",
                format!(
                    "{} / {} set up ({} refused), first {:.1} s after the ramp",
                    r.set_up, r.calls, r.refused, r.waited_s
                ),
            );
        }
        for (why, n) in &self.failures {
            row(&mut t, "  failure", format!("{n} x {why}"));
        }
        if self.welcome_missing > 0 {
            row(
                &mut t,
                "welcome not heard",
                self.welcome_missing.to_string(),
            );
        }
        row(
            &mut t,
            "keys pressed/lost",
            format!("{} / {}", self.keys_pressed, self.keys_lost),
        );
        let spread = |s: &Spread| {
            format!(
                "p50 {:.1}  p99 {:.1}  max {:.1} ms",
                s.p50_ms, s.p99_ms, s.max_ms
            )
        };
        row(&mut t, "key -> next prompt", spread(&self.key_latency));
        row(&mut t, "INVITE -> 200", spread(&self.setup_latency));
        row(
            &mut t,
            "RTP gap (steady state)",
            format!(
                "p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms  (mean {:.3}, n={})",
                self.gap.p50_ms,
                self.gap.p99_ms,
                self.gap.p999_ms,
                self.gap.max_ms,
                self.gap_mean_ms,
                self.gap.count
            ),
        );
        row(&mut t, "gaps >= 40 ms", self.gaps_over_40ms.to_string());
        packets_row(&mut t, self.packets_received, self.packets_expected);
        row(
            &mut t,
            "steady-state window",
            format!(
                "{:.1} s with {} calls up",
                self.window_s, self.concurrent_in_window
            ),
        );
        row(
            &mut t,
            "engine CPU",
            format!(
                "{} of one core, {} per call (utime+stime: {})",
                opt(self.engine_cpu.as_ref().map(|c| c.total_pct), " %", 1),
                opt(self.engine_cpu_per_call_pct, " %", 4),
                opt(self.engine_cpu.as_ref().map(|c| c.stat_pct), " %", 1),
            ),
        );
        if let Some(c) = &self.engine_cpu {
            for (name, pct) in &c.threads {
                row(&mut t, &format!("  thread {name}"), format!("{pct:.1} %"));
            }
        }
        row(
            &mut t,
            "engine RSS peak / idle",
            format!(
                "{} / {} ({} per call; high-water {})",
                opt(
                    self.engine_rss_peak_kib.map(|k| k as f64 / 1024.0),
                    " MiB",
                    1
                ),
                opt(
                    self.engine_rss_idle_kib.map(|k| k as f64 / 1024.0),
                    " MiB",
                    1
                ),
                opt(self.engine_rss_per_call_kib, " KiB", 1),
                opt(self.engine_hwm_kib.map(|k| k as f64 / 1024.0), " MiB", 1),
            ),
        );
        row(
            &mut t,
            "load tool CPU",
            format!(
                "{} (utime+stime: {})",
                opt(self.tool_cpu.as_ref().map(|c| c.total_pct), " %", 1),
                opt(self.tool_cpu.as_ref().map(|c| c.stat_pct), " %", 1),
            ),
        );
        if let Some(c) = &self.tool_cpu {
            for (name, pct) in &c.threads {
                row(&mut t, &format!("  thread {name}"), format!("{pct:.1} %"));
            }
        }
        row(
            &mut t,
            "caller clock tick",
            format!(
                "mean {} max {} of 20 ms; late ticks {} (worst {})",
                opt(self.caller_tick_mean_ms, " ms", 2),
                opt(self.caller_tick_max_ms, " ms", 1),
                self.caller_late_ticks
                    .map_or_else(|| "n/a".into(), |n| n.to_string()),
                opt(self.caller_max_lateness_ms, " ms", 1),
            ),
        );
        row(
            &mut t,
            "machine busy / ksoftirqd / others",
            format!(
                "{} / {} / {} of {} cores ({})",
                opt(self.machine_busy_pct, " %", 1),
                opt(self.softirq_threads_pct, " %", 1),
                opt(self.others_cpu_pct, " %", 1),
                self.cpus,
                self.cpu_model
            ),
        );
        let _ = writeln!(
            t,
            "result: {}",
            if self.passed {
                "PASS".to_string()
            } else {
                format!("FAIL ({})", self.verdicts.join("; "))
            }
        );
        t
    }
}

/// A figure that may be missing, with its unit: `12.3 ms` or `n/a`.
pub(super) fn opt(v: Option<f64>, unit: &str, prec: usize) -> String {
    match v {
        Some(x) => format!("{x:.prec$}{unit}"),
        None => "n/a".into(),
    }
}

/// "packets received/expected: 9990 / 10000 (99.900 %)".
pub(super) fn packets_row(t: &mut String, received: u64, expected: u64) {
    let ratio = if expected > 0 {
        received as f64 / expected as f64 * 100.0
    } else {
        0.0
    };
    row(
        t,
        "packets received/expected",
        format!("{received} / {expected} ({ratio:.3} %)"),
    );
}

/// One line of a report table.
pub(super) fn row(t: &mut String, k: &str, v: String) {
    let _ = writeln!(t, "  {k:<28} {v}");
}

/// Prints a run's report: the table, or with `json` the JSON on stdout and the table on
/// stderr (so a script can read one and a person the other).
pub(super) fn print(table: &str, json: Option<String>) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match json {
        Some(j) => {
            eprint!("{table}");
            writeln!(out, "{j}")?;
        }
        None => write!(out, "{table}")?,
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_spread() {
        let mut h = Histogram::default();
        for _ in 0..990 {
            h.record(20_000);
        }
        for _ in 0..10 {
            h.record(31_234);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.quantile_us(0.5), 20_010);
        assert_eq!(h.quantile_us(0.99), 20_010);
        assert_eq!(h.quantile_us(0.999), 31_234);
        assert_eq!(h.max_us(), 31_234);
        assert_eq!(h.count_at_least(30_000), 10);
    }

    #[test]
    fn huge_values_are_capped_in_buckets_not_in_max() {
        let mut h = Histogram::default();
        h.record(u32::MAX);
        assert_eq!(h.max_us(), u32::MAX);
        assert_eq!(h.quantile_us(1.0), TOP_US + BUCKET_US);
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(100);
        b.record(300);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.max_us(), 300);
        assert!((a.mean_us() - 200.0).abs() < 1e-9);
    }

    #[test]
    fn empty_histogram_is_zero() {
        let h = Histogram::default();
        assert_eq!(h.quantile_us(0.99), 0);
        assert_eq!(Spread::from(&h).count, 0);
    }

    #[test]
    fn judge_names_every_failed_check() {
        let mut s = Summary {
            calls_failed: 1,
            keys_lost: 2,
            max_p99_gap_ms: 25.0,
            gap: Spread {
                count: 10,
                p99_ms: 30.0,
                ..Spread::default()
            },
            ..Summary::default()
        };
        s.judge();
        assert!(!s.passed);
        assert_eq!(s.verdicts.len(), 3);
        s.calls_failed = 0;
        s.keys_lost = 0;
        s.gap.p99_ms = 20.5;
        s.judge();
        assert!(s.passed, "{:?}", s.verdicts);
        assert!(s.json().contains("\"passed\":true"));
    }

    #[test]
    fn refusals_fail_a_plain_run_and_an_unserved_recovery_fails_an_overload_run() {
        let mut s = Summary {
            calls_refused: 3,
            max_p99_gap_ms: 25.0,
            gap: Spread {
                count: 10,
                p99_ms: 20.0,
                ..Spread::default()
            },
            ..Summary::default()
        };
        s.judge();
        assert_eq!(s.verdicts, ["3 call(s) refused (503)"]);
        s.recovery = Some(Recovery {
            calls: 5,
            set_up: 4,
            refused: 1,
            waited_s: 2.0,
        });
        s.judge();
        assert_eq!(
            s.verdicts,
            ["1 of 5 call(s) after the load dropped were not served (1 refused)"]
        );
        s.recovery = Some(Recovery {
            calls: 5,
            set_up: 5,
            refused: 0,
            waited_s: 2.0,
        });
        s.judge();
        assert!(s.passed, "{:?}", s.verdicts);
    }
}
