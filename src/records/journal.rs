//! The journal of calls begun: every `Begin` a call sends is appended here (one JSON line)
//! before it is queued for the store, so a call answered moments before the engine is
//! killed is still known at the next start, where it is recorded `interrupted` like every
//! call the store saw begin and never end.
//!
//! Owns one file and its bookkeeping. A line is written with one `write(2)` and no fsync:
//! what the kernel has taken survives a killed process (`kill -9`), which is what this is
//! for; a machine losing power may lose the last lines, as the batching writer would. The
//! file is emptied whenever every `Begin` journalled so far has been committed or spooled,
//! so it stays a few lines long. At start, the writer hands the file over (renamed, like
//! the spool) and writes its lines to the store before marking open calls interrupted. It
//! must not talk to a store.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::RecordMsg;
use super::spool::{Spool, SpoolRead};

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    state: Mutex<JournalState>,
}

/// The journal's bookkeeping, held locked while a `Begin` is queued.
#[derive(Debug, Default)]
pub struct JournalState {
    file: Option<File>,
    /// `Begin`s appended since the file was last emptied.
    appended: u64,
    /// Of those, committed to the store or spooled.
    settled: u64,
}

impl Journal {
    pub fn new(path: PathBuf) -> Journal {
        Journal {
            path,
            state: Mutex::new(JournalState::default()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a `Begin` (other messages are not journalled). The journal stays locked
    /// while the returned guard lives: queue the message before dropping it, so that the
    /// file is never emptied between the two. An error leaves the journal unlocked and
    /// the message not journalled.
    pub fn begin(&self, msg: &RecordMsg) -> io::Result<MutexGuard<'_, JournalState>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(msg, RecordMsg::Begin(_)) {
            let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
            line.push(b'\n');
            if st.file.is_none() {
                if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                st.file = Some(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.path)?,
                );
            }
            if let Some(f) = st.file.as_mut() {
                f.write_all(&line)?;
            }
            st.appended += 1;
        }
        Ok(st)
    }

    /// `n` journalled `Begin`s reached the store or the spool. When that is all of them,
    /// the file is emptied.
    pub fn settled(&self, n: u64) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.settled = (st.settled + n).min(st.appended);
        if st.settled == st.appended && st.appended > 0 {
            if let Some(f) = st.file.as_mut() {
                f.set_len(0)?;
            }
            st.appended = 0;
            st.settled = 0;
        }
        Ok(())
    }

    /// The journal an earlier run left, handed over for replay: renamed, so this run's
    /// lines go to a fresh file. None when it left nothing.
    pub fn take(&self) -> io::Result<Option<PathBuf>> {
        let mut left = self.path.as_os_str().to_owned();
        left.push(".replay");
        let left = PathBuf::from(left);
        if left.exists() {
            return Ok(Some(left));
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match std::fs::metadata(&self.path) {
            Ok(m) if m.len() > 0 => {
                std::fs::rename(&self.path, &left)?;
                st.file = None;
                st.appended = 0;
                st.settled = 0;
                Ok(Some(left))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The lines of a file `take` handed out (the same format as the spool's).
    pub fn read(path: &Path) -> io::Result<SpoolRead> {
        Spool::read(path)
    }

    /// Forgets a file `take` handed out, once its calls are in the store.
    pub fn done(path: &Path) -> io::Result<()> {
        Spool::done(path)
    }
}

/// How many `Begin`s a batch holds.
pub fn begins(batch: &[RecordMsg]) -> u64 {
    batch
        .iter()
        .filter(|m| matches!(m, RecordMsg::Begin(_)))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{CallKind, CallRecord};

    fn begin(id: &str) -> RecordMsg {
        RecordMsg::Begin(CallRecord {
            call_id: id.into(),
            kind: CallKind::Inbound,
            started_ms: 1,
            answered_ms: Some(2),
            ..CallRecord::default()
        })
    }

    fn size(p: &Path) -> u64 {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn begins_are_kept_until_all_are_settled_and_a_left_journal_is_handed_over() {
        let dir = std::env::temp_dir().join(format!("hotline-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let j = Journal::new(dir.join("records.journal"));
        assert_eq!(j.take().unwrap(), None);
        drop(j.begin(&begin("a")).unwrap());
        drop(j.begin(&RecordMsg::Events(vec![])).unwrap());
        drop(j.begin(&begin("b")).unwrap());
        assert!(size(j.path()) > 0);
        // One of two settled: both lines stay.
        j.settled(1).unwrap();
        let half = size(j.path());
        assert!(half > 0);
        j.settled(1).unwrap();
        assert_eq!(size(j.path()), 0, "all settled: emptied");

        // A run killed with a Begin journalled and not settled: the next run reads it.
        drop(j.begin(&begin("c")).unwrap());
        let next = Journal::new(dir.join("records.journal"));
        let left = next.take().unwrap().expect("a journal was left");
        let read = Journal::read(&left).unwrap();
        assert_eq!(read.messages, vec![begin("c")]);
        assert_eq!(read.damaged, 0);
        // New lines go to a fresh file meanwhile.
        drop(next.begin(&begin("d")).unwrap());
        assert_eq!(
            next.take().unwrap(),
            Some(left.clone()),
            "the replay is not done yet"
        );
        Journal::done(&left).unwrap();
        assert!(!left.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
