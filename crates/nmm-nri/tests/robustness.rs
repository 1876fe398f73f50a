//! Bad frames, oversized messages, unknown streams and services, garbage protobuf:
//! the plugin answers or closes, never panics, and a broken trunk ends `run()`.

mod common;

use common::*;
use nmm_nri::fake::{FakeRuntime, RuntimeError};
use nmm_nri::mux::{encode_frame, MUX_PAYLOAD_MAX, PLUGIN_SERVICE_CONN};
use nmm_nri::pb::{nri as pb, ttrpc as wire};
use nmm_nri::ttrpc::{self as tt, code};
use nmm_nri::*;
use proptest::prelude::*;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn status(r: Result<Vec<u8>, RuntimeError>) -> tt::Status {
    match r {
        Err(RuntimeError::Plugin(st)) => st,
        other => panic!("expected an error status, got {other:?}"),
    }
}

fn request(service: &str, method: &str, payload: Vec<u8>) -> Vec<u8> {
    wire::Request {
        service: service.into(),
        method: method.into(),
        payload,
        timeout_nano: 0,
        metadata: vec![],
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_error_answers_and_the_plugin_keeps_serving() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    let mut fp = rt.accept(&[], &[]).await.unwrap();

    let st = status(
        fp.call_service("nri.pkg.api.v1alpha1.Nope", "Configure", vec![])
            .await,
    );
    assert_eq!(st.code, code::UNIMPLEMENTED);
    assert_eq!(st.message, "service nri.pkg.api.v1alpha1.Nope");
    let st = status(fp.call_service(PLUGIN_SERVICE, "Frobnicate", vec![]).await);
    assert_eq!(
        (st.code, st.message.as_str()),
        (code::UNIMPLEMENTED, "method Frobnicate")
    );

    // Garbage payload for a known method.
    let st = status(
        fp.call_service(PLUGIN_SERVICE, "CreateContainer", vec![0xff, 0xff, 0xff])
            .await,
    );
    assert_eq!(st.code, code::INTERNAL);
    assert!(
        st.message.starts_with("ttrpc: error unmarshalling payload"),
        "{}",
        st.message
    );

    // Well-formed, but no pod / no container.
    let req = pb::CreateContainerRequest {
        pod: None,
        container: Some(Default::default()),
    };
    let st = status(
        fp.call_service(PLUGIN_SERVICE, "CreateContainer", req.encode_to_vec())
            .await,
    );
    assert_eq!(
        (st.code, st.message.as_str()),
        (
            code::INVALID_ARGUMENT,
            "CreateContainer: request without pod"
        )
    );
    let req = pb::StateChangeEvent {
        event: 11,
        pod: Some(Default::default()),
        container: None,
    };
    let st = status(
        fp.call_service(PLUGIN_SERVICE, "StateChange", req.encode_to_vec())
            .await,
    );
    assert_eq!(st.code, code::INVALID_ARGUMENT);

    // Garbage ttrpc.Request envelope.
    let st = status(
        fp.send_ttrpc(101, tt::MESSAGE_TYPE_REQUEST, 0, &[0x0a, 0xff])
            .await,
    );
    assert_eq!(st.code, code::INVALID_ARGUMENT);
    assert!(
        st.message.starts_with("unmarshal request error"),
        "{}",
        st.message
    );
    // Even (server-side) stream id.
    let st = status(
        fp.send_ttrpc(
            200,
            tt::MESSAGE_TYPE_REQUEST,
            0,
            &request(PLUGIN_SERVICE, "Shutdown", vec![]),
        )
        .await,
    );
    assert_eq!(
        (st.code, st.message.as_str()),
        (
            code::INVALID_ARGUMENT,
            "StreamID must be odd for client initiated streams"
        )
    );
    // Re-used stream id.
    let st = status(
        fp.send_ttrpc(
            101,
            tt::MESSAGE_TYPE_REQUEST,
            0,
            &request(PLUGIN_SERVICE, "Shutdown", vec![]),
        )
        .await,
    );
    assert_eq!(
        (st.code, st.message.as_str()),
        (
            code::INVALID_ARGUMENT,
            "StreamID cannot be re-used and must increment"
        )
    );
    // Data on a stream that does not exist.
    let st = status(
        fp.send_ttrpc(301, tt::MESSAGE_TYPE_DATA, tt::FLAG_REMOTE_CLOSED, b"x")
            .await,
    );
    assert_eq!(st.code, code::INVALID_ARGUMENT);

    // Frames for the reserved and for unknown connections are dropped.
    fp.send_raw(&encode_frame(0, b"junk").unwrap())
        .await
        .unwrap();
    fp.send_raw(&encode_frame(7, &[0xff; 100]).unwrap())
        .await
        .unwrap();
    // An empty frame on the plugin connection is nothing.
    fp.send_raw(&encode_frame(PLUGIN_SERVICE_CONN, b"").unwrap())
        .await
        .unwrap();

    // Still fully working.
    let (p, c) = guaranteed("db", "bbbbbbbb-0000-0000-0000-000000000002", 2);
    let r = fp.create_container(&p, &c).await.unwrap();
    assert_eq!(r.adjustment.cpuset_cpus.as_deref(), Some("2-3"));
    assert!(fp.closed().is_none());
    fp.close("done").await;
    join(plugin).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_ttrpc_message_gets_resource_exhausted_and_is_skipped() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    let mut fp = rt.accept(&[], &[]).await.unwrap();

    // A request declaring 4 MiB + 1 of data: header frame, then the data in mux
    // frames that are each within the mux limit.
    let len = tt::MESSAGE_LENGTH_MAX + 1;
    let hdr = tt::FrameHeader {
        length: len as u32,
        stream_id: 1001,
        msg_type: tt::MESSAGE_TYPE_REQUEST,
        flags: 0,
    };
    let mut raw = encode_frame(PLUGIN_SERVICE_CONN, &hdr.encode()).unwrap();
    for chunk in vec![0x5au8; len].chunks(1 << 20) {
        raw.extend_from_slice(&encode_frame(PLUGIN_SERVICE_CONN, chunk).unwrap());
    }
    let st = status(fp.send_raw_expect(1001, &raw).await);
    assert_eq!(st.code, code::RESOURCE_EXHAUSTED);
    assert_eq!(
        st.message,
        format!(
            "message length {len} exceed maximum message size of {}",
            tt::MESSAGE_LENGTH_MAX
        )
    );

    // The body was skipped exactly: the next call is understood.
    let (p, c) = guaranteed("db", "bbbbbbbb-0000-0000-0000-000000000002", 2);
    let r = fp.create_container(&p, &c).await.unwrap();
    assert_eq!(r.adjustment.cpuset_cpus.as_deref(), Some("2-3"));

    // Refused on the sending side too: like Go's ttrpc, the runtime never sends it.
    let huge = vec![0u8; tt::MESSAGE_LENGTH_MAX + 1];
    let err = fp
        .call_service(PLUGIN_SERVICE, "Synchronize", huge)
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Oversized { .. }), "{err}");
    assert!(fp.closed().is_none());
    fp.close("done").await;
    join(plugin).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_mux_frame_closes_the_connection() {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    let fp = rt.accept(&[], &[]).await.unwrap();
    let mut hdr = PLUGIN_SERVICE_CONN.to_be_bytes().to_vec();
    hdr.extend_from_slice(&((MUX_PAYLOAD_MAX + 1) as u32).to_be_bytes());
    fp.send_raw(&hdr).await.unwrap();
    let r = join(plugin).await;
    assert!(
        matches!(r, Err(NriError::Protocol(ref m)) if m.contains("oversized mux frame")),
        "{r:?}"
    );
    assert!(fp.wait_closed(Duration::from_secs(5)).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frames_end_run_with_an_error() {
    for cut in [3usize, 8, 12, 25] {
        let env = env();
        let rt = FakeRuntime::listen(&env.path).unwrap();
        let rec = Arc::new(Recorder::default());
        let plugin = spawn_plugin(&env.path, rec.clone());
        let fp = rt.accept(&[], &[]).await.unwrap();
        // A mux frame carrying a ttrpc request, cut short, then EOF.
        let msg = tt::encode_request(99, PLUGIN_SERVICE, "Shutdown", vec![], 0).unwrap();
        let frame = encode_frame(PLUGIN_SERVICE_CONN, &msg).unwrap();
        fp.send_raw(&frame[..cut.min(frame.len() - 1)])
            .await
            .unwrap();
        fp.close("truncate").await;
        let r = join(plugin).await;
        assert!(matches!(r, Err(NriError::Protocol(_))), "cut {cut}: {r:?}");
    }
    // A complete mux frame holding half a ttrpc message, then EOF.
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let plugin = spawn_plugin(&env.path, Arc::new(Recorder::default()));
    let fp = rt.accept(&[], &[]).await.unwrap();
    let msg = tt::encode_request(99, PLUGIN_SERVICE, "Shutdown", vec![], 0).unwrap();
    fp.send_raw(&encode_frame(PLUGIN_SERVICE_CONN, &msg[..msg.len() / 2]).unwrap())
        .await
        .unwrap();
    fp.close("truncate").await;
    let r = join(plugin).await;
    assert!(
        matches!(r, Err(NriError::Protocol(ref m)) if m.contains("middle of a ttrpc message")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_length_desynchronises_and_is_refused() {
    // A mux frame whose length field claims more than follows: the next frame's header
    // is read as payload, the stream is garbage from there on; the plugin must end
    // with an error or keep answering errors, never panic or hang.
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let plugin = spawn_plugin(&env.path, Arc::new(Recorder::default()));
    let fp = rt.accept(&[], &[]).await.unwrap();
    let msg = tt::encode_request(99, PLUGIN_SERVICE, "Shutdown", vec![], 0).unwrap();
    let mut frame = encode_frame(PLUGIN_SERVICE_CONN, &msg).unwrap();
    frame[7] = frame[7].wrapping_add(40);
    fp.send_raw(&frame).await.unwrap();
    fp.send_raw(&[0xffu8; 64]).await.unwrap();
    fp.close("garbage").await;
    let r = join(plugin).await;
    assert!(r.is_err(), "{r:?}");
}

async fn feed_plugin(prefix_handshake: bool, bytes: Vec<u8>) {
    let env = env();
    let rt = FakeRuntime::listen(&env.path).unwrap();
    let path = env.path.clone();
    let plugin = tokio::spawn(async move {
        NriPlugin::connect(&path, "nmm", "10", Arc::new(Recorder::default()))
            .await?
            .with_config(PluginConfig {
                registration_timeout: Duration::from_secs(2),
                ..Default::default()
            })
            .run()
            .await
    });
    if prefix_handshake {
        let fp = rt.accept(&[], &[]).await.unwrap();
        let _ = fp.send_raw(&bytes).await;
        fp.close("fuzz").await;
    } else {
        let mut s = rt.accept_raw().await.unwrap();
        let _ = s.write_all(&bytes).await;
        let _ = s.shutdown().await;
        drop(s);
    }
    // Whatever the bytes, run() ends (Ok or Err) without panicking.
    let _ = tokio::time::timeout(Duration::from_secs(10), plugin)
        .await
        .expect("plugin hung on garbage")
        .expect("plugin panicked on garbage");
}

/// Random bytes, or random frames around valid-looking headers.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let frame = (0u32..4, prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(conn, p)| encode_frame(conn, &p).unwrap());
    let ttrpc_frame = (
        any::<u32>(),
        0u8..5,
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(sid, ty, fl, d)| {
            let mut m = tt::FrameHeader {
                length: d.len() as u32,
                stream_id: sid,
                msg_type: ty,
                flags: fl,
            }
            .encode()
            .to_vec();
            m.extend_from_slice(&d);
            encode_frame(PLUGIN_SERVICE_CONN, &m).unwrap()
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec(prop_oneof![frame, ttrpc_frame], 0..8).prop_map(|v| v.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_crash_the_plugin(handshake in any::<bool>(), bytes in garbage()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(feed_plugin(handshake, bytes));
    }
}
