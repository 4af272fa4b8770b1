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

/// Writes a file with mode 0600 (a map file must not grant more than the handle's mode).
pub fn write_private(path: &str, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
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

/// Small deterministic PRNG (xorshift64*) for reproducible test traces.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A clock the test sets by hand (ms, starting at `start_ms`): the handle to set it, and `o`
/// reading it.
pub fn manual_clock(
    o: shmap::Options,
    start_ms: u64,
) -> (std::sync::Arc<std::sync::atomic::AtomicU64>, shmap::Options) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let now = std::sync::Arc::new(AtomicU64::new(start_ms));
    let n2 = now.clone();
    (
        now,
        o.clock(std::sync::Arc::new(move || n2.load(Ordering::Relaxed))),
    )
}

/// The inspector `shmap-inspect` uses, on the map at `path`, reading expiries as of now.
#[allow(dead_code)]
pub fn inspector(path: &str) -> shmap::inspect::Inspector {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    shmap::inspect::Inspector::open(Path::new(path), now).unwrap()
}

/// What the core's verification walk (the one `shmap-inspect --verify` runs) finds wrong with
/// the map at `path`, read as of now.
#[allow(dead_code)]
pub fn verify_problems(path: &str) -> Vec<shmap::inspect::Problem> {
    inspector(path).verify().unwrap().problems
}
