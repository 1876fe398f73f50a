//! ttrpc framing (`github.com/containerd/ttrpc`), written from its protocol description.
//!
//! ```text
//! +----------------------------+----------------------------+----------+-----------+
//! | data length (u32, BE)      | stream id (u32, BE)        | type (u8)| flags (u8)|
//! +----------------------------+----------------------------+----------+-----------+
//! | data ...                                                                       |
//! ```
//!
//! Data is at most 4 MiB. A unary call is a `Request` message (type 1) on a new odd
//! stream id carrying a protobuf `ttrpc.Request{service, method, payload,
//! timeout_nano, metadata}`, answered by a `Response` message (type 2) on the same
//! stream id carrying `ttrpc.Response{status, payload}`.

use crate::pb::ttrpc as wire;
use prost::Message as _;

/// Length of the ttrpc message header.
pub const MESSAGE_HEADER_LENGTH: usize = 10;
/// Largest data length a ttrpc peer accepts (`messageLengthMax`, 4 MiB).
pub const MESSAGE_LENGTH_MAX: usize = 4 << 20;

pub const MESSAGE_TYPE_REQUEST: u8 = 0x1;
pub const MESSAGE_TYPE_RESPONSE: u8 = 0x2;
pub const MESSAGE_TYPE_DATA: u8 = 0x3;

pub const FLAG_REMOTE_CLOSED: u8 = 0x1;
pub const FLAG_REMOTE_OPEN: u8 = 0x2;
pub const FLAG_NO_DATA: u8 = 0x4;

/// gRPC status codes used on the wire.
pub mod code {
    pub const OK: i32 = 0;
    pub const CANCELED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const DATA_LOSS: i32 = 15;
    pub const UNAUTHENTICATED: i32 = 16;

    /// The name Go's `codes.Code.String()` prints.
    pub fn name(code: i32) -> String {
        match code {
            OK => "OK".into(),
            CANCELED => "Canceled".into(),
            UNKNOWN => "Unknown".into(),
            INVALID_ARGUMENT => "InvalidArgument".into(),
            DEADLINE_EXCEEDED => "DeadlineExceeded".into(),
            NOT_FOUND => "NotFound".into(),
            ALREADY_EXISTS => "AlreadyExists".into(),
            PERMISSION_DENIED => "PermissionDenied".into(),
            RESOURCE_EXHAUSTED => "ResourceExhausted".into(),
            FAILED_PRECONDITION => "FailedPrecondition".into(),
            ABORTED => "Aborted".into(),
            OUT_OF_RANGE => "OutOfRange".into(),
            UNIMPLEMENTED => "Unimplemented".into(),
            INTERNAL => "Internal".into(),
            UNAVAILABLE => "Unavailable".into(),
            DATA_LOSS => "DataLoss".into(),
            UNAUTHENTICATED => "Unauthenticated".into(),
            c => format!("Code({c})"),
        }
    }
}

/// The 10-byte ttrpc message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameHeader {
    pub length: u32,
    pub stream_id: u32,
    pub msg_type: u8,
    pub flags: u8,
}

impl FrameHeader {
    pub fn encode(&self) -> [u8; MESSAGE_HEADER_LENGTH] {
        let mut b = [0u8; MESSAGE_HEADER_LENGTH];
        b[..4].copy_from_slice(&self.length.to_be_bytes());
        b[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        b[8] = self.msg_type;
        b[9] = self.flags;
        b
    }

    pub fn decode(b: &[u8; MESSAGE_HEADER_LENGTH]) -> FrameHeader {
        FrameHeader {
            length: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream_id: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            msg_type: b[8],
            flags: b[9],
        }
    }
}

/// A status to send or received: gRPC code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: i32,
    pub message: String,
}

impl Status {
    pub fn new(code: i32, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    pub fn to_wire(&self) -> wire::Status {
        wire::Status {
            code: self.code,
            message: self.message.clone(),
            details: vec![],
        }
    }
}

impl std::fmt::Display for Status {
    /// Go's `status.Error` text: `rpc error: code = X desc = msg`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rpc error: code = {} desc = {}",
            code::name(self.code),
            self.message
        )
    }
}

/// Errors building a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Go's `OversizedMessageErr`: the peer would refuse it, so it is never sent.
    #[error("message length {len} exceeds maximum message size of {MESSAGE_LENGTH_MAX}")]
    Oversized { len: usize },
}

/// Encodes header + data. Refuses data over 4 MiB, as ttrpc's channel does on send.
pub fn encode_message(
    stream_id: u32,
    msg_type: u8,
    flags: u8,
    data: &[u8],
) -> Result<Vec<u8>, FrameError> {
    if data.len() > MESSAGE_LENGTH_MAX {
        return Err(FrameError::Oversized { len: data.len() });
    }
    let hdr = FrameHeader {
        length: data.len() as u32,
        stream_id,
        msg_type,
        flags,
    };
    let mut out = Vec::with_capacity(MESSAGE_HEADER_LENGTH + data.len());
    out.extend_from_slice(&hdr.encode());
    out.extend_from_slice(data);
    Ok(out)
}

/// Encodes a unary request message (`ttrpc.Request` envelope in a type-1 frame).
pub fn encode_request(
    stream_id: u32,
    service: &str,
    method: &str,
    payload: Vec<u8>,
    timeout_nano: i64,
) -> Result<Vec<u8>, FrameError> {
    let req = wire::Request {
        service: service.to_string(),
        method: method.to_string(),
        payload,
        timeout_nano,
        metadata: vec![],
    };
    encode_message(stream_id, MESSAGE_TYPE_REQUEST, 0, &req.encode_to_vec())
}

/// Encodes a response message (`ttrpc.Response` envelope in a type-2 frame). A
/// successful call carries status code 0, as Go's server always sets a status.
pub fn encode_response(
    stream_id: u32,
    result: &Result<Vec<u8>, Status>,
) -> Result<Vec<u8>, FrameError> {
    let resp = match result {
        Ok(payload) => wire::Response {
            status: Some(wire::Status {
                code: code::OK,
                message: String::new(),
                details: vec![],
            }),
            payload: payload.clone(),
        },
        Err(st) => wire::Response {
            status: Some(st.to_wire()),
            payload: vec![],
        },
    };
    encode_message(stream_id, MESSAGE_TYPE_RESPONSE, 0, &resp.encode_to_vec())
}

/// Interprets a decoded `ttrpc.Response`: the payload on status OK (or no status),
/// the status otherwise.
pub fn response_result(resp: wire::Response) -> Result<Vec<u8>, Status> {
    match resp.status {
        Some(st) if st.code != code::OK => Err(Status::new(st.code, st.message)),
        _ => Ok(resp.payload),
    }
}

/// One item out of a [`MessageDecoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A complete message.
    Message(FrameHeader, Vec<u8>),
    /// A message whose declared length is over 4 MiB. Its data is being skipped
    /// without being buffered; the header says which stream to answer.
    Oversized(FrameHeader),
}

/// Incremental decoder of one logical connection's ttrpc byte stream. Liberal about
/// how the stream was cut into mux frames; bounded in memory: an oversized message is
/// reported at once and its data discarded as it arrives, as Go's channel does.
#[derive(Debug, Default)]
pub struct MessageDecoder {
    buf: Vec<u8>,
    pos: usize,
    discard: usize,
}

impl MessageDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        let mut data = data;
        if self.discard > 0 {
            let n = self.discard.min(data.len());
            self.discard -= n;
            data = &data[n..];
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered (plus bytes still to skip of an oversized message).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos + self.discard
    }

    /// True if nothing is buffered and no message is half-read.
    pub fn at_boundary(&self) -> bool {
        self.pending() == 0
    }

    pub fn next_message(&mut self) -> Option<Decoded> {
        if self.discard > 0 {
            return None;
        }
        let avail = &self.buf[self.pos..];
        if avail.len() < MESSAGE_HEADER_LENGTH {
            return None;
        }
        let mut hb = [0u8; MESSAGE_HEADER_LENGTH];
        hb.copy_from_slice(&avail[..MESSAGE_HEADER_LENGTH]);
        let hdr = FrameHeader::decode(&hb);
        let len = hdr.length as usize;
        if len > MESSAGE_LENGTH_MAX {
            let have = avail.len() - MESSAGE_HEADER_LENGTH;
            let skip_now = have.min(len);
            self.pos += MESSAGE_HEADER_LENGTH + skip_now;
            self.discard = len - skip_now;
            return Some(Decoded::Oversized(hdr));
        }
        if avail.len() < MESSAGE_HEADER_LENGTH + len {
            return None;
        }
        let data = avail[MESSAGE_HEADER_LENGTH..MESSAGE_HEADER_LENGTH + len].to_vec();
        self.pos += MESSAGE_HEADER_LENGTH + len;
        Some(Decoded::Message(hdr, data))
    }
}

/// Go's status text for an oversized incoming message.
pub fn oversized_status(len: u32) -> Status {
    Status::new(
        code::RESOURCE_EXHAUSTED,
        format!("message length {len} exceed maximum message size of {MESSAGE_LENGTH_MAX}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = FrameHeader {
            length: 0x0102_0304,
            stream_id: 0x0a0b_0c0d,
            msg_type: MESSAGE_TYPE_REQUEST,
            flags: FLAG_REMOTE_CLOSED,
        };
        assert_eq!(h.encode(), [1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 1, 1]);
        assert_eq!(FrameHeader::decode(&h.encode()), h);
    }

    #[test]
    fn decoder_reassembles_byte_by_byte() {
        let a = encode_message(1, MESSAGE_TYPE_REQUEST, 0, b"abc").unwrap();
        let b = encode_message(3, MESSAGE_TYPE_REQUEST, 0, b"").unwrap();
        let all: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        let mut d = MessageDecoder::new();
        let mut out = vec![];
        for byte in all {
            d.push(&[byte]);
            while let Some(m) = d.next_message() {
                out.push(m);
            }
        }
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Decoded::Message(h, p) if h.stream_id == 1 && p == b"abc"));
        assert!(matches!(&out[1], Decoded::Message(h, p) if h.stream_id == 3 && p.is_empty()));
        assert!(d.at_boundary());
    }

    #[test]
    fn decoder_skips_oversized_without_buffering() {
        let mut d = MessageDecoder::new();
        let hdr = FrameHeader {
            length: (MESSAGE_LENGTH_MAX + 5) as u32,
            stream_id: 7,
            msg_type: MESSAGE_TYPE_REQUEST,
            flags: 0,
        };
        d.push(&hdr.encode());
        assert_eq!(d.next_message(), Some(Decoded::Oversized(hdr)));
        let chunk = vec![0xffu8; 1 << 20];
        for _ in 0..4 {
            d.push(&chunk);
            assert!(d.next_message().is_none());
            assert!(d.buf.len() < 16);
        }
        let next = encode_message(9, MESSAGE_TYPE_REQUEST, 0, b"ok").unwrap();
        let mut tail = vec![0xffu8; 5];
        tail.extend_from_slice(&next);
        d.push(&tail);
        assert!(
            matches!(d.next_message(), Some(Decoded::Message(h, p)) if h.stream_id == 9 && p == b"ok")
        );
    }

    #[test]
    fn oversized_refused_on_send() {
        assert!(encode_message(1, 1, 0, &vec![0; MESSAGE_LENGTH_MAX]).is_ok());
        assert_eq!(
            encode_message(1, 1, 0, &vec![0; MESSAGE_LENGTH_MAX + 1]),
            Err(FrameError::Oversized {
                len: MESSAGE_LENGTH_MAX + 1
            })
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        /// Any cut of a stream of messages decodes to the same messages.
        #[test]
        fn reassembly_is_independent_of_cuts(
            msgs in proptest::collection::vec((any::<u32>(), 0u8..4, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..6),
            cuts in proptest::collection::vec(1usize..64, 1..20),
        ) {
            let stream: Vec<u8> = msgs.iter().flat_map(|(s, t, f, d)| encode_message(*s, *t, *f, d).unwrap()).collect();
            let mut dec = MessageDecoder::new();
            let mut got = vec![];
            let mut pos = 0;
            let mut i = 0;
            while pos < stream.len() {
                let n = cuts[i % cuts.len()].min(stream.len() - pos);
                dec.push(&stream[pos..pos + n]);
                pos += n;
                i += 1;
                while let Some(m) = dec.next_message() { got.push(m); }
            }
            prop_assert!(dec.at_boundary());
            prop_assert_eq!(got.len(), msgs.len());
            for (g, (s, t, f, d)) in got.iter().zip(&msgs) {
                let want = Decoded::Message(FrameHeader { length: d.len() as u32, stream_id: *s, msg_type: *t, flags: *f }, d.clone());
                prop_assert_eq!(g, &want);
            }
        }

        /// Random bytes: never a panic, never more buffered than was pushed.
        #[test]
        fn random_bytes_are_harmless(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10)) {
            let mut dec = MessageDecoder::new();
            let mut mux = crate::mux::MuxDecoder::new();
            let mut pushed = 0;
            for c in &chunks {
                pushed += c.len();
                dec.push(c);
                while dec.next_message().is_some() {}
                prop_assert!(dec.buf.len() <= pushed);
                mux.push(c);
                while let Ok(Some(_)) = mux.next_frame() {}
                // Requests and responses made of the same bytes decode or fail cleanly.
                let _ = <wire::Request as prost::Message>::decode(&c[..]);
                let _ = <wire::Response as prost::Message>::decode(&c[..]);
                if let Ok(r) = crate::pb::nri::CreateContainerRequest::decode(&c[..]) {
                    if let (Some(p), Some(ct)) = (&r.pod, &r.container) {
                        let _ = crate::pod_info_from_nri(&p.into(), &[ct.into()]);
                    }
                }
            }
        }
    }
}
