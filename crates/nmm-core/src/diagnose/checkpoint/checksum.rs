//! The checksum check, shared by show (for corrupt files) and verify.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Fine in itself but not what kubelet v1.32 accepts (newer format, checksum 0, ...).
    Mismatch,
    Corrupt,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Mismatch => "mismatch",
            Verdict::Corrupt => "corrupt",
        }
    }
    pub fn worst(self, other: Verdict) -> Verdict {
        let rank = |v: Verdict| match v {
            Verdict::Ok => 0,
            Verdict::Mismatch => 1,
            Verdict::Corrupt => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

pub struct ChecksumCheck {
    pub verdict: Verdict,
    /// One line per finding.
    pub lines: Vec<String>,
    pub advice: Vec<String>,
    pub warnings: Vec<String>,
    /// Decoded content (memory: as the newest kubelets read it).
    pub memory: Option<(MemoryCheckpoint, MemoryCheckpointFormat, PodEntries)>,
    pub cpu: Option<checkpoint::cpu::CpuCheckpoint>,
}

pub fn corrupt_explanation(l: &Loaded, e: &CheckpointError) -> String {
    let name = l.name();
    match e {
        CheckpointError::Corrupted => {
            let stored = l.stored_u64("checksum");
            let computed = l.json.as_ref().and_then(|v| match l.kind {
                Kind::Memory => memory_content_checksum(v),
                Kind::Cpu => cpu_content_checksum(v),
            });
            let mut s = format!("{name}: field checksum: ");
            match stored {
                Some(st) => {
                    let _ = write!(s, "the stored checksum {st} does not match the content");
                }
                None => s.push_str("no usable stored checksum; the content cannot be verified"),
            }
            if let (Some(c), Some(st)) = (computed, stored) {
                if c != st {
                    let _ = write!(s, " (the content hashes to {c})");
                }
            }
            s.push_str(
                ": the file was changed after the kubelet wrote it (edited by hand, copied partially, or damaged on disk). \
                 The kubelet reports \"checkpoint is corrupted\" and refuses to start.",
            );
            s
        }
        CheckpointError::Json(m) => format!(
            "{name}: not a {} the kubelet can read: {m}. The kubelet refuses to start with it.",
            l.kind.file_name()
        ),
        CheckpointError::Unsupported(m) => format!(
            "{name}: the checksum is fine but the content is unusable: {m}."
        ),
        CheckpointError::V3(inner) => format!(
            "{name}: fields data/dataChecksum: a V3 checkpoint (kubelet v1.37+) whose envelope does not load: {inner}."
        ),
        CheckpointError::CpuV1Migration(id) => format!(
            "{name}: a legacy v1 cpu_manager_state (entries keyed by container ID, e.g. {id:?}). Kubelet v1.32 migrates it \
             only if every container ID in it is still running, and refuses to start otherwise; nmm cannot see the \
             running containers, so it cannot read it."
        ),
    }
}

pub fn check_memory_checksum(l: &Loaded) -> ChecksumCheck {
    let name = l.name();
    let v132 = checkpoint::memory::decode_v132(&l.bytes);
    let any = checkpoint::memory::decode_any(&l.bytes);
    let mut c = ChecksumCheck {
        verdict: Verdict::Ok,
        lines: Vec::new(),
        advice: Vec::new(),
        warnings: Vec::new(),
        memory: None,
        cpu: None,
    };
    let stored = l.stored_u64("checksum");
    let stored_text = stored.map_or("-".to_string(), |s| s.to_string());
    match (&v132, &any) {
        (Ok(_), Ok((_, f, _))) => {
            c.lines.push(format!(
                "checksum {stored_text} matches the content: kubelet v1.32 reads the file"
            ));
            if *f == MemoryCheckpointFormat::V3 {
                c.lines.push(format!(
                    "dataChecksum {} matches data: kubelets v1.37+ read the file",
                    l.stored_u64("dataChecksum").unwrap_or(0)
                ));
            }
            if *f == MemoryCheckpointFormat::V1 && l.key("podEntries").is_some() {
                c.warnings.push(format!(
                    "{name}: field podEntries is not covered by the checksum: kubelet v1.32 ignores it and newer kubelets drop it"
                ));
            }
        }
        (Ok(_), Err(e)) => {
            c.verdict = Verdict::Corrupt;
            c.lines.push(format!(
                "checksum {stored_text} matches the legacy fields, so kubelet v1.32 reads the file, but newer kubelets refuse it: {e}"
            ));
            c.lines.push(corrupt_explanation(l, e));
            c.advice.push("Kubelet v1.32 starts with this file, but a kubelet v1.37+ would refuse it: before upgrading, start from a fresh state (below).".to_string());
        }
        (Err(CheckpointError::Corrupted), Ok((_, MemoryCheckpointFormat::V2, pods))) => {
            c.verdict = Verdict::Mismatch;
            c.lines.push(format!(
                "checksum {stored_text} is a V2 checksum (kubelet v1.36, podEntries for {} pods): it covers podEntries, so \
                 kubelet v1.32 reports \"checkpoint is corrupted\" and refuses to start",
                pods.len()
            ));
            c.advice.push("The file is intact for the kubelet v1.36+ that wrote it. Going back to kubelet v1.32 needs a fresh state (below).".to_string());
        }
        (Err(CheckpointError::Corrupted), Ok((_, MemoryCheckpointFormat::V1, _)))
            if stored == Some(0) =>
        {
            c.verdict = Verdict::Mismatch;
            c.lines.push(
                "checksum 0: newer kubelets (v1.36+) accept it unverified, kubelet v1.32 reports \"checkpoint is corrupted\""
                    .to_string(),
            );
            c.advice.push("No kubelet writes a checksum of 0; the file was made by a tool. Kubelet v1.32 needs a fresh state (below).".to_string());
        }
        (Err(e), Ok((_, f, _))) => {
            // v1.32 refuses, a newer reader accepts (V3 payload with broken legacy fields).
            c.verdict = Verdict::Corrupt;
            c.lines.push(format!(
                "the {} content loads for newer kubelets, but kubelet v1.32 refuses it: {e}",
                format_name(*f)
            ));
            c.lines.push(corrupt_explanation(l, e));
        }
        (Err(e1), Err(e2)) => {
            c.verdict = Verdict::Corrupt;
            // Prefer the explanation of the newest format the file claims to be.
            let e = if matches!(e2, CheckpointError::V3(_)) {
                e2
            } else {
                e1
            };
            c.lines.push(corrupt_explanation(l, e));
            c.advice.push("nmm does not repair checkpoints, and neither does the kubelet: start from a fresh state (below).".to_string());
        }
    }
    c.memory = any.ok();
    c
}

pub fn check_cpu_checksum(l: &Loaded) -> ChecksumCheck {
    let name = l.name();
    let mut c = ChecksumCheck {
        verdict: Verdict::Ok,
        lines: Vec::new(),
        advice: Vec::new(),
        warnings: Vec::new(),
        memory: None,
        cpu: None,
    };
    let stored = l.stored_u64("checksum");
    match checkpoint::cpu::decode(&l.bytes) {
        Ok(ck) => {
            if stored == Some(0) {
                c.lines.push(
                    "checksum 0: the kubelet accepts it without verifying the content".to_string(),
                );
                c.warnings.push(format!(
                    "{name}: field checksum is 0, so nothing protects the content; no kubelet writes 0"
                ));
            } else {
                c.lines.push(format!(
                    "checksum {} matches the content: kubelet v1.32 reads the file",
                    stored.unwrap_or(0)
                ));
            }
            // The kubelet parses the cpusets next; a bad one refuses the file.
            let mut bad = Vec::new();
            if let Err(e) = CpuSet::parse(&ck.default_cpu_set) {
                bad.push(format!(
                    "{name}: field defaultCpuSet: {:?} is not a CPU list ({e})",
                    ck.default_cpu_set
                ));
            }
            for (pod, ctrs) in &ck.entries {
                for (ctr, s) in ctrs {
                    if let Err(e) = CpuSet::parse(s) {
                        bad.push(format!(
                            "{name}: field entries.{pod}.{ctr}: {s:?} is not a CPU list ({e})"
                        ));
                    }
                }
            }
            if !bad.is_empty() {
                c.verdict = Verdict::Corrupt;
                c.lines.extend(bad);
                c.lines.push(
                    "the kubelet reports \"could not parse ... cpu set\" and refuses to start"
                        .to_string(),
                );
                c.advice.push("nmm does not repair checkpoints, and neither does the kubelet: start from a fresh state (below).".to_string());
            }
            c.cpu = Some(ck);
        }
        Err(CheckpointError::Corrupted) if l.key("podEntries").is_some() => {
            c.verdict = Verdict::Mismatch;
            c.lines.push(format!(
                "checksum {} covers podEntries (written by a kubelet v1.36+ with pod-level resource managers): \
                 kubelet v1.32 reports \"checkpoint is corrupted\" and refuses to start",
                stored.map_or("-".into(), |s| s.to_string())
            ));
            c.advice.push("The file is intact for the newer kubelet that wrote it. Going back to kubelet v1.32 needs a fresh state (below).".to_string());
        }
        Err(e @ CheckpointError::CpuV1Migration(_)) => {
            c.verdict = Verdict::Mismatch;
            c.lines.push(corrupt_explanation(l, &e));
        }
        Err(e) => {
            c.verdict = Verdict::Corrupt;
            c.lines.push(corrupt_explanation(l, &e));
            c.advice.push("nmm does not repair checkpoints, and neither does the kubelet: start from a fresh state (below).".to_string());
        }
    }
    c
}
