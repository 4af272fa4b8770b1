//! Guards kill-safety at every named instruction: for each failpoint in
//! `shmap::failpoints::ALL`, a child process (this binary re-executed) aborts exactly there in
//! the middle of a workload, while the parent is attached to the same map; the parent must then
//! write promptly (the dead writer's lock is taken over and the map recovered, bounded by the
//! lock timeout) and the verification walk `shmap-inspect --verify` uses must find nothing wrong.
//! Also: a recovery that fails leaves the duty to recover to the next writer.
//!
//! A writer stopped with a real SIGSTOP while it holds the writer lock (parked at a failpoint
//! inside its critical section, then stopped) times other processes' writes out naming its pid;
//! after SIGCONT its writes complete and the map verifies. A child forked while another thread
//! holds the process's attachment registry can still open maps.
//!
//! `harness = false`, built only with `--features failpoints` (the points are compiled out
//! otherwise). Random SIGKILL (tests/crash.rs) finds the wide windows; this finds the narrow ones.

#![allow(unsafe_code)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmap::{Compare, Condition, Options, SetOptions, Shmap};

mod common;

/// Points reached only while recovering from a dead writer: the child first needs one.
const NEED_DEAD_WRITER: &[&str] = &[
    "lock_writer::between_recovery_flag_and_takeover",
    "recover::start",
    "recover::between_building_and_recount",
    "recount::between_counters",
];
/// Points reached only by the last process to detach: the parent lets go of the map first.
const LAST_OUT: &[&str] = &["detach::final_sync"];
/// Points reached only by a process that opens the map alone after a writer died: a first
/// child dies holding a lock, then the parent lets go (marking the map clean), then the second
/// child opens alone and dies recovering. The parent, alone in its turn, must still recover.
const ALONE_AFTER_DEAD_WRITER: &[&str] = &[
    "recover_alone::between_duty_and_reset",
    "recover_alone::between_reset_and_recovery",
];
/// Points reached only by a process that adopts a dead process's lane: a first child dies
/// inside a fast write (its lane announced, its count short by the record).
const NEED_DEAD_FAST_WRITER: &[&str] = &["adopt::after_fold", "adopt::before_free"];
/// The point that first child dies at.
const DEAD_FAST_WRITER_AT: &str = "fast::between_slot_and_counters";
/// The point a first child dies at to leave a dead writer (lock held, counters stale).
const DEAD_WRITER_AT: &str = "put::between_publish_and_counters";

/// Shards of the maps the parent creates (children open the parent's map and keep its count).
static SHARDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn opts() -> Options {
    Options::new()
        .shards(SHARDS.load(Ordering::Relaxed))
        .initial_size(64 << 10)
        .max_size(64 << 20)
        .retire_grace(Duration::from_millis(20))
        .lock_timeout(Duration::from_secs(5))
}

fn value(i: u64, round: u64) -> Vec<u8> {
    let len = ((i * 37 + round * 11) % 700 + 1) as usize;
    vec![(i % 251) as u8; len]
}

/// [`value`] cut to at most `max` bytes (the index workload's small records).
fn short(i: u64, round: u64, max: usize) -> Vec<u8> {
    let mut v = value(i, round);
    v.truncate(max);
    v
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
        // Versioned writes: value (or its removal), then version stamp, then floor (the Redis
        // tier's fills and invalidations).
        for v in 0..20i64 {
            let c = Condition {
                version_key: b"v:versioned",
                // The first one without a floor (an absent floor refuses), later ones raise it.
                floor_key: (round + v as u64 > 0).then_some(&b"floor"[..]),
                version: (round as i64) * 100 + v,
                compare: Compare::Le,
                stamp: Some(Some(0)),
            };
            let value = (v % 3 != 0).then_some(&b"fill"[..]);
            map.set_if(b"versioned", value, SetOptions::default(), &c)
                .unwrap();
        }
        let batch: Vec<String> = (1..600).step_by(7).map(|i| format!("k{i}")).collect();
        map.remove_many(&batch).unwrap();
        if let shmap::LeaseState::Acquired(token) = map.lease(b"lease", 1000).unwrap() {
            map.release_lease(b"lease", token).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Incremental builds past their first 1 MiB step, with overwrites and removes of keys
    // the cursor has passed mirrored into them.
    for i in 0..BIG {
        map.set(format!("big{i}").as_bytes(), &value(i, 9)).unwrap();
        if i % 5 == 0 {
            map.set(format!("k{}", i % 600).as_bytes(), &value(i, 4))
                .unwrap();
            map.remove(format!("k{}", (i + 300) % 600).as_bytes())
                .unwrap();
        }
    }
    // Overwrites (fast writes into this process's chunks) of keys then left alone, while a few
    // hot keys churn: cleaning reaches chunks that still hold live records, enters and moves
    // them (a chunk of dead records only is passed whole).
    for round in [7, 8] {
        for i in 0..2000 {
            map.set(format!("kept{i}").as_bytes(), &value(i, round))
                .unwrap();
        }
    }
    for n in 0..30_000u64 {
        map.set(format!("churn{}", n % 20).as_bytes(), &value(n, 6))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(30));
    map.flush().unwrap();
    map.compact().unwrap();
    // A value too large for the ring grows it in one step (the switch that copies records;
    // compact builds behind the writes now, like growth).
    map.set(b"large", &vec![3u8; 2 << 20]).unwrap();
    map.remove(b"large").unwrap();
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

/// The map of the index-rebuild workload: created at its cap (no room for a second ring, so
/// its only builds are index rebuilds over the active ring).
fn index_opts() -> Options {
    Options::new()
        .initial_size(512 << 10)
        .max_size(512 << 10)
        .retire_grace(Duration::from_millis(20))
        .lock_timeout(Duration::from_secs(5))
}

/// Long-lived keys of the index-rebuild workload, then keys each new once and removed a
/// hundred writes later: tombstones fill the index, which is rebuilt behind the writes while
/// cleaning moves the long-lived records around the ring.
fn index_workload(path: &str) {
    let map = Shmap::open(path, &index_opts()).unwrap();
    for i in 0..STICKY {
        map.set(format!("sticky{i}").as_bytes(), &short(i, 2, 100))
            .unwrap();
    }
    for i in 0..40_000u64 {
        map.set(format!("n{i}").as_bytes(), &short(i, 6, 60))
            .unwrap();
        if i >= 100 {
            map.remove(format!("n{}", i - 100).as_bytes()).unwrap();
        }
        map.get(format!("sticky{}", i % STICKY).as_bytes()).unwrap();
    }
    drop(map);
}

const STICKY: u64 = 1500;

/// Points the index-rebuild workload reaches inside an index rebuild (its first builds are
/// index rebuilds).
const INDEX_POINTS: &[&str] = &[
    "build::started",
    "build::between_zero_and_cursor",
    "build::between_mirror_and_unlock",
    "build::between_copy_and_cursor",
    "build::before_publish",
];

/// Every point of an index rebuild killed: the long-lived keys all read back, and the map
/// verifies.
fn crash_in_index_rebuild(point: &str) {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-index");
    let map = Shmap::open(&path, &index_opts()).unwrap();
    let status = child_running(&path, point, "index");
    assert!(
        aborted(status),
        "failpoint {point} was never reached by the index workload (child exited {status:?})"
    );
    let s = map.stats().unwrap();
    check_after_crash(&map, &path, point);
    for i in 0..STICKY {
        assert_eq!(
            map.get(format!("sticky{i}").as_bytes()).unwrap(),
            Some(short(i, 2, 100)),
            "{point}: sticky{i} after the crash ({s:?})"
        );
    }
}

/// Keys of the workload's build phase.
const BIG: u64 = 10_000;

/// The build phase's acknowledged writes: its keys are present from 0 up to some last one (the
/// child wrote them in order and never removes them; `clear` removes all), each with its value.
fn check_big_keys(map: &Shmap, point: &str) {
    let mut last = None;
    for i in 0..BIG {
        if let Some(v) = map.get(format!("big{i}").as_bytes()).unwrap() {
            assert_eq!(v, value(i, 9), "{point}: big{i} holds a wrong value");
            assert_eq!(
                last.map_or(0, |l: u64| l + 1),
                i,
                "{point}: big{i} present after a missing one"
            );
            last = Some(i);
        }
    }
}

fn child(path: &str, point: &str) -> std::process::ExitStatus {
    child_running(path, point, "default")
}

/// The map of [`fast_workload`]: a ring large enough for chunks from the start.
fn fast_opts() -> Options {
    opts().initial_size(4 << 20)
}

/// Overwrites of keys already present: after the first locked overwrite claims a lane and a
/// chunk, the rest are fast writes (format.md, "Lanes and chunks"), with values that change
/// size so that a lost count shows.
fn fast_workload(path: &str) {
    let map = Shmap::open(path, &fast_opts()).unwrap();
    for round in 0..4u64 {
        for i in 0..200 {
            map.set(format!("f{i}").as_bytes(), &value(i, round))
                .unwrap();
        }
    }
    drop(map);
}

/// A map `name` in a new directory, opened with `o`, holding keys `f0`..`f199` (set under
/// the lock: this process claims no lane by inserting).
fn map_of_200_keys(name: &str, o: &Options) -> (tempfile::TempDir, String, Shmap) {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), name);
    let map = Shmap::open(&path, o).unwrap();
    for i in 0..200 {
        map.set(format!("f{i}").as_bytes(), &value(i, 9)).unwrap();
    }
    (dir, path, map)
}

/// A fast writer killed after its publication and before its lane's count: the lane is left
/// announced and its count short. The next write that needs the shard still (an `incr`)
/// adopts the lane and recounts, after which the counters verify exactly; until then the walk
/// reports them stale, not damaged.
fn a_dead_fast_writer_is_recounted_by_the_next_exclusive_write() {
    let (_dir, path, map) = map_of_200_keys("fast", &fast_opts());
    let status = child_running(&path, DEAD_FAST_WRITER_AT, "fast");
    assert!(
        aborted(status),
        "the child never died in a fast write: {status:?}"
    );
    let v = common::inspector(&path).verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(
        v.notes.iter().any(|n| n.what.contains("stale")),
        "a count the dead fast writer left short is a note: {:?}",
        v.notes
    );
    map.incr(b"counter", 1, 0, None).unwrap();
    let v = common::inspector(&path).verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(v.counters_checked);
    assert!(
        v.notes.iter().all(|n| !n.what.contains("stale")),
        "recounted: {:?}",
        v.notes
    );
    for i in 0..200 {
        assert!(map.get(format!("f{i}").as_bytes()).unwrap().is_some());
    }
}

/// An adopter killed inside its adoption of a dead fast writer's lane (after it folded the
/// lane's counts into the shard's, before it freed the lane), then the next adopter: the bytes
/// the dead writer's fast writes counted are counted once. Each adopter added the lane's
/// `written` to the shard's `bytes_written`, and a kill between that and clearing the lane had
/// the next add it again (`stats().bytes_written` grew by the lane's bytes; a recount restores
/// live bytes, not a cumulative count).
fn a_killed_adoption_counts_nothing_twice() {
    let (_dir, path, map) = map_of_200_keys("fp-adopt", &fast_opts());
    // Its first overwrite claims a lane under the lock; it dies in its 20th fast write.
    let status = child_at_pass(&path, DEAD_FAST_WRITER_AT, "fast", 20);
    assert!(aborted(status), "the first child never died: {status:?}");
    let before = map.stats().unwrap().bytes_written;
    let status = child_running(&path, "adopt::after_fold", "incr");
    assert!(
        aborted(status),
        "the second child never adopted: {status:?}"
    );
    assert_eq!(
        map.stats().unwrap().bytes_written,
        before,
        "an adoption cut short counted the lane's bytes twice"
    );
    map.incr(b"counter", 1, 0, None).unwrap();
    let after = map.stats().unwrap().bytes_written;
    // One record: the counter's.
    assert!(
        after > before && after - before < 64,
        "bytes_written grew by {} for one small record",
        after - before
    );
    assert!(common::verify_problems(&path).is_empty());
}

/// A locked overwrite that keeps losing its slot to fast writes of the same key (another
/// process publishing between its append and its compare-and-swap, here at every try): after a
/// few losses it closes the fast-write gate and drains the lanes, and completes. Before, it
/// gave up after 64 tries with a spurious `Full` (`ERR_SHMAP_FULL` in Node).
fn a_locked_overwrite_outlasts_fast_writers_of_its_key() {
    use std::io::Write;
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-race");
    let map = Shmap::open(&path, &fast_opts()).unwrap();
    // An insert: this process claims no lane, so its overwrite below takes the lock.
    map.set(b"k", b"first").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("SHMAP_FP_RACER", &path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reap = Reap(child.id());
    let (stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    assert_eq!(
        read_byte(&mut stdout, Duration::from_secs(10)),
        Some(b'r'),
        "the racer never got ready"
    );
    let pipes = Arc::new(std::sync::Mutex::new((stdin, stdout)));
    let won = Arc::new(AtomicU64::new(0));
    let (p, c) = (pipes.clone(), won.clone());
    fail::cfg_callback("put::between_append_and_publish", move || {
        // One fast write of the key by the racer, waited for (bounded: once the gate is
        // closed it takes the locked path, and waits for this write's lock).
        let mut g = p.lock().unwrap();
        g.0.write_all(b"g").unwrap();
        if read_byte(&mut g.1, Duration::from_secs(2)) == Some(b'd') {
            c.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap();
    let r = map.set(b"k", b"mine");
    fail::remove("put::between_append_and_publish");
    r.expect("the locked overwrite gave up");
    let won = won.load(Ordering::SeqCst);
    assert!(won >= 4, "the racer won {won} races: not a race");
    // The racer's pending write completes once the lock is free; then it sees end of input.
    drop(pipes.lock().unwrap().0.flush());
    drop(Arc::try_unwrap(pipes).ok().unwrap());
    let status = child.wait().unwrap();
    std::mem::forget(reap);
    assert_eq!(status.code(), Some(0), "the racer failed: {status:?}");
    assert!(common::verify_problems(&path).is_empty());
}

/// One byte from `r` within `timeout`, or `None`.
fn read_byte(r: &mut std::process::ChildStdout, timeout: Duration) -> Option<u8> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack, valid for the call; poll writes only its `revents`.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
    let mut b = [0u8];
    (n > 0 && r.read_exact(&mut b).is_ok()).then_some(b[0])
}

/// Kills and reaps a stopped child when dropped, so that a failed assertion leaves none behind.
struct Reap(u32);

impl Drop for Reap {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
        signal(self.0, libc::SIGKILL);
    }
}

/// Resumes a stopped `child` (SIGCONT) and waits for it to exit successfully (30 s at most).
fn resume(mut child: std::process::Child, reap: Reap) {
    signal(child.id(), libc::SIGCONT);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the child hung after SIGCONT"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    std::mem::forget(reap);
    assert_eq!(
        status.code(),
        Some(0),
        "the resumed child failed: {status:?}"
    );
}

/// A child stopped (SIGSTOP) inside a fast write into `path`, between its chunk's `fill` and
/// the key's slot (`dir` holds its parked/go markers), its lane announced.
fn stopped_fast_writer(dir: &std::path::Path, path: &str) -> (std::process::Child, Reap) {
    stopped_child("SHMAP_FP_PARKFAST", dir, path, "the child never parked")
}

/// A child stopped (SIGSTOP) inside the writer lock of `path`'s first shard, in the critical
/// section of its first write (`dir` holds its parked/go markers).
fn stopped_lock_holder(dir: &std::path::Path, path: &str) -> (std::process::Child, Reap) {
    let never = "the child never reached its critical section";
    stopped_child("SHMAP_FP_STOPHOLD", dir, path, never)
}

/// This binary re-executed with `role` (its parked/go markers in `dir`), stopped once it parked,
/// then told to go (it goes on at SIGCONT).
fn stopped_child(
    role: &str,
    dir: &std::path::Path,
    path: &str,
    never: &str,
) -> (std::process::Child, Reap) {
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .env(role, dir)
        .env("SHMAP_FP_PATH", path)
        .spawn()
        .unwrap();
    let reap = Reap(child.id());
    stop_when_parked(child.id(), &dir.join("parked"), never);
    std::fs::write(dir.join("go"), b"").unwrap();
    (child, reap)
}

/// A default-size map of four shards has rings of ~200 KiB, and chunks, so its overwrites are
/// fast writes: a writer parks inside one (before, chunks needed a ring of 256 KiB, and every
/// write of such a map took its shard's lock: the child never parked).
fn a_small_sharded_map_has_fast_writes() {
    let (dir, path, map) = map_of_200_keys(
        "fp-smallsharded",
        &Options::new().shards(4).initial_size(1 << 20),
    );
    let (child, reap) = stopped_fast_writer(dir.path(), &path);
    resume(child, reap);
    assert_eq!(map.get(b"f0").unwrap().as_deref(), Some(&value(0, 5)[..]));
    assert!(common::verify_problems(&path).is_empty());
}

/// Two fast writers stopped in their lanes: a write that must drain every lane (an `incr`
/// closes the fast-write gate) gives up after one lock timeout in all, not one per lane. The
/// first is resumed at 0.6 of the timeout, so that its lane drains and the second is waited
/// for: each lane's wait began afresh, and this took 1.6 x the timeout (with 8 lanes released
/// in turn, up to 8 x).
fn stopped_lanes_share_one_lock_timeout() {
    one_timeout_for_two_stops("stoplanes", |dir, path| {
        let a = stopped_fast_writer(&dir.join("a"), path);
        [a, stopped_fast_writer(&dir.join("b"), path)]
    });
}

/// A stopped lock holder, then a stopped fast writer: a write that waits for the first and then
/// must drain the second's lane (an `incr`) gives up one lock timeout after its first wait, not
/// one per wait. The holder is resumed at 0.6 of the timeout; each wait used to begin afresh,
/// and this took 1.6 x the timeout (the placement lock's wait, too, was its own).
fn a_holds_waits_share_one_lock_timeout() {
    let map = one_timeout_for_two_stops("stopboth", |dir, path| {
        let lane = stopped_fast_writer(&dir.join("lane"), path);
        [stopped_lock_holder(&dir.join("holder"), path), lane]
    });
    assert_eq!(map.get(b"held").unwrap().as_deref(), Some(&b"1"[..]));
}

/// Two children stopped by `stop` beside a map of 200 keys with a lock timeout of 1 s: the
/// first is resumed at 0.6 of the timeout, and an `incr` must give up one timeout after it
/// began, naming the second's pid. Then both are resumed; the `incr` succeeds and the map
/// verifies.
fn one_timeout_for_two_stops(
    name: &str,
    stop: impl FnOnce(&std::path::Path, &str) -> [(std::process::Child, Reap); 2],
) -> Shmap {
    let timeout = Duration::from_millis(1000);
    let (dir, path, map) = map_of_200_keys(
        &format!("fp-{name}"),
        &fast_opts().max_size(4 << 20).lock_timeout(timeout),
    );
    let [(first, reap_first), (second, reap_second)] = stop(dir.path(), &path);
    let t = Instant::now();
    let pid = first.id();
    let wake_first = std::thread::spawn(move || {
        std::thread::sleep(timeout * 6 / 10);
        signal(pid, libc::SIGCONT);
    });
    match map.incr(b"n", 1, 0, None) {
        Err(e @ shmap::Error::LockTimeout { .. }) => {
            assert!(
                e.to_string().contains(&format!("pid {}", second.id())),
                "{e}"
            );
        }
        r => panic!("{name}: expected a lock timeout, got {r:?}"),
    }
    let waited = t.elapsed();
    wake_first.join().unwrap();
    assert!(
        waited >= timeout && waited < timeout * 14 / 10,
        "{name}: waited {waited:?} with a lock timeout of {timeout:?}"
    );
    resume(first, reap_first);
    resume(second, reap_second);
    assert_eq!(map.incr(b"n", 1, 0, None).unwrap(), 1);
    assert!(common::verify_problems(&path).is_empty());
    map
}

/// A fast writer stopped (SIGSTOP) between its chunk's `fill` and the key's slot: cleaning
/// that reaches its chunk waits for it at most the lock timeout, so other writers get
/// `LockTimeout` naming its pid instead of waiting forever, and a chunk claim (upkeep) does not
/// wait at all; after SIGCONT its write completes and nothing is lost.
fn a_stopped_fast_writer_times_the_cleaner_out() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-stopfast");
    let o = fast_opts()
        .max_size(4 << 20)
        .lock_timeout(Duration::from_millis(300));
    let map = Shmap::open(&path, &o).unwrap();
    for i in 0..200 {
        map.set(format!("f{i}").as_bytes(), &value(i, 9)).unwrap();
    }
    let (child, reap) = stopped_fast_writer(dir.path(), &path);
    let pid = child.id();
    // Writes wrap the ring until cleaning reaches the stopped writer's chunk.
    let t = Instant::now();
    let mut timed_out = 0;
    let mut n = 0u64;
    while timed_out == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "cleaning never reached the chunk after {n} writes: {:?}",
            map.stats().unwrap()
        );
        let w = Instant::now();
        match map.set(format!("p{}", n % 3000).as_bytes(), &value(n, 1)) {
            Ok(()) => {}
            Err(e @ shmap::Error::LockTimeout { .. }) => {
                assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
                timed_out += 1;
            }
            Err(e) => panic!("expected a lock timeout, got {e:?}"),
        }
        assert!(
            w.elapsed() < Duration::from_secs(5),
            "a write was not bounded"
        );
        n += 1;
    }
    resume(child, reap);
    assert_eq!(
        map.get(b"f0").unwrap().as_deref(),
        Some(&value(0, 5)[..]),
        "the stopped fast write was published once it resumed"
    );
    for _ in 0..1000 {
        map.set(format!("p{}", n % 3000).as_bytes(), &value(n, 1))
            .unwrap();
        n += 1;
    }
    check_after_crash(&map, &path, "a stopped fast writer");
}

/// A child that runs `workload` ("default", "index" or "fast") until it aborts at `point`.
fn child_running(path: &str, point: &str, workload: &str) -> std::process::ExitStatus {
    child_at_pass(path, point, workload, 1)
}

/// [`child_running`], dying at the `pass`th pass through `point`.
fn child_at_pass(path: &str, point: &str, workload: &str, pass: u32) -> std::process::ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .env("SHMAP_FP_CHILD", point)
        .env("SHMAP_FP_PATH", path)
        .env("SHMAP_FP_WORKLOAD", workload)
        .env("SHMAP_FP_PASS", pass.to_string())
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
    // Each shard recovers at its own next write: touch every shard (64 keys spread over the
    // shards by their hashes) before comparing counters.
    for i in 0..64 {
        let k = format!("touch-{i}");
        map.set(k.as_bytes(), b"t").unwrap();
        map.remove(k.as_bytes()).unwrap();
    }
    // Counters agree with the index once a writer has recovered.
    let n = map.keys().unwrap().len() as u64;
    let s = map.stats().unwrap();
    assert!(
        s.entries >= n,
        "{point}: entries counter {} below the {n} keys",
        s.entries
    );
    let problems = common::verify_problems(path);
    assert!(
        problems.is_empty(),
        "{point}: verification found {problems:?}"
    );
    check_big_keys(map, point);
}

fn crash_at(point: &str) {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp");
    let map = Shmap::open(&path, &opts()).unwrap();
    if NEED_DEAD_WRITER.contains(&point) || ALONE_AFTER_DEAD_WRITER.contains(&point) {
        assert!(
            aborted(child(&path, DEAD_WRITER_AT)),
            "{point}: the first child did not die at {DEAD_WRITER_AT}"
        );
    }
    if NEED_DEAD_FAST_WRITER.contains(&point) {
        assert!(
            aborted(child(&path, DEAD_FAST_WRITER_AT)),
            "{point}: the first child did not die at {DEAD_FAST_WRITER_AT}"
        );
    }
    let alone = LAST_OUT.contains(&point) || ALONE_AFTER_DEAD_WRITER.contains(&point);
    let map = (!alone).then_some(map);
    let status = child(&path, point);
    assert!(
        aborted(status),
        "failpoint {point} was never reached by the workload (child exited {status:?})"
    );
    let map = map.unwrap_or_else(|| Shmap::open(&path, &opts()).unwrap());
    check_after_crash(&map, &path, point);
}

/// The map of [`compaction_workload`]: no shrink behind the writes (one per grace period, and
/// the grace outlasts the test), so the compaction is what makes the ring smaller.
fn compaction_opts() -> Options {
    opts().retire_grace(Duration::from_secs(3600))
}

/// Sets 20,000 values `c<i>` (growing the map), then removes all but every fiftieth: a map
/// whose compaction makes its ring much smaller.
fn fill_then_thin(map: &Shmap) {
    for i in 0..20_000u64 {
        map.set(format!("c{i}").as_bytes(), &value(i, 1)).unwrap();
    }
    for i in 0..20_000u64 {
        if i % 50 != 0 {
            map.remove(format!("c{i}").as_bytes()).unwrap();
        }
    }
}

/// After [`fill_then_thin`] and a switch cut short (`what`): every value kept is there, and
/// writes go on into the new ring, past what was reserved of it; the map verifies.
fn kept_then_writes_go_on(map: &Shmap, path: &str, what: &str) {
    for i in (0..20_000u64).step_by(50) {
        assert_eq!(
            map.get(format!("c{i}").as_bytes()).unwrap(),
            Some(value(i, 1)),
            "{what}: c{i}"
        );
    }
    for i in 0..5_000u64 {
        map.set(format!("n{i}").as_bytes(), &value(i, 2)).unwrap();
    }
    assert!(common::verify_problems(path).is_empty(), "{what}");
}

/// Grows a map (its new ring reserved only in part: `active_alloc` is a watermark), deletes
/// most of it, then compacts it into a ring smaller than that watermark; `point` aborts only
/// during the compaction.
fn compaction_workload(path: &str, point: &str) {
    let map = Shmap::open(path, &compaction_opts()).unwrap();
    fill_then_thin(&map);
    fail::cfg_callback(point, || std::process::abort()).unwrap();
    if point.starts_with("switch::") {
        // A lowered max_size: a one-step switch into a smaller ring.
        map.set_max_size(2 << 20).unwrap();
        map.set(b"after-lowering", b"1").unwrap();
    } else {
        map.compact().unwrap();
    }
}

/// A switch to a smaller ring (a compaction's build, or a lowered max_size's one-step switch)
/// killed between the publication's store of `active` and the bookkeeping after it: the next
/// writer must not take the old ring's reservation watermark for the new ring's (both failed
/// with `Corrupt { what: "ring reservation past the log region" }` before).
fn a_compaction_killed_after_its_publication(point: &str) {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-compact");
    let map = Shmap::open(&path, &compaction_opts()).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .env("SHMAP_FP_COMPACT", point)
        .env("SHMAP_FP_PATH", &path)
        .status()
        .unwrap();
    assert!(
        aborted(status),
        "{point}: the compaction did not reach it ({status:?})"
    );
    check_after_crash(&map, &path, point);
    kept_then_writes_go_on(&map, &path, point);
}

/// A write that fails right after a switch's publication (its `msync` on disk, injected here
/// as an error at `point`) must leave what a kill there leaves: the new generation active and
/// whole. Before the fix the failing writer kept its view of the old generation and, on its way
/// out, punched the regions of the build it took for abandoned: the published ring.
fn an_error_after_a_publication(point: &str) {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-error-after-publish");
    let map = Shmap::open(&path, &compaction_opts()).unwrap();
    fill_then_thin(&map);
    fail::cfg(point, "1*return").unwrap();
    let failed = if point.starts_with("switch::") {
        map.set_max_size(2 << 20).unwrap();
        map.set(b"after-lowering", b"1")
    } else {
        map.compact()
    };
    fail::remove(point);
    assert!(
        failed.is_err(),
        "{point}: the injected error did not fail the switch"
    );
    // The next write recovers what the failed one left, as after a kill there.
    map.set(b"after-the-error", b"1").unwrap();
    let problems = common::verify_problems(&path);
    assert!(problems.is_empty(), "{point}: {problems:?}");
    kept_then_writes_go_on(&map, &path, point);
    let keys = map.keys().unwrap().len() as u64;
    assert_eq!(map.stats().unwrap().entries, keys, "{point}: counters");
}

/// A one-step switch cut short by an error after it reserved its regions (an `msync` before
/// its publication, injected here) gives them back: before the fix they stayed allocated and
/// recorded as the shard's reservation until some later switch overwrote the record. Nor does
/// it count the expired and evicted records it would have left behind (it left none; before
/// that fix each failed attempt counted them again).
fn a_failed_switch_gives_its_regions_back() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-failed-switch");
    let map = Shmap::open(&path, &compaction_opts()).unwrap();
    fill_then_thin(&map);
    let short_lived = SetOptions {
        ttl_ms: Some(1),
        flags: 0,
    };
    for i in 0..50 {
        map.set_with(format!("expiring{i}").as_bytes(), b"x", short_lived)
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    map.flush().unwrap();
    let before = map.stats().unwrap();
    fail::cfg("switch::between_descriptor_and_publish", "1*return").unwrap();
    map.set_max_size(2 << 20).unwrap();
    let failed = map.set(b"after-lowering", b"1");
    fail::remove("switch::between_descriptor_and_publish");
    assert!(
        failed.is_err(),
        "the injected error did not fail the switch"
    );
    let after = map.stats().unwrap();
    let building = shmap::inspect::Inspector::open(std::path::Path::new(&path), 0)
        .unwrap()
        .summary()
        .unwrap()
        .building;
    assert_eq!(
        building, None,
        "the failed switch's reservation is still recorded"
    );
    assert_eq!(after.generation, before.generation, "{after:?}");
    assert_eq!(
        (after.expirations, after.evictions),
        (before.expirations, before.evictions),
        "the failed switch counted records it did not drop"
    );
    // The same switch, now through: the 50 expired records are counted once.
    map.set(b"after-lowering", b"1").unwrap();
    let through = map.stats().unwrap();
    assert!(through.generation > before.generation, "{through:?}");
    assert_eq!(
        through.expirations,
        before.expirations + 50,
        "the switch that went through did not count its expired records once"
    );
    map.set_max_size(64 << 20).unwrap();
    kept_then_writes_go_on(&map, &path, "a failed switch");
}

/// A write whose upkeep fails (here an injected I/O error at the start of `after_write`) is
/// still a write that happened: it returns Ok, counted, and the shard owes a recovery. Before
/// the fix the set failed after its record was published and counted.
fn a_failed_upkeep_fails_no_write() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-upkeep");
    let map = Shmap::open(&path, &opts()).unwrap();
    map.set(b"a", b"1").unwrap();
    fail::cfg("after_write::start", "1*return").unwrap();
    let r = map.incr(b"n", 1, 0, None);
    fail::remove("after_write::start");
    assert_eq!(r.unwrap(), 1, "the incr that happened failed");
    assert_eq!(map.incr(b"n", 1, 0, None).unwrap(), 2);
    assert_eq!(map.stats().unwrap().entries, 2);
    assert!(common::verify_problems(&path).is_empty());
}

/// A build that cannot follow a write (its mirror fails: an I/O error, injected here) is
/// abandoned, and the write still succeeds with its counters. Before the fix the write failed
/// after its record was published, with `entries` and `live_bytes` left unchanged.
fn a_failed_mirror_fails_only_the_build() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-mirror");
    let map = Shmap::open(&path, &opts()).unwrap();
    let mut n = 0u64;
    while map.stats().unwrap().building == 0 {
        map.set(format!("m{n}").as_bytes(), &value(n, 1)).unwrap();
        n += 1;
        assert!(n < 1_000_000, "no build started");
    }
    fail::cfg("build::mirror_into", "1*return").unwrap();
    // Rewrites of keys the build has already copied are mirrored.
    for i in 0..n {
        map.set(format!("m{i}").as_bytes(), &value(i, 2)).unwrap();
        map.set(format!("new{i}").as_bytes(), &value(i, 3)).unwrap();
    }
    fail::remove("build::mirror_into");
    let keys = map.keys().unwrap().len() as u64;
    assert_eq!(keys, 2 * n);
    assert_eq!(
        map.stats().unwrap().entries,
        keys,
        "counters after the failed mirror"
    );
    for i in 0..n {
        assert_eq!(
            map.get(format!("m{i}").as_bytes()).unwrap(),
            Some(value(i, 2))
        );
    }
    assert!(common::verify_problems(&path).is_empty());
}

/// A compaction ends with its own generation published, even when a growth began right after
/// it (the compact ring is small, and another writer's new keys fill it past half between two
/// holds). Before the fix, `compact` took that growth's build for its own and copied the whole
/// shard again, in its holds, into a ring twice as large.
fn a_compaction_ends_with_its_own_generation() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-compact-own");
    let map = Shmap::open(&path, &compaction_opts()).unwrap();
    fill_then_thin(&map);
    let before = map.stats().unwrap();
    let other = Arc::new(Shmap::open(&path, &compaction_opts()).unwrap());
    // Between two holds, once a new generation is active and no build is in flight: new keys
    // until a growth starts. Records the compaction's generation.
    let published = Arc::new(AtomicU64::new(0));
    let (o, p) = (Arc::clone(&other), Arc::clone(&published));
    fail::cfg_callback("compact::between_holds", move || {
        let s = o.stats().unwrap();
        if p.load(Ordering::SeqCst) != 0 || s.generation == before.generation || s.building != 0 {
            return;
        }
        p.store(s.generation, Ordering::SeqCst);
        for i in 0..200_000u64 {
            o.set(format!("g{i}").as_bytes(), &value(i, 3)).unwrap();
            if o.stats().unwrap().building != 0 {
                return;
            }
        }
        panic!("no growth started after 200,000 new keys");
    })
    .unwrap();
    map.compact().unwrap();
    fail::remove("compact::between_holds");
    let after = map.stats().unwrap();
    let ours = published.load(Ordering::SeqCst);
    assert_ne!(
        ours, 0,
        "the compaction was never seen published between two holds"
    );
    assert_eq!(
        after.generation, ours,
        "compact finished someone else's build: {before:?} {after:?}"
    );
    assert_ne!(
        after.building, 0,
        "the growth is left to the writes: {after:?}"
    );
    for i in (0..20_000u64).step_by(50) {
        assert_eq!(
            map.get(format!("c{i}").as_bytes()).unwrap(),
            Some(value(i, 1))
        );
    }
    assert!(common::verify_problems(&path).is_empty());
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

/// A recovery that panics unwinds through the write's guard, which must then leave the shard
/// alone: no housekeeping on a shard whose recovery did not complete, only the unlock, and the
/// duty to recover stays for the next writer. The housekeeping point panics too, so reaching it
/// while unwinding aborts this process; before the fix the guard's drop housekept regardless.
fn a_recovery_that_panics_leaves_the_shard_to_the_next_writer() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-recovery-panic");
    let map = Shmap::open(&path, &opts()).unwrap();
    assert!(aborted(child(&path, DEAD_WRITER_AT)));
    fail::cfg("recover::start", "1*panic").unwrap();
    fail::cfg("housekeep::step", "panic").unwrap();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map.set(b"x", b"1")));
    std::panic::set_hook(hook);
    fail::remove("housekeep::step");
    fail::remove("recover::start");
    assert!(first.is_err(), "the injected panic did not unwind");
    // The lock was released and the duty kept: the next write recovers and goes through.
    map.set(b"x", b"1").unwrap();
    let keys = map.keys().unwrap().len() as u64;
    assert_eq!(
        map.stats().unwrap().entries,
        keys,
        "the write after the panic did not recover: the dead writer's stale counter survived"
    );
    check_after_crash(&map, &path, "recover::start (panicked)");
}

/// A word of shard 0's entry (format.md, "Shard table"), read from the file.
fn shard_word(path: &str, off: usize) -> u64 {
    let b = std::fs::read(path).unwrap();
    u64::from_le_bytes(b[12288 + off..12288 + off + 8].try_into().unwrap())
}

/// A build whose step after its publication fails (injected): the recovery of its reservation
/// must not punch the generation it retired, whose pages readers may use for the grace period.
/// The reservation is one span from the new index to the new log, and in a growth it usually
/// holds the old regions; before the fix the recovery punched them at once (found by review).
fn a_failed_publication_keeps_the_retired_pages() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-retired-pages");
    let o = Options::new()
        .initial_size(64 << 10)
        .retire_grace(Duration::from_secs(3600));
    let map = Shmap::open(&path, &o).unwrap();
    let active_log = |p: &str| {
        let active = shard_word(p, 0);
        shard_word(p, 256 + 64 * (active & 1) as usize + 24)
    };
    let value = vec![7u8; 1000];
    let mut i = 0u32;
    // Until a build is in flight whose reservation holds the active ring.
    let old_log = loop {
        map.set(format!("k{i}").as_bytes(), &value).unwrap();
        i += 1;
        let (log, off, len) = (
            active_log(&path),
            shard_word(&path, 384),
            shard_word(&path, 392),
        );
        if shard_word(&path, 192) != 0 && off <= log && log < off + len {
            break log;
        }
        assert!(
            i < 100_000,
            "no build ever held the active ring in its reservation"
        );
    };
    let first_page = |p: &str| {
        let b = std::fs::read(p).unwrap();
        b[(old_log + 64) as usize..(old_log + 4096) as usize].to_vec()
    };
    assert!(first_page(&path).iter().any(|&x| x != 0));
    fail::cfg("build::between_active_and_counters", "1*return").unwrap();
    while active_log(&path) == old_log {
        map.set(format!("k{i}").as_bytes(), &value).unwrap();
        i += 1;
    }
    fail::remove("build::between_active_and_counters");
    assert_eq!(
        shard_word(&path, 416),
        old_log,
        "the old ring is recorded as retired"
    );
    assert!(
        first_page(&path).iter().any(|&x| x != 0),
        "the retired ring was punched within its grace period"
    );
    check_after_crash(
        &map,
        &path,
        "build::between_active_and_counters (returned an error)",
    );
}

/// A writer died holding the lock, the last process out marked the map clean, and the first
/// process alone then failed to recover (injected): the next process alone must still recover.
/// Before the fix the failed open had already cleared the dead holder's lock word, the duty's
/// only record, so the next open took the shard for clean and kept the stale counters.
fn a_failed_recovery_at_open_keeps_the_duty() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-open-recovery");
    {
        let map = Shmap::open(&path, &opts()).unwrap();
        assert!(aborted(child(&path, DEAD_WRITER_AT)));
        drop(map); // the last process out: marks the map clean
    }
    fail::cfg("recover::start", "1*return").unwrap();
    let first = Shmap::open(&path, &opts());
    fail::remove("recover::start");
    assert!(
        first.is_err(),
        "the injected recovery failure did not fail the open"
    );
    let map = Shmap::open(&path, &opts()).unwrap();
    let keys = map.keys().unwrap().len() as u64;
    assert_eq!(
        map.stats().unwrap().entries,
        keys,
        "the open after the failed one did not recover: the dead writer's stale counter survived"
    );
    check_after_crash(&map, &path, "recover::start at open (returned an error)");
}

/// The last process out whose final `msync` fails (injected; EIO on a disk map) must not mark
/// the map clean: a clean map skips recovery at the next open, even after an OS crash lost the
/// pages that were never written back. Before the fix the flag was set regardless.
fn a_failed_final_sync_leaves_the_map_unclean() {
    let dir = common::disk_dir();
    let path = common::map_path(dir.path(), "fp-final-sync");
    let map = Shmap::open(&path, &opts()).unwrap();
    map.set(b"kept", b"1").unwrap();
    fail::cfg("detach::final_sync", "1*return").unwrap();
    drop(map);
    fail::remove("detach::final_sync");
    let s = common::inspector(&path).summary().unwrap();
    assert!(
        !s.clean_flag,
        "a detach whose final msync failed marked the map clean"
    );
    // The next open recovers it, and the acknowledged write is there.
    let map = Shmap::open(&path, &opts()).unwrap();
    assert_eq!(map.get(b"kept").unwrap().as_deref(), Some(&b"1"[..]));
    check_after_crash(&map, &path, "detach::final_sync (returned an error)");
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
    let at = shmap::format::shard_off(0) as usize;
    let len = shmap::format::SHARD_ENTRY_LEN as usize;
    let ctl = <shmap::format::ShardEntry as zerocopy::FromBytes>::read_from_bytes(&c[at..at + len])
        .unwrap();
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

/// Whether process `pid` is stopped (state `T` in /proc/<pid>/stat).
/// Waits (30 s at most) until the child `pid` wrote `parked`, then stops it with SIGSTOP and
/// waits (10 s at most) until it is stopped; `never` is the failure when it does not park.
fn stop_when_parked(pid: u32, parked: &std::path::Path, never: &str) {
    let t = Instant::now();
    while !parked.exists() {
        assert!(t.elapsed() < Duration::from_secs(30), "{never}");
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(pid, libc::SIGSTOP);
    let t = Instant::now();
    while !stopped(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "SIGSTOP did not land"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses and may contain spaces.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('T'))
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with our own child's pid and a valid signal number touches no memory.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

/// A real SIGSTOP that lands inside the writer lock, deterministically: the child parks at a
/// failpoint inside its critical section (after publishing a record, before its counters) and
/// says so; the parent then stops it. Other processes' writes fail with `LockTimeout` within the
/// bound, naming the stopped holder's pid, and change nothing; after SIGCONT the child's writes
/// complete, every acknowledged write is present and the map verifies.
fn a_writer_stopped_inside_the_lock_times_others_out() {
    let dir = common::shm_dir();
    let path = common::map_path(dir.path(), "fp-stop");
    let map = Shmap::open(&path, &opts().lock_timeout(Duration::from_millis(300))).unwrap();
    map.set(b"before", b"1").unwrap();
    // Stopped while parked inside the lock: releasing the park changes nothing until SIGCONT.
    let (holder, reap) = stopped_lock_holder(dir.path(), &path);
    let pid = holder.id();
    for i in 0..3 {
        let t = Instant::now();
        match map.set(format!("blocked{i}").as_bytes(), b"x") {
            Err(e @ shmap::Error::LockTimeout { .. }) => {
                assert_eq!(e.code(), "ERR_SHMAP_LOCK_TIMEOUT");
                let msg = e.to_string();
                assert!(msg.contains(&format!("pid {pid}")), "{msg}");
            }
            other => {
                panic!("a write beside a stopped holder: expected a lock timeout, got {other:?}")
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the wait was not bounded"
        );
        assert!(stopped(pid), "the child resumed before SIGCONT");
    }
    for i in 0..3 {
        assert_eq!(map.get(format!("blocked{i}").as_bytes()).unwrap(), None);
    }
    resume(holder, reap);
    // Acknowledged: the child's writes (it exits 0 only after each returned Ok) and ours.
    assert_eq!(map.get(b"held").unwrap().as_deref(), Some(&b"1"[..]));
    for i in 0..100 {
        assert_eq!(
            map.get(format!("resumed{i}").as_bytes())
                .unwrap()
                .as_deref(),
            Some(&b"after SIGCONT"[..])
        );
    }
    assert_eq!(map.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
    check_after_crash(&map, &path, "a writer stopped inside the lock");
}

static OPENER_HOLDS_REGISTRY: AtomicBool = AtomicBool::new(false);

/// fork() while another thread holds the process's attachment registry (it is opening a map):
/// in the child only the forking thread exists, so a plain mutex would stay locked forever and
/// the child's next open would hang. The child must open (another map) and write promptly.
fn fork_while_another_thread_opens() {
    let dir = common::shm_dir();
    let first = common::map_path(dir.path(), "fp-fork-a");
    let second = common::map_path(dir.path(), "fp-fork-b");
    fail::cfg_callback("attach::registry_held", || {
        if std::thread::current().name() == Some("opener") {
            OPENER_HOLDS_REGISTRY.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(500));
        }
    })
    .unwrap();
    let opener = std::thread::Builder::new()
        .name("opener".into())
        .spawn(move || Shmap::open(&first, &opts()).unwrap())
        .unwrap();
    while !OPENER_HOLDS_REGISTRY.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: the child only opens a map, writes, reads and `_exit`s; malloc and the fail
    // crate's locks are not held across the fork by the opener (it sleeps in a callback that
    // runs after the fail crate released its locks).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // A hang is ended by SIGALRM (the parent sees the signal).
        // SAFETY: alarm(2) only arms a timer.
        unsafe { libc::alarm(20) };
        let code = match Shmap::open(&second, &opts()) {
            Ok(m) if m.set(b"k", b"child").is_ok() => 0,
            _ => 1,
        };
        // SAFETY: ends the child at once, without the parent's destructors or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    fail::remove("attach::registry_held");
    assert!(
        libc::WIFEXITED(status),
        "the child forked while another thread opened a map hung (killed by signal {})",
        libc::WTERMSIG(status)
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child's open or write failed"
    );
    let first = opener.join().unwrap();
    first.set(b"parent", b"1").unwrap();
    let second = Shmap::open(&second, &opts()).unwrap();
    assert_eq!(second.get(b"k").unwrap().as_deref(), Some(&b"child"[..]));
}

/// Makes the first pass through failpoint `point` write `dir/parked` and wait until `dir/go`
/// exists (a minute at most).
fn park_at(point: &str, dir: std::path::PathBuf) {
    let once = AtomicBool::new(false);
    fail::cfg_callback(point, move || {
        if once.swap(true, Ordering::SeqCst) {
            return;
        }
        std::fs::write(dir.join("parked"), b"").unwrap();
        let t = Instant::now();
        while !dir.join("go").exists() {
            assert!(t.elapsed() < Duration::from_secs(60), "never told to go");
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .unwrap();
}

fn main() {
    if let Ok(dir) = std::env::var("SHMAP_FP_STOPHOLD") {
        // Parks inside the critical section of its first write until the parent says go.
        let path = std::env::var("SHMAP_FP_PATH").unwrap();
        park_at(
            "put::between_publish_and_counters",
            std::path::PathBuf::from(dir),
        );
        let map = Shmap::open(&path, &opts()).unwrap();
        map.set(b"held", b"1").unwrap();
        for i in 0..100 {
            map.set(format!("resumed{i}").as_bytes(), b"after SIGCONT")
                .unwrap();
        }
        drop(map);
        std::process::exit(0);
    }
    if let Ok(path) = std::env::var("SHMAP_FP_RACER") {
        // Overwrites `k` once per byte read from stdin (fast writes, after the first claims a
        // lane), answering each with a byte; exits at the end of its input.
        use std::io::{Read, Write};
        let map = Shmap::open(&path, &fast_opts()).unwrap();
        map.set(b"k", b"racer").unwrap();
        map.set(b"k", b"racer0").unwrap();
        let (mut input, mut out) = (std::io::stdin(), std::io::stdout());
        out.write_all(b"r").unwrap();
        out.flush().unwrap();
        let mut b = [0u8];
        let mut n = 0u64;
        while input.read_exact(&mut b).is_ok() {
            n += 1;
            map.set(b"k", format!("racer{n}").as_bytes()).unwrap();
            // (The parent may have stopped listening: its set is done.)
            let _ = out.write_all(b"d").and_then(|()| out.flush());
        }
        drop(map);
        std::process::exit(0);
    }
    if let Ok(dir) = std::env::var("SHMAP_FP_PARKFAST") {
        // Parks inside its first fast write, after `fill`, until the parent says go.
        let path = std::env::var("SHMAP_FP_PATH").unwrap();
        park_at("fast::between_fill_and_slot", std::path::PathBuf::from(dir));
        let map = Shmap::open(&path, &fast_opts().max_size(4 << 20)).unwrap();
        // The first overwrite claims a lane and a chunk in the key's shard under the lock; the
        // second is fast.
        map.set(b"f0", &value(0, 4)).unwrap();
        map.set(b"f0", &value(0, 5)).unwrap();
        drop(map);
        std::process::exit(0);
    }
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
    if let Ok(point) = std::env::var("SHMAP_FP_COMPACT") {
        compaction_workload(&std::env::var("SHMAP_FP_PATH").unwrap(), &point);
        std::process::exit(3);
    }
    if let Ok(point) = std::env::var("SHMAP_FP_CHILD") {
        let path = std::env::var("SHMAP_FP_PATH").unwrap();
        let pass: u64 = std::env::var("SHMAP_FP_PASS").map_or(1, |p| p.parse().unwrap());
        let passes = AtomicU64::new(0);
        fail::cfg_callback(point, move || {
            if passes.fetch_add(1, Ordering::SeqCst) + 1 >= pass {
                std::process::abort();
            }
        })
        .unwrap();
        if std::env::var("SHMAP_FP_WORKLOAD").as_deref() == Ok("index") {
            index_workload(&path);
        } else if std::env::var("SHMAP_FP_WORKLOAD").as_deref() == Ok("fast") {
            fast_workload(&path);
        } else if std::env::var("SHMAP_FP_WORKLOAD").as_deref() == Ok("incr") {
            let map = Shmap::open(&path, &fast_opts()).unwrap();
            map.incr(b"counter", 1, 0, None).unwrap();
        } else {
            workload(&path);
        }
        // Reaching here means the point was never hit.
        std::process::exit(3);
    }
    // One test alone (`SHMAP_FP_ONLY=race`, say); any other value runs them all.
    let alone: [(&str, fn()); 6] = [
        ("stopfast", a_stopped_fast_writer_times_the_cleaner_out),
        ("smallsharded", a_small_sharded_map_has_fast_writes),
        ("race", a_locked_overwrite_outlasts_fast_writers_of_its_key),
        ("stoplanes", stopped_lanes_share_one_lock_timeout),
        ("stopboth", a_holds_waits_share_one_lock_timeout),
        ("adopt", a_killed_adoption_counts_nothing_twice),
    ];
    if let Ok(only) = std::env::var("SHMAP_FP_ONLY")
        && let Some((_, test)) = alone.iter().find(|(name, _)| *name == only)
    {
        test();
        return;
    }
    let started = Instant::now();
    let mut n = 0;
    // Every point in a map of one shard, then in a map of two (whose switches go through the
    // placement step; a 64 KiB map has room for two shards).
    for shards in [1, 2] {
        SHARDS.store(shards, Ordering::Relaxed);
        for point in shmap::failpoints::ALL {
            let t = Instant::now();
            crash_at(point);
            n += 1;
            println!(
                "failpoint {point} ({shards} shard{}): ok ({:.1}s)",
                if shards == 1 { "" } else { "s" },
                t.elapsed().as_secs_f64()
            );
        }
    }
    SHARDS.store(1, Ordering::Relaxed);
    for point in INDEX_POINTS {
        let t = Instant::now();
        crash_in_index_rebuild(point);
        n += 1;
        println!(
            "failpoint {point} (in an index rebuild): ok ({:.1}s)",
            t.elapsed().as_secs_f64()
        );
    }
    // A build's publication (a compaction), then a one-step switch's (a lowered max_size),
    // each into a ring smaller than the old one's reservation watermark.
    for point in [
        "build::between_watermark_and_active",
        "build::between_active_and_counters",
        "switch::between_watermark_and_publish",
        "switch::between_publish_and_counters",
    ] {
        a_compaction_killed_after_its_publication(point);
        n += 1;
        println!("a switch to a smaller ring killed after its publication ({point}): ok");
    }
    for point in [
        "build::between_active_and_counters",
        "switch::between_publish_and_counters",
    ] {
        an_error_after_a_publication(point);
        n += 1;
        println!("an error right after a switch's publication ({point}): ok");
    }
    a_dead_fast_writer_is_recounted_by_the_next_exclusive_write();
    n += 1;
    println!("a dead fast writer is recounted by the next exclusive write: ok");
    a_killed_adoption_counts_nothing_twice();
    n += 1;
    println!("a killed adoption counts nothing twice: ok");
    a_stopped_fast_writer_times_the_cleaner_out();
    n += 1;
    println!("a fast writer stopped (SIGSTOP) in its chunk times the cleaner out: ok");
    stopped_lanes_share_one_lock_timeout();
    n += 1;
    println!("two stopped lanes share one lock timeout: ok");
    a_holds_waits_share_one_lock_timeout();
    n += 1;
    println!("a stopped lock holder and a stopped lane share one lock timeout: ok");
    a_locked_overwrite_outlasts_fast_writers_of_its_key();
    n += 1;
    println!("a locked overwrite outlasts fast writers of its key: ok");
    a_small_sharded_map_has_fast_writes();
    n += 1;
    println!("a small map of four shards has fast writes: ok");
    a_failed_upkeep_fails_no_write();
    n += 1;
    println!("a failed upkeep fails no write: ok");
    a_failed_switch_gives_its_regions_back();
    n += 1;
    println!("a failed switch gives its regions back: ok");
    a_failed_mirror_fails_only_the_build();
    n += 1;
    println!("a failed mirror fails only the build: ok");
    a_compaction_ends_with_its_own_generation();
    n += 1;
    println!("a compaction ends with its own generation: ok");
    failed_recovery_is_retried();
    n += 1;
    println!("failed recovery is retried: ok");
    a_recovery_that_panics_leaves_the_shard_to_the_next_writer();
    n += 1;
    println!("a recovery that panics leaves the shard to the next writer: ok");
    a_failed_publication_keeps_the_retired_pages();
    n += 1;
    println!("a failed publication keeps the retired pages: ok");
    a_failed_recovery_at_open_keeps_the_duty();
    n += 1;
    println!("a failed recovery at open keeps the duty: ok");
    a_failed_final_sync_leaves_the_map_unclean();
    n += 1;
    println!("a failed final msync leaves the map unclean: ok");
    a_live_holder_times_waiters_out();
    n += 1;
    println!("a live holder times waiters out: ok");
    a_writer_stopped_inside_the_lock_times_others_out();
    n += 1;
    println!("a writer stopped (SIGSTOP) inside the lock times others out: ok");
    fork_while_another_thread_opens();
    n += 1;
    println!("fork while another thread opens a map: ok");
    println!(
        "{n} passed, 0 failed ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
}
