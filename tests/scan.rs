//! Guards scans (`keys`, `entries`, `scan`, `scan_from`): lock-free and chunked, with SCAN-like
//! semantics that hold while writers grow, shrink and rebuild the map: every entry present for
//! the whole scan is returned, each key at most once; prefix and limit filter; cursors resume.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use shmap::{Options, ScanCursor, ScanOptions, Shmap};

fn opts() -> Options {
    Options::new().initial_size(64 << 10).max_size(256 << 20)
}

#[test]
fn prefix_limit_and_cursor() {
    let dir = shm_dir();
    let m = Shmap::open(map_path(dir.path(), "scan"), &opts()).unwrap();
    for i in 0..3000u32 {
        m.set(format!("user:{i}").as_bytes(), &i.to_le_bytes())
            .unwrap();
        m.set(format!("sess:{i}").as_bytes(), b"s").unwrap();
    }
    let users = m
        .scan(&ScanOptions::new().prefix("user:").values(true))
        .unwrap();
    assert_eq!(users.len(), 3000);
    for e in &users {
        let i: u32 = std::str::from_utf8(&e.key[5..]).unwrap().parse().unwrap();
        assert_eq!(e.value, i.to_le_bytes());
    }
    assert!(m.scan(&ScanOptions::new().limit(7)).unwrap().len() == 7);
    assert!(
        m.scan(&ScanOptions::new().prefix("nothing"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(m.keys().unwrap().len(), 6000);

    // Pages of 100 cover every key exactly once.
    let mut seen = BTreeSet::new();
    let mut cursor = Some(ScanCursor::START);
    let mut pages = 0;
    while let Some(c) = cursor {
        let (page, next) = m
            .scan_from(c, &ScanOptions::new().prefix("sess:").limit(100))
            .unwrap();
        assert!(page.len() <= 100);
        for e in page {
            assert!(seen.insert(e.key), "a key came twice");
        }
        // A cursor survives a round trip through a number.
        cursor = next.map(|c| ScanCursor::from_u64(c.to_u64()));
        pages += 1;
    }
    assert_eq!(seen.len(), 3000);
    assert!(pages >= 30);
}

#[test]
fn paged_scan_across_growth_and_shrink() {
    let dir = shm_dir();
    let m = Shmap::open(map_path(dir.path(), "scan-grow"), &opts()).unwrap();
    for i in 0..500u32 {
        m.set(format!("stable{i}").as_bytes(), b"x").unwrap();
    }
    let gen0 = m.stats().unwrap().generation;
    let mut seen = HashSet::new();
    let mut cursor = Some(ScanCursor::START);
    let mut round = 0u32;
    while let Some(c) = cursor {
        let (page, next) = m.scan_from(c, &ScanOptions::new().limit(40)).unwrap();
        for e in page {
            assert!(
                seen.insert(e.key.clone()),
                "{:?} came twice",
                String::from_utf8_lossy(&e.key)
            );
        }
        // Between pages: growth (many new keys), then shrink (remove them).
        if round.is_multiple_of(2) {
            for j in 0..2000u32 {
                m.set(format!("churn{round}-{j}").as_bytes(), &[7u8; 100])
                    .unwrap();
            }
        } else {
            for j in 0..2000u32 {
                m.remove(format!("churn{}-{j}", round - 1).as_bytes())
                    .unwrap();
            }
            m.compact().unwrap();
        }
        round += 1;
        cursor = next;
    }
    assert!(
        m.stats().unwrap().generation > gen0 + 2,
        "no switch happened during the scan"
    );
    for i in 0..500u32 {
        assert!(
            seen.contains(format!("stable{i}").as_bytes()),
            "stable{i} was missed"
        );
    }
}

#[test]
fn concurrent_writers_never_hide_stable_entries() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "scan-conc");
    let m = Shmap::open(&path, &opts()).unwrap();
    for i in 0..2000u32 {
        m.set(format!("stable{i}").as_bytes(), &[1u8; 50]).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (m, stop) = (m.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(7);
            while !stop.load(Ordering::Relaxed) {
                let k = rng.next() % 20_000;
                if rng.next().is_multiple_of(3) {
                    m.remove(format!("churn{k}").as_bytes()).unwrap();
                } else {
                    m.set(
                        format!("churn{k}").as_bytes(),
                        &vec![2u8; (k % 500) as usize],
                    )
                    .unwrap();
                }
            }
        })
    };
    for _ in 0..20 {
        let entries = m.entries().unwrap();
        let mut keys = HashSet::new();
        for e in &entries {
            assert!(keys.insert(e.key.clone()), "a key came twice in one scan");
            if e.key.starts_with(b"stable") {
                assert_eq!(e.value, [1u8; 50]);
            }
        }
        for i in 0..2000u32 {
            assert!(
                keys.contains(format!("stable{i}").as_bytes()),
                "stable{i} missed"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}
