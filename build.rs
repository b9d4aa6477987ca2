//! Compiles `proto/message.proto` with tonic's codegen, using the protoc that
//! `protoc-bin-vendored` ships so a fresh machine needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/message.proto");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/message.proto"],
        &["proto"],
    )?;
    Ok(())
}
