//! Guards "no process can freeze the others": real processes stopped with SIGSTOP at random
//! moments. A stopped writer delays other writers at most by the lock timeout (then
//! `LockTimeout`, nothing changed), and after SIGCONT every acknowledged write is present and
//! the map verifies; a process stopped while scanning a large map, or while waiting for another
//! process's lease (`getOrSet`), delays nobody's writes at all.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use shmap::{Error, LeaseState, Options, Shmap};

/// Generous bound that only detects a hang (assertions are about outcomes).
const HANG: Duration = Duration::from_secs(8);

fn opts(timeout_ms: u64) -> Options {
    Options::new()
        .initial_size(1 << 20)
        .max_size(512 << 20)
        .lock_timeout(Duration::from_millis(timeout_ms))
}

fn orphaned(parent: u32) -> bool {
    std::os::unix::process::parent_id() != parent
}

fn parent_pid() -> u32 {
    std::env::var("SHMAP_PARENT").unwrap().parse().unwrap()
}

/// Child roles: `setloop` (sets and prints an ack after each), `scanner` (keys/entries in a
/// loop), `leasewaiter` (waits for a lease held by the parent, polling lock-free).
#[test]
fn child() {
    let Some(role) = child_role() else { return };
    let path = std::env::var("SHMAP_PATH").unwrap();
    let parent = parent_pid();
    let map = Shmap::open(&path, &opts(2000)).unwrap();
    let out = std::io::stdout();
    match role.as_str() {
        "setloop" => {
            for i in 0u64.. {
                if orphaned(parent) {
                    return;
                }
                let key = format!("c{i}");
                match map.set(key.as_bytes(), format!("v{i}").repeat(8).as_bytes()) {
                    Ok(()) => {
                        use std::io::Write;
                        let mut o = out.lock();
                        writeln!(o, "ack {i}").unwrap();
                        o.flush().unwrap();
                    }
                    Err(Error::LockTimeout { .. }) => {}
                    Err(e) => panic!("child set: {e}"),
                }
            }
        }
        "scanner" => {
            for n in 0u64.. {
                if orphaned(parent) {
                    return;
                }
                let count = if n % 2 == 0 {
                    map.keys().unwrap().len()
                } else {
                    map.entries().unwrap().len()
                };
                use std::io::Write;
                let mut o = out.lock();
                writeln!(o, "scan {count}").unwrap();
                o.flush().unwrap();
            }
        }
        "leasewaiter" => {
            let mut said = false;
            loop {
                if orphaned(parent) {
                    return;
                }
                match map.lease(b"slow", 60_000).unwrap() {
                    LeaseState::Wait => {}
                    other => panic!("the parent holds the lease, yet {other:?}"),
                }
                if !said {
                    use std::io::Write;
                    let mut o = out.lock();
                    writeln!(o, "waiting").unwrap();
                    o.flush().unwrap();
                    said = true;
                }
                // What getOrSet does between lease requests: poll without any lock.
                while map.lease_held(b"slow").unwrap() {
                    if orphaned(parent) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// A child, and the lines it printed so far (read by a thread so its pipe never fills).
struct Kid {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicU64>,
}

impl Kid {
    fn spawn(role: &str, path: &str) -> Kid {
        let me = std::process::id().to_string();
        let mut cmd = child_command(
            "child",
            role,
            &[("SHMAP_PATH", path), ("SHMAP_PARENT", me.as_str())],
        );
        cmd.stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicU64::new(0));
        let (l, c) = (lines.clone(), count.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints "test child ... " without a newline before the child's output.
                let line = line.rsplit("... ").next().unwrap_or_default().to_string();
                if line.starts_with("ack ") || line.starts_with("scan ") || line == "waiting" {
                    l.lock().unwrap().push(line);
                    c.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Kid {
            child,
            lines,
            count,
        }
    }

    /// Waits until the child printed `n` more lines.
    fn progress(&self, n: u64) {
        self.printed(self.count.load(Ordering::SeqCst) + n);
    }

    /// Waits until the child printed `target` lines in all.
    fn printed(&self, target: u64) {
        let t = Instant::now();
        while self.count.load(Ordering::SeqCst) < target {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the child made no progress"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let rc = std::process::Command::new("kill")
            .arg(format!("-{}", signal_name(sig)))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(rc.success());
    }

    fn finish(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        self.lines.lock().unwrap().clone()
    }
}

fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGSTOP => "STOP",
        libc::SIGCONT => "CONT",
        _ => panic!("signal {sig}"),
    }
}

fn verify(path: &str) {
    let problems = verify_problems(path);
    assert!(problems.is_empty(), "verification: {problems:?}");
}

/// Times one write; returns whether it succeeded (a timeout is the only accepted failure).
fn timed_set(map: &Shmap, key: &str) -> bool {
    let t = Instant::now();
    let r = map.set(key.as_bytes(), b"parent");
    assert!(t.elapsed() < HANG, "a set hung for {:?}", t.elapsed());
    match r {
        Ok(()) => true,
        Err(e @ Error::LockTimeout { .. }) => {
            assert_eq!(e.code(), "ERR_SHMAP_LOCK_TIMEOUT");
            let msg = e.to_string();
            assert!(msg.contains("pid"), "the message names no holder: {msg}");
            false
        }
        Err(e) => panic!("set failed with {e}"),
    }
}

#[test]
fn a_stopped_writer_delays_others_at_most_the_lock_timeout() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let path = map_path(dir.path(), "stall-writer");
    let map = Shmap::open(&path, &opts(500)).unwrap();
    let kid = Kid::spawn("setloop", &path);
    let mut rng = Rng(0x5709);
    let mut acked = Vec::new();
    let mut timeouts = 0;
    for round in 0..10 {
        kid.progress(20 + rng.next() % 200);
        kid.signal(libc::SIGSTOP);
        for j in 0..5 {
            let key = format!("p{round}-{j}");
            if timed_set(&map, &key) {
                acked.push(key);
            } else {
                timeouts += 1;
            }
        }
        kid.signal(libc::SIGCONT);
    }
    kid.progress(50);
    let lines = kid.finish();
    println!(
        "{} parent writes acknowledged, {timeouts} timed out; the child acknowledged {}",
        acked.len(),
        lines.len()
    );
    for key in &acked {
        assert_eq!(
            map.get(key.as_bytes()).unwrap().as_deref(),
            Some(&b"parent"[..])
        );
    }
    for line in lines {
        let i: u64 = line.strip_prefix("ack ").unwrap().parse().unwrap();
        let want = format!("v{i}").repeat(8);
        assert_eq!(
            map.get(format!("c{i}").as_bytes()).unwrap().as_deref(),
            Some(want.as_bytes()),
            "the child's acknowledged write c{i} is missing"
        );
    }
    // The killed child may have held the lock: the next write recovers, then the map verifies.
    assert!(timed_set(&map, "after"));
    verify(&path);
}

#[test]
fn a_stopped_scanner_delays_no_writes() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let path = map_path(dir.path(), "stall-scanner");
    let map = Shmap::open(&path, &opts(3000)).unwrap();
    for i in 0..200_000u32 {
        map.set(format!("big{i}").as_bytes(), &i.to_le_bytes())
            .unwrap();
    }
    let kid = Kid::spawn("scanner", &path);
    kid.printed(1);
    let mut rng = Rng(0x5CA7);
    for round in 0..8 {
        // Somewhere in the middle of a scan.
        std::thread::sleep(Duration::from_millis(rng.next() % 100));
        kid.signal(libc::SIGSTOP);
        for j in 0..20 {
            // Overwrites and new keys: appends, cleaning, growth.
            assert!(
                timed_set(&map, &format!("big{}", (round * 20 + j) * 997 % 200_000)),
                "a stopped scanner delayed a write past the lock timeout"
            );
            assert!(timed_set(&map, &format!("new{round}-{j}")));
        }
        kid.signal(libc::SIGCONT);
    }
    kid.progress(1);
    let lines = kid.finish();
    for line in &lines {
        let n: usize = line.strip_prefix("scan ").unwrap().parse().unwrap();
        assert!(
            n >= 200_000,
            "a scan missed entries present throughout: {n}"
        );
    }
    verify(&path);
}

#[test]
fn a_stopped_lease_waiter_delays_no_writes() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let path = map_path(dir.path(), "stall-lease");
    let map = Shmap::open(&path, &opts(3000)).unwrap();
    let LeaseState::Acquired(token) = map.lease(b"slow", 60_000).unwrap() else {
        panic!("no lease")
    };
    let kid = Kid::spawn("leasewaiter", &path);
    kid.printed(1);
    let mut rng = Rng(0x1EA5);
    for round in 0..8 {
        std::thread::sleep(Duration::from_millis(rng.next() % 30));
        kid.signal(libc::SIGSTOP);
        for j in 0..20 {
            assert!(
                timed_set(&map, &format!("w{round}-{j}")),
                "a stopped lease waiter delayed a write past the lock timeout"
            );
        }
        kid.signal(libc::SIGCONT);
    }
    assert!(map.release_lease(b"slow", token).unwrap());
    kid.finish();
    verify(&path);
}
