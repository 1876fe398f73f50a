//! One agent per state directory: an exclusive advisory lock (`flock(2)`, through
//! `std::fs::File::try_lock`) on `agent.lock` in the state directory, taken before
//! anything in the directory is read and held for the agent's lifetime.
//!
//! Two agents on one directory (a DaemonSet rollout overlapping the old pod, an admin
//! starting `nmm agent` by hand) would each append to the journal and compact their own
//! books over the other's. The second one stops at start instead, with an error naming
//! the directory and the holder's PID (written into the lock file by the holder).
//!
//! The lock belongs to the open file, so the kernel releases it when the process ends,
//! however it ends: a crashed or SIGKILLed agent never blocks its restart, and no stale
//! lock file needs cleaning up (the file stays; only the lock on it matters).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file in the state directory.
pub const LOCK_FILE: &str = "agent.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{dir}: another nmm agent ({holder}) holds this state directory (lock {lock}); two agents on one state directory would overwrite each other's books. Stop that agent first (in a DaemonSet rollout the new pod must wait for the old one to exit: keep maxSurge at 0), or give this one another --state-dir", dir = dir.display(), lock = lock.display(), holder = holder_text(*pid))]
    Held {
        dir: PathBuf,
        lock: PathBuf,
        /// The holder's PID as it wrote it into the lock file (`None`: not (yet) written).
        pid: Option<u32>,
    },
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("pid {p}"),
        None => "pid unknown".to_string(),
    }
}

/// The held lock on a state directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateDirLock {
    /// Holding the open file holds the lock.
    _file: File,
    dir: PathBuf,
}

impl StateDirLock {
    /// Takes the lock on `dir` without waiting: [`LockError::Held`] if another process
    /// (or another open of the file in this process) holds it. Then writes this
    /// process's PID into the lock file, for the error the next one gets.
    pub fn acquire(dir: &Path) -> Result<StateDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |what: &'static str| {
            let path = path.clone();
            move |source| LockError::Io { path, what, source }
        };
        // No truncation at open: the holder's PID must survive a failed attempt.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io_err("cannot open the state directory's lock file"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    lock: path,
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(io_err("cannot lock the state directory's lock file")(e))
            }
        }
        file.set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .map_err(io_err("cannot write the PID into the lock file"))?;
        Ok(StateDirLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// The state directory this lock is for.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holder_pid_then_free_after_drop() {
        let d = tempfile::tempdir().unwrap();
        let first = StateDirLock::acquire(d.path()).unwrap();
        let text = std::fs::read_to_string(d.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        // flock locks belong to the open file: a second open in this process conflicts.
        let err = StateDirLock::acquire(d.path()).unwrap_err();
        match &err {
            LockError::Held { dir, pid, .. } => {
                assert_eq!(dir, d.path());
                assert_eq!(*pid, Some(std::process::id()));
            }
            e => panic!("{e}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&d.path().display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("--state-dir"), "{msg}");
        // The failed attempt left the holder's PID in place.
        let after = std::fs::read_to_string(d.path().join(LOCK_FILE)).unwrap();
        assert_eq!(after, text);
        drop(first);
        let again = StateDirLock::acquire(d.path()).unwrap();
        assert_eq!(again.dir(), d.path());
    }

    #[test]
    fn unknown_pid_when_the_file_holds_none() {
        let d = tempfile::tempdir().unwrap();
        let first = StateDirLock::acquire(d.path()).unwrap();
        std::fs::write(d.path().join(LOCK_FILE), "").unwrap();
        let err = StateDirLock::acquire(d.path()).unwrap_err();
        assert!(err.to_string().contains("pid unknown"), "{err}");
        drop(first);
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join("nope");
        let err = StateDirLock::acquire(&gone).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
        assert!(err.to_string().contains("nope/agent.lock"), "{err}");
    }
}
