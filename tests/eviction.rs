//! Guards the eviction policy: at max size, CLOCK keeps a hit ratio close to exact LRU on a
//! Zipf trace and beats it on a hot set plus one-time scan keys (where FIFO falls behind).
//! Also: eviction off refuses with `Full`; expired entries go before live ones.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

use common::*;
use shmap::{Options, SetOptions, Shmap};

/// Zipf(s) sampler over `n` keys by inverse CDF.
fn zipf_trace(n: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let weights: Vec<f64> = (1..=n).map(|i| 1.0 / (i as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(n);
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = Rng(seed);
    (0..len)
        .map(|_| {
            let u = rng.unit();
            cdf.partition_point(|&c| c < u).min(n - 1) as u64
        })
        .collect()
}

/// A hot set read over and over, interleaved with scan keys that are each read once.
fn hot_scan_trace(hot: u64, len: usize, seed: u64) -> Vec<u64> {
    let mut rng = Rng(seed);
    let mut scan = 1_000_000u64;
    (0..len)
        .map(|_| {
            if rng.unit() < 0.6 {
                rng.next() % hot
            } else {
                scan += 1;
                scan
            }
        })
        .collect()
}

/// Hit ratio of an exact LRU cache of `cap` entries.
fn lru(trace: &[u64], cap: usize) -> f64 {
    let mut last = HashMap::new();
    let mut order = std::collections::BTreeMap::new();
    let mut hits = 0;
    for (t, &k) in trace.iter().enumerate() {
        if let Some(old) = last.insert(k, t) {
            order.remove(&old);
            hits += 1;
        } else if last.len() > cap {
            let (&oldest, &victim) = order.iter().next().unwrap();
            order.remove(&oldest);
            last.remove(&victim);
        }
        order.insert(t, k);
    }
    hits as f64 / trace.len() as f64
}

/// Hit ratio of a FIFO cache of `cap` entries (for reference).
fn fifo(trace: &[u64], cap: usize) -> f64 {
    let mut set = std::collections::HashSet::new();
    let mut q = VecDeque::new();
    let mut hits = 0;
    for &k in trace {
        if set.contains(&k) {
            hits += 1;
            continue;
        }
        set.insert(k);
        q.push_back(k);
        if q.len() > cap {
            set.remove(&q.pop_front().unwrap());
        }
    }
    hits as f64 / trace.len() as f64
}

/// Runs `trace` cache-aside against a map capped at `max` bytes; returns the hit ratio and
/// the average number of entries it held over the second half.
fn shmap_run(trace: &[u64], max: u64) -> (f64, usize) {
    let dir = shm_dir();
    let map = Shmap::open(
        map_path(dir.path(), "evict"),
        &Options::new()
            .initial_size(max)
            .max_size(max)
            .retire_grace(std::time::Duration::ZERO),
    )
    .unwrap();
    let value = [0xA5u8; 150];
    let (mut hits, mut held, mut samples) = (0usize, 0u64, 0u64);
    let mut buf = Vec::new();
    for (t, &k) in trace.iter().enumerate() {
        let key = format!("key:{k:012}");
        if map.get_into(key.as_bytes(), &mut buf).unwrap().is_some() {
            hits += 1;
        } else {
            map.set(key.as_bytes(), &value).unwrap();
        }
        if t > trace.len() / 2 && t % 64 == 0 {
            held += map.len().unwrap();
            samples += 1;
        }
    }
    assert!(map.stats().unwrap().evictions > 0);
    (hits as f64 / trace.len() as f64, (held / samples) as usize)
}

fn compare(name: &str, trace: &[u64], min_ratio: f64) {
    let (hit, cap) = shmap_run(trace, 1 << 20);
    let (l, f) = (lru(trace, cap), fifo(trace, cap));
    println!(
        "{name}: capacity {cap} entries; hit ratio shmap {hit:.3}, exact LRU {l:.3}, FIFO {f:.3}; \
         shmap/LRU {:.2}, FIFO/LRU {:.2}",
        hit / l,
        f / l
    );
    assert!(
        hit >= min_ratio * l,
        "{name}: shmap {hit:.3} < {min_ratio} x LRU {l:.3}"
    );
}

#[test]
fn clock_is_close_to_lru_on_zipf() {
    compare("zipf(0.9)", &zipf_trace(40_000, 0.9, 150_000, 7), 0.9);
}

#[test]
fn clock_resists_scans_where_fifo_does_not() {
    compare("hot+scan", &hot_scan_trace(2_000, 150_000, 11), 1.0);
}

#[test]
fn expired_entries_are_reclaimed_before_live_ones() {
    let dir = shm_dir();
    let (now, o) = manual_clock(
        Options::new().initial_size(256 << 10).max_size(256 << 10),
        1_000_000,
    );
    let map = Shmap::open(map_path(dir.path(), "ttl"), &o).unwrap();
    let short = SetOptions {
        ttl_ms: Some(10),
        flags: 0,
    };
    for i in 0..400u32 {
        map.set_with(format!("old{i}").as_bytes(), &[1u8; 200], short)
            .unwrap();
    }
    now.fetch_add(100, Ordering::Relaxed);
    for i in 0..600u32 {
        map.set(format!("new{i}").as_bytes(), &[2u8; 200]).unwrap();
    }
    let s = map.stats().unwrap();
    assert!(s.expirations > 0, "{s:?}");
    assert_eq!(
        s.evictions, 0,
        "expired entries made room before any live one was evicted"
    );
    for i in 0..600u32 {
        assert!(map.contains(format!("new{i}").as_bytes()).unwrap());
    }
}

/// At the cap, the file never holds more than `max_size` bytes (retired regions included, even
/// within their grace period, and `compact` included), and cleaning copies a bounded amount
/// per byte written (it evicts rather than moving every live record around the ring).
#[test]
fn cap_is_honoured_and_copying_is_bounded() {
    let dir = shm_dir();
    let max = 2 << 20;
    let map = Shmap::open(
        map_path(dir.path(), "cap"),
        &Options::new().initial_size(128 << 10).max_size(max),
    )
    .unwrap();
    let mut rng = Rng(3);
    let mut peak = 0;
    for i in 0..60_000u64 {
        let k = rng.next() % 3000;
        let len = (rng.next() % 1500) as usize;
        map.set(format!("k{k}").as_bytes(), &vec![1u8; len])
            .unwrap();
        if i % 1000 == 0 {
            map.compact().unwrap();
        }
        if i % 97 == 0 {
            peak = peak.max(map.stats().unwrap().file_allocated_bytes);
        }
    }
    let s = map.stats().unwrap();
    println!(
        "peak allocated {} KiB of {} KiB max; copied/written {:.2}; {} evictions",
        peak >> 10,
        max >> 10,
        s.bytes_copied as f64 / s.bytes_written as f64,
        s.evictions
    );
    assert!(peak <= max, "allocated {peak} > max {max}");
    assert!(
        s.bytes_copied <= 3 * s.bytes_written,
        "copied {} bytes for {} written",
        s.bytes_copied,
        s.bytes_written
    );
}

/// One `set` at the cap moves a bounded amount of referenced records to the head (their second
/// chance), however much of the ring's tail was read since: a fixed budget, not a share of the
/// ring (which made one set copy a quarter of it).
#[test]
fn one_set_at_the_cap_moves_a_bounded_amount() {
    let dir = shm_dir();
    let max = 16 << 20;
    let map = Shmap::open(
        map_path(dir.path(), "chances"),
        &Options::new().initial_size(max).max_size(max),
    )
    .unwrap();
    let value = vec![3u8; 1000];
    let mut n = 0u64;
    while map.stats().unwrap().evictions == 0 {
        for _ in 0..256 {
            map.set(format!("k{n}").as_bytes(), &value).unwrap();
            n += 1;
        }
    }
    // Every key still there is read: the whole ring is referenced.
    for i in 0..n {
        map.get(format!("k{i}").as_bytes()).unwrap();
    }
    let before = map.stats().unwrap();
    map.set(b"one more", &value).unwrap();
    let after = map.stats().unwrap();
    let moved = after.bytes_copied - before.bytes_copied;
    println!(
        "one set at the cap of a referenced {} MiB ring moved {} KiB",
        after.log_capacity >> 20,
        moved >> 10
    );
    assert!(moved <= 80 << 10, "one set moved {moved} bytes");
}

/// A map in `dir` of `initial` bytes that may grow to `max`.
fn capped(dir: &std::path::Path, name: &str, initial: u64, max: u64, evict: bool) -> Shmap {
    let o = Options::new()
        .initial_size(initial)
        .max_size(max)
        .evict(evict);
    Shmap::open(map_path(dir, name), &o).unwrap()
}

/// Tiny values at the cap fill the index before the ring: an index that cannot grow holds at
/// most half its slots live, each insert past that evicting a few entries, so that the index
/// rebuild behind the writes always purges the tombstones before the index is full. No set
/// evicts a quarter of the index and rebuilds it in one step (which froze a 512 MiB map for
/// 2.3 s), every index rebuild is one built behind the writes, none finished at once, and the
/// file stays within `max_size` throughout.
#[test]
fn an_index_full_at_the_cap_evicts_a_few_entries_a_set() {
    let dir = shm_dir();
    let max = 4 << 20;
    // Created at its cap, and grown to it from the smallest map.
    for initial in [max, 64 << 10] {
        let map = capped(dir.path(), &format!("tiny-{initial}"), initial, max, true);
        let (mut most, mut evicted, mut peak) = (0u64, 0u64, 0u64);
        let n = 200_000u64;
        for i in 0..n {
            let e = map
                .set_with(format!("k{i:012}").as_bytes(), b"v", SetOptions::default())
                .unwrap();
            most = most.max(e);
            evicted += e;
            if i % 61 == 0 {
                peak = peak.max(map.stats().unwrap().file_allocated_bytes);
            }
        }
        let s = map.stats().unwrap();
        println!(
            "{n} tiny sets from {} KiB: {} slots, {evicted} evicted, at most {most} by one set; \
             {} switches, {} builds ({} forced), {} live, peak {} KiB",
            initial >> 10,
            s.index_slots,
            s.switches,
            s.builds,
            s.builds_forced,
            s.entries,
            peak >> 10
        );
        // Rebuilds come faster than the grace period of the index the last one retired: a
        // rebuild must not reserve its index while that one is still counted, and every
        // generation keeps room to rebuild its index.
        assert!(peak <= max, "allocated {peak} > max {max}");
        assert!(
            evicted > s.index_slots,
            "the index did fill at the cap: {s:?}"
        );
        assert!(most <= 64, "one set evicted {most} entries");
        assert_eq!(s.builds_forced, 0, "{s:?}");
        assert!(s.entries * 2 <= s.index_slots, "{s:?}");
        // What is there is what was written last.
        assert_eq!(
            map.get(format!("k{:012}", n - 1).as_bytes())
                .unwrap()
                .unwrap(),
            b"v"
        );
    }
}

/// Lowering max_size at runtime (from any process) shrinks the map on the next write, evicting
/// by CLOCK order, and the file's allocation follows.
#[test]
fn lowering_max_size_shrinks_the_map() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "lower");
    let map = Shmap::open(
        &path,
        &Options::new()
            .initial_size(128 << 10)
            .retire_grace(std::time::Duration::ZERO),
    )
    .unwrap();
    for i in 0..20_000u32 {
        map.set(format!("k{i}").as_bytes(), &[3u8; 400]).unwrap();
    }
    assert!(map.stats().unwrap().file_allocated_bytes > 8 << 20);
    let other = Shmap::open(&path, &Options::new()).unwrap();
    other.set_max_size(2 << 20).unwrap();
    map.set(b"trigger", b"x").unwrap();
    map.flush().unwrap();
    let s = map.stats().unwrap();
    assert!(s.file_allocated_bytes <= 2 << 20, "{s:?}");
    assert!(s.evictions > 0);
    assert_eq!(map.get(b"trigger").unwrap().unwrap(), b"x");
    assert_eq!(map.get(b"k19999").unwrap().unwrap(), vec![3u8; 400]);
}

/// Runs `trace` cache-aside against `shards` maps of `max / shards` bytes each, every key routed
/// to one of them by the top bits of a hash: format version 3's shards (docs/shards.md), each
/// with its own ring and CLOCK, in the worst case of that design, fixed equal shares with no
/// borrowing between shards. Returns the hit ratio and the average entries held (all shards).
fn sharded_run(trace: &[u64], max: u64, shards: u64) -> (f64, usize) {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let dir = shm_dir();
    let maps: Vec<Shmap> = (0..shards)
        .map(|i| {
            Shmap::open(
                map_path(dir.path(), &format!("shard{i}")),
                &Options::new()
                    .initial_size(max / shards)
                    .max_size(max / shards)
                    .retire_grace(std::time::Duration::ZERO),
            )
            .unwrap()
        })
        .collect();
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let bits = shards.trailing_zeros();
    let value = [0xA5u8; 150];
    let (mut hits, mut held, mut samples) = (0usize, 0u64, 0u64);
    let mut buf = Vec::new();
    for (t, &k) in trace.iter().enumerate() {
        let key = format!("key:{k:012}");
        let h = hasher.hash_one(key.as_bytes());
        let shard = if bits == 0 { 0 } else { h >> (64 - bits) };
        let map = &maps[shard as usize];
        if map.get_into(key.as_bytes(), &mut buf).unwrap().is_some() {
            hits += 1;
        } else {
            map.set(key.as_bytes(), &value).unwrap();
        }
        if t > trace.len() / 2 && t % 64 == 0 {
            held += maps.iter().map(|m| m.len().unwrap()).sum::<u64>();
            samples += 1;
        }
    }
    for m in &maps {
        assert!(m.stats().unwrap().evictions > 0);
    }
    (hits as f64 / trace.len() as f64, (held / samples) as usize)
}

/// One map of `shards` shards with `max` bytes (its shards as the separate maps above, in one
/// file): (hit ratio, the entries it held on average over the second half).
fn one_map_run(trace: &[u64], max: u64, shards: u32) -> (f64, usize) {
    let dir = shm_dir();
    let map = Shmap::open(
        map_path(dir.path(), "sharded"),
        &Options::new()
            .initial_size(max)
            .max_size(max)
            .shards(shards)
            .retire_grace(std::time::Duration::ZERO),
    )
    .unwrap();
    let value = [0xA5u8; 150];
    let (mut hits, mut held, mut samples) = (0usize, 0u64, 0u64);
    let mut buf = Vec::new();
    for (t, &k) in trace.iter().enumerate() {
        let key = format!("key:{k:012}");
        if map.get_into(key.as_bytes(), &mut buf).unwrap().is_some() {
            hits += 1;
        } else {
            map.set(key.as_bytes(), &value).unwrap();
        }
        if t > trace.len() / 2 && t % 64 == 0 {
            held += map.len().unwrap();
            samples += 1;
        }
    }
    assert!(map.stats().unwrap().evictions > 0);
    (hits as f64 / trace.len() as f64, (held / samples) as usize)
}

/// The same bar for shards inside one map (`shards: 4` and `16`).
#[test]
fn one_sharded_map_keeps_097_of_lru() {
    let zipf = zipf_trace(40_000, 0.9, 100_000, 7);
    let scan = hot_scan_trace(12_000, 100_000, 11);
    for shards in [4u32, 16] {
        for (name, trace) in [("zipf(0.9)", &zipf), ("hot+scan", &scan)] {
            let (hit, cap) = one_map_run(trace, 4 << 20, shards);
            let l = lru(trace, cap);
            println!(
                "one map, {name}, {shards} shards: capacity {cap} entries; hit ratio {hit:.3}, \
                 exact LRU {l:.3}; ratio {:.3}",
                hit / l
            );
            assert!(
                hit >= 0.97 * l,
                "one map, {name}, {shards} shards: {hit:.3} < 0.97 x LRU {l:.3}"
            );
        }
    }
}

/// Per-shard CLOCK keeps at least 0.97 of exact LRU's hit ratio at the same capacity, on the
/// Zipf and hot+scan traces, with 4 and 16 shards (issue 9's bar for sharding).
#[test]
fn per_shard_clock_keeps_097_of_lru() {
    let zipf = zipf_trace(40_000, 0.9, 100_000, 7);
    let scan = hot_scan_trace(12_000, 100_000, 11);
    for shards in [4u64, 16] {
        for (name, trace) in [("zipf(0.9)", &zipf), ("hot+scan", &scan)] {
            let (hit, cap) = sharded_run(trace, 4 << 20, shards);
            let l = lru(trace, cap);
            println!(
                "{name}, {shards} shards: capacity {cap} entries; hit ratio {hit:.3}, \
                 exact LRU {l:.3}; ratio {:.3}",
                hit / l
            );
            assert!(
                hit >= 0.97 * l,
                "{name}, {shards} shards: {hit:.3} < 0.97 x LRU {l:.3}"
            );
        }
    }
}

/// A ring whose tail is a long run of live records (written first, never rewritten) and whose
/// writes churn a few keys: reclaiming the churn's dead space means moving the whole live run
/// first. That is done ahead, a bounded step a write once the ring is three quarters used, not
/// by the write that finds the ring full (which moved half of a 512 MiB ring, 140 ms, in one
/// `set` of an `evict: false` map); an evicting map moves at most `max(8 x size, 64 KiB)` in
/// place a write, then evicts.
#[test]
fn a_live_run_at_the_tail_is_moved_a_step_a_write() {
    let dir = shm_dir();
    let max = 8 << 20;
    for evict in [false, true] {
        let map = capped(dir.path(), &format!("liverun-{evict}"), max, max, evict);
        let value = vec![5u8; 1000];
        let cap = map.stats().unwrap().log_capacity;
        let live = cap / 2 / 1050;
        for i in 0..live {
            map.set(format!("a{i:010}").as_bytes(), &value).unwrap();
        }
        let mut most = 0u64;
        let mut before = map.stats().unwrap().bytes_copied;
        for i in 0..(cap / 1050) * 4 {
            map.set(format!("b{:04}", i % 1000).as_bytes(), &value)
                .unwrap();
            let copied = map.stats().unwrap().bytes_copied;
            most = most.max(copied - before);
            before = copied;
        }
        let s = map.stats().unwrap();
        println!(
            "evict {evict}: {live} live records of a {} KiB ring, then churn: at most {} KiB \
             moved by one set, {} KiB in all",
            cap >> 10,
            most >> 10,
            s.bytes_copied >> 10
        );
        assert!(
            s.bytes_copied >= live * 1000,
            "the live run was moved: {s:?}"
        );
        assert!(most <= 80 << 10, "one set moved {most} bytes");
        // A map that never evicts kept all of them (an evicting one at its cap may evict).
        if !evict {
            for i in 0..live {
                assert!(map.get(format!("a{i:010}").as_bytes()).unwrap().is_some());
            }
        }
    }
}

/// A map that never evicts, at its cap, whose index cannot double, with more live entries than
/// half the slots and churn (sessions that end and begin): the tombstones are purged by index
/// rebuilds behind the writes, so inserts never fail with `Full` while the live entries leave
/// room in the index.
#[test]
fn churn_in_a_full_index_that_never_evicts_is_not_full() {
    let dir = shm_dir();
    let max = 4 << 20;
    let map = capped(dir.path(), "churn", max, max, false);
    let slots = map.stats().unwrap().index_slots;
    let live = slots * 9 / 16;
    for i in 0..live {
        map.set(format!("s{i:010}").as_bytes(), b"v").unwrap();
    }
    assert_eq!(
        map.stats().unwrap().index_slots,
        slots,
        "the index could not double"
    );
    for i in live..live + slots * 4 {
        map.remove(format!("s{:010}", i - live).as_bytes()).unwrap();
        map.set(format!("s{i:010}").as_bytes(), b"v")
            .unwrap_or_else(|e| panic!("insert {i}: {e} ({:?})", map.stats().unwrap()));
    }
    let s = map.stats().unwrap();
    println!(
        "{live} live in {slots} slots, {} removes and inserts: {} builds, {} switches",
        slots * 4,
        s.builds,
        s.switches
    );
    assert_eq!(s.entries, live, "{s:?}");
    assert_eq!(s.builds_forced, 0, "{s:?}");
    assert_eq!(
        s.switches, s.builds,
        "every rebuild behind the writes: {s:?}"
    );
}
