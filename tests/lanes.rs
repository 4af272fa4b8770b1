//! Guards the fast write (format.md, "Lanes and chunks"): processes overwriting the same keys
//! without the writer lock, beside locked writers (removes, `incr`, inserts) and cleaning that
//! closes their chunks, lose no write and leave counters that verify exactly.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmap::{Options, Shmap};

const KEYS: u64 = 400;
/// Writer processes, each writing every key.
const WRITERS: u64 = 2;

fn opts() -> Options {
    // A ring of a few MiB: chunks from the start, and the ring wraps many times a second.
    Options::new().initial_size(4 << 20).max_size(4 << 20)
}

/// Writer `w`'s `n`th value of key `k`: says whose and which, and changes size.
fn value(w: u64, k: u64, n: u64) -> Vec<u8> {
    let mut v = format!("{w}:{k}:{n}:").into_bytes();
    v.resize(40 + ((k + n) % 9) as usize * 16, b'x');
    v
}

fn parse(v: &[u8]) -> (u64, u64, u64) {
    let text = String::from_utf8_lossy(v);
    let mut p = text.split(':').map(|x| x.parse::<u64>().unwrap());
    let (w, k, n) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
    assert_eq!(v, value(w, k, n), "a mixed value");
    (w, k, n)
}

/// A writer child: overwrites every key for about a second, then once more with a last value
/// whose round it prints, so the parent knows each writer's last write of each key.
fn writer(path: &str, w: u64) {
    let map = Shmap::open(path, &opts()).unwrap();
    let deadline = Instant::now() + Duration::from_millis(800);
    let mut n = 0;
    while Instant::now() < deadline {
        for k in 0..KEYS {
            map.set(format!("k{k}").as_bytes(), &value(w, k, n))
                .unwrap();
            // The locked path beside the fast one: a counter, and a key removed and written
            // again (the fast write of it then loses the race to the remove or follows it).
            if k % 50 == w {
                map.incr(b"counter", 1, 0, None).unwrap();
            }
            if k % 97 == 0 {
                map.remove(format!("k{k}").as_bytes()).unwrap();
                map.set(format!("k{k}").as_bytes(), &value(w, k, n))
                    .unwrap();
            }
        }
        n += 1;
    }
    println!("rounds {n}");
}

#[test]
fn fast_writers_of_the_same_keys_lose_nothing() {
    if let Some(role) = child_role() {
        let w: u64 = role.parse().unwrap();
        writer(&std::env::var("SHMAP_PATH").unwrap(), w);
        return;
    }
    let dir = shm_dir();
    let path = map_path(dir.path(), "lanes");
    let map = Shmap::open(&path, &opts()).unwrap();
    for k in 0..KEYS {
        map.set(format!("k{k}").as_bytes(), &value(9, k, 0))
            .unwrap();
    }
    let children: Vec<_> = (0..WRITERS)
        .map(|w| {
            child_command(
                "fast_writers_of_the_same_keys_lose_nothing",
                &w.to_string(),
                &[("SHMAP_PATH", &path)],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    // Meanwhile: every key is always there, and always one writer's whole value.
    let t = Instant::now();
    let mut reads = 0u64;
    while t.elapsed() < Duration::from_millis(600) {
        for k in 0..KEYS {
            if k % 97 == 0 {
                continue; // removed and written again by the writers
            }
            let v = map.get(format!("k{k}").as_bytes()).unwrap();
            let v = v.unwrap_or_else(|| panic!("k{k} went missing"));
            assert_eq!(parse(&v).1, k);
            reads += 1;
        }
    }
    let mut rounds = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_ok(&out);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let r: u64 = text
            .lines()
            .find_map(|l| l.split("rounds ").nth(1))
            .unwrap_or_else(|| panic!("no rounds in {text:?}"))
            .parse()
            .unwrap();
        rounds.push(r);
    }
    // Each key holds one writer's last value of it: a fast write never brought back an
    // older one, nor was one lost behind a locked write.
    for k in 0..KEYS {
        let v = map.get(format!("k{k}").as_bytes()).unwrap().unwrap();
        let (w, kk, n) = parse(&v);
        assert_eq!(kk, k);
        assert_eq!(
            n + 1,
            rounds[w as usize],
            "k{k} holds an older value of writer {w}"
        );
    }
    let counted: i64 = map.incr(b"counter", 0, 0, None).unwrap();
    let expected: u64 = rounds
        .iter()
        .enumerate()
        .map(|(w, r)| r * (0..KEYS).filter(|k| k % 50 == w as u64).count() as u64)
        .sum();
    assert_eq!(counted as u64, expected, "an incr was lost");
    // The counters agree with the index (the `incr` above quiesced the lanes).
    let v = inspector(&path).verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(v.counters_checked, "{v:?}");
    assert!(v.notes.is_empty(), "{:?}", v.notes);
    assert_eq!(map.len().unwrap(), KEYS + 1);
    assert!(reads > 0);
}

/// A chunk claimed in a dense ring of a map below its `max_size` makes its room as a write
/// does, by growing: the first cut evicted for it, as if the map were at its cap.
#[test]
fn a_chunk_claim_below_the_cap_grows_rather_than_evicts() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "dense");
    let map = Shmap::open(&path, &Options::new()).unwrap();
    let keys = 5000u64;
    for round in 0..6 {
        for k in 0..keys {
            map.set(format!("k{k}").as_bytes(), &value(0, k, round))
                .unwrap();
        }
    }
    let s = map.stats().unwrap();
    assert_eq!(s.evictions, 0, "evicted below max_size: {s:?}");
    for k in 0..keys {
        assert!(
            map.get(format!("k{k}").as_bytes()).unwrap().is_some(),
            "k{k}"
        );
    }
}
