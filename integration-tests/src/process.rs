//! A child process under test: its own directory and log file, killed on drop, and its log
//! printed when the test that owns it is failing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A running (or stopped) child process.
pub struct Proc {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Proc {
    /// Starts `program args…` in a fresh temp dir; stdout and stderr go to `<dir>/log`.
    pub fn start(name: &str, program: &Path, args: &[String]) -> Proc {
        let dir = tempfile::Builder::new()
            .prefix(&format!("warden-{name}-"))
            .tempdir()
            .expect("creating a temp dir");
        let mut p = Proc {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            dir,
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the log file");
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    /// The process's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its combined stdout/stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal (SIGTERM, SIGKILL, SIGSTOP, SIGCONT …).
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit on its own, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = crate::wait::until(&format!("{} to exit", self.name), timeout, || match child
            .try_wait()
        {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err("still running"),
            Err(_) => Err("wait failed"),
        });
        self.child = None;
        Some(status)
    }

    /// Starts it again with the same arguments, directory and log.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(50).collect();
            eprintln!(
                "----- last log lines of {} ({}) -----",
                self.name,
                self.log_path().display()
            );
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
