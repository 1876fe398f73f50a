//! Checkpoint files as kubelet v1.32 writes and reads them: compact JSON plus an FNV-1a-32
//! checksum over the go-spew rendering of the Go struct.
