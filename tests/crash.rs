//! Guards crash safety across processes: writers killed with SIGKILL at random moments (and on
//! purpose in the middle of compactions) never lose an acknowledged write, never leave a stuck
//! lock, and never let a concurrent reader see a malformed value.
//!
//! `harness = false`: the binary re-executes itself as writer and reader processes (the role is
//! chosen by `SHMAP_CRASH_ROLE`), and the parent kills writers with `kill -9` in a loop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Rng;
use shmap::{Options, Shmap};

mod common;

const KEYS_PER_WRITER: u64 = 300;

/// Children exit when the parent test dies (they would otherwise run forever).
fn orphaned(parent: u32) -> bool {
    std::os::unix::process::parent_id() != parent
}

/// A self-checking value: key, sequence number, filler, CRC of all of it.
fn encode(key: &[u8], seq: u64, filler: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + filler + 20);
    v.extend_from_slice(&(key.len() as u16).to_le_bytes());
    v.extend_from_slice(key);
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend(std::iter::repeat_n((seq % 251) as u8, filler));
    let crc = crc32fast::hash(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// Checks a value read for `key`; returns its sequence number.
fn decode(key: &[u8], v: &[u8]) -> Result<u64, String> {
    let bad = |why: &str| {
        Err(format!(
            "malformed value for {:?}: {why}",
            String::from_utf8_lossy(key)
        ))
    };
    if v.len() < 14 {
        return bad("too short");
    }
    let (body, crc) = v.split_at(v.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().unwrap()) {
        return bad("checksum");
    }
    let klen = u16::from_le_bytes([body[0], body[1]]) as usize;
    if body.get(2..2 + klen) != Some(key) {
        return bad("wrong key");
    }
    let seq = body
        .get(2 + klen..10 + klen)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    match seq {
        Some(s) => Ok(s),
        None => bad("no sequence"),
    }
}

/// Shards of the map the parent creates (the children open it and keep its count).
static SHARDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn opts() -> Options {
    // Small initial size: the writers grow, clean, compact and shrink constantly.
    Options::new()
        .shards(SHARDS.load(std::sync::atomic::Ordering::Relaxed))
        .initial_size(64 << 10)
        .max_size(256 << 20)
        .evict(false)
        .retire_grace(Duration::from_millis(20))
}

fn key(writer: u64, i: u64) -> Vec<u8> {
    format!("w{writer}-k{i}").into_bytes()
}

/// Writer: sets its keys with increasing sequence numbers, prints `ack <i> <seq>` after each
/// set returns, and now and then bulk-inserts and removes temporary keys and compacts (printing
/// `compacting` first), so kills land in growth, shrink and compaction.
fn writer_role(path: &str, writer: u64, seed: u64) {
    use std::io::Write;
    let map = Shmap::open(path, &opts()).expect("writer opens the map");
    let mut out = std::io::stdout().lock();
    let mut rng = Rng(seed | 1);
    // Sequence numbers grow across incarnations of a writer (the parent passes a larger
    // `base` each time), so an unacknowledged write of a later incarnation is never older.
    let mut seq: u64 = std::env::var("SHMAP_CRASH_BASE").unwrap().parse().unwrap();
    let ctr_key = format!("w{writer}-counter").into_bytes();
    let parent = std::os::unix::process::parent_id();
    while !orphaned(parent) {
        seq += 1;
        match rng.below(100) {
            0 => {
                writeln!(out, "compacting").unwrap();
                out.flush().unwrap();
                map.compact().expect("compact");
                writeln!(out, "compacted").unwrap();
            }
            1..=2 => {
                let n = 50 + rng.below(200);
                for t in 0..n {
                    let k = format!("w{writer}-tmp{t}").into_bytes();
                    map.set(&k, &encode(&k, seq, 2000)).expect("temp set");
                }
                for t in 0..n {
                    map.remove(format!("w{writer}-tmp{t}").as_bytes())
                        .expect("temp remove");
                }
            }
            3..=5 => {
                let v = map.incr(&ctr_key, 1, 0, None).expect("incr");
                writeln!(out, "ctr {v}").unwrap();
            }
            _ => {
                let i = rng.below(KEYS_PER_WRITER);
                let k = key(writer, i);
                let big = rng.below(10) == 0;
                let filler = rng.below(if big { 6000 } else { 300 }) as usize;
                map.set(&k, &encode(&k, seq, filler)).expect("set");
                writeln!(out, "ack {i} {seq}").unwrap();
            }
        }
        out.flush().unwrap();
    }
}

/// Reader: reads random keys forever; exits with status 3 on the first malformed value.
fn reader_role(path: &str, writers: u64) {
    let map = Shmap::open(path, &opts().read_only(true)).expect("reader opens the map");
    let mut rng = Rng(0x5EED);
    let mut buf = Vec::new();
    let parent = std::os::unix::process::parent_id();
    for n in 0u64.. {
        if n % 1024 == 0 && orphaned(parent) {
            return;
        }
        let k = key(rng.below(writers), rng.below(KEYS_PER_WRITER));
        match map.get_into(&k, &mut buf) {
            Ok(Some(_)) => {
                if let Err(e) = decode(&k, &buf) {
                    eprintln!("{e}");
                    std::process::exit(3);
                }
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("reader error: {e}");
                std::process::exit(4);
            }
        }
    }
}

/// What the parent knows a writer acknowledged.
#[derive(Default)]
struct Acks {
    last: HashMap<u64, u64>,
    counter: i64,
    compacting: bool,
}

struct Writer {
    child: Child,
    acks: Arc<Mutex<Acks>>,
    reader: std::thread::JoinHandle<()>,
}

fn spawn(role: &str, path: &str, writer: u64, seed: u64) -> Child {
    static SPAWNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let base = SPAWNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 32;
    Command::new(std::env::current_exe().unwrap())
        .env("SHMAP_CRASH_BASE", base.to_string())
        .env("SHMAP_CRASH_ROLE", role)
        .env("SHMAP_CRASH_PATH", path)
        .env("SHMAP_CRASH_WRITER", writer.to_string())
        .env("SHMAP_CRASH_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

fn spawn_writer(path: &str, writer: u64, seed: u64, acks: Arc<Mutex<Acks>>) -> Writer {
    let mut child = spawn("writer", path, writer, seed);
    let stdout = child.stdout.take().unwrap();
    let a = acks.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut acks = a.lock().unwrap();
            let mut parts = line.split(' ');
            match parts.next() {
                Some("ack") => {
                    let i: u64 = parts.next().unwrap().parse().unwrap();
                    let s: u64 = parts.next().unwrap().parse().unwrap();
                    acks.last.insert(i, s);
                }
                Some("ctr") => acks.counter = parts.next().unwrap().parse().unwrap(),
                Some("compacting") => acks.compacting = true,
                Some("compacted") => acks.compacting = false,
                _ => {}
            }
        }
    });
    Writer {
        child,
        acks,
        reader,
    }
}

/// Every acknowledged key holds its last acknowledged value or the one write that may have
/// completed after it (its acknowledgement lost with the process).
fn check_acks(map: &Shmap, writer: u64, acks: &Acks) {
    for (&i, &seq) in &acks.last {
        let k = key(writer, i);
        let v = map.get(&k).unwrap().unwrap_or_else(|| {
            panic!(
                "acknowledged key {:?} is missing",
                String::from_utf8_lossy(&k)
            )
        });
        let got = decode(&k, &v).unwrap();
        assert!(
            got >= seq,
            "key w{writer}-k{i}: acknowledged seq {seq}, map has {got}"
        );
    }
    let ctr = format!("w{writer}-counter");
    if acks.counter > 0 {
        let v = map.get(ctr.as_bytes()).unwrap().expect("counter exists");
        let n = i64::from_le_bytes(v.try_into().unwrap());
        assert!(
            n == acks.counter || n == acks.counter + 1,
            "counter {ctr}: acknowledged {}, map has {n}",
            acks.counter
        );
    }
}

fn run(dir: &Path, kills: usize, seed: u64) {
    let path: PathBuf = dir.join("crash-map");
    let path = path.to_str().unwrap().to_string();
    let map = Shmap::open(&path, &opts()).unwrap();
    let mut rng = Rng(seed);
    let writers = 2u64;
    let acks: Vec<_> = (0..writers)
        .map(|_| Arc::new(Mutex::new(Acks::default())))
        .collect();
    let mut running: Vec<Writer> = (0..writers)
        .map(|w| spawn_writer(&path, w, rng.next(), acks[w as usize].clone()))
        .collect();
    let mut reader = spawn("reader", &path, writers, 0);
    let (mut during_compaction, mut slowest) = (0, Duration::ZERO);
    let mut mid_build = 0;

    for round in 0..kills {
        let victim = rng.below(writers) as usize;
        let targeted = round % 3 == 0;
        let deadline =
            Instant::now() + Duration::from_millis(if targeted { 3000 } else { 5 + rng.below(60) });
        // Targeted rounds wait for the victim to announce a compaction, then kill at once.
        while Instant::now() < deadline {
            if targeted && acks[victim].lock().unwrap().compacting {
                break;
            }
            std::thread::sleep(Duration::from_micros(if targeted { 100 } else { 1000 }));
        }
        let w = running.remove(victim);
        let mut child = w.child;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        w.reader.join().unwrap();
        if w.acks.lock().unwrap().compacting {
            during_compaction += 1;
        }
        w.acks.lock().unwrap().compacting = false;

        // Kills that left a build in flight (the probe below finds it and abandons it).
        if map.stats().unwrap().building > 0 {
            mid_build += 1;
        }
        // The map stays usable: a new write completes (a stuck lock would hang here; the
        // watchdog in main turns that into a failure) and acknowledged values are intact.
        let t = Instant::now();
        map.set(b"probe", &round.to_le_bytes()).unwrap();
        slowest = slowest.max(t.elapsed());
        check_acks(&map, victim as u64, &w.acks.lock().unwrap());
        if let Some(status) = reader.try_wait().unwrap() {
            panic!("reader exited with {status}: it saw a malformed value or an error");
        }
        running.insert(
            victim,
            spawn_writer(&path, victim as u64, rng.next(), w.acks.clone()),
        );
    }
    for w in running {
        let mut child = w.child;
        child.kill().unwrap();
        child.wait().unwrap();
        w.reader.join().unwrap();
    }
    reader.kill().unwrap();
    let status = reader.wait().unwrap();
    assert!(status.code().is_none(), "reader failed: {status}");
    for (w, a) in acks.iter().enumerate() {
        check_acks(&map, w as u64, &a.lock().unwrap());
    }
    let stats = map.stats().unwrap();
    println!(
        "  {kills} kills ({during_compaction} during compaction, {mid_build} with a build in flight), \
         slowest write after a kill {slowest:?}, {} switches ({} builds, {} finished at once), {} entries",
        stats.switches, stats.builds, stats.builds_forced, stats.entries
    );
    assert!(during_compaction > 0, "no kill landed during a compaction");
}

fn main() {
    if let Ok(role) = std::env::var("SHMAP_CRASH_ROLE") {
        let path = std::env::var("SHMAP_CRASH_PATH").unwrap();
        let writer: u64 = std::env::var("SHMAP_CRASH_WRITER")
            .unwrap()
            .parse()
            .unwrap();
        let seed: u64 = std::env::var("SHMAP_CRASH_SEED").unwrap().parse().unwrap();
        match role.as_str() {
            "writer" => writer_role(&path, writer, seed),
            "reader" => reader_role(&path, writer),
            _ => unreachable!(),
        }
        return;
    }
    // A stuck lock must fail the test, not hang CI.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(300));
        eprintln!("crash test: watchdog fired after 300 s: something is stuck");
        std::process::exit(2);
    });
    let seed = std::env::var("SHMAP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test seed {seed} (set SHMAP_CRASH_SEED to reproduce)");
    let shm = tempfile::Builder::new()
        .prefix("shmap-crash")
        .tempdir_in("/dev/shm")
        .unwrap();
    println!("sigkill loop in /dev/shm:");
    run(shm.path(), 60, seed);
    // The same with two shards: the writers' keys spread over both, whose switches go through
    // the placement step.
    SHARDS.store(2, std::sync::atomic::Ordering::Relaxed);
    let shm2 = tempfile::Builder::new()
        .prefix("shmap-crash")
        .tempdir_in("/dev/shm")
        .unwrap();
    println!("sigkill loop in /dev/shm, two shards:");
    run(shm2.path(), 30, seed ^ 0x5EED);
    SHARDS.store(1, std::sync::atomic::Ordering::Relaxed);
    let disk = tempfile::Builder::new()
        .prefix("shmap-crash")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    println!("sigkill loop on disk:");
    run(disk.path(), 20, seed ^ 0x9E37_79B9);
    println!("crash test: ok");
}
