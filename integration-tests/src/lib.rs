//! The multi-process test harness.
//!
//! - [`ha`]: a group of data nodes and warden-sentinel supervisors.
//! - [`ports`]: loopback ports that are free and never handed out twice in one test process.
//! - [`process`]: a child process with its own temp dir and log file; killed on drop, and its
//!   log tail printed when the test is failing.
//! - [`nodes`]: warden-node or redis-server processes with a small client.
//! - [`proxy`]: a TCP link a test can cut and heal.
//! - [`raw`]: a raw connection that asserts on exact reply bytes.
//! - [`wait`]: polling with a deadline that reports the last state seen.

pub mod ha;
pub mod nodes;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod wait;

/// Where the workspace's binaries are: next to the test executable's `deps/` directory, unless
/// `WARDEN_BIN_DIR` says otherwise.
pub fn bin_dir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("WARDEN_BIN_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let deps = exe.parent().expect("test binaries live in target/<profile>/deps");
    deps.parent().expect("deps has a parent").to_path_buf()
}
