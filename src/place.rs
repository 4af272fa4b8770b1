//! Format version 3's shard arithmetic and placement plan (design: `docs/shards.md`): how many
//! shards a new map gets, how long its header is, each shard's fair share of the budget, which
//! shard donates room at the cap, and where in the file a new region goes. Pure functions of
//! numbers and of the space table a placement step reads under `place_lock`: no file, no lock,
//! unit-tested and proptested here (a grant never overlaps a counted extent and never takes the
//! counted bytes past `max_size`). Only [`shard_of`] is wired into the map so far: this release
//! operates maps of one shard (format.md, "Shard count").
// The rest is wired in with maps of more than one shard; until then only the tests call it.
#![allow(dead_code)]

use crate::format::{PAGE, RECORD_HEADER_LEN, round_up};

/// The smallest generation of a shard: a 64-slot index page, a ring page and its log header.
pub(crate) const SHARD_MIN: u64 = 3 * PAGE;
/// At most this many shards (`shard_bits <= 7`).
pub(crate) const MAX_SHARDS: u32 = 128;
/// Bytes of one shard table entry.
pub(crate) const SHARD_ENTRY_LEN: u64 = 1024;
/// Where the shard table starts (after page 0 and the 1024 x 8 process table).
pub(crate) const SHARD_TABLE_OFF: u64 = 12288;
/// Version 2's header length, kept for up to 8 shards.
pub(crate) const BASE_HEADER_LEN: u64 = 20480;

/// Bytes before the first region for a map of `shards` shards: 20480 up to 8 shards, then
/// 1024 bytes more per shard (rounded up to a page).
pub(crate) fn header_len(shards: u32) -> u64 {
    let table = round_up(SHARD_ENTRY_LEN * u64::from(shards.max(1)), PAGE).unwrap_or(u64::MAX);
    (SHARD_TABLE_OFF + table).max(BASE_HEADER_LEN)
}

/// Whether `shards` shards fit a new map of `initial_size` bytes: the header and one smallest
/// generation per shard.
fn fits(shards: u32, initial_size: u64) -> bool {
    header_len(shards).saturating_add(SHARD_MIN * u64::from(shards)) <= initial_size
}

/// The shard count of a new map: `requested` (a power of two `1 ..= 128`) or else twice the
/// cores rounded up to a power of two, at most 128, and in both cases no more than lets every
/// shard have its smallest generation within `initial_size` (at least 1).
pub(crate) fn shard_count(
    cores: usize,
    initial_size: u64,
    requested: Option<u32>,
) -> Result<u32, String> {
    let want = match requested {
        Some(n) if n.is_power_of_two() && n <= MAX_SHARDS => n,
        Some(n) => {
            return Err(format!(
                "shards must be a power of two from 1 to {MAX_SHARDS}, not {n}"
            ));
        }
        None => u32::try_from(cores.max(1).saturating_mul(2))
            .unwrap_or(u32::MAX)
            .checked_next_power_of_two()
            .unwrap_or(MAX_SHARDS)
            .min(MAX_SHARDS),
    };
    let mut s = want;
    while s > 1 && !fits(s, initial_size) {
        s /= 2;
    }
    Ok(s)
}

#[allow(unused_imports)]
pub(crate) use crate::format::{in_shard, shard_of};

/// The first hash of shard `i` (scans: shard `i` covers `[start(i), start(i + 1))`).
pub(crate) fn shard_start(i: u64, bits: u32) -> u64 {
    if bits == 0 { 0 } else { i << (64 - bits) }
}

/// Each shard's fair share of the budget.
pub(crate) fn fair_share(max_size: u64, shards: u32) -> u64 {
    max_size.saturating_sub(header_len(shards)) / u64::from(shards.max(1))
}

/// The largest record stored out of line is bounded by this (`TooLarge` above it): a function
/// of `max_size` only, so no shard count divides it.
pub(crate) fn largest_record(max_size: u64) -> u64 {
    max_size.saturating_sub(BASE_HEADER_LEN) / 16
}

/// Records of more than this many bytes go to a blob instead of a shard's ring of capacity
/// `log_cap` (the ring keeps its `log_cap / 16` rule for the records it holds).
pub(crate) fn blob_threshold(log_cap: u64) -> u64 {
    (log_cap / 16).max(PAGE - RECORD_HEADER_LEN)
}

/// At the cap, the shard furthest above its fair share, if any is above it (not `asker`).
pub(crate) fn donor(footprints: &[u64], fair: u64, asker: usize) -> Option<usize> {
    footprints
        .iter()
        .enumerate()
        .filter(|&(i, &f)| i != asker && f > fair)
        .max_by_key(|&(i, &f)| (f, std::cmp::Reverse(i)))
        .map(|(i, _)| i)
}

/// A page-aligned byte range of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub off: u64,
    pub len: u64,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.off.saturating_add(self.len)
    }

    pub fn overlaps(&self, o: &Extent) -> bool {
        self.len > 0 && o.len > 0 && self.off < o.end() && o.off < self.end()
    }
}

/// What a placement step reads under `place_lock`: every counted extent (each shard's active
/// index and log, building and retired extents; blobs not free; the blob table). An extent may
/// appear twice (a switch killed midway counts it as active and retired): the sum then
/// over-counts, never under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Space {
    pub header_len: u64,
    pub max_size: u64,
    pub used: Vec<Extent>,
}

/// Why a placement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoRoom {
    /// Counted bytes now (header included).
    pub counted: u64,
    /// Bytes asked for.
    pub want: u64,
}

impl Space {
    /// The counted bytes: the header plus every counted extent (duplicates twice).
    pub fn counted(&self) -> u64 {
        self.used
            .iter()
            .fold(self.header_len, |a, e| a.saturating_add(e.len))
    }

    /// Where a new region of `len` bytes (rounded up to pages) goes: the first gap after the
    /// header that holds it, else after the last counted extent; refused when the counted
    /// bytes would pass `max_size`.
    pub fn place(&self, len: u64) -> Result<Extent, NoRoom> {
        let want = round_up(len.max(1), PAGE).unwrap_or(u64::MAX);
        let counted = self.counted();
        if counted.saturating_add(want) > self.max_size {
            return Err(NoRoom { counted, want });
        }
        let mut used: Vec<Extent> = self.used.iter().copied().filter(|e| e.len > 0).collect();
        used.sort_by_key(|e| e.off);
        let mut at = self.header_len;
        for e in &used {
            if e.off >= at && e.off - at >= want {
                break;
            }
            at = at.max(round_up(e.end(), PAGE).unwrap_or(u64::MAX));
        }
        Ok(Extent { off: at, len: want })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::format::HEADER_LEN;
    use crate::options::{DEFAULT_INITIAL_SIZE, DEFAULT_MAX_SIZE, MIN_SIZE};
    use crate::plan::{Sizing, initial};

    #[test]
    fn the_header_stays_version_2s_up_to_8_shards() {
        assert_eq!(BASE_HEADER_LEN, HEADER_LEN);
        for s in [1, 2, 4, 8] {
            assert_eq!(header_len(s), HEADER_LEN, "{s} shards");
        }
        assert_eq!(header_len(16), 12288 + 16384);
        assert_eq!(header_len(128), 12288 + 131072);
    }

    #[test]
    fn shard_count_follows_the_cores_and_the_initial_size() {
        let d = DEFAULT_INITIAL_SIZE;
        assert_eq!(shard_count(2, d, None), Ok(4));
        assert_eq!(shard_count(8, d, None), Ok(16));
        assert_eq!(
            shard_count(64, d, None),
            Ok(64),
            "a default map on 64 cores"
        );
        assert_eq!(shard_count(64, 2 << 20, None), Ok(128));
        assert_eq!(shard_count(1000, 1 << 30, None), Ok(MAX_SHARDS));
        assert_eq!(
            shard_count(2, 100_000, None),
            Ok(4),
            "NodeShareCache(name, 100 KB)"
        );
        assert_eq!(shard_count(64, 100_000, None), Ok(4));
        assert_eq!(shard_count(64, MIN_SIZE, None), Ok(2));
        assert_eq!(shard_count(0, d, None), Ok(2));
        assert_eq!(shard_count(2, d, Some(16)), Ok(16));
        assert_eq!(shard_count(2, MIN_SIZE, Some(16)), Ok(2), "the same floor");
        assert!(shard_count(2, d, Some(3)).is_err());
        assert!(shard_count(2, d, Some(0)).is_err());
        assert!(shard_count(2, d, Some(256)).is_err());
        for cores in 0..200 {
            for size in [MIN_SIZE, 100_000, d, 16 << 20] {
                let s = shard_count(cores, size, None).unwrap();
                assert!(s.is_power_of_two() && s <= MAX_SHARDS);
                assert!(s == 1 || fits(s, size), "{cores} cores, {size} bytes: {s}");
            }
        }
    }

    #[test]
    fn routing_is_hash_order() {
        let bits = 3;
        assert_eq!(shard_of(0, bits), 0);
        assert_eq!(shard_of(u64::MAX, bits), 7);
        assert_eq!(shard_of(shard_start(5, bits), bits), 5);
        assert_eq!(shard_of(shard_start(5, bits) - 1, bits), 4);
        assert_eq!(shard_of(12345, 0), 0);
        assert_eq!(in_shard(0xF0 << 56, 4), 0);
        assert_eq!(in_shard(7, 0), 7);
    }

    /// Version 2's bound: a sixteenth of the largest ring a fresh map could grow to.
    fn v2_largest_record(max_size: u64) -> u64 {
        let p = initial(DEFAULT_INITIAL_SIZE.min(max_size));
        let s = Sizing {
            desc: crate::format::Desc {
                generation: 1,
                index_slots: p.slots,
                log_cap: p.log_cap.unwrap(),
                ..Default::default()
            },
            entries: 0,
            live_bytes: 0,
            max_size,
            min_pages: DEFAULT_INITIAL_SIZE.min(max_size) / PAGE,
            shards: 1,
        };
        s.largest_cap() / 16
    }

    #[test]
    fn the_largest_value_does_not_shrink() {
        for max in [MIN_SIZE, 1 << 20, 100 << 20, DEFAULT_MAX_SIZE, 8 << 30] {
            assert!(
                largest_record(max) >= v2_largest_record(max),
                "max_size {max}: {} < {}",
                largest_record(max),
                v2_largest_record(max)
            );
        }
        assert!(largest_record(DEFAULT_MAX_SIZE) > 50_000_000);
    }

    #[test]
    fn the_donor_is_the_shard_furthest_over_its_share() {
        assert_eq!(donor(&[10, 50, 30, 50], 20, 0), Some(1));
        assert_eq!(donor(&[10, 50, 30, 50], 20, 1), Some(3));
        assert_eq!(donor(&[10, 20, 20], 20, 0), None);
        assert_eq!(donor(&[], 20, 0), None);
    }

    #[test]
    fn placement_takes_the_first_gap_or_the_end() {
        let e = |off, len| Extent { off, len };
        let sp = Space {
            header_len: 20480,
            max_size: 1 << 20,
            used: vec![e(20480, 8192), e(40960, 4096), e(28672, 4096)],
        };
        assert_eq!(sp.counted(), 20480 + 16384);
        assert_eq!(sp.place(1), Ok(e(32768, 4096)));
        assert_eq!(sp.place(8192), Ok(e(32768, 8192)));
        assert_eq!(sp.place(8193), Ok(e(45056, 12288)));
        assert_eq!(
            sp.place(1 << 20),
            Err(NoRoom {
                counted: 36864,
                want: 1 << 20
            })
        );
    }

    /// Random tables of counted extents: disjoint ones, plus duplicates (a killed switch).
    fn space() -> impl Strategy<Value = Space> {
        (
            prop::collection::vec((0u64..64, 1u64..16), 0..24),
            prop::collection::vec(any::<prop::sample::Index>(), 0..3),
            0u64..400,
        )
            .prop_map(|(raw, dups, slack)| {
                let header = 20480;
                let mut used = Vec::new();
                let mut at = header;
                for (gap, len) in raw {
                    at += gap * PAGE;
                    used.push(Extent {
                        off: at,
                        len: len * PAGE,
                    });
                    at += len * PAGE;
                }
                for d in dups {
                    if !used.is_empty() {
                        used.push(used[d.index(used.len())]);
                    }
                }
                let counted = used.iter().fold(header, |a, e| a + e.len);
                Space {
                    header_len: header,
                    max_size: counted + slack * PAGE / 4,
                    used,
                }
            })
    }

    proptest! {
        /// A grant overlaps no counted extent, starts after the header, is page-aligned, keeps
        /// the counted bytes at most `max_size`; a refusal happens only when it would not.
        #[test]
        fn a_grant_never_passes_the_budget_or_overlaps(sp in space(), len in 1u64..(40 * PAGE)) {
            match sp.place(len) {
                Ok(g) => {
                    prop_assert_eq!(g.off % PAGE, 0);
                    prop_assert!(g.len >= len && g.len % PAGE == 0);
                    prop_assert!(g.off >= sp.header_len);
                    prop_assert!(sp.used.iter().all(|e| !e.overlaps(&g)), "{:?} overlaps", g);
                    prop_assert!(sp.counted() + g.len <= sp.max_size);
                }
                Err(n) => {
                    prop_assert!(n.counted + n.want > sp.max_size);
                }
            }
        }

        /// Shards reserving, building, switching, punching and releasing in any interleaving
        /// (the steps outside `place_lock`, allocating and punching pages, are their own
        /// steps): the pages the file has allocated never pass `max_size`, and no two shards
        /// ever own one page.
        #[test]
        fn the_file_never_passes_max_size(ops in prop::collection::vec((0usize..4, 0u8..5, 1u64..12), 1..200)) {
            #[derive(Default, Clone)]
            struct Shard {
                active: Option<Extent>,
                building: Option<(Extent, bool)>,
                retired: Option<(Extent, bool)>,
            }
            let header = 20480u64;
            let max_size = header + 48 * PAGE;
            let mut shards = vec![Shard::default(); 4];
            let mut allocated: std::collections::BTreeMap<u64, usize> = Default::default();
            let alloc = |e: Extent, owner: usize, on: bool, a: &mut std::collections::BTreeMap<u64, usize>| {
                for p in (e.off..e.end()).step_by(PAGE as usize) {
                    if on { a.insert(p, owner); } else { a.remove(&p); }
                }
            };
            for (i, op, pages) in ops {
                match op {
                    0 if shards[i].building.is_none() => {
                        let used: Vec<Extent> = shards.iter().flat_map(|s| {
                            [s.active, s.building.map(|b| b.0), s.retired.map(|r| r.0)]
                        }).flatten().collect();
                        let sp = Space { header_len: header, max_size, used };
                        if let Ok(g) = sp.place(pages * PAGE) {
                            shards[i].building = Some((g, false));
                        }
                    }
                    1 => if let Some((b, false)) = shards[i].building {
                        for p in (b.off..b.end()).step_by(PAGE as usize) {
                            prop_assert!(allocated.get(&p).is_none_or(|&o| o == i), "page {} shared", p);
                        }
                        alloc(b, i, true, &mut allocated);
                        shards[i].building = Some((b, true));
                    },
                    2 => if let (Some((b, true)), None) = (shards[i].building, shards[i].retired) {
                        let s = &mut shards[i];
                        s.retired = s.active.map(|a| (a, false));
                        s.active = Some(b);
                        s.building = None;
                    },
                    3 => if let Some((r, false)) = shards[i].retired {
                        alloc(r, i, false, &mut allocated);
                        shards[i].retired = Some((r, true));
                    },
                    4 => if let Some((_, true)) = shards[i].retired {
                        shards[i].retired = None;
                    },
                    _ => {}
                }
                let bytes = header + allocated.len() as u64 * PAGE;
                prop_assert!(bytes <= max_size, "{} allocated > {}", bytes, max_size);
            }
        }
    }
}
