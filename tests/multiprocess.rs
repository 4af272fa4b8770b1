//! Guards visibility across processes: several processes writing and reading one map; every
//! acknowledged write is visible to all of them, while the map grows and compacts under them.

mod common;

use common::*;
use shmap::{Options, Shmap};

const PROCS: usize = 4;
const KEYS: usize = 3000;

fn value(p: usize, i: usize) -> Vec<u8> {
    format!("p{p}-v{i}-").repeat(1 + i % 40).into_bytes()
}

/// Child: writes its keys, then waits until every other writer's keys are visible.
#[test]
fn child_writer() {
    let Some(role) = child_role() else { return };
    let p: usize = role.strip_prefix("writer").unwrap().parse().unwrap();
    let path = std::env::var("SHMAP_PATH").unwrap();
    let map = Shmap::open(&path, &Options::new().initial_size(64 << 10)).unwrap();
    for i in 0..KEYS {
        map.set(format!("p{p}-k{i}").as_bytes(), &value(p, i))
            .unwrap();
        if i % 500 == 0 {
            map.compact().unwrap();
        }
    }
    map.set(format!("done-{p}").as_bytes(), b"1").unwrap();
    // Wait for the others, then check all their acknowledged writes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for q in 0..PROCS {
        while !map.contains(format!("done-{q}").as_bytes()).unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "writer {q} never finished"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for i in 0..KEYS {
            let got = map.get(format!("p{q}-k{i}").as_bytes()).unwrap();
            assert_eq!(got, Some(value(q, i)), "process {p} reading p{q}-k{i}");
        }
    }
}

#[test]
fn every_acknowledged_write_is_visible_to_all_processes() {
    if child_role().is_some() {
        return;
    }
    for dir in [shm_dir(), disk_dir()] {
        let path = map_path(dir.path(), "mp");
        let children: Vec<_> = (0..PROCS)
            .map(|p| {
                child_command(
                    "child_writer",
                    &format!("writer{p}"),
                    &[("SHMAP_PATH", path.as_str())],
                )
                .spawn()
                .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert_ok(&out);
        }
        // A fresh process-level view after all writers detached.
        let map = Shmap::open(&path, &Options::new()).unwrap();
        assert_eq!(map.len().unwrap(), (PROCS * KEYS + PROCS) as u64);
        for p in 0..PROCS {
            assert_eq!(
                map.get(format!("p{p}-k7").as_bytes()).unwrap(),
                Some(value(p, 7))
            );
        }
        let s = map.stats().unwrap();
        assert!(s.switches > 3, "the map grew and compacted: {s:?}");
    }
}

/// Threads of one process share one mapping and one process slot; their writes and reads mix.
#[test]
fn threads_share_one_map() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let path = map_path(dir.path(), "threads");
    let map = Shmap::open(&path, &Options::new().initial_size(64 << 10)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let path = path.clone();
            s.spawn(move || {
                let m = Shmap::open(&path, &Options::new()).unwrap();
                for i in 0..2000 {
                    m.set(format!("t{t}-{i}").as_bytes(), &value(t, i)).unwrap();
                    assert_eq!(
                        m.get(format!("t{t}-{i}").as_bytes()).unwrap(),
                        Some(value(t, i))
                    );
                }
            });
        }
    });
    assert_eq!(map.len().unwrap(), 8000);
}
