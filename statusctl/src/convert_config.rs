//! `convert-config PATH.ini`: the C++ StatusServer's INI file as the equivalent TOML config,
//! commented, on stdout (docs/contract.md §8). Talks to no server.
//!
//! The file is read by status-server's own code (`status_server::config::ini`), so it
//! converts exactly when the server would start with it, a bad one fails with the line the
//! server would print, and the output parses back to the settings the server would run with.
//!
//! The Redis password is left out of the output unless `--keep-password`: the output is
//! meant to be saved as a file, and the server takes the password from `STATUS_REDIS_URL`
//! just as well. A note on stderr says so, since stdout usually goes to a file unread.

use std::path::Path;

use status_server::config::ini::{self, PasswordInToml};

use crate::failure::Failure;
use crate::output;

pub fn run(path: &Path, keep_password: bool) -> Result<(), Failure> {
    let config = ini::read_file(path).map_err(|e| Failure::BadFile(e.to_string()))?;
    let password = if keep_password {
        PasswordInToml::Keep
    } else {
        PasswordInToml::LeaveOut
    };
    output::emit(&config.to_toml(password));
    if config.has_redis_password() && password == PasswordInToml::LeaveOut {
        eprintln!(
            "statusctl: note: [Redis] Passwd is not in the output; give it to status-server \
             as STATUS_REDIS_URL (see the comment under [redis]), or convert with --keep-password"
        );
    }
    Ok(())
}
