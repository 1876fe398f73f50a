//! Compiles `proto/podresources_v1.proto` with protox (a pure-Rust protobuf compiler: no
//! `protoc` binary needed) and generates the tonic server and client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/podresources_v1.proto");
    let fds = protox::compile(["podresources_v1.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
