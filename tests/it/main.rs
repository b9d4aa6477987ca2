//! The integration tests: one binary, one module per area. Each test starts
//! its own `redis-server` on a free port and, in most areas, status-server
//! in-process on port 0 (`testkit::TestServer`); `process` and the tests
//! that read log lines, send signals or check exit codes run the binary
//! (`testkit::ServerProcess`).

mod balancing;
mod batch;
mod cluster;
mod compression;
mod config_properties;
mod faults;
mod get_chat_server;
mod hostile_input;
mod http_api;
mod ini_config;
mod limits;
mod load_hash;
mod login;
mod operability;
mod process;
mod redis_acl;
mod redis_tls;
mod reload;
mod sentinel;
mod several_instances;
mod tls;
mod wire;
