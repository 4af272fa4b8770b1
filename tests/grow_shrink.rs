//! Guards growth and shrink by generations: growth is geometric (few switches, bounded copy
//! per byte written), and after most data is deleted the map shrinks and the file's allocated
//! blocks go back to the OS (punched holes), in /dev/shm and on disk.

mod common;

use std::time::Duration;

use common::*;
use shmap::{Options, Shmap};

fn grow_then_shrink(dir: &std::path::Path) {
    let map = Shmap::open(
        map_path(dir, "gs"),
        &Options::new()
            .initial_size(64 << 10)
            .retire_grace(Duration::ZERO),
    )
    .unwrap();
    let value = vec![7u8; 1000];
    for i in 0..40_000u32 {
        map.set(format!("k{i}").as_bytes(), &value).unwrap();
    }
    let big = map.stats().unwrap();
    assert!(big.file_allocated_bytes > 40 << 20, "{big:?}");
    // Geometric growth: a handful of switches, each byte copied a bounded number of times.
    assert!(big.switches < 20, "{big:?}");
    assert!(
        big.bytes_copied <= 2 * big.bytes_written,
        "copied {} for {} written",
        big.bytes_copied,
        big.bytes_written
    );

    for i in 0..39_900u32 {
        assert!(map.remove(format!("k{i}").as_bytes()).unwrap());
    }
    map.flush().unwrap();
    let small = map.stats().unwrap();
    println!(
        "allocated {} MiB at 40k entries, {} KiB after deleting all but 100",
        big.file_allocated_bytes >> 20,
        small.file_allocated_bytes >> 10
    );
    assert!(
        small.file_allocated_bytes < big.file_allocated_bytes / 10,
        "blocks were not returned: {small:?}"
    );
    for i in 39_900..40_000u32 {
        assert_eq!(map.get(format!("k{i}").as_bytes()).unwrap().unwrap(), value);
    }
    assert!(small.log_capacity < big.log_capacity / 8, "{small:?}");
}

#[test]
fn grows_and_shrinks_in_dev_shm() {
    grow_then_shrink(shm_dir().path());
}

#[test]
fn grows_and_shrinks_on_disk() {
    grow_then_shrink(disk_dir().path());
}

#[test]
fn retired_regions_keep_their_pages_during_the_grace_period() {
    let dir = shm_dir();
    let map = Shmap::open(
        map_path(dir.path(), "grace"),
        &Options::new()
            .initial_size(64 << 10)
            .retire_grace(Duration::from_secs(3600)),
    )
    .unwrap();
    for i in 0..5_000u32 {
        map.set(format!("k{i}").as_bytes(), &[1u8; 500]).unwrap();
    }
    let before = map.stats().unwrap();
    map.compact().unwrap();
    map.flush().unwrap();
    let after = map.stats().unwrap();
    // Nothing was punched: a reader still copying from the old generation reads real pages.
    assert!(
        after.file_allocated_bytes >= before.file_allocated_bytes,
        "{before:?} {after:?}"
    );
}

/// Deleting most entries shrinks the map without first piling up copies: at most one shrink
/// per grace period, so allocated memory never climbs far above where it started.
#[test]
fn mass_deletion_does_not_pile_up_copies() {
    let dir = shm_dir();
    let map = Shmap::open(
        map_path(dir.path(), "mass"),
        &Options::new().initial_size(64 << 10),
    )
    .unwrap();
    for i in 0..30_000u32 {
        map.set(format!("k{i}").as_bytes(), &[5u8; 1000]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    map.flush().unwrap();
    let start = map.stats().unwrap().file_allocated_bytes;
    let mut peak = start;
    for i in 0..29_000u32 {
        map.remove(format!("k{i}").as_bytes()).unwrap();
        if i % 100 == 0 {
            peak = peak.max(map.stats().unwrap().file_allocated_bytes);
        }
    }
    println!(
        "allocated {} MiB before deleting, peak {} MiB",
        start >> 20,
        peak >> 20
    );
    // One shrink in flight: the old ring plus a new one of at most half its size (1.5x).
    assert!(peak * 5 <= start * 8, "peak {peak} vs {start} at the start");
    // The shrinks deferred during the burst happen at the next operations after the grace.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1100));
        map.flush().unwrap();
    }
    let end = map.stats().unwrap().file_allocated_bytes;
    println!("allocated {} KiB at the end", end >> 10);
    assert!(end < start / 5, "{end} of {start} still allocated");
}

/// A growth is built behind the writes (format.md, "Incremental build"): while it is in flight
/// every key reads back, a process that detaches and reopens the map alone (which punches free
/// space) loses nothing, and the builds complete without finishing at once in a plain fill.
#[test]
fn growth_builds_behind_the_writes() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "incr");
    let opts = Options::new().initial_size(64 << 10);
    let value = |i: u32| vec![(i % 251) as u8; 100 + (i % 300) as usize];
    let mut map = Shmap::open(&path, &opts).unwrap();
    let (mut reopened, mut i) = (0, 0u32);
    while i < 40_000 {
        map.set(format!("k{i}").as_bytes(), &value(i)).unwrap();
        i += 1;
        if reopened < 3 && map.stats().unwrap().building > 0 && i % 7 == 0 {
            // Every key so far reads back mid-build (readers see only the active generation).
            for j in (0..i).step_by(97) {
                assert_eq!(map.get(format!("k{j}").as_bytes()).unwrap(), Some(value(j)));
            }
            drop(map);
            map = Shmap::open(&path, &opts).unwrap();
            reopened += 1;
        }
    }
    assert_eq!(reopened, 3, "no build was seen in flight");
    for j in 0..i {
        assert_eq!(
            map.get(format!("k{j}").as_bytes()).unwrap(),
            Some(value(j)),
            "k{j}"
        );
    }
    let s = map.stats().unwrap();
    assert!(s.builds >= 5, "{s:?}");
    assert_eq!(
        s.builds_forced, 0,
        "a plain fill never outruns its build: {s:?}"
    );
    assert!(common::verify_problems(&path).is_empty());
}

/// A shrink is built behind the writes as a growth is (format.md, "Incremental build"): the
/// deletes that leave the ring mostly empty start a build, the following writes complete it,
/// nothing is finished at once, and every remaining key reads back throughout.
#[test]
fn shrinks_build_behind_the_writes() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "shrink");
    let opts = Options::new()
        .initial_size(64 << 10)
        .retire_grace(Duration::ZERO);
    let map = Shmap::open(&path, &opts).unwrap();
    let value = |i: u32| vec![(i % 251) as u8; 500];
    for i in 0..20_000u32 {
        map.set(format!("k{i}").as_bytes(), &value(i)).unwrap();
    }
    let big = map.stats().unwrap();
    let mut seen_in_flight = false;
    for i in 0..19_500u32 {
        map.remove(format!("k{i}").as_bytes()).unwrap();
        if map.stats().unwrap().building > 0 {
            seen_in_flight = true;
            if i % 50 == 0 {
                for j in (19_500..20_000u32).step_by(37) {
                    assert_eq!(map.get(format!("k{j}").as_bytes()).unwrap(), Some(value(j)));
                }
            }
        }
    }
    // Writes after the deletes complete what is in flight (one more shrink may follow).
    for i in 0..2_000u32 {
        map.set(b"churn", &value(i)).unwrap();
    }
    let small = map.stats().unwrap();
    assert!(seen_in_flight, "no shrink was seen building: {small:?}");
    assert!(small.builds > big.builds, "{big:?} {small:?}");
    assert_eq!(small.builds_forced, big.builds_forced, "{small:?}");
    assert!(
        small.log_capacity <= big.log_capacity / 8,
        "{big:?} {small:?}"
    );
    for j in 19_500..20_000u32 {
        assert_eq!(map.get(format!("k{j}").as_bytes()).unwrap(), Some(value(j)));
    }
    assert!(common::verify_problems(&path).is_empty());
}

/// A compaction copies in steps of about a millisecond per hold of the writer lock: another
/// writer's sets complete while it runs (before, `compact` copied the whole map in one hold,
/// and none did), every value survives, and the map verifies.
#[test]
fn a_compaction_lets_other_writers_in_between_its_steps() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Instant;

    let dir = shm_dir();
    let path = map_path(dir.path(), "compact-steps");
    let map = Shmap::open(&path, &Options::new().max_size(512 << 20)).unwrap();
    let value = |i: u64| format!("value {i} ").repeat(12);
    for i in 0..150_000u64 {
        map.set(format!("k{i}").as_bytes(), value(i).as_bytes())
            .unwrap();
    }
    // Dead records for the compaction to drop: every other key rewritten.
    for i in (0..150_000u64).step_by(2) {
        map.set(format!("k{i}").as_bytes(), value(i).as_bytes())
            .unwrap();
    }
    let before = map.stats().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (during, started) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let writer = {
        let (map, stop, during, started) =
            (map.clone(), stop.clone(), during.clone(), started.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                map.set(format!("w{n}").as_bytes(), value(n).as_bytes())
                    .unwrap();
                if started.load(Ordering::Acquire) {
                    during.fetch_add(1, Ordering::AcqRel);
                }
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    started.store(true, Ordering::Release);
    let t = Instant::now();
    map.compact().unwrap();
    let took = t.elapsed();
    // Counted from the moment the compaction began to the moment it returned: at most one
    // set can be on its way when it takes the lock.
    let during_compaction = during.load(Ordering::Acquire);
    stop.store(true, Ordering::Release);
    let written = writer.join().unwrap();

    let after = map.stats().unwrap();
    println!(
        "compaction of {} entries took {took:?}; {during_compaction} sets of another writer \
         completed meanwhile; builds {} -> {}, generation {} -> {}",
        before.entries, before.builds, after.builds, before.generation, after.generation
    );
    assert!(after.builds > before.builds, "{before:?} {after:?}");
    assert!(
        during_compaction >= 10,
        "only {during_compaction} sets completed during a {took:?} compaction"
    );
    for i in 0..150_000u64 {
        assert_eq!(
            map.get(format!("k{i}").as_bytes()).unwrap().as_deref(),
            Some(value(i).as_bytes())
        );
    }
    for n in 0..written {
        assert!(
            map.get(format!("w{n}").as_bytes()).unwrap().is_some(),
            "w{n}"
        );
    }
    drop(map);
    assert!(verify_problems(&path).is_empty());
}

/// A large value and little else, then a rebuild behind the writes to a smaller ring (a
/// `compact`, or a shrink once the other keys are gone): the new ring must still be at least
/// sixteen times the large record, else its cleaning can never move it. Before the fix the
/// build sized its ring from the live bytes alone (300 KiB in a 908 KiB ring): with `evict:
/// false` a later `set` failed with `Full` far below `max_size`, with eviction on the large
/// value was evicted from a map almost empty.
fn a_large_value_survives_a_smaller_rebuild(evict: bool, by_shrink: bool) {
    let dir = shm_dir();
    let path = map_path(dir.path(), "large-rebuilt");
    let o = Options::new()
        .initial_size(64 << 10)
        .max_size(64 << 20)
        .evict(evict)
        .retire_grace(Duration::ZERO);
    let map = Shmap::open(&path, &o).unwrap();
    let big = vec![5u8; 300 << 10];
    map.set(b"big", &big).unwrap();
    if by_shrink {
        // Grow the ring with other keys, then remove them: the writes after shrink it.
        let v = vec![1u8; 1000];
        for i in 0..20_000u32 {
            map.set(format!("other{i}").as_bytes(), &v).unwrap();
        }
        for i in 0..20_000u32 {
            map.remove(format!("other{i}").as_bytes()).unwrap();
        }
    } else {
        map.compact().unwrap();
    }
    let v = vec![1u8; 1000];
    for i in 0..20_000u32 {
        if let Err(e) = map.set(format!("hot{}", i % 8).as_bytes(), &v) {
            let s = map.stats().unwrap();
            panic!(
                "evict={evict} by_shrink={by_shrink}: set #{i} failed: {e} (live {} of a {} ring)",
                s.live_bytes, s.log_capacity
            );
        }
    }
    let s = map.stats().unwrap();
    assert_eq!(
        map.get(b"big").unwrap().as_deref(),
        Some(&big[..]),
        "evict={evict} by_shrink={by_shrink}: the large value was evicted from a map almost empty \
         (evictions {}, live {}, ring {})",
        s.evictions,
        s.live_bytes,
        s.log_capacity
    );
    assert!(
        s.log_capacity >= 16 * (300 << 10),
        "ring {} for a 300 KiB record",
        s.log_capacity
    );
    assert!(verify_problems(&path).is_empty());
}

#[test]
fn a_large_value_survives_a_compaction() {
    a_large_value_survives_a_smaller_rebuild(false, false);
    a_large_value_survives_a_smaller_rebuild(true, false);
}

#[test]
fn a_large_value_survives_a_shrink() {
    a_large_value_survives_a_smaller_rebuild(false, true);
    a_large_value_survives_a_smaller_rebuild(true, true);
}

/// Entries that expired and a rebuild behind the writes dropped are counted in `expirations`,
/// as a one-step switch counts those it drops. Before the fix a compaction (or growth) built
/// behind the writes dropped them uncounted: 0 of 1,000.
#[test]
fn a_rebuild_counts_the_expired_entries_it_drops() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "expired-rebuilt");
    let map = Shmap::open(&path, &Options::new().retire_grace(Duration::ZERO)).unwrap();
    for i in 0..1000u32 {
        map.set_with(
            format!("short{i}").as_bytes(),
            b"v",
            shmap::SetOptions {
                ttl_ms: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    }
    for i in 0..1000u32 {
        map.set(format!("kept{i}").as_bytes(), b"v").unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    let before = map.stats().unwrap();
    map.compact().unwrap();
    let after = map.stats().unwrap();
    assert!(
        after.builds > before.builds,
        "the compaction was not built behind the writes"
    );
    assert_eq!(after.entries, 1000);
    assert_eq!(
        after.expirations - before.expirations,
        1000,
        "expired entries dropped by the build were not counted"
    );
}

/// A ring whose cleaning copies much of what is written grows (`src/write/churn.rs`), though
/// its live data is far from dense: here a third of the ring is long-lived records, which
/// every wrap of the hot keys' rewrites copied again (before, the ring stayed as it was and
/// cleaning copied 0.8 bytes per byte written, for as long as the writes went on). Grown, it
/// is not shrunk back while the writes lap it.
#[test]
fn a_ring_whose_cleaning_copies_much_grows() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "churn");
    // No grace period: a shrink is due at the first write that finds the ring sparse.
    let map = Shmap::open(&path, &Options::new().retire_grace(Duration::ZERO)).unwrap();
    let first = map.stats().unwrap();
    let cap = first.log_capacity;
    let value = |i: u64| vec![(i % 251) as u8; 500];
    let cold = cap / 3 / 540;
    for i in 0..cold {
        map.set(format!("cold{i}").as_bytes(), &value(i)).unwrap();
    }
    let mut last = map.stats().unwrap();
    assert!(last.live_bytes * 2 < cap, "not dense: {last:?}");
    // The hot keys, rewritten in turn (each record is dead before the ring wraps to it), for
    // forty rings' worth of writes; the last eight are measured.
    let (hot, rounds) = (100u64, 40 * cap / 540);
    for n in 0..rounds {
        if n == rounds - 8 * cap / 540 {
            last = map.stats().unwrap();
        }
        map.set(format!("hot{}", n % hot).as_bytes(), &value(n))
            .unwrap();
    }
    let end = map.stats().unwrap();
    let (written, copied) = (
        end.bytes_written - last.bytes_written,
        end.bytes_copied - last.bytes_copied,
    );
    assert!(end.log_capacity > cap, "the ring did not grow: {end:?}");
    // Growth stops once it copies under a sixteenth, or at six times the live data or the
    // churn room (8 MiB for one shard, `plan::CHURN_ROOM`), whichever is larger: here the
    // room, where with most of the live data long-lived it still copies (0.8 before).
    assert!(
        copied * 3 < written,
        "cleaning still copies {copied} bytes for {written} written: {end:?}"
    );
    assert!(
        end.log_capacity <= (end.live_bytes * 6).max(8 << 20),
        "grown past the bound: {end:?}"
    );
    // Past six times the live data (the bound before the room: a 2.2 MB ring copying a tenth).
    assert!(
        end.log_capacity > end.live_bytes * 6,
        "the room was not taken: {end:?}"
    );
    // Under where a shrink is due (eight times the live data, and larger than the room): the
    // writes that go on lapping it neither shrink it nor grow it again (a ring grown to 8x,
    // with no grace period, was shrunk and grown again 4,500 times in this test).
    for n in 0..8 * end.log_capacity / 540 {
        map.set(format!("hot{}", n % hot).as_bytes(), &value(n))
            .unwrap();
    }
    let later = map.stats().unwrap();
    assert_eq!(
        (later.log_capacity, later.switches),
        (end.log_capacity, end.switches),
        "shrunk (and grown again?) while churning: {later:?}"
    );
    for i in 0..cold {
        assert_eq!(
            map.get(format!("cold{i}").as_bytes()).unwrap(),
            Some(value(i))
        );
    }
    assert!(common::verify_problems(&path).is_empty());
}
