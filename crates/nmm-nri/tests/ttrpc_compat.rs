//! Wire compatibility with the `ttrpc` crate (containerd's Rust ttrpc): frame headers,
//! request and response envelopes byte for byte, its frame codec reading ours and
//! ours reading its, and a real ttrpc client and server talking to our plugin through
//! NRI's multiplexer.

use ::ttrpc::proto::{Codec, GenMessage, GenMessageError, MessageHeader};
use futures::StreamExt;
use nmm_nri::mux::{encode_frame, MuxDecoder, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
use nmm_nri::pb::{nri as pb, ttrpc as wire};
use nmm_nri::ttrpc as tt;
use nmm_nri::*;
use proptest::prelude::*;
use prost::Message as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::*;

fn their_request(
    service: &str,
    method: &str,
    payload: &[u8],
    timeout: i64,
    md: &[(String, String)],
) -> ::ttrpc::Request {
    let mut r = ::ttrpc::Request::new();
    r.service = service.to_string();
    r.method = method.to_string();
    r.payload = payload.to_vec();
    r.timeout_nano = timeout;
    r.metadata = md
        .iter()
        .map(|(k, v)| {
            let mut kv = ::ttrpc::proto::KeyValue::new();
            kv.key = k.clone();
            kv.value = v.clone();
            kv
        })
        .collect();
    r
}

fn our_request(
    service: &str,
    method: &str,
    payload: &[u8],
    timeout: i64,
    md: &[(String, String)],
) -> wire::Request {
    wire::Request {
        service: service.into(),
        method: method.into(),
        payload: payload.to_vec(),
        timeout_nano: timeout,
        metadata: md
            .iter()
            .map(|(k, v)| wire::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    }
}

fn their_code(c: i32) -> ::ttrpc::Code {
    use ::ttrpc::Code as C;
    [
        C::OK,
        C::CANCELLED,
        C::UNKNOWN,
        C::INVALID_ARGUMENT,
        C::DEADLINE_EXCEEDED,
        C::NOT_FOUND,
        C::ALREADY_EXISTS,
        C::PERMISSION_DENIED,
        C::RESOURCE_EXHAUSTED,
        C::FAILED_PRECONDITION,
        C::ABORTED,
        C::OUT_OF_RANGE,
        C::UNIMPLEMENTED,
        C::INTERNAL,
        C::UNAVAILABLE,
        C::DATA_LOSS,
        C::UNAUTHENTICATED,
    ][c as usize]
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #[test]
    fn headers_are_byte_identical(length in any::<u32>(), sid in any::<u32>(), ty in any::<u8>(), fl in any::<u8>()) {
        let ours = tt::FrameHeader { length, stream_id: sid, msg_type: ty, flags: fl }.encode();
        let theirs: Vec<u8> = MessageHeader { length, stream_id: sid, type_: ty, flags: fl }.into();
        prop_assert_eq!(&ours[..], &theirs[..]);
        let back = MessageHeader::from(&ours);
        prop_assert_eq!((back.length, back.stream_id, back.type_, back.flags), (length, sid, ty, fl));
    }

    #[test]
    fn request_envelopes_are_byte_identical(
        service in "[a-zA-Z.]{0,40}",
        method in "[a-zA-Z]{0,20}",
        payload in prop::collection::vec(any::<u8>(), 0..300),
        timeout in any::<i64>(),
        md in prop::collection::vec(("[a-z-]{0,8}", "[ -~]{0,12}"), 0..3),
    ) {
        let ours = our_request(&service, &method, &payload, timeout, &md).encode_to_vec();
        let theirs = their_request(&service, &method, &payload, timeout, &md).encode().unwrap();
        prop_assert_eq!(&ours, &theirs);
        let decoded = wire::Request::decode(&theirs[..]).unwrap();
        prop_assert_eq!(decoded, our_request(&service, &method, &payload, timeout, &md));
        let decoded = ::ttrpc::Request::decode(&ours).unwrap();
        prop_assert_eq!(decoded, their_request(&service, &method, &payload, timeout, &md));
    }

    #[test]
    fn response_envelopes_are_byte_identical(
        code in 0i32..17,
        msg in "[ -~]{0,60}",
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let result = if code == 0 { Ok(payload.clone()) } else { Err(tt::Status::new(code, msg.clone())) };
        // Our full message = header + envelope; compare the envelope with theirs.
        let ours = tt::encode_response(7, &result).unwrap();
        let mut theirs = ::ttrpc::Response::new();
        let c = their_code(code);
        match &result {
            Ok(p) => { theirs.set_status(::ttrpc::get_status(c, "")); theirs.payload = p.clone(); }
            Err(st) => theirs.set_status(::ttrpc::get_status(c, &st.message)),
        }
        let theirs = theirs.encode().unwrap();
        prop_assert_eq!(&ours[tt::MESSAGE_HEADER_LENGTH..], &theirs[..]);
        let back = tt::response_result(wire::Response::decode(&theirs[..]).unwrap());
        prop_assert_eq!(back, result);
    }

    #[test]
    fn frame_codecs_agree(sid in any::<u32>(), ty in 1u8..4, fl in any::<u8>(), data in prop::collection::vec(any::<u8>(), 0..2000)) {
        let ours = tt::encode_message(sid, ty, fl, &data).unwrap();
        let theirs = rt().block_on(async {
            let mut h = MessageHeader::new_request(sid, data.len() as u32);
            h.type_ = ty;
            h.flags = fl;
            let m = GenMessage { header: h, payload: data.clone() };
            let mut out: Vec<u8> = vec![];
            m.write_to(&mut out).await.unwrap();
            out
        });
        prop_assert_eq!(&ours, &theirs);
        let read = rt().block_on(async { GenMessage::read_from(&ours[..]).await });
        let read = read.map_err(|e| format!("{e:?}")).unwrap();
        prop_assert_eq!(read.header.stream_id, sid);
        prop_assert_eq!(read.payload, data.clone());
        let mut dec = tt::MessageDecoder::new();
        dec.push(&theirs);
        prop_assert_eq!(dec.next_message(), Some(tt::Decoded::Message(
            tt::FrameHeader { length: data.len() as u32, stream_id: sid, msg_type: ty, flags: fl }, data)));
    }
}

#[test]
fn both_refuse_oversized_messages_alike() {
    let hdr = tt::FrameHeader {
        length: (tt::MESSAGE_LENGTH_MAX + 1) as u32,
        stream_id: 3,
        msg_type: tt::MESSAGE_TYPE_REQUEST,
        flags: 0,
    };
    let mut bytes = hdr.encode().to_vec();
    bytes.resize(tt::MESSAGE_HEADER_LENGTH + tt::MESSAGE_LENGTH_MAX + 1, 0);
    match rt().block_on(GenMessage::read_from(&bytes[..])) {
        Err(GenMessageError::ReturnError(h, _)) => assert_eq!(h.stream_id, 3),
        other => panic!("ttrpc accepted an oversized message: {other:?}"),
    }
    let mut dec = tt::MessageDecoder::new();
    dec.push(&bytes);
    assert_eq!(dec.next_message(), Some(tt::Decoded::Oversized(hdr)));
    assert!(dec.at_boundary());
    assert!(tt::encode_message(3, 1, 0, &vec![0; tt::MESSAGE_LENGTH_MAX + 1]).is_err());
}

/// The runtime's `Runtime.RegisterPlugin`, served by the ttrpc crate's server.
struct Register(Arc<Mutex<Vec<pb::RegisterPluginRequest>>>);

#[async_trait::async_trait]
impl ::ttrpc::r#async::MethodHandler for Register {
    async fn handler(
        &self,
        _ctx: ::ttrpc::r#async::TtrpcContext,
        req: ::ttrpc::Request,
    ) -> ::ttrpc::Result<::ttrpc::Response> {
        let r = pb::RegisterPluginRequest::decode(&req.payload[..])
            .map_err(|e| ::ttrpc::Error::Others(e.to_string()))?;
        self.0.lock().unwrap().push(r);
        let mut resp = ::ttrpc::Response::new();
        resp.set_status(::ttrpc::get_status(::ttrpc::Code::OK, ""));
        resp.payload = pb::Empty {}.encode_to_vec();
        Ok(resp)
    }
}

/// Our plugin against the ttrpc crate's client (runtime → plugin calls) and server
/// (plugin → runtime calls), with a bridge doing NRI's multiplexing in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_interoperates_with_the_ttrpc_crate() {
    let env = env();
    let listener = tokio::net::UnixListener::bind(&env.path).unwrap();
    let rec = Arc::new(Recorder::default());
    let plugin = spawn_plugin(&env.path, rec.clone());
    let (trunk, _) = listener.accept().await.unwrap();
    let (mut trunk_rd, trunk_wr) = trunk.into_split();
    let trunk_wr = Arc::new(tokio::sync::Mutex::new(trunk_wr));

    let (client_io, bridge1) = tokio::io::duplex(1 << 20);
    let (server_io, bridge2) = tokio::io::duplex(1 << 20);
    let (b1_rd, mut b1_wr) = tokio::io::split(bridge1);
    let (b2_rd, mut b2_wr) = tokio::io::split(bridge2);

    // trunk -> per-conn byte streams
    tokio::spawn(async move {
        let mut dec = MuxDecoder::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match trunk_rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            dec.push(&buf[..n]);
            while let Ok(Some((conn, p))) = dec.next_frame() {
                let w = if conn == PLUGIN_SERVICE_CONN {
                    &mut b1_wr
                } else if conn == RUNTIME_SERVICE_CONN {
                    &mut b2_wr
                } else {
                    continue;
                };
                if w.write_all(&p).await.is_err() {
                    return;
                }
            }
        }
    });
    // per-conn byte streams -> trunk
    let halves: [(u32, Box<dyn tokio::io::AsyncRead + Send + Unpin>); 2] = [
        (PLUGIN_SERVICE_CONN, Box::new(b1_rd)),
        (RUNTIME_SERVICE_CONN, Box::new(b2_rd)),
    ];
    for (conn, mut rd) in halves {
        let wr = trunk_wr.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let f = encode_frame(conn, &buf[..n]).unwrap();
                if wr.lock().await.write_all(&f).await.is_err() {
                    return;
                }
            }
        });
    }

    let registered = Arc::new(Mutex::new(vec![]));
    let mut methods: HashMap<String, Box<dyn ::ttrpc::r#async::MethodHandler + Send + Sync>> =
        HashMap::new();
    methods.insert(
        "RegisterPlugin".into(),
        Box::new(Register(registered.clone())),
    );
    let mut services = HashMap::new();
    services.insert(
        RUNTIME_SERVICE.to_string(),
        ::ttrpc::r#async::Service {
            methods,
            streams: HashMap::new(),
        },
    );
    let listener = ::ttrpc::r#async::transport::Listener::new(
        futures::stream::once(async move { Ok::<_, std::io::Error>(server_io) })
            .chain(futures::stream::pending()),
    );
    let mut server = ::ttrpc::r#async::Server::new()
        .add_listener(listener)
        .register_service(services);
    server.start().await.unwrap();

    for _ in 0..100 {
        if !registered.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let reg = registered.lock().unwrap();
        assert_eq!(reg.len(), 1);
        assert_eq!(
            (reg[0].plugin_name.as_str(), reg[0].plugin_idx.as_str()),
            ("nmm", "10")
        );
    }

    let client = ::ttrpc::r#async::Client::new(::ttrpc::r#async::transport::Socket::new(client_io));
    let call = |method: &str, payload: Vec<u8>| {
        let req = their_request(PLUGIN_SERVICE, method, &payload, 2_000_000_000, &[]);
        let client = client.clone();
        async move { client.request(req).await }
    };

    let cfg = pb::ConfigureRequest {
        runtime_name: "ttrpc-rust".into(),
        request_timeout: 2000,
        ..Default::default()
    };
    let resp = call("Configure", cfg.encode_to_vec()).await.unwrap();
    assert_eq!(
        pb::ConfigureResponse::decode(&resp.payload[..])
            .unwrap()
            .events,
        EVENT_MASK
    );

    let sync = pb::SynchronizeRequest {
        pods: vec![],
        containers: vec![],
        more: false,
    };
    let resp = call("Synchronize", sync.encode_to_vec()).await.unwrap();
    assert!(
        !pb::SynchronizeResponse::decode(&resp.payload[..])
            .unwrap()
            .more
    );

    let (p, c) = guaranteed("db", "bbbbbbbb-0000-0000-0000-000000000002", 2);
    let req = pb::CreateContainerRequest {
        pod: Some((&p).into()),
        container: Some((&c).into()),
    };
    let resp = call("CreateContainer", req.encode_to_vec()).await.unwrap();
    let adj = convert::adjustment_from_pb(
        &pb::CreateContainerResponse::decode(&resp.payload[..]).unwrap(),
    );
    assert_eq!(
        (adj.cpuset_cpus.as_deref(), adj.cpuset_mems.as_deref()),
        (Some("2-3"), Some("0"))
    );

    let mut bad = c.clone();
    bad.annotations.insert("test/reject".into(), "1".into());
    let req = pb::CreateContainerRequest {
        pod: Some((&p).into()),
        container: Some((&bad).into()),
    };
    match call("CreateContainer", req.encode_to_vec()).await {
        Err(::ttrpc::Error::RpcStatus(st)) => {
            assert_eq!(st.code(), ::ttrpc::Code::UNKNOWN);
            assert_eq!(
                st.message(),
                "TopologyAffinityError: Resources cannot be allocated with Topology locality"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    match call("NoSuchMethod", vec![]).await {
        Err(::ttrpc::Error::RpcStatus(st)) => assert_eq!(st.code(), ::ttrpc::Code::UNIMPLEMENTED),
        other => panic!("expected Unimplemented, got {other:?}"),
    }

    drop(client);
    server.shutdown().await.ok();
    trunk_wr.lock().await.shutdown().await.ok();
    let _ = join(plugin).await;
    assert_eq!(
        rec.events()[..3],
        [
            "configure ttrpc-rust",
            "synchronize 0 0",
            "create_container db/app"
        ]
    );
}
