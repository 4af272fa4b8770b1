//! Guards kill-safety at every named instruction: for each failpoint in
//! `shmap::failpoints::ALL`, a child process (this binary re-executed) aborts exactly there in
//! the middle of a workload, while the parent is attached to the same map; the parent must then
//! write promptly (the dead writer's lock is taken over and the map recovered, bounded by the
//! lock timeout) and the verification walk `shmap-inspect --verify` uses must find nothing wrong.
//! Also: a recovery that fails leaves the duty to recover to the next writer.
//!
//! `harness = false`, built only with `--features failpoints` (the points are compiled out
//! otherwise). Random SIGKILL (tests/crash.rs) finds the wide windows; this finds the narrow ones.

use std::process::Command;
use std::time::{Duration, Instant};

use shmap::inspect::Inspector;
use shmap::{Options, SetOptions, Shmap};

mod common;

/// Points reached only while recovering from a dead writer: the child first needs one.
const NEED_DEAD_WRITER: &[&str] = &[
    "lock_writer::between_recovery_flag_and_takeover",
    "recover::start",
    "recover::between_building_and_recount",
    "recount::between_counters",
];
/// The point a first child dies at to leave a dead writer (lock held, counters stale).
const DEAD_WRITER_AT: &str = "put::between_publish_and_counters";

fn opts() -> Options {
    Options::new()
        .initial_size(64 << 10)
        .max_size(64 << 20)
        .retire_grace(Duration::from_millis(20))
        .lock_timeout(Duration::from_secs(5))
}

fn value(i: u64, round: u64) -> Vec<u8> {
    let len = ((i * 37 + round * 11) % 700 + 1) as usize;
    vec![(i % 251) as u8; len]
}

/// Exercises every path with a multi-step update: open (claim), growth and index switches,
/// overwrites (live_bytes), new keys, removes, cleaning that moves records and reclaims expired
/// ones, counters, leases, maintenance after the grace period, compact, clear, eviction at the
/// cap, and the detach (release).
fn workload(path: &str) {
    let map = Shmap::open(path, &opts()).unwrap();
    for round in 0..3u64 {
        for i in 0..600 {
            map.set(format!("k{i}").as_bytes(), &value(i, round))
                .unwrap();
        }
        for i in (0..600).step_by(3) {
            map.remove(format!("k{i}").as_bytes()).unwrap();
        }
        for i in 0..50 {
            let o = SetOptions {
                ttl_ms: Some(1),
                flags: 0,
            };
            map.set_with(format!("t{i}").as_bytes(), b"short-lived", o)
                .unwrap();
            map.incr(b"counter", 1, 0, None).unwrap();
        }
        if let shmap::LeaseState::Acquired(token) = map.lease(b"lease", 1000).unwrap() {
            map.release_lease(b"lease", token).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(30));
    map.flush().unwrap();
    map.compact().unwrap();
    map.clear().unwrap();
    // Cold keys written once, then hot keys rewritten many times: the ring fills with dead
    // records and cleaning moves the cold live ones it meets at the tail.
    for i in 0..10u64 {
        map.set(format!("cold{i}").as_bytes(), &value(i, 5))
            .unwrap();
    }
    for n in 0..2000u64 {
        map.set(format!("hot{}", n % 20).as_bytes(), &value(n, 3))
            .unwrap();
    }
    map.set_max_size(256 << 10).unwrap();
    map.set_evict(true).unwrap();
    for i in 0..3000u64 {
        map.set(format!("e{i}").as_bytes(), &value(i, 7)).unwrap();
    }
    drop(map);
}

fn child(path: &str, point: &str) -> std::process::ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .env("SHMAP_FP_CHILD", point)
        .env("SHMAP_FP_PATH", path)
        .status()
        .unwrap()
}

fn aborted(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGABRT)
}

/// After a child died: the parent writes within the bound, reads back, and the map verifies.
fn check_after_crash(map: &Shmap, path: &str, point: &str) {
    let t = Instant::now();
    map.set(b"after-crash", point.as_bytes())
        .unwrap_or_else(|e| panic!("{point}: write after the crash failed: {e}"));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "{point}: the write after the crash hung for {:?}",
        t.elapsed()
    );
    assert_eq!(
        map.get(b"after-crash").unwrap().as_deref(),
        Some(point.as_bytes())
    );
    // Counters agree with the index once a writer has recovered.
    let n = map.keys().unwrap().len() as u64;
    let s = map.stats().unwrap();
    assert!(
        s.entries >= n,
        "{point}: entries counter {} below the {n} keys",
        s.entries
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let v = Inspector::open(std::path::Path::new(path), now)
        .unwrap()
        .verify()
        .unwrap();
    assert!(
        v.problems.is_empty(),
        "{point}: verification found {:?}",
        v.problems
    );
}

fn crash_at(point: &str) {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp");
    let map = Shmap::open(&path, &opts()).unwrap();
    if NEED_DEAD_WRITER.contains(&point) {
        assert!(
            aborted(child(&path, DEAD_WRITER_AT)),
            "{point}: the first child did not die at {DEAD_WRITER_AT}"
        );
    }
    let status = child(&path, point);
    assert!(
        aborted(status),
        "failpoint {point} was never reached by the workload (child exited {status:?})"
    );
    check_after_crash(&map, &path, point);
}

/// A recovery that fails (injected) must leave the duty to recover: the next writer recovers,
/// so the counters the dead writer left stale are recomputed.
fn failed_recovery_is_retried() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-recovery");
    let map = Shmap::open(&path, &opts()).unwrap();
    assert!(aborted(child(&path, DEAD_WRITER_AT)));
    fail::cfg("recover::start", "1*return").unwrap();
    let first = map.set(b"x", b"1");
    fail::remove("recover::start");
    assert!(
        first.is_err(),
        "the injected recovery failure did not fail the write"
    );
    map.set(b"x", b"1").unwrap();
    let keys = map.keys().unwrap().len() as u64;
    assert_eq!(
        map.stats().unwrap().entries,
        keys,
        "the second writer did not recover: the dead writer's stale counter survived"
    );
    check_after_crash(&map, &path, "recover::start (returned an error)");
}

/// A writer that holds the lock and does not move (as if stopped): another process's write
/// fails with `LockTimeout` after the timeout, naming the holder's pid and how long it has held
/// the lock, leaves no trace (no pending starving deadline), and takes nothing from the live
/// holder; once the holder is gone, the write goes through.
fn a_live_holder_times_waiters_out() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-hold");
    let map = Shmap::open(&path, &opts().lock_timeout(Duration::from_millis(300))).unwrap();
    let marker = dir.path().join("holding");
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .env("SHMAP_FP_HOLD", &marker)
        .env("SHMAP_FP_PATH", &path)
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !marker.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the holder never took the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    match map.set(b"blocked", b"1") {
        Err(e @ shmap::Error::LockTimeout { .. }) => {
            assert_eq!(e.code(), "ERR_SHMAP_LOCK_TIMEOUT");
            let msg = e.to_string();
            assert!(msg.contains(&format!("pid {}", holder.id())), "{msg}");
            assert!(msg.contains("held by"), "{msg}");
        }
        other => panic!("expected a lock timeout, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    // No trace: the starving deadline was withdrawn, and the holder still holds its lock.
    let c = std::fs::read(&path).unwrap();
    let at = shmap::format::CONTROL_OFF as usize;
    let ctl =
        <shmap::format::Control as zerocopy::FromBytes>::read_from_bytes(&c[at..at + 256]).unwrap();
    assert_eq!(
        ctl.starving_until_ms, 0,
        "a timed-out waiter left its deadline"
    );
    assert_ne!(
        ctl.writer_lock, 0,
        "the lock was taken from its live holder"
    );
    assert_eq!(
        map.get(b"blocked").unwrap(),
        None,
        "the timed-out write happened"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    map.set(b"blocked", b"1").unwrap();
    check_after_crash(&map, &path, "a live holder");
}

fn main() {
    if let Ok(marker) = std::env::var("SHMAP_FP_HOLD") {
        // Takes the writer lock and keeps it, as a stopped writer would.
        let path = std::env::var("SHMAP_FP_PATH").unwrap();
        fail::cfg_callback("put::between_publish_and_counters", move || {
            std::fs::write(&marker, b"").unwrap();
            std::thread::sleep(Duration::from_secs(600));
        })
        .unwrap();
        let map = Shmap::open(&path, &opts()).unwrap();
        map.set(b"held", b"1").unwrap();
        std::process::exit(4);
    }
    if let Ok(point) = std::env::var("SHMAP_FP_CHILD") {
        let path = std::env::var("SHMAP_FP_PATH").unwrap();
        fail::cfg_callback(point, || {
            std::process::abort();
        })
        .unwrap();
        workload(&path);
        // Reaching here means the point was never hit.
        std::process::exit(3);
    }
    let started = Instant::now();
    let mut n = 0;
    for point in shmap::failpoints::ALL {
        let t = Instant::now();
        crash_at(point);
        n += 1;
        println!("failpoint {point}: ok ({:.1}s)", t.elapsed().as_secs_f64());
    }
    failed_recovery_is_retried();
    n += 1;
    println!("failed recovery is retried: ok");
    a_live_holder_times_waiters_out();
    n += 1;
    println!("a live holder times waiters out: ok");
    println!(
        "{n} passed, 0 failed ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
}
