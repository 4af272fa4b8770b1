//! Helpers shared by the integration tests: temporary map locations and child processes that
//! are this test binary re-executed in a role chosen by an environment variable.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// A fresh directory in /dev/shm (tmpfs), removed on drop.
pub fn shm_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shmap-test")
        .tempdir_in("/dev/shm")
        .expect("tempdir in /dev/shm")
}

/// A fresh directory on disk (under the target dir), removed on drop.
pub fn disk_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shmap-test")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir on disk")
}

/// The path of a map named `name` in `dir`, as a string.
pub fn map_path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

/// Runs the test named `test` of this binary as a child process with `SHMAP_CHILD=role` and
/// the given extra environment; returns its output.
pub fn run_child(test: &str, role: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = child_command(test, role, env);
    cmd.output().expect("run child")
}

/// The command that re-executes this test binary as a child in `role`.
pub fn child_command(test: &str, role: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("SHMAP_CHILD", role)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The role this process plays, if it is a child.
pub fn child_role() -> Option<String> {
    std::env::var("SHMAP_CHILD").ok()
}

/// Asserts that a child succeeded, showing its output otherwise.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "child failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
