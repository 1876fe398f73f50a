//! Compiles the NRI and ttrpc protobuf subsets with protox (a pure-Rust protobuf
//! compiler), so no `protoc` binary is needed, then generates prost types from the
//! descriptors.

fn main() {
    let protos = ["proto/nri_api.proto", "proto/ttrpc.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = match protox::compile(protos, ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("protox: {e}"),
    };
    let mut cfg = prost_build::Config::new();
    cfg.btree_map(["."]);
    if let Err(e) = cfg.compile_fds(fds) {
        panic!("prost-build: {e}");
    }
}
