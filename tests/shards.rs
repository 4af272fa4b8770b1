//! Guards maps of several shards (format version 3): keys route to shards by their hash's top
//! bits and every operation finds them there; scans walk shard after shard in hash order with
//! a resumable cursor; `len` and statistics sum the shards; `set_if` across shards holds; each
//! shard grows by its own switches through the placement step, inside `max_size`; writers of
//! several threads and processes run at once; the verification walk finds nothing wrong.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use common::*;
use shmap::{Compare, Condition, Options, ScanCursor, ScanOptions, SetOptions, Shmap};

fn open(path: &str, shards: u32) -> Shmap {
    Shmap::open(path, &Options::new().initial_size(256 << 10).shards(shards)).unwrap()
}

fn shard_bits(path: &str) -> u32 {
    let b = std::fs::read(path).unwrap();
    u32::from_le_bytes(b[88..92].try_into().unwrap())
}

#[test]
fn keys_live_in_their_shards_and_every_operation_finds_them() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "four");
    let m = open(&path, 4);
    assert_eq!(shard_bits(&path), 2);
    let mut want = HashMap::new();
    for i in 0..5000u32 {
        let k = format!("key:{i}");
        let v = format!("value-{i}-{}", "x".repeat((i % 50) as usize));
        m.set(k.as_bytes(), v.as_bytes()).unwrap();
        want.insert(k, v);
    }
    for i in (0..5000u32).step_by(7) {
        let k = format!("key:{i}");
        assert!(m.remove(k.as_bytes()).unwrap());
        want.remove(&k);
    }
    assert_eq!(m.incr(b"counter", 5, 10, None).unwrap(), 15);
    want.insert("counter".into(), String::new());
    assert!(!m.add(b"key:1", b"again", SetOptions::default()).unwrap());
    for (k, v) in &want {
        if k == "counter" {
            continue;
        }
        assert_eq!(
            m.get(k.as_bytes()).unwrap().as_deref(),
            Some(v.as_bytes()),
            "{k}"
        );
    }
    assert_eq!(m.len().unwrap(), want.len() as u64);
    let keys: Vec<Vec<u8>> = m.keys().unwrap();
    let set: BTreeSet<Vec<u8>> = keys.iter().cloned().collect();
    assert_eq!(set.len(), keys.len(), "a key came back twice");
    let expect: BTreeSet<Vec<u8>> = want.keys().map(|k| k.as_bytes().to_vec()).collect();
    assert_eq!(set, expect);
    // A resumable scan in small pages covers everything once, across shard boundaries.
    let mut at = Some(ScanCursor::START);
    let mut seen = Vec::new();
    while let Some(c) = at {
        let (found, next) = m.scan_from(c, &ScanOptions::new().limit(97)).unwrap();
        seen.extend(found.into_iter().map(|e| e.key));
        at = next;
    }
    assert_eq!(seen.len(), expect.len());
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expect);
    let s = m.stats().unwrap();
    assert_eq!(s.shards, 4);
    assert_eq!(s.entries, want.len() as u64);
    assert!(s.switches >= 1, "the shards grew: {s:?}");
    assert_eq!(
        m.remove_prefix(b"key:1", 50).unwrap(),
        want.keys().filter(|k| k.starts_with("key:1")).count() as u64
    );
    assert!(
        verify_problems(&path).is_empty(),
        "{:?}",
        verify_problems(&path)
    );
    drop(m);
    // Reopened (alone: recovery and trimming per shard), everything is still there.
    let m = Shmap::open(&path, &Options::new()).unwrap();
    assert_eq!(
        m.get(b"key:2").unwrap().as_deref(),
        Some(want["key:2"].as_bytes())
    );
    assert_eq!(
        shard_bits(&path),
        2,
        "an existing map keeps its shard count"
    );
    m.clear().unwrap();
    assert_eq!(m.len().unwrap(), 0);
    assert!(verify_problems(&path).is_empty());
}

#[test]
fn shard_counts_are_checked_and_bounded_by_the_initial_size() {
    let dir = shm_dir();
    for bad in [3u32, 6, 129, 256] {
        let p = map_path(dir.path(), &format!("bad{bad}"));
        let e = Shmap::open(&p, &Options::new().shards(bad)).unwrap_err();
        assert_eq!(e.code(), "ERR_SHMAP_INVALID_ARGUMENT", "{bad}: {e}");
    }
    // A 64 KiB map has room for two shards' first generations, not more.
    let p = map_path(dir.path(), "small");
    let m = Shmap::open(&p, &Options::new().initial_size(64 << 10).shards(128)).unwrap();
    assert_eq!(shard_bits(&p), 1);
    m.set(b"a", b"b").unwrap();
    // 128 shards need a longer header, still inside the initial size.
    let p = map_path(dir.path(), "wide");
    let m = Shmap::open(&p, &Options::new().initial_size(4 << 20).shards(128)).unwrap();
    assert_eq!(shard_bits(&p), 7);
    assert!(std::fs::metadata(&p).unwrap().len() <= 4 << 20);
    for i in 0..3000u32 {
        m.set(format!("k{i}").as_bytes(), &[7u8; 100]).unwrap();
    }
    assert_eq!(m.len().unwrap(), 3000);
    assert_eq!(m.keys().unwrap().len(), 3000);
    assert!(verify_problems(&p).is_empty(), "{:?}", verify_problems(&p));
    // Auto: twice the cores.
    let p = map_path(dir.path(), "auto");
    let _m = Shmap::open(&p, &Options::new().shards(0)).unwrap();
    assert!(shard_bits(&p) >= 1);
}

#[test]
fn set_if_holds_across_shards() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "set-if");
    let m = open(&path, 16);
    // A value key and a version key in different shards (the shard is the hash's top bits).
    let b = std::fs::read(&path).unwrap();
    let seed = u64::from_le_bytes(b[72..80].try_into().unwrap());
    let shard = |k: &str| shmap::format::hash(k.as_bytes(), seed) >> 60;
    let kk = "value-key".to_string();
    let vk = (0..1000u32)
        .map(|i| format!("version-{i}"))
        .find(|v| shard(v) != shard(&kk))
        .unwrap();
    let cond = |v: i64| Condition {
        version_key: vk.as_bytes(),
        version: v,
        compare: Compare::Le,
        stamp: Some(None),
        floor_key: None,
    };
    assert!(
        m.set_if(kk.as_bytes(), Some(b"one"), SetOptions::default(), &cond(5))
            .unwrap()
    );
    assert!(
        !m.set_if(kk.as_bytes(), Some(b"old"), SetOptions::default(), &cond(3))
            .unwrap()
    );
    assert_eq!(m.get(kk.as_bytes()).unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(m.incr(vk.as_bytes(), 0, 0, None).unwrap(), 5);
    assert!(
        m.set_if(kk.as_bytes(), None, SetOptions::default(), &cond(9))
            .unwrap()
    );
    assert_eq!(m.get(kk.as_bytes()).unwrap(), None);
    assert!(verify_problems(&path).is_empty());
}

#[test]
fn writers_of_several_threads_and_shards_at_once_inside_max_size() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "threads");
    let max = 8 << 20;
    let m = Arc::new(
        Shmap::open(
            &path,
            &Options::new()
                .initial_size(256 << 10)
                .max_size(max)
                .shards(4),
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let k = format!("t{t}:{}", i % 5000);
                    m.set(
                        k.as_bytes(),
                        &vec![(i % 251) as u8; 200 + (i % 300) as usize],
                    )
                    .unwrap();
                    if i % 1000 == 0 {
                        let s = m.stats().unwrap();
                        assert!(s.file_allocated_bytes <= max, "{s:?}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = m.stats().unwrap();
    assert!(s.file_allocated_bytes <= max, "{s:?}");
    // At the cap entries were evicted; what is there is intact, in every shard.
    let entries = m.entries().unwrap();
    assert!(entries.len() > 1000, "{} entries", entries.len());
    assert_eq!(entries.len() as u64, m.len().unwrap());
    for e in &entries {
        assert!(e.value.iter().all(|&b| b == e.value[0]), "torn value");
    }
    assert!(
        verify_problems(&path).is_empty(),
        "{:?}",
        verify_problems(&path)
    );
}

/// The verification walk checks the placement invariant: a shard whose descriptor names
/// another shard's region is reported, at its descriptor.
#[test]
fn verify_reports_shards_that_overlap() {
    use std::os::unix::fs::FileExt;
    use zerocopy::{FromBytes, IntoBytes};
    let dir = shm_dir();
    let path = map_path(dir.path(), "overlap");
    let m = open(&path, 2);
    m.set(b"a", b"1").unwrap();
    drop(m);
    assert!(verify_problems(&path).is_empty());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let desc = |shard: usize| {
        let mut a = [0u8; 8];
        f.read_exact_at(&mut a, shmap::format::shard_off(shard))
            .unwrap();
        let at = shmap::format::desc_off(shard, u64::from_le_bytes(a) & 1);
        let mut d = [0u8; 64];
        f.read_exact_at(&mut d, at).unwrap();
        (at, shmap::format::Desc::read_from_bytes(&d).unwrap())
    };
    let (_, d0) = desc(0);
    let (at1, mut d1) = desc(1);
    d1.log_off = d0.log_off;
    d1.crc = d1.compute_crc();
    f.write_all_at(d1.as_bytes(), at1).unwrap();
    let problems = verify_problems(&path);
    assert!(
        problems
            .iter()
            .any(|p| p.offset == at1 && p.what.contains("overlaps shard 0")),
        "{problems:?}"
    );
}
