//! Compiles the protos with tonic's codegen, using the protoc that
//! `protoc-bin-vendored` ships so a fresh machine needs no system `protoc`,
//! and writes their descriptor set for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTOS: [&str; 3] = [
        "proto/message.proto",
        "proto/admin.proto",
        "proto/batch.proto",
    ];
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("descriptors.bin"))
        .compile_with_config(config, &PROTOS, &["proto"])?;
    Ok(())
}
