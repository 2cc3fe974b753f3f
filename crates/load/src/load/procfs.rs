//! What the load tool reads from Linux's /proc: a process's CPU time (whole and per thread,
//! grouped by thread name) and its resident memory; and the open-files limit it raises for
//! itself. Parsing is pure and tested; the readers only open files. It must not interpret
//! the figures (that is the report's job).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// CPU time of a process at one moment, two ways: utime + stime of the whole process
/// (`/proc/<pid>/stat`, in `CLK_TCK` units, threads that ended included) and the scheduler's
/// run time of each live thread (`/proc/<pid>/task/<tid>/schedstat`, in ns), which gives
/// the per-thread split at full resolution. Over a window in which no thread ends, the two
/// totals agree: the kernel scales utime + stime to the exact run time.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    pub at: Instant,
    /// utime + stime of the whole process (threads that ended included), in ticks.
    pub stat_ticks: u64,
    /// Each live thread by id: its name and scheduler run time in ns.
    pub threads: BTreeMap<u32, (String, u64)>,
}

impl CpuSnapshot {
    /// Reads `/proc/<pid>` (or `/proc/self` when `pid` is None); None once the process is gone.
    pub fn read(pid: Option<u32>) -> Option<CpuSnapshot> {
        let dir = proc_dir(pid);
        let at = Instant::now();
        let (_, stat_ticks) = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
        let mut threads = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir(dir.join("task")) {
            for t in tasks.flatten() {
                let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                // A thread may end between the listing and the reads.
                let Ok(name) = std::fs::read_to_string(t.path().join("comm")) else {
                    continue;
                };
                let Some(ns) = std::fs::read_to_string(t.path().join("schedstat"))
                    .ok()
                    .and_then(|s| parse_schedstat(&s))
                else {
                    continue;
                };
                threads.insert(tid, (name.trim_end().to_string(), ns));
            }
        }
        Some(CpuSnapshot {
            at,
            stat_ticks,
            threads,
        })
    }

    /// CPU used between `earlier` and `self`, as a percentage of one core, for the whole
    /// process and per thread name.
    pub fn since(&self, earlier: &CpuSnapshot) -> CpuUse {
        let secs = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        let of_window = |seconds_used: f64| {
            if secs > 0.0 {
                seconds_used / secs * 100.0
            } else {
                0.0
            }
        };
        let ns_pct = |d: u64| of_window(d as f64 / 1e9);
        // Per thread id, so that a thread ending in the window does not take the time of
        // the others with it; a thread born in the window counts from zero.
        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0u64;
        for (tid, (name, ns)) in &self.threads {
            let before = earlier.threads.get(tid).map_or(0, |(_, b)| *b);
            let d = ns.saturating_sub(before);
            total = total.saturating_add(d);
            let e = by_name.entry(name.clone()).or_insert(0);
            *e = e.saturating_add(d);
        }
        let threads = by_name
            .into_iter()
            .map(|(name, d)| (name, ns_pct(d)))
            .filter(|(_, p)| *p >= 0.05)
            .collect();
        CpuUse {
            seconds: secs,
            total_pct: ns_pct(total),
            stat_pct: of_window(
                self.stat_ticks.saturating_sub(earlier.stat_ticks) as f64
                    / clock_ticks_per_second() as f64,
            ),
            threads,
        }
    }
}

/// CPU used over a window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CpuUse {
    /// Length of the window.
    pub seconds: f64,
    /// Percent of one core, from the scheduler's run time of the live threads.
    pub total_pct: f64,
    /// Percent of one core, from utime + stime (tick-sampled).
    pub stat_pct: f64,
    /// Percent of one core per thread name (scheduler run time; idle threads left out).
    pub threads: BTreeMap<String, f64>,
}

/// The first field of `/proc/.../schedstat`: time spent on a CPU, in ns.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// The whole machine's idle time at one moment (first line of `/proc/stat`, idle + iowait,
/// in `CLK_TCK` units), so that the report can show how busy the machine was with all
/// work during a measurement. Busy time is derived from idle time and the wall clock: the
/// kernel measures idle time exactly, while its user and system counters are sampled at
/// timer ticks and miss threads that wake every 20 ms and sleep again between two ticks.
#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    pub at: Instant,
    pub idle_ticks: u64,
}

impl MachineCpu {
    pub fn read() -> Option<MachineCpu> {
        let at = Instant::now();
        let idle_ticks = parse_proc_stat_idle(&std::fs::read_to_string("/proc/stat").ok()?)?;
        Some(MachineCpu { at, idle_ticks })
    }

    /// Busy time between `earlier` and `self` as a percentage of one core (so a fully busy
    /// two-core machine shows 200).
    pub fn busy_pct_since(&self, earlier: &MachineCpu, cpus: usize) -> f64 {
        let secs = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        let idle = self.idle_ticks.saturating_sub(earlier.idle_ticks) as f64
            / clock_ticks_per_second() as f64;
        ((cpus as f64 * secs - idle) / secs * 100.0).clamp(0.0, cpus as f64 * 100.0)
    }
}

/// Idle + iowait from the aggregate `cpu` line of `/proc/stat`.
pub fn parse_proc_stat_idle(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let mut nums = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|n| n.parse::<u64>().ok());
    // user nice system idle iowait ...
    let idle = nums.nth(3)??;
    let iowait = nums.next().flatten().unwrap_or(0);
    Some(idle.saturating_add(iowait))
}

/// Resident memory of a process, in KiB: now (`VmRSS`) and its high-water mark (`VmHWM`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn read(pid: Option<u32>) -> Option<Memory> {
        parse_status(&std::fs::read_to_string(proc_dir(pid).join("status")).ok()?)
    }
}

fn proc_dir(pid: Option<u32>) -> std::path::PathBuf {
    match pid {
        Some(p) => Path::new("/proc").join(p.to_string()),
        None => Path::new("/proc/self").to_path_buf(),
    }
}

/// The thread or process name and utime + stime from a `/proc/.../stat` line. The name sits
/// in parentheses and may itself hold spaces and parentheses, so the fields are counted
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let mut fields = text.get(close + 1..)?.split_ascii_whitespace();
    // After the name: state (field 3) ... utime (field 14), stime (field 15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime.saturating_add(stime)))
}

/// `VmRSS` and `VmHWM` from a `/proc/.../status` text.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_ascii_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:").unwrap_or(0),
    })
}

/// The kernel's softirq threads (`ksoftirqd/N`). Loopback traffic is normally processed in
/// the sending thread, but under load the kernel hands it to these, and then that part of
/// the engine's and the callers' network cost shows up here instead.
pub fn softirq_threads() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("ksoftirqd/"))
        })
        .collect()
}

/// Scheduler run time of `pids` (single-threaded), in ns; vanished ones count as zero.
pub fn total_run_ns(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/schedstat")).ok())
        .filter_map(|t| parse_schedstat(&t))
        .sum()
}

/// The kernel's unit for /proc CPU times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    if n > 0 { n as u64 } else { 100 }
}

/// Raises this process's soft limit on open files towards `wanted` (never above the hard
/// limit) and returns the soft limit in force afterwards. A child spawned later inherits it.
pub fn raise_open_files(wanted: u64) -> std::io::Result<u64> {
    let mut lim = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur >= wanted {
        return Ok(lim.rlim_cur);
    }
    let new = nix::libc::rlimit {
        rlim_cur: wanted.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &new) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(new.rlim_cur)
}

/// The kernel's ephemeral port range (where sockets bound to port 0 land).
pub fn ephemeral_ports() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_ascii_whitespace().map(|n| n.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// The machine, for the report: CPU model and the number of CPUs online.
pub fn machine() -> (String, usize) {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (model, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_tricky_name() {
        let line = "4242 (tokio (w) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 2000000 500 18446744073709551615";
        assert_eq!(parse_stat(line), Some(("tokio (w) 1".into(), 1801)));
    }

    #[test]
    fn stat_truncated_is_none() {
        assert_eq!(parse_stat("12 (x) S 1 2 3"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn schedstat_run_time() {
        assert_eq!(
            parse_schedstat("7398582407 57686641 597\n"),
            Some(7_398_582_407)
        );
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn status_fields() {
        let text = "Name:\thotline\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t5\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 10240,
                hwm_kib: 20480
            })
        );
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[test]
    fn proc_stat_idle_includes_iowait() {
        let text = "cpu  100 5 50 1000 20 3 7 0 0 0\ncpu0 50 2 25 500 10 1 3 0 0 0\n";
        assert_eq!(parse_proc_stat_idle(text), Some(1020));
        assert!(parse_proc_stat_idle("intr 1 2 3\n").is_none());
    }

    #[test]
    fn a_thread_ending_in_the_window_does_not_hide_the_others() {
        let t0 = Instant::now();
        let snap = |at: Instant, threads: &[(u32, &str, u64)]| CpuSnapshot {
            at,
            stat_ticks: 0,
            threads: threads
                .iter()
                .map(|&(tid, name, ns)| (tid, (name.to_string(), ns)))
                .collect(),
        };
        let a = snap(
            t0,
            &[
                (1, "main", 0),
                (2, "media-0", 1_000_000_000),
                (3, "blocking", 5_000_000_000),
            ],
        );
        let b = snap(
            t0 + std::time::Duration::from_secs(2),
            &[
                (1, "main", 0),
                (2, "media-0", 2_000_000_000),
                (4, "new", 100_000_000),
            ],
        );
        let u = b.since(&a);
        assert!((u.total_pct - 55.0).abs() < 1e-6, "{}", u.total_pct);
        assert!((u.threads["media-0"] - 50.0).abs() < 1e-6);
        assert!((u.threads["new"] - 5.0).abs() < 1e-6);
        assert!(!u.threads.contains_key("main"));
    }

    #[test]
    fn own_process_is_readable() {
        let a = CpuSnapshot::read(None).expect("own stat");
        assert!(!a.threads.is_empty());
        let m = Memory::read(None).expect("own status");
        assert!(m.rss_kib > 0);
    }
}
