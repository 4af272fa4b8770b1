//! Single-process behaviour of the public API: round trips, growth, removal, counters, TTL.

mod common;

use std::sync::atomic::Ordering;

use common::manual_clock;
use shmap::{Error, Options, SetOptions, Shmap};

fn tmp() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("map").to_str().unwrap().to_string();
    (dir, p)
}

#[test]
fn set_get_remove_round_trip() {
    let (_d, p) = tmp();
    let m = Shmap::open(&p, &Options::new()).unwrap();
    assert_eq!(m.get(b"a").unwrap(), None);
    m.set(b"a", b"1").unwrap();
    m.set(b"b", b"").unwrap();
    assert_eq!(m.get(b"a").unwrap().unwrap(), b"1");
    assert_eq!(m.get(b"b").unwrap().unwrap(), b"");
    m.set(b"a", b"22").unwrap();
    assert_eq!(m.get(b"a").unwrap().unwrap(), b"22");
    assert_eq!(m.len().unwrap(), 2);
    assert!(m.remove(b"a").unwrap());
    assert!(!m.remove(b"a").unwrap());
    assert_eq!(m.get(b"a").unwrap(), None);
    assert_eq!(m.len().unwrap(), 1);
    assert!(m.contains(b"b").unwrap());
}

#[test]
fn grows_from_small_to_many_entries() {
    let (_d, p) = tmp();
    let m = Shmap::open(&p, &Options::new().initial_size(64 << 10)).unwrap();
    let n = 50_000u32;
    for i in 0..n {
        m.set(
            format!("key-{i}").as_bytes(),
            &i.to_le_bytes().repeat(1 + (i % 7) as usize),
        )
        .unwrap();
    }
    assert_eq!(m.len().unwrap(), n as u64);
    for i in 0..n {
        let v = m.get(format!("key-{i}").as_bytes()).unwrap().unwrap();
        assert_eq!(v, i.to_le_bytes().repeat(1 + (i % 7) as usize), "key {i}");
    }
    let s = m.stats().unwrap();
    assert!(s.generation > 1, "{s:?}");
    assert_eq!(s.evictions, 0);
}

#[test]
fn overwrite_churn_reclaims_dead_space_without_growing() {
    let (_d, p) = tmp();
    let m = Shmap::open(&p, &Options::new().initial_size(256 << 10)).unwrap();
    for round in 0..200u32 {
        for k in 0..50u32 {
            m.set(&k.to_le_bytes(), &[round as u8; 300]).unwrap();
        }
    }
    for k in 0..50u32 {
        assert_eq!(m.get(&k.to_le_bytes()).unwrap().unwrap(), vec![199u8; 300]);
    }
    let s = m.stats().unwrap();
    assert_eq!(s.entries, 50);
    assert!(s.log_capacity < 512 << 10, "{s:?}");
}

#[test]
fn incr_add_and_ttl() {
    let (_d, p) = tmp();
    let (now, o) = manual_clock(Options::new(), 1_000_000);
    let m = Shmap::open(&p, &o).unwrap();
    assert_eq!(m.incr(b"c", 5, 10, None).unwrap(), 15);
    assert_eq!(m.incr(b"c", -1, 0, None).unwrap(), 14);
    m.set(b"s", b"x").unwrap();
    assert!(matches!(m.incr(b"s", 1, 0, None), Err(Error::NotAnInteger)));
    assert!(!m.add(b"s", b"y", SetOptions::default()).unwrap());
    assert!(
        m.add(
            b"t",
            b"y",
            SetOptions {
                ttl_ms: Some(100),
                flags: 3
            }
        )
        .unwrap()
    );
    let mut buf = Vec::new();
    let meta = m.get_into(b"t", &mut buf).unwrap().unwrap();
    assert_eq!((meta.flags, meta.expires_ms), (3, 1_000_100));
    now.store(1_000_100, Ordering::Relaxed);
    assert_eq!(m.get(b"t").unwrap(), None);
    assert!(m.add(b"t", b"z", SetOptions::default()).unwrap());
    assert_eq!(m.get(b"t").unwrap().unwrap(), b"z");
}

#[test]
fn clear_and_reopen() {
    let (_d, p) = tmp();
    {
        let m = Shmap::open(&p, &Options::new()).unwrap();
        for i in 0..1000u32 {
            m.set(&i.to_le_bytes(), b"v").unwrap();
        }
    }
    let m = Shmap::open(&p, &Options::new()).unwrap();
    assert_eq!(m.len().unwrap(), 1000);
    assert_eq!(m.get(&7u32.to_le_bytes()).unwrap().unwrap(), b"v");
    m.clear().unwrap();
    assert_eq!(m.len().unwrap(), 0);
    assert_eq!(m.get(&7u32.to_le_bytes()).unwrap(), None);
    assert_eq!(m.keys().unwrap().len(), 0);
}

#[test]
fn at_max_size_evicts_or_refuses() {
    let (_d, p) = tmp();
    let max = 2 << 20;
    let opts = Options::new()
        .initial_size(128 << 10)
        .max_size(max)
        .retire_grace(std::time::Duration::ZERO);
    let m = Shmap::open(&p, &opts).unwrap();
    for i in 0..20_000u32 {
        m.set(format!("k{i}").as_bytes(), &[7u8; 500]).unwrap();
    }
    let s = m.stats().unwrap();
    assert!(s.evictions > 0, "{s:?}");
    assert!(s.file_allocated_bytes <= max, "{s:?}");
    assert_eq!(m.get(b"k19999").unwrap().unwrap(), vec![7u8; 500]);

    m.set_evict(false).unwrap();
    let err = (0..20_000u32)
        .find_map(|i| m.set(format!("n{i}").as_bytes(), &[1u8; 500]).err())
        .expect("a full map refuses");
    assert!(matches!(err, Error::Full { .. }), "{err}");
    assert_eq!(m.get(b"k19999").unwrap().unwrap(), vec![7u8; 500]);
    assert!(m.remove(b"k19999").unwrap());
}

#[test]
fn read_if_changed_skips_only_the_same_record() {
    use shmap::Lookup;
    let (_d, p) = tmp();
    let m = Shmap::open(&p, &Options::new()).unwrap();
    m.set(b"k", b"one").unwrap();
    let mut buf = [0u8; 16];
    let Lookup::Hit(first) = m.read_into(b"k", &mut buf).unwrap() else {
        panic!()
    };
    let held = Some(first.version);
    assert!(matches!(
        m.read_into_if_changed(b"k", &mut buf, held).unwrap(),
        Lookup::Unchanged(_)
    ));
    // Another key's write does not change this record.
    m.set(b"other", b"x").unwrap();
    assert!(matches!(
        m.read_into_if_changed(b"k", &mut buf, held).unwrap(),
        Lookup::Unchanged(_)
    ));
    // Rewriting the same bytes is a new record: a new version.
    m.set(b"k", b"one").unwrap();
    let Lookup::Hit(second) = m.read_into_if_changed(b"k", &mut buf, held).unwrap() else {
        panic!("a rewritten key is a new record")
    };
    assert_ne!(second.version, first.version);
    // A generation switch moves records: versions change, values do not.
    m.compact().unwrap();
    let Lookup::Hit(third) = m
        .read_into_if_changed(b"k", &mut buf, Some(second.version))
        .unwrap()
    else {
        panic!("a switch gives a new version")
    };
    assert_eq!(&buf[..third.len], b"one");
    m.remove(b"k").unwrap();
    assert_eq!(
        m.read_into_if_changed(b"k", &mut buf, Some(third.version))
            .unwrap(),
        Lookup::Miss
    );
}

/// With the system clock a hit of an entry with a TTL consults the kernel's coarse clock (a
/// tick behind); an entry close to its expiry must still expire on the exact clock, not a
/// tick late.
#[test]
fn ttl_expires_on_the_exact_clock() {
    let (_d, p) = tmp();
    let m = Shmap::open(&p, &Options::new()).unwrap();
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    for _ in 0..20 {
        m.set_with(
            b"k",
            b"v",
            SetOptions {
                ttl_ms: Some(2),
                flags: 0,
            },
        )
        .unwrap();
        let mut buf = Vec::new();
        let Some(meta) = m.get_into(b"k", &mut buf).unwrap() else {
            continue; // a preempted set: expired already
        };
        while wall() < meta.expires_ms {
            std::hint::spin_loop();
        }
        assert_eq!(m.get(b"k").unwrap(), None, "alive at its expiry");
        assert!(shmap::coarse_clock_ms() <= wall());
    }
    // Far from its expiry, the entry is alive (the coarse clock's shortcut).
    m.set_with(
        b"long",
        b"v",
        SetOptions {
            ttl_ms: Some(3_600_000),
            flags: 0,
        },
    )
    .unwrap();
    assert_eq!(m.get(b"long").unwrap().unwrap(), b"v");
}

/// What users rely on does not shrink with format version 3 (issue 9): an empty default map's
/// file is at most 2,076,672 bytes, a 100 KB map (`new NodeShareCache(name, 100 KB)`) opens and
/// grows to hold a 1 MB value, and the map has one shard.
#[test]
fn default_and_small_maps_keep_their_sizes() {
    let (_d, p) = tmp();
    let m = Shmap::open(&p, &Options::new()).unwrap();
    let s = m.stats().unwrap();
    assert!(s.file_bytes <= 2_076_672, "{} bytes", s.file_bytes);
    assert!(s.file_allocated_bytes <= 2_076_672);
    drop(m);
    let sb = std::fs::read(&p).unwrap();
    assert_eq!(
        u32::from_le_bytes(sb[88..92].try_into().unwrap()),
        0,
        "shard_bits"
    );

    let (_d, p) = tmp();
    let m = Shmap::open(&p, &Options::new().initial_size(100 << 10)).unwrap();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    m.set(b"big", &big).unwrap();
    m.set(b"small", b"v").unwrap();
    assert_eq!(m.get(b"big").unwrap().unwrap(), big);
    assert_eq!(m.get(b"small").unwrap().unwrap(), b"v");
}
