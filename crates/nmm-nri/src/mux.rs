//! NRI's connection multiplexer (`github.com/containerd/nri/pkg/net/multiplex`).
//!
//! One Unix-socket "trunk" carries several logical connections. Every write on a
//! logical connection becomes one frame on the trunk:
//!
//! ```text
//! +----------------------+----------------------+------------------+
//! | conn id (u32, BE)    | payload length (u32) | payload bytes    |
//! +----------------------+----------------------+------------------+
//! ```
//!
//! Connection 1 carries the plugin's ttrpc *server* (the runtime calls the `Plugin`
//! service), connection 2 the plugin's ttrpc *client* (the plugin calls the `Runtime`
//! service). Connection 0 is reserved. Opening a connection sends nothing; frames for a
//! connection nobody opened are dropped, as NRI's reader does.
//!
//! A frame's payload is an arbitrary slice of that connection's ttrpc byte stream: a
//! ttrpc message may span frames and a receiver has to reassemble. How Go's ttrpc
//! (through a 4 KiB `bufio.Writer`) cuts messages into frames matters for a Go
//! receiver, see [`go_bufio_chunks`].

use crate::ttrpc::{MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX};

/// Length of the mux frame header: conn id + payload length.
pub const MUX_HEADER_LENGTH: usize = 8;
/// NRI's `maxPayloadSize`: one full ttrpc message (header + 4 MiB).
pub const MUX_PAYLOAD_MAX: usize = MESSAGE_HEADER_LENGTH + MESSAGE_LENGTH_MAX;
/// Reserved connection id.
pub const RESERVED_CONN: u32 = 0;
/// `multiplex.PluginServiceConn`: the runtime calls the plugin here.
pub const PLUGIN_SERVICE_CONN: u32 = 1;
/// `multiplex.RuntimeServiceConn`: the plugin calls the runtime here.
pub const RUNTIME_SERVICE_CONN: u32 = 2;
/// Size of Go's default `bufio.Writer`/`bufio.Reader` buffer used by ttrpc's channel.
pub const GO_BUFIO_SIZE: usize = 4096;
/// NRI's per-connection read queue length (`readQueueLen`): more queued frames than
/// this on one connection and the whole trunk is closed.
pub const READ_QUEUE_LEN: usize = 256;

/// A mux-level protocol violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    #[error("oversized mux frame on conn {conn}: {len} > {MUX_PAYLOAD_MAX} bytes")]
    Oversized { conn: u32, len: usize },
    #[error("mux frame on conn {conn} refused: {reason}")]
    Refused { conn: u32, reason: &'static str },
}

/// Encodes one mux frame. Fails if the payload is larger than NRI accepts.
pub fn encode_frame(conn: u32, payload: &[u8]) -> Result<Vec<u8>, MuxError> {
    if payload.len() > MUX_PAYLOAD_MAX {
        return Err(MuxError::Oversized {
            conn,
            len: payload.len(),
        });
    }
    let mut out = Vec::with_capacity(MUX_HEADER_LENGTH + payload.len());
    out.extend_from_slice(&conn.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// How Go's ttrpc channel cuts one message of `total` bytes (10-byte header included)
/// into writes on the mux connection, hence into mux frames: it writes the header and
/// the payload into a 4 KiB `bufio.Writer` and flushes. A message that fits the buffer
/// is one frame; a longer one is a full 4096-byte frame followed by one frame with the
/// rest (written directly when it is larger than the buffer, flushed otherwise).
///
/// Go's receiving side reads through a 4 KiB `bufio.Reader` and NRI's mux refuses to
/// hand a frame to a read buffer smaller than the frame (`ENOMEM`), so a peer that
/// sent, say, a 6000-byte message as a single frame would break a Go receiver. We
/// therefore always write exactly the frames Go would.
pub fn go_bufio_chunks(total: usize) -> Vec<std::ops::Range<usize>> {
    let first = total.min(GO_BUFIO_SIZE);
    let mut chunks = Vec::with_capacity(2);
    chunks.push(0..first);
    if total > first {
        chunks.push(first..total);
    }
    chunks
}

/// Incremental, allocation-bounded decoder of a trunk's byte stream into frames.
/// Refuses frames longer than [`MUX_PAYLOAD_MAX`] before buffering them.
#[derive(Debug, Default)]
pub struct MuxDecoder {
    buf: Vec<u8>,
    pos: usize,
}

impl MuxDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the trunk.
    pub fn push(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<(u32, Vec<u8>)>, MuxError> {
        let avail = &self.buf[self.pos..];
        if avail.len() < MUX_HEADER_LENGTH {
            return Ok(None);
        }
        let conn = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]);
        let len = u32::from_be_bytes([avail[4], avail[5], avail[6], avail[7]]) as usize;
        if len > MUX_PAYLOAD_MAX {
            return Err(MuxError::Oversized { conn, len });
        }
        if avail.len() < MUX_HEADER_LENGTH + len {
            return Ok(None);
        }
        let payload = avail[MUX_HEADER_LENGTH..MUX_HEADER_LENGTH + len].to_vec();
        self.pos += MUX_HEADER_LENGTH + len;
        Ok(Some((conn, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip() {
        let f = encode_frame(PLUGIN_SERVICE_CONN, b"hello").unwrap();
        assert_eq!(&f[..8], &[0, 0, 0, 1, 0, 0, 0, 5]);
        let mut d = MuxDecoder::new();
        d.push(&f[..3]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&f[3..]);
        assert_eq!(d.next_frame().unwrap(), Some((1, b"hello".to_vec())));
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn oversized_refused_before_buffering() {
        let mut d = MuxDecoder::new();
        let mut hdr = vec![0, 0, 0, 2];
        hdr.extend_from_slice(&((MUX_PAYLOAD_MAX + 1) as u32).to_be_bytes());
        d.push(&hdr);
        assert!(matches!(
            d.next_frame(),
            Err(MuxError::Oversized { conn: 2, .. })
        ));
        assert!(encode_frame(1, &vec![0; MUX_PAYLOAD_MAX + 1]).is_err());
        assert!(encode_frame(1, &vec![0; MUX_PAYLOAD_MAX]).is_ok());
    }

    #[test]
    fn go_chunking() {
        let one = |n: usize| {
            let c = go_bufio_chunks(n);
            (c.len(), c[0].clone())
        };
        assert_eq!(one(10), (1, 0..10));
        assert_eq!(one(4096), (1, 0..4096));
        assert_eq!(go_bufio_chunks(4097), vec![0..4096, 4096..4097]);
        assert_eq!(go_bufio_chunks(20000), vec![0..4096, 4096..20000]);
    }
}
