//! Compiles `proto/podresources_v1.proto` (the kubelet's PodResources v1 API, served) and
//! `proto/cri_runtime_v1.proto` (a subset of the CRI runtime API, as a client, and as a
//! fake server for tests) with protox (a pure-Rust protobuf compiler: no `protoc` binary
//! needed) and generates the tonic servers and clients.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/podresources_v1.proto");
    println!("cargo:rerun-if-changed=proto/cri_runtime_v1.proto");
    let fds = protox::compile(["podresources_v1.proto", "cri_runtime_v1.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
