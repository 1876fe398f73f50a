//! The append-only change journal (`nmm_agent_ops`): one record per acknowledged change
//! (an admission, a removal, or a whole synchronization as one batch), so that committing
//! a change costs one small write and one `fdatasync`, whatever the number of pods.
//!
//! The kubelet-format checkpoints and the pod record ([`crate::store`]) are the journal's
//! base: they hold every record up to the sequence number stored in the pod record
//! (`seq`). A compaction ([`crate::Agent::compact`]) writes a new base (three files,
//! crash-safe, see [`crate::store`]) and then empties the journal; a crash in between
//! leaves records the base already holds, which the next start skips by their sequence
//! number.
//!
//! A record is one line: eight hex digits of the CRC-32 of the JSON text, a space, the
//! JSON text (`{"seq":N,"ops":[...]}`), a newline. A SIGKILL or a power cut during an
//! append can only leave the last line incomplete: the next start drops such a tail
//! (that change was never acknowledged) and truncates the file back to the last whole
//! record. A damaged line followed by whole records is not a crash's doing and stops the
//! start with an error naming the line.

use crate::store::StoreError;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const OPS_FILE: &str = "nmm_agent_ops";

/// The largest journal the agent reads at start (the agent compacts long before).
pub const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// One change to the books.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// The pod (trimmed, see [`crate::agent::trim_pod`]) was admitted; `allocation` is what
    /// it got ([`crate::agent::allocation_text`]), checked when the record is replayed.
    Admit { pod: Box<Pod>, allocation: String },
    /// The pod is gone.
    Remove { uid: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    seq: u64,
    ops: Vec<Op>,
}

/// What [`Journal::open`] read.
#[derive(Debug, Default)]
pub struct Replay {
    /// Records newer than the base, in order: (sequence number, operations).
    pub records: Vec<(u64, Vec<Op>)>,
    /// Records the base already held (a crash between a compaction's two steps).
    pub skipped: usize,
    /// Bytes of an incomplete last record, dropped.
    pub torn_tail: Option<usize>,
}

/// The open journal, positioned for appending.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: File,
    len: u64,
    records: usize,
    last_seq: u64,
}

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE, as zlib's `crc32`).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, what, source }
}

fn bad(path: &Path, message: String) -> StoreError {
    StoreError::BadJournal {
        path: path.to_path_buf(),
        message,
    }
}

/// Parses one line (without its newline); `None` when it is not a whole record.
fn parse_line(line: &[u8]) -> Option<Record> {
    if line.len() < 10 || line[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let json = &line[9..];
    if crc32(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

fn encode(rec: &Record) -> Vec<u8> {
    let json = serde_json::to_vec(rec).expect("journal records always serialise");
    let mut line = format!("{:08x} ", crc32(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "cannot fsync the directory"))
}

impl Journal {
    /// Opens (creating) `dir/nmm_agent_ops` and reads the records newer than `base_seq`.
    pub fn open(dir: &Path, base_seq: u64) -> Result<(Journal, Replay), StoreError> {
        let path = dir.join(OPS_FILE);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path, "cannot open the change journal"))?;
        if !existed {
            sync_dir(dir)?;
        }
        let size = file
            .metadata()
            .map_err(io_err(&path, "cannot stat the change journal"))?
            .len();
        if size > MAX_JOURNAL_BYTES {
            return Err(bad(
                &path,
                format!(
                    "{size} bytes, over the {MAX_JOURNAL_BYTES} the agent reads; something else wrote it: move it away to start from the checkpoints alone"
                ),
            ));
        }
        let data = {
            use std::io::Read;
            let mut v = Vec::with_capacity(size as usize);
            (&file)
                .read_to_end(&mut v)
                .map_err(io_err(&path, "cannot read the change journal"))?;
            v
        };
        let mut replay = Replay::default();
        let mut pos = 0usize;
        let mut last_seq = base_seq;
        let mut records = 0usize;
        let mut line_no = 0usize;
        while pos < data.len() {
            line_no += 1;
            let end = data[pos..].iter().position(|&b| b == b'\n');
            let rec = end.and_then(|e| parse_line(&data[pos..pos + e]));
            let Some(rec) = rec else {
                // Anything after this line? Then it is damage, not a torn append.
                let rest_start = end.map_or(data.len(), |e| pos + e + 1);
                let later_whole = data[rest_start..]
                    .split(|&b| b == b'\n')
                    .any(|l| parse_line(l).is_some());
                if later_whole {
                    return Err(bad(
                        &path,
                        format!(
                            "line {line_no} is damaged and whole records follow it (a crash only ever tears the last line); move the file away to start from the checkpoints alone, losing the changes it holds"
                        ),
                    ));
                }
                replay.torn_tail = Some(data.len() - pos);
                file.set_len(pos as u64)
                    .and_then(|_| file.sync_all())
                    .map_err(io_err(
                        &path,
                        "cannot truncate the torn end of the change journal",
                    ))?;
                break;
            };
            pos += end.expect("parsed lines end with a newline") + 1;
            records += 1;
            if rec.seq <= base_seq {
                replay.skipped += 1;
                continue;
            }
            if rec.seq <= last_seq {
                return Err(bad(
                    &path,
                    format!(
                        "line {line_no}: sequence number {} after {last_seq}; records only ever grow",
                        rec.seq
                    ),
                ));
            }
            last_seq = rec.seq;
            replay.records.push((rec.seq, rec.ops));
        }
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                file,
                len: pos as u64,
                records,
                last_seq,
            },
            replay,
        ))
    }

    /// The sequence number of the last record (or of the base).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Records in the file (including those the base already holds).
    pub fn records(&self) -> usize {
        self.records
    }

    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// Appends one record and makes it durable (`fdatasync`); returns its sequence
    /// number. On failure nothing of the record stays in the file.
    pub fn append(&mut self, ops: Vec<Op>) -> Result<u64, StoreError> {
        let seq = self.last_seq + 1;
        let rec = Record { seq, ops };
        let line = encode(&rec);
        let path = self.dir.join(OPS_FILE);
        let r = self
            .file
            .write_all(&line)
            .and_then(|_| self.file.sync_data());
        if let Err(e) = r {
            // Leave no partial record behind; if even that fails, the next start drops
            // the torn tail.
            let _ = self.file.set_len(self.len);
            return Err(io_err(&path, "cannot append to the change journal")(e));
        }
        self.len += line.len() as u64;
        self.records += 1;
        self.last_seq = seq;
        Ok(seq)
    }

    /// Empties the journal once a compaction made its records part of the base: an empty
    /// file replaces it (temp, fsync, rename, directory fsync).
    pub fn reset(&mut self) -> Result<(), StoreError> {
        let path = self.dir.join(OPS_FILE);
        let tmp = self.dir.join(format!(".{OPS_FILE}.nmm-tmp"));
        let file = (|| -> io::Result<File> {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            // Appends always go to the end, even after a failed append's truncation.
            OpenOptions::new().read(true).append(true).open(&path)
        })()
        .map_err(io_err(&path, "cannot empty the change journal"))?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.len = 0;
        self.records = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rm(uid: &str) -> Op {
        Op::Remove { uid: uid.into() }
    }

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn append_reopen_and_skip_what_the_base_holds() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, r) = Journal::open(d.path(), 0).unwrap();
        assert!(r.records.is_empty());
        assert_eq!(j.append(vec![rm("a")]).unwrap(), 1);
        assert_eq!(j.append(vec![rm("b"), rm("c")]).unwrap(), 2);
        drop(j);
        let (j, r) = Journal::open(d.path(), 0).unwrap();
        assert_eq!(
            r.records,
            vec![(1, vec![rm("a")]), (2, vec![rm("b"), rm("c")])]
        );
        assert_eq!(j.last_seq(), 2);
        drop(j);
        let (j, r) = Journal::open(d.path(), 1).unwrap();
        assert_eq!(r.records, vec![(2, vec![rm("b"), rm("c")])]);
        assert_eq!(r.skipped, 1);
        assert_eq!(j.records(), 2);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_truncated() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(d.path(), 0).unwrap();
        j.append(vec![rm("a")]).unwrap();
        let whole = j.bytes();
        drop(j);
        let p = d.path().join(OPS_FILE);
        let line = encode(&Record {
            seq: 2,
            ops: vec![rm("b")],
        });
        for cut in [1, 9, line.len() - 1] {
            let mut f = OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(&line[..cut]).unwrap();
            drop(f);
            let (mut j, r) = Journal::open(d.path(), 0).unwrap();
            assert_eq!(r.records.len(), 1, "cut {cut}");
            assert_eq!(r.torn_tail, Some(cut));
            assert_eq!(fs::metadata(&p).unwrap().len(), whole);
            // Appending after the truncation continues the sequence.
            assert_eq!(j.append(vec![rm("c")]).unwrap(), 2);
            j.file.set_len(whole).unwrap();
        }
    }

    #[test]
    fn damage_before_whole_records_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(d.path(), 0).unwrap();
        j.append(vec![rm("a")]).unwrap();
        j.append(vec![rm("b")]).unwrap();
        drop(j);
        let p = d.path().join(OPS_FILE);
        let mut bytes = fs::read(&p).unwrap();
        bytes[12] ^= 0x20;
        fs::write(&p, bytes).unwrap();
        let e = Journal::open(d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("line 1 is damaged"), "{e}");
        assert!(e.contains(OPS_FILE), "{e}");
    }

    #[test]
    fn reset_empties_and_keeps_the_sequence() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(d.path(), 5).unwrap();
        assert_eq!(j.append(vec![rm("a")]).unwrap(), 6);
        j.reset().unwrap();
        assert_eq!(j.bytes(), 0);
        assert_eq!(j.append(vec![rm("b")]).unwrap(), 7);
        drop(j);
        let (_, r) = Journal::open(d.path(), 6).unwrap();
        assert_eq!(r.records, vec![(7, vec![rm("b")])]);
    }
}
