//! Checkpoint files as kubelet v1.32 writes and reads them: compact JSON plus an FNV-1a-32
//! checksum over the go-spew rendering of the Go struct.
//!
//! * [`fnv`]: the FNV-1a 32-bit hash.
//! * [`spew`]: the subset of go-spew's `%#v` rendering the checkpoint structs need.
//! * [`gojson`]: a JSON reader/writer with Go `encoding/json` semantics (syntax error texts,
//!   case-insensitive field matching, `null` handling, strict unsigned integers, HTML escaping).
//! * [`memory`]: `memory_manager_state` (v1.32 V1 format; V2/V3 of later kubelets are recognised).
//! * [`cpu`]: `cpu_manager_state` (v2 layout; the legacy v1 layout is recognised).

pub mod cpu;
pub mod device;
pub mod fnv;
pub mod gojson;
pub mod memory;
pub mod spew;

#[cfg(test)]
mod tests;

/// Why a checkpoint could not be read. `Display` gives the text the kubelet puts after
/// `could not restore state from checkpoint: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The stored checksum does not match the content (`errors.ErrCorruptCheckpoint`).
    #[error("checkpoint is corrupted")]
    Corrupted,
    /// A JSON syntax or type error, worded like Go's `encoding/json` (e.g.
    /// `unexpected end of JSON input`, `invalid character 'x' looking for beginning of value`,
    /// `json: cannot unmarshal string into Go struct field MemoryTable.machineState.memoryMap.total of type uint64`).
    /// Newer-format readers also use it for their wrapped texts
    /// (`failed to deserialize memory manager checkpoint data: ...`).
    #[error("{0}")]
    Json(String),
    /// CPU manager only: a legacy v1 `cpu_manager_state` (entries keyed by container ID). The
    /// kubelet resolves IDs through the runtime's running containers; nmm has none, so every
    /// non-empty v1 checkpoint fails like an unknown ID does. The payload is the container ID
    /// reported (the smallest one; Go would report a random one when there are several).
    #[error(
        "error migrating v1 checkpoint state to v2 checkpoint state: containerID '{0}' not found in initial containers list"
    )]
    CpuV1Migration(String),
    /// Newer-kubelet reader only ([`memory::decode_any`]): a file that looks like a V3
    /// checkpoint (non-empty `data` or non-zero `dataChecksum`) but fails to load; no
    /// fallback to older formats, as in the kubelet.
    #[error("could not load v3 checkpoint: {0}")]
    V3(Box<CheckpointError>),
    /// The checkpoint is one the kubelet accepts (checksum and JSON fine) but that nmm's data
    /// model cannot hold, or on which kubelet v1.32 itself would crash: a negative or huge
    /// NUMA id, a `null` NUMA node or memory table. The text says what and where.
    #[error("{0}")]
    Unsupported(String),
}
