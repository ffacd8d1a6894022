//! The gateway's log files: `<data dir>/logs/hearth-YYYY-MM-DD.log`, one per day (UTC), the last
//! [`KEEP`] kept, written by whichever process serves the folder (`hearth serve` or the app) and
//! read by `hearth logs`. The same lines go to stderr; no secret is ever logged (tested by the
//! secrets sweep in hearth-cli).
//!
//! A small writer of our own rather than tracing-appender: a lock and a file handle are all a
//! household's log volume needs, and it keeps the `time` crate and a background thread out of
//! the engine.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, Read as _, Seek as _, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Days of logs kept.
pub const KEEP: usize = 14;
const PREFIX: &str = "hearth-";
const SUFFIX: &str = ".log";

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// A daily-rotating log file, usable as a `tracing_subscriber` writer (`&RollingFile` is
/// `io::Write`). Write errors (a full disk) are swallowed after the first report on stderr:
/// logging must never stop the gateway.
pub struct RollingFile {
    dir: PathBuf,
    // std Mutex: held for one write, never across an await.
    current: Mutex<Option<(String, File)>>,
}

impl RollingFile {
    /// Opens (creating, 0700) the log folder of a data directory.
    pub fn open(data_dir: &Path) -> io::Result<RollingFile> {
        let dir = dir(data_dir);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        Ok(RollingFile { dir, current: Mutex::new(None) })
    }

    fn file_for(&self, day: &str) -> io::Result<File> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.dir.join(format!("{PREFIX}{day}{SUFFIX}")))?;
        prune(&self.dir, KEEP);
        Ok(file)
    }
}

impl Write for &RollingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_none_or(|(d, _)| *d != day) {
            match self.file_for(&day) {
                Ok(f) => *current = Some((day, f)),
                // Keep logging to stderr; the file may come back (a disk freed, a folder fixed).
                Err(_) => return Ok(buf.len()),
            }
        }
        if let Some((_, f)) = current.as_mut() {
            let _ = f.write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The log files of a data directory, oldest first.
pub fn files(data_dir: &Path) -> Vec<PathBuf> {
    list(&dir(data_dir))
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    // The date in the name sorts as text.
    files.sort();
    files
}

/// Deletes all but the newest `keep` log files.
fn prune(dir: &Path, keep: usize) {
    let files = list(dir);
    let extra = files.len().saturating_sub(keep);
    for old in &files[..extra] {
        let _ = std::fs::remove_file(old);
    }
}

/// The last `n` lines of the newest log file.
pub fn tail(data_dir: &Path, n: usize) -> io::Result<Vec<String>> {
    let Some(newest) = files(data_dir).pop() else { return Ok(Vec::new()) };
    let mut lines: std::collections::VecDeque<String> = std::collections::VecDeque::with_capacity(n + 1);
    for line in io::BufReader::new(File::open(newest)?).lines() {
        lines.push_back(line.unwrap_or_default());
        if lines.len() > n {
            lines.pop_front();
        }
    }
    Ok(lines.into())
}

/// Writes what is appended to the newest log file, moving on to the next day's file when one
/// appears, until `stop` resolves. Polls twice a second: it only runs while an admin watches.
pub async fn follow(data_dir: &Path, out: &mut (impl Write + Send), stop: impl std::future::Future<Output = ()>) -> io::Result<()> {
    tokio::pin!(stop);
    let mut path = files(data_dir).pop();
    let mut pos = match &path {
        Some(p) => std::fs::metadata(p)?.len(),
        None => 0,
    };
    loop {
        if let Some(p) = &path {
            let mut f = File::open(p)?;
            let len = f.metadata()?.len();
            if len < pos {
                pos = 0;
            }
            if len > pos {
                f.seek(SeekFrom::Start(pos))?;
                let mut chunk = Vec::new();
                f.take(len - pos).read_to_end(&mut chunk)?;
                out.write_all(&chunk)?;
                out.flush()?;
                pos = len;
            }
        }
        let newest = files(data_dir).pop();
        if newest.is_some() && newest != path {
            // A new day's file: read it from its start.
            path = newest;
            pos = 0;
            continue;
        }
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn writes_to_todays_private_file_and_keeps_the_newest() {
        let data = tempfile::tempdir().unwrap();
        let log = RollingFile::open(data.path()).unwrap();
        for d in 1..=20 {
            std::fs::write(dir(data.path()).join(format!("hearth-2020-01-{d:02}.log")), "old\n").unwrap();
        }
        (&log).write_all(b"first line\nsecond line\n").unwrap();
        let files = files(data.path());
        assert_eq!(files.len(), KEEP, "{files:?}");
        let today = files.last().unwrap();
        assert!(today.to_str().unwrap().ends_with(&format!("{}.log", chrono::Utc::now().format("%Y-%m-%d"))));
        assert_eq!(std::fs::metadata(today).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir(data.path())).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(tail(data.path(), 1).unwrap(), vec!["second line"]);
        assert_eq!(tail(data.path(), 10).unwrap(), vec!["first line", "second line"]);
    }

    #[test]
    fn no_logs_yet_is_empty_not_an_error() {
        let data = tempfile::tempdir().unwrap();
        assert!(files(data.path()).is_empty());
        assert!(tail(data.path(), 5).unwrap().is_empty());
    }

    #[tokio::test]
    async fn follow_prints_what_is_appended_and_moves_to_the_next_day() {
        let data = tempfile::tempdir().unwrap();
        let logs = dir(data.path());
        std::fs::create_dir_all(&logs).unwrap();
        let day1 = logs.join("hearth-2026-11-20.log");
        std::fs::write(&day1, "before\n").unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let path = data.path().to_owned();
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            follow(&path, &mut out, async { let _ = stop_rx.await; }).await.unwrap();
            out
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::fs::OpenOptions::new().append(true).open(&day1).unwrap().write_all(b"appended\n").unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        std::fs::write(logs.join("hearth-2026-11-21.log"), "next day\n").unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stop_tx.send(()).unwrap();
        let out = String::from_utf8(reader.await.unwrap()).unwrap();
        assert_eq!(out, "appended\nnext day\n");
    }
}
