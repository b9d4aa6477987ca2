//! Reading the config file, bounded: only a regular file, at most [`MAX_CONFIG_BYTES`], and on
//! a reload off the async threads within [`READ_DEADLINE`].
//!
//! A reload runs while the server serves. A config path that is a FIFO (its `open` waits for a
//! writer), a device such as `/dev/zero` (endless) or a file on a hung file system must not
//! freeze the thread that runs the actors and the accept loops, nor grow memory without end:
//! the file is refused or the read given up, and the running config stays.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, Settings};
use crate::off_thread::read_off_thread;

/// The largest config file read; real ones are a few KiB, even with hundreds of chat servers.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// How long a reload waits for the file to be read and parsed.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);

/// The config file's text: a regular file of at most [`MAX_CONFIG_BYTES`], valid UTF-8.
pub(super) fn read_text(path: &Path) -> Result<String, ConfigError> {
    let cannot_read =
        |e: std::io::Error| ConfigError::outside_contents(path, format!("cannot read: {e}"));
    // Checked before opening: opening a FIFO for reading blocks until a writer comes.
    let metadata = std::fs::metadata(path).map_err(cannot_read)?;
    check_regular(path, &metadata)?;
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    // Again on what was opened, in case the path was swapped in between.
    check_regular(path, &file.metadata().map_err(cannot_read)?)?;
    let mut bytes = Vec::new();
    // One byte past the cap tells a file at the cap from a longer one (it may grow meanwhile).
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(path));
    }
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::outside_contents(
            path,
            format!("cannot read: stream did not contain valid UTF-8 ({e})"),
        )
    })
}

fn check_regular(path: &Path, metadata: &std::fs::Metadata) -> Result<(), ConfigError> {
    if !metadata.is_file() {
        return Err(ConfigError::outside_contents(
            path,
            "cannot read: not a regular file",
        ));
    }
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(too_large(path));
    }
    Ok(())
}

fn too_large(path: &Path) -> ConfigError {
    ConfigError::outside_contents(path, "cannot read: larger than 1 MiB")
}

impl Settings {
    /// [`Settings::load`] on a thread of its own, given up after [`READ_DEADLINE`]: what a
    /// reload uses, so that a slow file never holds the async threads (see
    /// `crate::off_thread`).
    pub async fn load_off_thread(path: PathBuf) -> Result<Settings, ConfigError> {
        let shown = path.clone();
        read_off_thread("config reader", READ_DEADLINE, move || {
            Settings::load(&path)
        })
        .await
        .unwrap_or_else(|failure| Err(ConfigError::outside_contents(&shown, failure.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_not_a_regular_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let err = read_text(dir.path()).expect_err("a directory is refused");
        assert!(
            err.to_string()
                .ends_with(": cannot read: not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn a_device_is_not_a_regular_file() {
        let err = read_text(Path::new("/dev/zero")).expect_err("a device is refused");
        assert_eq!(
            err.to_string(),
            "/dev/zero: cannot read: not a regular file"
        );
    }

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_the_cap_is_read() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("big.toml");
        let at_cap = "#".repeat(usize::try_from(MAX_CONFIG_BYTES).expect("1 MiB fits a usize"));
        std::fs::write(&path, &at_cap).expect("writing the file");
        assert_eq!(read_text(&path).expect("at the cap").len(), at_cap.len());
        std::fs::write(&path, format!("{at_cap}\n")).expect("writing the file");
        let err = read_text(&path).expect_err("over the cap");
        assert!(
            err.to_string()
                .ends_with(": cannot read: larger than 1 MiB"),
            "{err}"
        );
    }
}
