//! shmap-inspect against a map that another process keeps writing (growth, cleaning, eviction,
//! removals, counters), and after that process is killed mid-operation: `--verify` must stay
//! clean, every output must parse, and the writer must show up as attached, then as dead.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::inspect_raw;
use shmap::{Options, SetOptions, Shmap};

/// Set in the re-executed test binary: the map the child writes to.
const CHILD_ENV: &str = "SHMAP_INSPECT_TEST_WRITER";

/// The writer: re-executed by the tests below as a child process; a no-op otherwise.
#[test]
#[ignore = "runs only as the child process of the other tests in this file"]
fn writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let opts = Options::new()
        .initial_size(128 << 10)
        .max_size(2 << 20)
        .retire_grace(std::time::Duration::from_millis(1));
    let m = Shmap::open(&path, &opts).unwrap();
    let mut x: u64 = std::process::id() as u64 | 1;
    // Bounded, in case the parent dies without killing us.
    for n in 0..50_000_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("key-{}", x % 3000);
        match x % 16 {
            0 => {
                m.remove(key.as_bytes()).unwrap();
            }
            1 => {
                m.incr(format!("counter-{}", x % 40).as_bytes(), 1, 0, None)
                    .unwrap();
            }
            2 => {
                let o = SetOptions {
                    ttl_ms: Some(x % 20),
                    flags: (x % 4) as u32,
                };
                m.set_with(key.as_bytes(), &vec![b'e'; (x % 200) as usize], o)
                    .unwrap();
            }
            _ => m
                .set(key.as_bytes(), &vec![b'v'; (x % 1500) as usize])
                .unwrap(),
        }
        if n == 300 {
            println!("ready");
        }
    }
}

/// Starts the writer on `path` and waits until it has written for a while.
fn spawn_writer(path: &Path) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "writer_child", "--nocapture"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        if line.unwrap().trim() == "ready" {
            return child;
        }
    }
    panic!("the writer exited before it was ready: {:?}", child.wait());
}

fn inspect(args: &[&str], path: &Path) -> common::Run {
    let mut all = args.to_vec();
    all.push(path.to_str().unwrap());
    inspect_raw(&all)
}

/// Runs every mode once against `path` and checks it is healthy and parses.
fn check_all_modes(path: &Path) -> serde_json::Value {
    let r = inspect(&["--verify"], path);
    assert_eq!(r.code, 0, "--verify:\n{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.ends_with("ok: no problems found\n"),
        "{}",
        r.stdout
    );

    let r = inspect(&["--verify", "--json"], path);
    assert_eq!(r.code, 0, "--verify --json:\n{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v:#}");
    assert!(v["live_slots"].as_u64().unwrap() > 0, "{v:#}");

    let r = inspect(&["--dump"], path);
    assert_eq!(r.code, 0, "--dump: {}", r.stderr);
    for line in r.stdout.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e["key"] == "after" {
            assert_eq!(e["value"], "recovery");
            continue;
        }
        assert!(e["key"].as_str().unwrap().starts_with(['k', 'c']), "{e}");
        if e["value_encoding"] == "i64" {
            assert!(e["value"].as_i64().unwrap() > 0, "{e}");
        } else {
            let v = e["value"].as_str().unwrap();
            assert!(v.bytes().all(|b| b == b'v' || b == b'e'), "{e}");
        }
    }

    let r = inspect(&["--keys", "--prefix", "counter-"], path);
    assert_eq!(r.code, 0, "--keys: {}", r.stderr);
    assert!(r.stdout.lines().all(|k| k.starts_with("counter-")));

    let r = inspect(&["--json"], path);
    assert_eq!(r.code, 0, "--json:\n{}{}", r.stdout, r.stderr);
    let s: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(s["problems"].as_array().unwrap().len(), 0, "{s:#}");
    assert_eq!(s["entries"]["damaged"], 0, "{s:#}");
    s
}

#[test]
fn verify_stays_clean_while_another_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy-map");
    let mut child = spawn_writer(&path);
    for _ in 0..8 {
        let s = check_all_modes(&path);
        let pids: Vec<u64> = s["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(pids, [child.id() as u64], "{s:#}");
        assert_eq!(s["last_exit"], "in_use");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_writer_killed_mid_operation_leaves_a_map_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut path = dir.path().to_path_buf();
    for round in 0..6 {
        path = dir.path().join(format!("killed-map-{round}"));
        let mut child = spawn_writer(&path);
        // Let it run a little longer each round so the kill lands at different moments.
        for _ in 0..round {
            let r = inspect(&["--json"], &path);
            assert_eq!(r.code, 0, "{}", r.stderr);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let s = check_all_modes(&path);
        let exit = s["last_exit"].as_str().unwrap();
        assert!(
            ["writer_died", "unclean"].contains(&exit),
            "round {round}: {s:#}"
        );
        assert_eq!(s["processes"].as_array().unwrap().len(), 0, "{s:#}");
    }
    // The library recovers what the killed writers left; the result verifies too.
    let m = Shmap::open_path(&path, &Options::new()).unwrap();
    m.set(b"after", b"recovery").unwrap();
    let s = check_all_modes(&path);
    assert_eq!(s["last_exit"], "in_use");
    assert_eq!(s["lock"]["state"], "free");
    drop(m);
    let s = check_all_modes(&path);
    assert_eq!(s["last_exit"], "clean");
}
