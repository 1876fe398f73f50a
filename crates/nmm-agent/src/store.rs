//! The state directory: the kubelet-format checkpoints (`memory_manager_state`,
//! `cpu_manager_state`), the agent's record of the live pods (`nmm_agent_pods`), and a
//! redo journal that makes the three change together.
//!
//! Every file is replaced the way the kubelet's checkpoint store does it: a temporary
//! file in the same directory, fsync, rename over the target. That alone keeps each file
//! whole, but a crash between two renames would leave a memory checkpoint of one moment
//! beside a CPU checkpoint of another. So a commit first writes the new contents of all
//! three files into `.nmm_agent_journal` (same temp-fsync-rename dance, then a directory
//! fsync), then replaces the three files, fsyncs the directory and deletes the journal.
//! [`Store::open`] finds a journal left by a crash and finishes its commit. Whatever the
//! moment of a SIGKILL (or a power cut, thanks to the fsyncs), the next start reads three
//! files that belong to the same moment: before or after the interrupted change.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const MEMORY_FILE: &str = nmm_core::memorymanager::STATE_FILE;
pub const CPU_FILE: &str = nmm_core::cpumanager::STATE_FILE;
pub const PODS_FILE: &str = "nmm_agent_pods";
pub const JOURNAL_FILE: &str = ".nmm_agent_journal";

/// The suffix of temporary files; a crash may leave one behind, the next start removes it.
const TMP_SUFFIX: &str = ".nmm-tmp";

/// The three files' contents at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "memory_manager_state")]
    pub memory: String,
    #[serde(rename = "cpu_manager_state")]
    pub cpu: String,
    #[serde(rename = "nmm_agent_pods")]
    pub pods: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    version: u32,
    files: Snapshot,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("{path}: the commit journal cannot be read ({message}); it is written whole or not at all, so something else changed it: move it away to keep the checkpoints as they are")]
    BadJournal { path: PathBuf, message: String },
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, what, source }
}

/// A failed [`Store::commit`]. `committed`: the journal holding the new state was already
/// durable, so the change stands (the next commit or start finishes writing the files);
/// otherwise the files still hold the previous state.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct CommitError {
    pub committed: bool,
    #[source]
    pub source: StoreError,
}

/// What [`Store::open`] found.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub memory: Option<Vec<u8>>,
    pub cpu: Option<Vec<u8>>,
    pub pods: Option<Vec<u8>>,
    /// A crash had interrupted a commit; it was completed.
    pub journal_recovered: bool,
    /// Leftover temporary files removed.
    pub removed_temp_files: Vec<String>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// What the files hold now (as far as this process wrote or read them).
    current: BTreeMap<&'static str, Option<String>>,
}

/// Writes `data` to `dir/name` through `dir/.name.nmm-tmp`: create, write, fsync, rename.
/// The directory is not synced here (the caller syncs once after several renames).
fn replace_file(dir: &Path, name: &str, data: &[u8], mode: u32) -> Result<(), StoreError> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{}{TMP_SUFFIX}", name.trim_start_matches('.')));
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(&target, "cannot write the file"))
}

/// Creates the state directory (mode 0700, with its parents) if it does not exist.
pub fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir, "cannot create the state directory"))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "cannot fsync the directory"))
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, "cannot read the file")(e)),
    }
}

impl Store {
    /// Opens (creating it if needed, mode 0700) the state directory, completes a commit
    /// that a crash interrupted, removes leftover temporary files, and reads the files.
    pub fn open(dir: &Path) -> Result<(Store, Loaded), StoreError> {
        ensure_dir(dir)?;
        let mut loaded = Loaded::default();
        // Temporary files never hold anything committed (an interrupted journal write
        // included): remove them first.
        let entries = fs::read_dir(dir).map_err(io_err(dir, "cannot list the directory"))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
                let _ = fs::remove_file(e.path());
                loaded.removed_temp_files.push(name);
            }
        }
        let journal_path = dir.join(JOURNAL_FILE);
        if let Some(bytes) = read_opt(&journal_path)? {
            let j: Journal =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::BadJournal {
                    path: journal_path.clone(),
                    message: e.to_string(),
                })?;
            if j.version != 1 {
                return Err(StoreError::BadJournal {
                    path: journal_path,
                    message: format!("unknown journal version {}", j.version),
                });
            }
            Self::apply(dir, &j.files)?;
            fs::remove_file(&journal_path)
                .map_err(io_err(&journal_path, "cannot remove the journal"))?;
            sync_dir(dir)?;
            loaded.journal_recovered = true;
        }
        loaded.memory = read_opt(&dir.join(MEMORY_FILE))?;
        loaded.cpu = read_opt(&dir.join(CPU_FILE))?;
        loaded.pods = read_opt(&dir.join(PODS_FILE))?;
        let text =
            |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        let current = BTreeMap::from([
            (MEMORY_FILE, text(&loaded.memory)),
            (CPU_FILE, text(&loaded.cpu)),
            (PODS_FILE, text(&loaded.pods)),
        ]);
        Ok((
            Store {
                dir: dir.to_path_buf(),
                current,
            },
            loaded,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn apply(dir: &Path, s: &Snapshot) -> Result<(), StoreError> {
        // Checkpoints as the kubelet writes them (0644); the pod record is the agent's own
        // (0600).
        replace_file(dir, MEMORY_FILE, s.memory.as_bytes(), 0o644)?;
        replace_file(dir, CPU_FILE, s.cpu.as_bytes(), 0o644)?;
        replace_file(dir, PODS_FILE, s.pods.as_bytes(), 0o600)?;
        sync_dir(dir)
    }

    /// Makes `s` the state on disk, all three files together. Returns false (and writes
    /// nothing) when the files already hold exactly this.
    pub fn commit(&mut self, s: &Snapshot) -> Result<bool, CommitError> {
        let same =
            |name: &str, v: &str| self.current.get(name).and_then(|c| c.as_deref()) == Some(v);
        if same(MEMORY_FILE, &s.memory) && same(CPU_FILE, &s.cpu) && same(PODS_FILE, &s.pods) {
            return Ok(false);
        }
        let journal = serde_json::to_vec(&Journal {
            version: 1,
            files: s.clone(),
        })
        .expect("a journal of three strings always serialises");
        let not_committed = |source| CommitError {
            committed: false,
            source,
        };
        replace_file(&self.dir, JOURNAL_FILE, &journal, 0o600).map_err(not_committed)?;
        sync_dir(&self.dir).map_err(not_committed)?;
        // From here on the change is committed: a crash is finished by the next open.
        for name in [MEMORY_FILE, CPU_FILE, PODS_FILE] {
            self.current.insert(name, None);
        }
        let committed = |source| CommitError {
            committed: true,
            source,
        };
        Self::apply(&self.dir, s).map_err(committed)?;
        let jp = self.dir.join(JOURNAL_FILE);
        fs::remove_file(&jp)
            .map_err(io_err(&jp, "cannot remove the journal"))
            .map_err(committed)?;
        // No fsync after the removal: should it be lost, the next start replays the same
        // contents again.
        self.current.insert(MEMORY_FILE, Some(s.memory.clone()));
        self.current.insert(CPU_FILE, Some(s.cpu.clone()));
        self.current.insert(PODS_FILE, Some(s.pods.clone()));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: u32) -> Snapshot {
        Snapshot {
            memory: format!("m{n}"),
            cpu: format!("c{n}"),
            pods: format!("p{n}"),
        }
    }

    #[test]
    fn commit_writes_all_three_and_skips_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, l) = Store::open(d.path()).unwrap();
        assert!(l.memory.is_none() && !l.journal_recovered);
        assert!(s.commit(&snap(1)).unwrap());
        assert!(!s.commit(&snap(1)).unwrap());
        assert_eq!(
            fs::read_to_string(d.path().join(MEMORY_FILE)).unwrap(),
            "m1"
        );
        assert_eq!(fs::read_to_string(d.path().join(CPU_FILE)).unwrap(), "c1");
        assert_eq!(fs::read_to_string(d.path().join(PODS_FILE)).unwrap(), "p1");
        assert!(!d.path().join(JOURNAL_FILE).exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = |n: &str| fs::metadata(d.path().join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(PODS_FILE), 0o600);
        assert_eq!(mode(MEMORY_FILE), 0o644);
    }

    #[test]
    fn open_finishes_an_interrupted_commit() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(d.path()).unwrap();
        s.commit(&snap(1)).unwrap();
        // A crash after the journal and the memory file, before the CPU file.
        let j = serde_json::to_vec(&Journal {
            version: 1,
            files: snap(2),
        })
        .unwrap();
        fs::write(d.path().join(JOURNAL_FILE), j).unwrap();
        fs::write(d.path().join(MEMORY_FILE), "m2").unwrap();
        fs::write(d.path().join(".cpu_manager_state.nmm-tmp"), "c2-half").unwrap();
        let (_, l) = Store::open(d.path()).unwrap();
        assert!(l.journal_recovered);
        assert_eq!(l.removed_temp_files, vec![".cpu_manager_state.nmm-tmp"]);
        assert_eq!(l.memory.as_deref(), Some(&b"m2"[..]));
        assert_eq!(l.cpu.as_deref(), Some(&b"c2"[..]));
        assert_eq!(l.pods.as_deref(), Some(&b"p2"[..]));
        assert!(!d.path().join(JOURNAL_FILE).exists());
    }

    #[test]
    fn a_damaged_journal_stops_the_start() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(JOURNAL_FILE), "{not json").unwrap();
        let e = Store::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("commit journal cannot be read"), "{e}");
    }
}
