//! Guards lock-free reads racing writers: keys that are always present are never reported
//! missing, and values are never mixed, while writers overwrite them fast enough for the ring
//! to wrap and reuse the bytes a slow reader is looking at.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use shmap::{Options, Shmap};

const KEYS: u32 = 10;

fn value(k: u32, round: u32) -> Vec<u8> {
    let mut v = format!("{k}:{round}:").into_bytes();
    v.resize(10_000 + (round % 7) as usize * 100, (k + round) as u8);
    v
}

fn check(k: u32, v: &[u8]) {
    let text = String::from_utf8_lossy(&v[..16.min(v.len())]).to_string();
    let mut parts = text.split(':');
    assert_eq!(
        parts.next(),
        Some(k.to_string().as_str()),
        "value of key {k} belongs to another key"
    );
    let round: u32 = parts.next().unwrap().parse().unwrap();
    assert_eq!(v, value(k, round), "value of key {k} is mixed");
}

#[test]
fn present_keys_are_never_missed_while_the_ring_wraps() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "races");
    // A small map: 10 KB overwrites wrap the ring every few dozen writes.
    let map = Shmap::open(
        &path,
        &Options::new().initial_size(1 << 20).max_size(1 << 20),
    )
    .unwrap();
    for k in 0..KEYS {
        map.set(&k.to_le_bytes(), &value(k, 0)).unwrap();
    }
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(3);
    std::thread::scope(|s| {
        s.spawn(|| {
            let m = Shmap::open(&path, &Options::new()).unwrap();
            let mut round = 1;
            while Instant::now() < deadline {
                for k in 0..KEYS {
                    m.set(&k.to_le_bytes(), &value(k, round)).unwrap();
                }
                round += 1;
            }
            stop.store(true, Ordering::Relaxed);
        });
        // More readers than cores, so readers get preempted in the middle of a probe.
        for r in 0..4u32 {
            let (path, stop) = (&path, &stop);
            s.spawn(move || {
                let m = Shmap::open(path, &Options::new()).unwrap();
                let mut buf = Vec::new();
                let mut k = r;
                while !stop.load(Ordering::Relaxed) {
                    k = (k + 1) % KEYS;
                    let found = m.get_into(&k.to_le_bytes(), &mut buf).unwrap();
                    assert!(
                        found.is_some(),
                        "key {k} is always present but was reported missing"
                    );
                    check(k, &buf);
                }
            });
        }
    });
    let s = map.stats().unwrap();
    assert_eq!(s.evictions, 0, "{s:?}");
}
