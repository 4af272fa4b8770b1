//! `--verify` finds each kind of damage it claims to, at the right file offset: invalid and
//! misplaced index slots, duplicate keys, wrong tags, slots pointing past the head, a broken
//! ring, stale counters, and records with reserved flags or impossible expiry.

mod common;

use std::path::PathBuf;

use common::*;

const LIVE: u64 = 1 << 62;

/// A healthy fixture and where its regions are.
struct Map {
    _dir: tempfile::TempDir,
    path: PathBuf,
    index_off: u64,
    slots: u64,
    log_off: u64,
}

impl Map {
    fn new() -> Map {
        let dir = tempfile::tempdir().unwrap();
        let path = healthy(dir.path());
        let r = inspect(&["--json", path.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        Map {
            index_off: v["index"]["offset"].as_u64().unwrap(),
            slots: v["index"]["slots"].as_u64().unwrap(),
            log_off: v["log"]["offset"].as_u64().unwrap(),
            path,
            _dir: dir,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    fn slot(&self, i: u64) -> u64 {
        let at = (self.index_off + 8 * i) as usize;
        u64::from_le_bytes(self.bytes()[at..at + 8].try_into().unwrap())
    }

    fn set_slot(&self, i: u64, v: u64) {
        poke(&self.path, self.index_off + 8 * i, &v.to_le_bytes());
    }

    /// File offset of the record a live slot value points at.
    fn record(&self, s: u64) -> u64 {
        self.log_off + 64 + ((s & ((1 << 56) - 1)) << 3)
    }

    /// The index of a live slot whose next `gap` slots are empty.
    fn live_slot_before_gap(&self, gap: u64) -> u64 {
        (0..self.slots - gap)
            .find(|&i| self.slot(i) & LIVE != 0 && (1..=gap).all(|k| self.slot(i + k) == 0))
            .expect("a sparse index")
    }

    fn verify(&self) -> String {
        let r = inspect(&["--verify", self.path.to_str().unwrap()]);
        assert_eq!(r.code, 1, "expected problems:\n{}{}", r.stdout, r.stderr);
        r.stdout
    }
}

fn has(out: &str, offset: u64, what: &str) -> bool {
    out.lines()
        .any(|l| l.starts_with(&format!("problem at byte {offset}: ")) && l.contains(what))
}

#[test]
fn an_invalid_slot_value() {
    let m = Map::new();
    let i = (0..m.slots).find(|&i| m.slot(i) == 0).unwrap();
    m.set_slot(i, 2);
    let out = m.verify();
    assert!(
        has(&out, m.index_off + 8 * i, "holds 0x0000000000000002"),
        "{out}"
    );
}

#[test]
fn a_slot_moved_past_an_empty_slot_of_its_probe_sequence() {
    let m = Map::new();
    let i = m.live_slot_before_gap(3);
    let s = m.slot(i);
    m.set_slot(i, 0);
    m.set_slot(i + 3, s);
    let out = m.verify();
    assert!(
        has(
            &out,
            m.index_off + 8 * (i + 3),
            "is empty: lookups stop there"
        ),
        "{out}"
    );
}

#[test]
fn two_live_slots_for_one_key() {
    let m = Map::new();
    let i = m.live_slot_before_gap(1);
    m.set_slot(i + 1, m.slot(i));
    let out = m.verify();
    assert!(
        has(
            &out,
            m.index_off + 8 * (i + 1),
            &format!("two live index slots, {i} and {}", i + 1)
        ),
        "{out}"
    );
    // The writers' counters no longer match the index either.
    assert!(
        has(
            &out,
            12384,
            "shard 0's entries is 25, the index recounts 26"
        ),
        "{out}"
    );
}

#[test]
fn a_slot_whose_tag_is_not_its_keys() {
    let m = Map::new();
    let i = m.live_slot_before_gap(0);
    m.set_slot(i, m.slot(i) ^ (1 << 56));
    let out = m.verify();
    assert!(
        has(&out, m.index_off + 8 * i, "tag does not match"),
        "{out}"
    );
}

#[test]
fn a_slot_pointing_past_the_head() {
    let m = Map::new();
    let i = m.live_slot_before_gap(0);
    m.set_slot(i, (m.slot(i) & !((1 << 56) - 1)) | (8192 >> 3));
    let out = m.verify();
    assert!(
        has(&out, m.index_off + 8 * i, "points at position 8192"),
        "{out}"
    );
}

#[test]
fn a_ring_whose_tail_passed_its_head() {
    let m = Map::new();
    poke(&m.path, m.log_off + 8, &1_000_000u64.to_le_bytes());
    let out = m.verify();
    assert!(has(&out, m.log_off, "break tail <= head"), "{out}");
    // Every live slot now points behind the tail.
    assert!(out.contains("behind the ring's tail 1000000"), "{out}");
}

#[test]
fn counters_that_disagree_with_the_index() {
    let m = Map::new();
    // Shard 0's live_bytes (its entry at 12288, the counter at +104).
    poke(&m.path, 12392, &1u64.to_le_bytes());
    let out = m.verify();
    assert!(
        has(&out, 12392, "live_bytes is 1, the index recounts 1032"),
        "{out}"
    );
}

#[test]
fn records_with_reserved_flags_or_an_impossible_expiry() {
    let m = Map::new();
    let i = m.live_slot_before_gap(0);
    let at = m.record(m.slot(i));
    let reseal = |flags: u32, expires: u64| {
        let b = m.bytes();
        let mut rec = b[at as usize..at as usize + 24].to_vec();
        let len = 24
            + u32::from_le_bytes(rec[4..8].try_into().unwrap()) as usize
            + u32::from_le_bytes(rec[8..12].try_into().unwrap()) as usize;
        rec.extend_from_slice(&b[at as usize + 24..at as usize + len]);
        rec[12..16].copy_from_slice(&flags.to_le_bytes());
        rec[16..24].copy_from_slice(&expires.to_le_bytes());
        let crc = crc32(&rec[4..]);
        rec[0..4].copy_from_slice(&crc.to_le_bytes());
        poke(&m.path, at, &rec);
    };
    reseal(1 << 20, 0);
    let out = m.verify();
    assert!(has(&out, at, "use reserved bits 0x100000"), "{out}");
    reseal(0, 5);
    let out = m.verify();
    assert!(
        has(&out, at, "expires at 5 ms, before the map was created"),
        "{out}"
    );
}
