//! The store primitives the Node adapters build on: `expires_at`, `expire` (re-timing without
//! rewriting the value), `incr_with` (TTL only on creation, no creation, the expiry from the
//! same step), `remove_many` and `remove_prefix` (scan a batch, remove it under one hold, go on).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use shmap::{Counter, Error, IncrOptions, Lookup, Options, SetOptions, Shmap};

fn open_with_clock() -> (tempfile::TempDir, Shmap, Arc<AtomicU64>) {
    let dir = shm_dir();
    let (now, o) = manual_clock(Options::new(), 1_000_000);
    let m = Shmap::open(map_path(dir.path(), "map"), &o).unwrap();
    (dir, m, now)
}

fn ttl(ms: u64) -> SetOptions {
    SetOptions {
        ttl_ms: Some(ms),
        flags: 5,
    }
}

#[test]
fn expires_at_reports_the_expiry_without_the_value() {
    let (_d, m, now) = open_with_clock();
    assert_eq!(m.expires_at(b"none").unwrap(), None);
    m.set_with(b"forever", b"v", ttl(0)).unwrap();
    assert_eq!(m.expires_at(b"forever").unwrap(), Some(0));
    m.set_with(b"soon", b"v", ttl(100)).unwrap();
    assert_eq!(m.expires_at(b"soon").unwrap(), Some(1_000_100));
    now.store(1_000_100, Ordering::Relaxed);
    assert_eq!(m.expires_at(b"soon").unwrap(), None, "expired means absent");
}

#[test]
fn expire_retimes_and_keeps_value_and_flags() {
    let (_d, m, now) = open_with_clock();
    assert!(!m.expire(b"absent", 100).unwrap());
    assert_eq!(m.len().unwrap(), 0, "expire creates nothing");
    m.set_with(b"k", b"value", ttl(100)).unwrap();
    let mut buf = vec![0; 64];
    let Lookup::Hit(before) = m.read_into(b"k", &mut buf).unwrap() else {
        panic!("k is there")
    };
    assert!(m.expire(b"k", 5_000).unwrap());
    let mut v = Vec::new();
    let meta = m.get_into(b"k", &mut v).unwrap().unwrap();
    assert_eq!(v, b"value");
    assert_eq!((meta.flags, meta.expires_ms), (5, 1_005_000));
    assert_ne!(
        meta.version, before.version,
        "a new record, so held decoded copies are revalidated"
    );
    now.store(1_000_200, Ordering::Relaxed);
    assert_eq!(
        m.get(b"k").unwrap().as_deref(),
        Some(&b"value"[..]),
        "outlived its old TTL"
    );
    // 0 = never expires (not Redis's PEXPIRE 0, which deletes).
    assert!(m.expire(b"k", 0).unwrap());
    assert_eq!(m.expires_at(b"k").unwrap(), Some(0));
    now.store(u64::MAX / 2, Ordering::Relaxed);
    assert!(m.contains(b"k").unwrap());
    // An expired entry is absent for expire too.
    m.set_with(b"e", b"v", ttl(1)).unwrap();
    now.fetch_add(1, Ordering::Relaxed);
    assert!(!m.expire(b"e", 1000).unwrap());
    assert!(!m.contains(b"e").unwrap());
    // Counters stay counters.
    m.incr(b"n", 3, 0, None).unwrap();
    assert!(m.expire(b"n", 10).unwrap());
    assert_eq!(m.incr(b"n", 1, 0, None).unwrap(), 4);
}

#[test]
fn incr_with_init_ttl_applies_only_on_creation() {
    let (_d, m, now) = open_with_clock();
    let o = IncrOptions {
        init_ttl_ms: Some(100),
        ..IncrOptions::default()
    };
    let c = m.incr_with(b"w", 1, o).unwrap();
    assert_eq!(
        c,
        Some(Counter {
            value: 1,
            expires_ms: 1_000_100
        })
    );
    now.store(1_000_050, Ordering::Relaxed);
    let c = m.incr_with(b"w", 1, o).unwrap().unwrap();
    assert_eq!(
        (c.value, c.expires_ms),
        (2, 1_000_100),
        "the window is not extended"
    );
    now.store(1_000_100, Ordering::Relaxed);
    let c = m.incr_with(b"w", 1, o).unwrap().unwrap();
    assert_eq!(
        (c.value, c.expires_ms),
        (1, 1_000_200),
        "a new window after expiry"
    );
    // ttl_ms re-times on every call, as `incr`'s ttl does.
    let every = IncrOptions {
        ttl_ms: Some(10),
        ..IncrOptions::default()
    };
    let c = m.incr_with(b"w", 1, every).unwrap().unwrap();
    assert_eq!((c.value, c.expires_ms), (2, 1_000_110));
    // init and no expiry.
    let c = m
        .incr_with(
            b"i",
            5,
            IncrOptions {
                init: 10,
                init_ttl_ms: Some(0),
                ..IncrOptions::default()
            },
        )
        .unwrap();
    assert_eq!(
        c,
        Some(Counter {
            value: 15,
            expires_ms: 0
        })
    );
}

#[test]
fn incr_with_create_false_writes_nothing() {
    let (_d, m, now) = open_with_clock();
    let no = IncrOptions {
        create: false,
        ..IncrOptions::default()
    };
    let before = m.stats().unwrap().bytes_written;
    assert_eq!(m.incr_with(b"x", -1, no).unwrap(), None);
    assert_eq!(m.len().unwrap(), 0);
    assert_eq!(m.stats().unwrap().bytes_written, before);
    m.incr_with(
        b"x",
        2,
        IncrOptions {
            init_ttl_ms: Some(100),
            ..IncrOptions::default()
        },
    )
    .unwrap();
    let c = m.incr_with(b"x", -1, no).unwrap().unwrap();
    assert_eq!((c.value, c.expires_ms), (1, 1_000_100), "keeps its expiry");
    now.store(1_000_100, Ordering::Relaxed);
    assert_eq!(
        m.incr_with(b"x", -1, no).unwrap(),
        None,
        "expired is absent"
    );
    assert!(!m.contains(b"x").unwrap());
    m.set(b"s", b"text").unwrap();
    assert!(matches!(m.incr_with(b"s", 1, no), Err(Error::NotAnInteger)));
}

#[test]
fn remove_many_removes_each_and_counts_the_present() {
    let (_d, m, _now) = open_with_clock();
    for i in 0..10u8 {
        m.set(&[b'k', i], b"v").unwrap();
    }
    let keys: Vec<Vec<u8>> = (0..12u8).map(|i| vec![b'k', i]).collect();
    assert_eq!(m.remove_many(&keys[..5]).unwrap(), 5);
    assert_eq!(
        m.remove_many(&keys).unwrap(),
        5,
        "k10 and k11 never existed"
    );
    assert_eq!(m.len().unwrap(), 0);
    assert!(matches!(
        m.remove_many(&[b"ok".to_vec(), Vec::new()]),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn remove_prefix_removes_what_stays_under_the_prefix_while_a_writer_runs() {
    let dir = shm_dir();
    let m = Shmap::open(
        map_path(dir.path(), "map"),
        &Options::new().max_size(256 << 20).evict(false),
    )
    .unwrap();
    const N: u32 = 20_000;
    for i in 0..N {
        m.set(format!("del:{i}").as_bytes(), b"v").unwrap();
    }
    for i in 0..500u32 {
        m.set(format!("keep:{i}").as_bytes(), &i.to_le_bytes())
            .unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (m, stop) = (m.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                m.set(format!("del:late{}", k % 3000).as_bytes(), b"late")
                    .unwrap();
                m.set(format!("keep:churn{}", k % 3000).as_bytes(), b"c")
                    .unwrap();
                k += 1;
            }
            k
        })
    };
    let n = m.remove_prefix(b"del:", 256).unwrap();
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(n >= u64::from(N), "{n} removed");
    for i in 0..N {
        assert!(
            !m.contains(format!("del:{i}").as_bytes()).unwrap(),
            "del:{i}"
        );
    }
    // Keys written under the prefix meanwhile may or may not be removed; nothing else is.
    let left = m
        .scan(&shmap::ScanOptions::new().prefix(&b"del:"[..]))
        .unwrap();
    assert!(left.iter().all(|e| e.key.starts_with(b"del:late")));
    for i in 0..500u32 {
        let mut v = Vec::new();
        m.get_into(format!("keep:{i}").as_bytes(), &mut v).unwrap();
        assert_eq!(v, i.to_le_bytes());
    }
    assert!(writes > 0);
    assert_eq!(
        m.remove_prefix(b"nothing", 0).unwrap(),
        0,
        "a batch of 0 is 1"
    );
    let before = m.len().unwrap();
    assert_eq!(m.remove_prefix(b"", 64).unwrap(), before, "'' is every key");
    assert_eq!(m.len().unwrap(), 0);
}

mod model {
    //! Random sequences of set, remove, incr_with, expire and clock steps, checked after every
    //! step against a HashMap model of values and expiries.
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, Vec<u8>, u64),
        Remove(u8),
        Incr(u8, i64, Option<u64>, Option<u64>, bool),
        Expire(u8, u64),
        Advance(u64),
    }

    #[derive(Debug, Clone, PartialEq)]
    enum V {
        Int(i64),
        Bytes(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        let k = 0u8..6;
        let ttl = prop_oneof![Just(0u64), 1u64..50];
        prop_oneof![
            (
                k.clone(),
                proptest::collection::vec(any::<u8>(), 0..12),
                ttl.clone()
            )
                .prop_map(|(k, v, t)| Op::Set(k, v, t)),
            k.clone().prop_map(Op::Remove),
            (
                k.clone(),
                -3i64..4,
                proptest::option::of(ttl.clone()),
                proptest::option::of(ttl.clone()),
                any::<bool>()
            )
                .prop_map(|(k, d, t, it, c)| Op::Incr(k, d, t, it, c)),
            (k, ttl).prop_map(|(k, t)| Op::Expire(k, t)),
            (0u64..40).prop_map(Op::Advance),
        ]
    }

    fn key(k: u8) -> [u8; 2] {
        [b'k', k]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn primitives_match_a_model(ops in proptest::collection::vec(op(), 1..60)) {
            let (_d, m, clock) = open_with_clock();
            let mut model: HashMap<u8, (V, u64)> = HashMap::new();
            let expiry = |now: u64, ttl: u64| if ttl == 0 { 0 } else { now + ttl };
            for op in ops {
                let now = clock.load(Ordering::Relaxed);
                model.retain(|_, (_, e)| *e == 0 || *e > now);
                match op {
                    Op::Set(k, v, t) => {
                        m.set_with(&key(k), &v, SetOptions { ttl_ms: Some(t), flags: 0 }).unwrap();
                        model.insert(k, (V::Bytes(v), expiry(now, t)));
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(m.remove(&key(k)).unwrap(), model.remove(&k).is_some());
                    }
                    Op::Incr(k, d, t, it, create) => {
                        let o = IncrOptions { init: 0, ttl_ms: t, init_ttl_ms: it, create };
                        let got = m.incr_with(&key(k), d, o);
                        match model.get(&k).cloned() {
                            Some((V::Bytes(_), _)) => prop_assert!(matches!(got, Err(Error::NotAnInteger))),
                            Some((V::Int(n), e)) => {
                                let e = t.map_or(e, |t| expiry(now, t));
                                prop_assert_eq!(got.unwrap(), Some(Counter { value: n + d, expires_ms: e }));
                                model.insert(k, (V::Int(n + d), e));
                            }
                            None if !create => prop_assert_eq!(got.unwrap(), None),
                            None => {
                                let e = expiry(now, it.or(t).unwrap_or(0));
                                prop_assert_eq!(got.unwrap(), Some(Counter { value: d, expires_ms: e }));
                                model.insert(k, (V::Int(d), e));
                            }
                        }
                    }
                    Op::Expire(k, t) => {
                        let present = m.expire(&key(k), t).unwrap();
                        prop_assert_eq!(present, model.contains_key(&k));
                        if let Some((_, e)) = model.get_mut(&k) {
                            *e = expiry(now, t);
                        }
                    }
                    Op::Advance(ms) => {
                        clock.fetch_add(ms, Ordering::Relaxed);
                    }
                }
                let now = clock.load(Ordering::Relaxed);
                model.retain(|_, (_, e)| *e == 0 || *e > now);
                for k in 0..6u8 {
                    let want = model.get(&k);
                    prop_assert_eq!(m.expires_at(&key(k)).unwrap(), want.map(|(_, e)| *e), "expiry of {}", k);
                    let mut buf = Vec::new();
                    let got = m.get_into(&key(k), &mut buf).unwrap();
                    match want {
                        None => prop_assert!(got.is_none()),
                        Some((V::Bytes(v), _)) => prop_assert_eq!(&buf, v),
                        Some((V::Int(n), _)) => {
                            prop_assert_eq!(got.unwrap().flags & Shmap::FLAG_INT, Shmap::FLAG_INT);
                            prop_assert_eq!(&buf[..], &n.to_le_bytes()[..]);
                        }
                    }
                }
            }
        }
    }
}
