//! Compiles the protos with tonic's codegen, using the protoc that
//! `protoc-bin-vendored` ships so a fresh machine needs no system `protoc`,
//! and writes their descriptor sets for gRPC server reflection: one for the
//! public port (`message`, `statusbatch.v1`) and one for the Admin port
//! (`statusadmin.v1`), so that reflection on `listen` does not describe the Admin API
//! (docs/contract.md §6). admin.proto imports nothing, so it compiles on its own.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PUBLIC: [&str; 2] = ["proto/message.proto", "proto/batch.proto"];
    const ADMIN: [&str; 1] = ["proto/admin.proto"];
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    for (protos, descriptors) in [
        (&PUBLIC[..], "public_descriptors.bin"),
        (&ADMIN[..], "admin_descriptors.bin"),
    ] {
        for proto in protos {
            println!("cargo:rerun-if-changed={proto}");
        }
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
        tonic_prost_build::configure()
            .file_descriptor_set_path(out_dir.join(descriptors))
            .compile_with_config(config, protos, &["proto"])?;
    }
    Ok(())
}
