//! Guards against trusting numbers read from the file: counters set to absurd values (as a
//! damaged or hostile file could hold) never make a write panic or abort; the write succeeds or
//! fails with a typed error, and the next recovery recounts.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use shmap::format::ShardEntry;
use shmap::{Options, Shmap};

/// Writes shard 0's field at `field_off` of its table entry.
fn poke_u64(path: &str, field_off: usize, v: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(
        &v.to_le_bytes(),
        shmap::format::shard_off(0) + field_off as u64,
    )
    .unwrap();
}

#[test]
fn absurd_counters_never_panic() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "counters");
    let m = Shmap::open(&path, &Options::new().initial_size(64 << 10)).unwrap();
    for i in 0..100u32 {
        m.set(format!("k{i}").as_bytes(), &[0u8; 64]).unwrap();
    }
    for v in [u64::MAX, u64::MAX - 1, 1 << 63] {
        poke_u64(&path, std::mem::offset_of!(ShardEntry, entries), v);
        poke_u64(&path, std::mem::offset_of!(ShardEntry, live_bytes), v);
        poke_u64(&path, std::mem::offset_of!(ShardEntry, used_slots), v);
        for i in 0..300u32 {
            // Ok or a typed error; a panic fails the test.
            let _ = m.set(format!("n{i}").as_bytes(), &[1u8; 200]);
            let _ = m.remove(format!("k{}", i % 100).as_bytes());
        }
        let _ = m.compact();
        let _ = m.stats().unwrap();
    }
}

fn read_u64(path: &str, off: u64) -> u64 {
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

/// Ring positions near `u64::MAX` in the ring's head and tail (reached only by damage: 2^56
/// bytes are never written): writes, reads, scans, compaction and the verification walk return
/// or fail with typed errors, never panic on overflow; the verification walk reports the head;
/// a write that meets it fails with `Corrupt` and leaves the duty to recover, so the next
/// write rebuilds the generation and the map verifies again.
#[test]
fn absurd_ring_positions_never_panic() {
    use shmap::format::{Desc, LogHeader, desc_off};
    use zerocopy::FromBytes;
    let dir = shm_dir();
    let path = map_path(dir.path(), "positions");
    let m = Shmap::open(&path, &Options::new().initial_size(64 << 10)).unwrap();
    for i in 0..50u32 {
        m.set(format!("k{i}").as_bytes(), &[0u8; 64]).unwrap();
    }
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for (head, tail) in [
        (u64::MAX - 7, u64::MAX - 7),
        (u64::MAX - 7, u64::MAX - 4095),
        (1 << 63, 1 << 63),
    ] {
        // The active generation's ring (each rebuild makes a new one).
        let active = read_u64(&path, shmap::format::shard_off(0));
        let mut d = [0u8; std::mem::size_of::<Desc>()];
        std::fs::File::open(&path)
            .unwrap()
            .read_exact_at(&mut d, desc_off(0, active & 1))
            .unwrap();
        let log_off = Desc::read_from_bytes(&d).unwrap().log_off;
        let head_at = log_off + std::mem::offset_of!(LogHeader, head) as u64;
        let tail_at = log_off + std::mem::offset_of!(LogHeader, tail) as u64;
        f.write_all_at(&head.to_le_bytes(), head_at).unwrap();
        f.write_all_at(&tail.to_le_bytes(), tail_at).unwrap();
        let damaged = inspector(&path).verify().unwrap();
        assert!(
            damaged.problems.iter().any(|p| p.what.contains("head")),
            "the walk did not report the ring's head {head}: {:?}",
            damaged.problems
        );
        // A read of a slot behind the damaged tail fails typed (Corrupt or Busy), never panics.
        let _ = m.get(b"k0");
        // (The reads may already have led a writer to the damage.)
        match m.set(b"first", b"1") {
            Ok(()) => {}
            Err(e @ shmap::Error::Corrupt { .. }) => assert_eq!(e.code(), "ERR_SHMAP_CORRUPT"),
            Err(e) => panic!("a write at head {head}: expected Ok or Corrupt, got {e:?}"),
        }
        for i in 0..200u32 {
            // Ok or a typed error; a panic fails the test.
            let _ = m.set(format!("n{i}").as_bytes(), &[1u8; 200]);
            let _ = m.remove(format!("k{}", i % 50).as_bytes());
        }
        m.set(b"healed", b"1").unwrap();
        assert_eq!(m.get(b"healed").unwrap().as_deref(), Some(&b"1"[..]));
        let _ = m.keys();
        let _ = m.entries();
        let _ = m.compact();
        let _ = m.stats();
        let insp = inspector(&path);
        let _ = insp.summary();
        let v = insp.verify().unwrap();
        assert!(v.problems.is_empty(), "after the rebuild: {:?}", v.problems);
    }
}

/// A damaged `next_gen` (global control block) never makes two generations share a number: a
/// switch takes a number above the shard's active one whatever the word holds.
#[test]
fn damaged_next_generation_never_repeats_a_number() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "next-gen");
    let m = Shmap::open(&path, &Options::new().initial_size(64 << 10)).unwrap();
    m.set(b"k", b"v").unwrap();
    let at =
        shmap::format::CONTROL_OFF + std::mem::offset_of!(shmap::format::Control, next_gen) as u64;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut last = m.stats().unwrap().generation;
    for bad in [0u64, 1, last, u64::MAX, 1 << 62] {
        f.write_all_at(&bad.to_le_bytes(), at).unwrap();
        m.compact().unwrap();
        let g = m.stats().unwrap().generation;
        assert!(g > last, "next_gen {bad}: generation {g} after {last}");
        last = g;
        assert_eq!(m.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
    assert!(verify_problems(&path).is_empty());
}
