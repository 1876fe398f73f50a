//! The async machinery shared by the plugin and the fake runtime: the trunk's writer,
//! its demultiplexer, a sequential ttrpc server loop and a ttrpc client, each over one
//! mux connection.

use crate::mux::{go_bufio_chunks, MuxDecoder, GO_BUFIO_SIZE, READ_QUEUE_LEN};
use crate::pb::ttrpc as wire;
use crate::ttrpc::*;
use prost::Message as _;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

/// The trunk's write side, shared by every logical connection. A whole ttrpc message
/// is written under the lock, cut into mux frames exactly as Go's ttrpc would.
#[derive(Clone)]
pub(crate) struct MuxWriter {
    inner: Arc<tokio::sync::Mutex<Option<OwnedWriteHalf>>>,
}

impl MuxWriter {
    pub(crate) fn new(w: OwnedWriteHalf) -> Self {
        MuxWriter {
            inner: Arc::new(tokio::sync::Mutex::new(Some(w))),
        }
    }

    /// Writes one complete ttrpc message (header included) on `conn`.
    pub(crate) async fn send_message(&self, conn: u32, msg: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(msg.len() + 16);
        for r in go_bufio_chunks(msg.len()) {
            buf.extend_from_slice(&conn.to_be_bytes());
            buf.extend_from_slice(&(r.len() as u32).to_be_bytes());
            buf.extend_from_slice(&msg[r]);
        }
        self.write_raw(&buf).await
    }

    /// Writes bytes on the trunk as they are (tests use it to send garbage).
    pub(crate) async fn write_raw(&self, bytes: &[u8]) -> io::Result<()> {
        let mut g = self.inner.lock().await;
        let w = g
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "trunk closed"))?;
        w.write_all(bytes).await?;
        w.flush().await
    }

    /// Closes the write side (the peer sees EOF).
    pub(crate) async fn shutdown(&self) {
        let mut g = self.inner.lock().await;
        if let Some(mut w) = g.take() {
            let _ = w.shutdown().await;
        }
    }
}

/// Reads the trunk, splitting it into per-connection frame queues. Frames for
/// connections not in `routes` are dropped (NRI's mux does the same). Ends with
/// `Ok(())` on EOF at a frame boundary, `Err` on a protocol violation, a truncated
/// frame, a read error, or a queue overflow (NRI closes the trunk when a connection
/// has more than 256 frames waiting).
pub(crate) async fn demux(
    mut rd: OwnedReadHalf,
    routes: Vec<(u32, mpsc::Sender<Vec<u8>>)>,
) -> Result<(), String> {
    let mut dec = MuxDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rd
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading trunk: {e}"))?;
        if n == 0 {
            if dec.buffered() > 0 {
                return Err(format!(
                    "trunk closed in the middle of a mux frame ({} bytes pending)",
                    dec.buffered()
                ));
            }
            return Ok(());
        }
        dec.push(&buf[..n]);
        loop {
            match dec.next_frame() {
                Ok(Some((conn, payload))) => {
                    if let Some((_, tx)) = routes.iter().find(|(c, _)| *c == conn) {
                        match tx.try_send(payload) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                return Err(format!(
                                    "read queue of conn {conn} overflowed ({READ_QUEUE_LEN} frames)"
                                ))
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => {}
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// Where ttrpc messages of one connection come from.
pub(crate) trait MessageSource: Send {
    /// The next message; `Ok(None)` at a clean end of the connection.
    fn next(&mut self) -> impl Future<Output = Result<Option<Decoded>, String>> + Send;
}

/// Liberal reassembly of a connection's byte stream, however it was cut into frames.
pub(crate) struct StreamSource {
    rx: mpsc::Receiver<Vec<u8>>,
    dec: MessageDecoder,
}

impl StreamSource {
    pub(crate) fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        StreamSource {
            rx,
            dec: MessageDecoder::new(),
        }
    }
}

impl MessageSource for StreamSource {
    async fn next(&mut self) -> Result<Option<Decoded>, String> {
        loop {
            if let Some(m) = self.dec.next_message() {
                return Ok(Some(m));
            }
            match self.rx.recv().await {
                Some(chunk) => self.dec.push(&chunk),
                None if self.dec.at_boundary() => return Ok(None),
                None => {
                    return Err(format!(
                        "connection closed in the middle of a ttrpc message ({} bytes pending)",
                        self.dec.pending()
                    ))
                }
            }
        }
    }
}

/// A model of how a Go peer reads: ttrpc's channel reads through a 4 KiB
/// `bufio.Reader` from an NRI mux connection, whose `Read` hands over exactly one
/// frame and fails with `ENOMEM` when the caller's buffer is smaller than the frame.
/// The fake runtime reads with this, so a plugin whose frames a real containerd
/// could not read fails the tests.
pub(crate) struct GoSource {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    r: usize,
    w: usize,
}

impl GoSource {
    pub(crate) fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        GoSource {
            rx,
            buf: vec![0; GO_BUFIO_SIZE],
            r: 0,
            w: 0,
        }
    }

    /// mux `conn.Read(buf)` with a buffer of capacity `cap`.
    async fn mux_read(&mut self, cap: usize) -> Result<Option<Vec<u8>>, String> {
        match self.rx.recv().await {
            None => Ok(None),
            Some(frame) if frame.len() > cap => Err(format!(
                "ENOMEM: Go would fail to read a {}-byte mux frame into a {cap}-byte buffer",
                frame.len()
            )),
            Some(frame) => Ok(Some(frame)),
        }
    }

    /// `bufio.Reader.Read(p)`; `Ok(None)` at EOF.
    async fn bufio_read(&mut self, p: &mut [u8]) -> Result<Option<usize>, String> {
        if p.is_empty() {
            return Ok(Some(0));
        }
        if self.r == self.w {
            if p.len() >= self.buf.len() {
                return match self.mux_read(p.len()).await? {
                    None => Ok(None),
                    Some(f) => {
                        p[..f.len()].copy_from_slice(&f);
                        Ok(Some(f.len()))
                    }
                };
            }
            self.r = 0;
            self.w = 0;
            match self.mux_read(self.buf.len()).await? {
                None => return Ok(None),
                Some(f) => {
                    self.buf[..f.len()].copy_from_slice(&f);
                    self.w = f.len();
                }
            }
        }
        let n = p.len().min(self.w - self.r);
        p[..n].copy_from_slice(&self.buf[self.r..self.r + n]);
        self.r += n;
        Ok(Some(n))
    }

    /// `io.ReadFull`: `Ok(false)` on EOF before the first byte.
    async fn read_full(&mut self, p: &mut [u8]) -> Result<bool, String> {
        let mut n = 0;
        while n < p.len() {
            match self.bufio_read(&mut p[n..]).await? {
                Some(k) => n += k,
                None if n == 0 => return Ok(false),
                None => return Err("unexpected EOF in the middle of a ttrpc message".into()),
            }
        }
        Ok(true)
    }

    /// `bufio.Reader.Discard(n)`.
    async fn discard(&mut self, mut n: usize) -> Result<(), String> {
        while n > 0 {
            if self.r == self.w {
                self.r = 0;
                self.w = 0;
                match self.mux_read(self.buf.len()).await? {
                    None => return Err("unexpected EOF discarding an oversized message".into()),
                    Some(f) => {
                        self.buf[..f.len()].copy_from_slice(&f);
                        self.w = f.len();
                    }
                }
            }
            let k = n.min(self.w - self.r);
            self.r += k;
            n -= k;
        }
        Ok(())
    }
}

impl MessageSource for GoSource {
    async fn next(&mut self) -> Result<Option<Decoded>, String> {
        let mut hb = [0u8; MESSAGE_HEADER_LENGTH];
        if !self.read_full(&mut hb).await? {
            return Ok(None);
        }
        let hdr = FrameHeader::decode(&hb);
        if hdr.length as usize > MESSAGE_LENGTH_MAX {
            self.discard(hdr.length as usize).await?;
            return Ok(Some(Decoded::Oversized(hdr)));
        }
        let mut data = vec![0u8; hdr.length as usize];
        if !self.read_full(&mut data).await? && !data.is_empty() {
            return Err("unexpected EOF in the middle of a ttrpc message".into());
        }
        Ok(Some(Decoded::Message(hdr, data)))
    }
}

/// A ttrpc service: dispatches a unary call.
pub(crate) trait Service: Send + Sync {
    fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, Status>> + Send;
}

async fn reply(
    writer: &MuxWriter,
    conn: u32,
    stream_id: u32,
    result: Result<Vec<u8>, Status>,
) -> Result<(), String> {
    let msg = match encode_response(stream_id, &result) {
        Ok(m) => m,
        Err(FrameError::Oversized { len }) => encode_response(
            stream_id,
            &Err(Status::new(
                code::RESOURCE_EXHAUSTED,
                format!(
                    "response of {len} bytes exceeds maximum message size of {MESSAGE_LENGTH_MAX}"
                ),
            )),
        )
        .map_err(|e| e.to_string())?,
    };
    writer
        .send_message(conn, &msg)
        .await
        .map_err(|e| format!("writing response: {e}"))
}

/// Serves unary calls arriving on one connection, one at a time, answering protocol
/// violations the way Go's ttrpc server does (error status, connection kept).
/// Ends `Ok(())` when the connection ends cleanly.
pub(crate) async fn serve<S: Service, M: MessageSource>(
    mut src: M,
    writer: MuxWriter,
    conn: u32,
    svc: &S,
) -> Result<(), String> {
    let mut last_stream = 0u32;
    while let Some(item) = src.next().await? {
        let (hdr, data) = match item {
            Decoded::Oversized(h) => {
                reply(&writer, conn, h.stream_id, Err(oversized_status(h.length))).await?;
                continue;
            }
            Decoded::Message(h, d) => (h, d),
        };
        if hdr.stream_id % 2 == 0 {
            let st = Status::new(
                code::INVALID_ARGUMENT,
                "StreamID must be odd for client initiated streams",
            );
            reply(&writer, conn, hdr.stream_id, Err(st)).await?;
            continue;
        }
        match hdr.msg_type {
            MESSAGE_TYPE_REQUEST => {
                if hdr.stream_id <= last_stream {
                    let st = Status::new(
                        code::INVALID_ARGUMENT,
                        "StreamID cannot be re-used and must increment",
                    );
                    reply(&writer, conn, hdr.stream_id, Err(st)).await?;
                    continue;
                }
                last_stream = hdr.stream_id;
                let req = match wire::Request::decode(&data[..]) {
                    Ok(r) => r,
                    Err(e) => {
                        let st = Status::new(
                            code::INVALID_ARGUMENT,
                            format!("unmarshal request error: {e}"),
                        );
                        reply(&writer, conn, hdr.stream_id, Err(st)).await?;
                        continue;
                    }
                };
                let result = svc.call(&req.service, &req.method, req.payload).await;
                reply(&writer, conn, hdr.stream_id, result).await?;
            }
            MESSAGE_TYPE_DATA => {
                let st = Status::new(code::INVALID_ARGUMENT, "StreamID is no longer active");
                reply(&writer, conn, hdr.stream_id, Err(st)).await?;
            }
            // Responses on a server connection, and unknown types: ignored for
            // forward compatibility, as Go's server does.
            _ => {}
        }
    }
    Ok(())
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CallError {
    #[error("{0}")]
    Status(Status),
    /// Refused before sending: the request would exceed 4 MiB.
    #[error("request of {len} bytes exceeds maximum message size of {MESSAGE_LENGTH_MAX}")]
    Oversized { len: usize },
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

type Waiter = oneshot::Sender<Result<Vec<u8>, Status>>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<u32, Waiter>,
    closed: Option<String>,
}

/// The calling side of one connection. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Client {
    writer: MuxWriter,
    conn: u32,
    next_stream: Arc<AtomicU32>,
    pending: Arc<Mutex<Pending>>,
}

impl Client {
    /// A client and the reader that must run for responses to arrive.
    pub(crate) fn new<M: MessageSource>(
        writer: MuxWriter,
        conn: u32,
        src: M,
    ) -> (Client, impl Future<Output = Result<(), String>> + Send) {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let client = Client {
            writer,
            conn,
            next_stream: Arc::new(AtomicU32::new(1)),
            pending: pending.clone(),
        };
        (client, client_reader(src, pending))
    }

    pub(crate) async fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, CallError> {
        let id = self.next_stream.fetch_add(2, Ordering::SeqCst);
        let timeout_nano = timeout.map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64);
        let msg = encode_request(id, service, method, payload, timeout_nano)
            .map_err(|FrameError::Oversized { len }| CallError::Oversized { len })?;
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(why) = &p.closed {
                return Err(CallError::Closed(why.clone()));
            }
            p.waiters.insert(id, tx);
        }
        if let Err(e) = self.writer.send_message(self.conn, &msg).await {
            self.forget(id);
            return Err(CallError::Closed(e.to_string()));
        }
        self.wait(id, rx, timeout).await
    }

    /// Registers interest in the response on `stream_id` (for hand-made messages).
    /// Later calls use stream ids above it.
    pub(crate) fn expect(
        &self,
        stream_id: u32,
    ) -> Result<oneshot::Receiver<Result<Vec<u8>, Status>>, CallError> {
        self.next_stream
            .fetch_max(stream_id.saturating_add(2) | 1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &p.closed {
            return Err(CallError::Closed(why.clone()));
        }
        p.waiters.insert(stream_id, tx);
        Ok(rx)
    }

    /// Sends raw trunk bytes and waits for the response on `stream_id`.
    pub(crate) async fn call_raw(
        &self,
        stream_id: u32,
        trunk_bytes: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, CallError> {
        let rx = self.expect(stream_id)?;
        if let Err(e) = self.writer.write_raw(trunk_bytes).await {
            self.forget(stream_id);
            return Err(CallError::Closed(e.to_string()));
        }
        self.wait(stream_id, rx, timeout).await
    }

    /// Sends a hand-made message on this connection and waits for the response on
    /// `stream_id`.
    pub(crate) async fn call_message(
        &self,
        stream_id: u32,
        msg: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, CallError> {
        let rx = self.expect(stream_id)?;
        if let Err(e) = self.writer.send_message(self.conn, msg).await {
            self.forget(stream_id);
            return Err(CallError::Closed(e.to_string()));
        }
        self.wait(stream_id, rx, timeout).await
    }

    async fn wait(
        &self,
        id: u32,
        rx: oneshot::Receiver<Result<Vec<u8>, Status>>,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, CallError> {
        let got = match timeout {
            Some(d) => match tokio::time::timeout(d, rx).await {
                Ok(r) => r,
                Err(_) => {
                    self.forget(id);
                    return Err(CallError::Timeout(d));
                }
            },
            None => rx.await,
        };
        match got {
            Ok(Ok(payload)) => Ok(payload),
            Ok(Err(st)) => Err(CallError::Status(st)),
            Err(_) => {
                let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                Err(CallError::Closed(
                    p.closed
                        .clone()
                        .unwrap_or_else(|| "connection closed".into()),
                ))
            }
        }
    }

    fn forget(&self, id: u32) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.waiters.remove(&id);
    }
}

async fn client_reader<M: MessageSource>(
    mut src: M,
    pending: Arc<Mutex<Pending>>,
) -> Result<(), String> {
    let deliver = |id: u32, r: Result<Vec<u8>, Status>| {
        let w = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiters
            .remove(&id);
        if let Some(w) = w {
            let _ = w.send(r);
        }
    };
    let result = loop {
        match src.next().await {
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
            Ok(Some(Decoded::Oversized(h))) => {
                deliver(h.stream_id, Err(oversized_status(h.length)))
            }
            Ok(Some(Decoded::Message(h, data))) => {
                if h.msg_type != MESSAGE_TYPE_RESPONSE {
                    continue;
                }
                let r = match wire::Response::decode(&data[..]) {
                    Ok(resp) => response_result(resp),
                    Err(e) => Err(Status::new(
                        code::INTERNAL,
                        format!("failed to unmarshal response: {e}"),
                    )),
                };
                deliver(h.stream_id, r);
            }
        }
    };
    let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
    p.closed = Some(match &result {
        Ok(()) => "connection closed".into(),
        Err(e) => e.clone(),
    });
    p.waiters.clear();
    result
}

/// Aborts the wrapped tasks when dropped.
#[derive(Default)]
pub(crate) struct TaskSet(Vec<tokio::task::JoinHandle<()>>);

impl TaskSet {
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&mut self, f: F) {
        self.0.push(tokio::spawn(f));
    }
}

impl Drop for TaskSet {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn go_read(frames: Vec<Vec<u8>>) -> Vec<Result<Option<Decoded>, String>> {
        let (tx, rx) = mpsc::channel(frames.len() + 1);
        for f in frames {
            tx.send(f).await.unwrap();
        }
        drop(tx);
        let mut src = GoSource::new(rx);
        let mut out = vec![];
        loop {
            let r = src.next().await;
            let stop = !matches!(r, Ok(Some(_)));
            out.push(r);
            if stop {
                return out;
            }
        }
    }

    fn go_frames(msg: &[u8]) -> Vec<Vec<u8>> {
        go_bufio_chunks(msg.len())
            .into_iter()
            .map(|r| msg[r].to_vec())
            .collect()
    }

    #[tokio::test]
    async fn go_reader_accepts_go_chunking() {
        for len in [0usize, 1, 100, 4086, 4087, 5000, 8192, 8193, 100_000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let msg = encode_message(5, MESSAGE_TYPE_RESPONSE, 0, &data).unwrap();
            let mut frames = go_frames(&msg);
            frames.extend(go_frames(
                &encode_message(7, MESSAGE_TYPE_RESPONSE, 0, b"x").unwrap(),
            ));
            let out = go_read(frames).await;
            assert_eq!(out.len(), 3, "len {len}");
            assert!(
                matches!(&out[0], Ok(Some(Decoded::Message(h, d))) if h.stream_id == 5 && *d == data)
            );
            assert!(
                matches!(&out[1], Ok(Some(Decoded::Message(h, d))) if h.stream_id == 7 && d == b"x")
            );
            assert_eq!(out[2], Ok(None));
        }
    }

    #[tokio::test]
    async fn go_reader_fails_on_frames_go_could_not_read() {
        // One 6000-byte message in a single frame: Go's 4 KiB bufio read hits ENOMEM.
        let msg = encode_message(5, MESSAGE_TYPE_RESPONSE, 0, &[0u8; 5990]).unwrap();
        let out = go_read(vec![msg.clone()]).await;
        assert!(
            matches!(&out[0], Err(e) if e.starts_with("ENOMEM")),
            "{out:?}"
        );
        // Our lenient reader takes it.
        let (tx, rx) = mpsc::channel(2);
        tx.send(msg).await.unwrap();
        drop(tx);
        let mut src = StreamSource::new(rx);
        assert!(matches!(src.next().await, Ok(Some(Decoded::Message(..)))));
    }

    #[tokio::test]
    async fn go_reader_discards_oversized() {
        let hdr = FrameHeader {
            length: (MESSAGE_LENGTH_MAX + 3) as u32,
            stream_id: 9,
            msg_type: MESSAGE_TYPE_RESPONSE,
            flags: 0,
        };
        let mut frames = vec![hdr.encode().to_vec()];
        let mut left = MESSAGE_LENGTH_MAX + 3;
        while left > 0 {
            let n = left.min(GO_BUFIO_SIZE);
            frames.push(vec![0; n]);
            left -= n;
        }
        frames.push(encode_message(11, MESSAGE_TYPE_RESPONSE, 0, b"ok").unwrap());
        let out = go_read(frames).await;
        assert_eq!(out[0], Ok(Some(Decoded::Oversized(hdr))));
        assert!(matches!(&out[1], Ok(Some(Decoded::Message(h, _))) if h.stream_id == 11));
    }

    #[tokio::test]
    async fn truncated_stream_is_an_error_for_both_readers() {
        let msg = encode_message(5, MESSAGE_TYPE_REQUEST, 0, b"hello").unwrap();
        let out = go_read(vec![msg[..12].to_vec()]).await;
        assert!(out[0].is_err());
        let (tx, rx) = mpsc::channel(2);
        tx.send(msg[..12].to_vec()).await.unwrap();
        drop(tx);
        assert!(StreamSource::new(rx).next().await.is_err());
    }
}
