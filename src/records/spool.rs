//! The spool: record messages that could not reach the store, kept on disk until they can.
//!
//! Owns one file of JSON lines (one [`RecordMsg`] a line, fsync'd before `append` returns)
//! and its hand-over for replay: the file is renamed to `<name>.replay` and read from
//! there, so messages spooled meanwhile go to a fresh file and a replay cut short (a crash,
//! the store failing again) is simply done again: every write is idempotent. It must not
//! talk to a store (the writer replays).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::RecordMsg;

#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    /// Held while appending and while handing the file over, so no line is cut.
    lock: Mutex<()>,
}

/// What reading a spool file found.
#[derive(Debug, Default)]
pub struct SpoolRead {
    pub messages: Vec<RecordMsg>,
    /// Lines that are not a message (the end of a line cut by a crash while appending).
    pub damaged: usize,
}

impl Spool {
    pub fn new(path: PathBuf) -> Spool {
        Spool {
            path,
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a spool is read from while it is replayed.
    pub fn replay_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".replay");
        PathBuf::from(name)
    }

    /// Appends the messages and waits until they are on disk.
    pub fn append(&self, msgs: &[RecordMsg]) -> io::Result<()> {
        let mut text = Vec::new();
        for m in msgs {
            serde_json::to_writer(&mut text, m).map_err(io::Error::other)?;
            text.push(b'\n');
        }
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&text)?;
        f.sync_data()
    }

    /// Whether anything waits to be replayed.
    pub fn has_messages(&self) -> bool {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        size(&self.replay_path()) > 0 || size(&self.path) > 0
    }

    /// The file to replay next: one left from a replay cut short, else the spool itself
    /// (renamed, so new messages go to a fresh file). None when nothing waits.
    pub fn take(&self) -> io::Result<Option<PathBuf>> {
        let replay = self.replay_path();
        if replay.exists() {
            return Ok(Some(replay));
        }
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match std::fs::metadata(&self.path) {
            Ok(m) if m.len() > 0 => {
                std::fs::rename(&self.path, &replay)?;
                Ok(Some(replay))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every message of a file `take` handed out, in order.
    pub fn read(path: &Path) -> io::Result<SpoolRead> {
        let mut out = SpoolRead::default();
        for line in BufReader::new(File::open(path)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(m) => out.messages.push(m),
                Err(_) => out.damaged += 1,
            }
        }
        Ok(out)
    }

    /// Puts `msgs` in place of a file `take` handed out (what is left of it after part was
    /// delivered), atomically: a crash leaves the old file or the new one, never half of
    /// one. An empty list removes the file.
    pub fn replace(path: &Path, msgs: &[RecordMsg]) -> io::Result<()> {
        if msgs.is_empty() {
            return Spool::done(path);
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = io::BufWriter::new(File::create(&tmp)?);
        for m in msgs {
            serde_json::to_writer(&mut f, m).map_err(io::Error::other)?;
            f.write_all(b"\n")?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_data()?;
        std::fs::rename(&tmp, path)
    }

    /// Forgets a file whose messages all reached the store.
    pub fn done(path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
