//! Real-time scheduling for the media threads under test, as `chrt -f -p` would set it:
//! a measurement aid that shows what the media clock does when other work on the machine
//! cannot delay its ticks. It changes only the threads it is pointed at and reads nothing
//! but their names.

use std::path::Path;

/// Puts every thread of `pid` (this process when None) whose name starts with `prefix` under
/// SCHED_FIFO at `priority` (1-99). Returns how many threads were changed.
pub fn realtime_threads(pid: Option<u32>, prefix: &str, priority: i32) -> std::io::Result<usize> {
    let dir = match pid {
        Some(p) => Path::new("/proc").join(p.to_string()).join("task"),
        None => Path::new("/proc/self/task").to_path_buf(),
    };
    let mut changed = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<nix::libc::pid_t>().ok())
        else {
            continue;
        };
        let param = nix::libc::sched_param {
            sched_priority: priority.clamp(1, 99),
        };
        // SAFETY: sched_setscheduler only reads the parameter we pass; a thread that ended
        // in the meantime yields ESRCH.
        if unsafe { nix::libc::sched_setscheduler(tid, nix::libc::SCHED_FIFO, &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        changed += 1;
    }
    Ok(changed)
}
