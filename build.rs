//! Compiles `proto/*.proto` without a system `protoc`: protox parses them into a
//! file-descriptor set, tonic-prost-build generates the Rust code from it.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let protos = ["proto/raft.proto", "proto/admin.proto"];
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptors.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .type_attribute(".goscheduler.admin", "#[derive(serde::Serialize)]")
        .compile_fds(fds)?;
    Ok(())
}
