//! Sizing the next generation: how many index slots and how large a ring a growth, shrink,
//! index rebuild, compaction, clear or a new map gets. Pure functions of the active
//! generation's descriptor and a few control-block counters ([`Sizing`]): no file, no lock, so
//! they are unit-tested here (with a proptest: a plan never exceeds `max_size` and always fits
//! the live data). `write` loads a [`Sizing`] under the writer lock and builds what they say.

use crate::format::{
    Desc, HEADER_LEN, MAX_SLOTS, MIN_SLOTS, PAGE, index_region_len, log_region_len, round_up,
};

/// The shape of a new generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub slots: u64,
    /// A new ring of this capacity, or `None` to keep the active log (index-only rebuild).
    pub log_cap: Option<u64>,
}

/// Average record size assumed before there is data.
pub(crate) const DEFAULT_AVG_RECORD: u64 = 128;

/// What every plan reads: the active generation and the counters of the control block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizing {
    /// The active generation's descriptor (its slots, ring capacity and region sizes).
    pub desc: Desc,
    /// Live entries (`entries`).
    pub entries: u64,
    /// Bytes of live records (`live_bytes`).
    pub live_bytes: u64,
    /// The cap on the file (`max_size`).
    pub max_size: u64,
    /// The size the map was created with, in pages (`min_pages`).
    pub min_pages: u64,
    /// The map's shard count.
    pub shards: u64,
}

fn pow2_ceil(n: u64) -> u64 {
    n.max(1).checked_next_power_of_two().unwrap_or(MAX_SLOTS)
}

/// Slots for `entries` live keys at most half full.
pub(crate) fn slots_for_entries(entries: u64) -> u64 {
    pow2_ceil(entries.saturating_mul(2)).clamp(MIN_SLOTS, MAX_SLOTS)
}

/// Index slots and ring capacity for `budget` bytes of regions, assuming `avg` bytes a record.
pub(crate) fn plan_budget(budget: u64, avg: u64) -> Plan {
    let per_slot = (avg.max(32) * 3 / 4).max(24);
    let mut slots = (budget / per_slot).clamp(MIN_SLOTS, MAX_SLOTS);
    slots = if slots.is_power_of_two() {
        slots
    } else {
        pow2_ceil(slots) / 2
    };
    while slots > MIN_SLOTS && index_region_len(slots) > budget / 8 {
        slots /= 2;
    }
    let log = budget
        .saturating_sub(index_region_len(slots))
        .saturating_sub(PAGE);
    Plan {
        slots: slots.max(MIN_SLOTS),
        log_cap: Some((log & !(PAGE - 1)).max(PAGE)),
    }
}

/// The first generation of a map created with `size` bytes (a multiple of the page size).
pub(crate) fn initial(size: u64) -> Plan {
    plan_budget(size.saturating_sub(HEADER_LEN), DEFAULT_AVG_RECORD)
}

/// A shard's first generation in `budget` bytes of regions, leaving room for one index
/// rebuild (a second index beside the active one) within `share`, the shard's part of
/// `max_size`: a map created at its cap would otherwise pass `max_size` by an index the
/// first time its index is rebuilt (growth plans keep that room: [`Sizing::largest_cap`]).
pub(crate) fn initial_under(budget: u64, share: u64) -> Plan {
    let plan = initial(HEADER_LEN + budget);
    let idx = index_region_len(plan.slots);
    if plan_len(&plan).saturating_add(idx) <= share {
        return plan;
    }
    // `share - idx` is under `plan`'s length, so `smaller` fits the initial size too. The
    // smallest map has no room to spare: it keeps its generation (its index is a page).
    let smaller = initial(HEADER_LEN + share.saturating_sub(idx));
    if smaller.log_cap.is_some_and(|c| c > PAGE) {
        smaller
    } else {
        plan
    }
}

/// Bytes of regions a plan needs (keeping the log counts only the new index).
pub(crate) fn plan_len(p: &Plan) -> u64 {
    index_region_len(p.slots).saturating_add(p.log_cap.map_or(0, log_region_len))
}

fn active_len(d: &Desc) -> u64 {
    d.index_len().saturating_add(d.log_len())
}

/// Churn grows a ring to at most this many times the live data: under the eight times at
/// which a shrink is due (format.md, "Ring cleaning and eviction"), with a quarter's margin
/// for the live data's ups and downs, so that no ring churn grew is sparse enough to shrink
/// until removes make it so (nothing to remember, no round trips); and a bound on the memory
/// a burst of writes takes.
pub(crate) const MOST_OVER_LIVE: u64 = 6;

/// Churn grows a small ring to this (a shard to its part, [`churn_room`]) whatever its live
/// data, and a ring within it is not shrunk. A lap must outlast the time a descheduled writer
/// waits for a core, else its latest records are still live when the tail comes round and
/// cleaning copies them; that time depends on the write rate, not on the live data. Four
/// writers on two cores lapped a 3 MiB ring holding 640 KB in ~4 ms, and cleaning copied 9% of
/// what they wrote; 1.4% in a 7.5 MiB ring (docs/shards.md, "Churn room").
pub(crate) const CHURN_ROOM: u64 = 8 << 20;

/// A shard's part of [`CHURN_ROOM`] (its writes are about an `S`-th of the map's).
pub(crate) fn churn_room(shards: u64) -> u64 {
    (CHURN_ROOM / shards.max(1)) & !(PAGE - 1)
}

/// The ring a ring of `cap` bytes holding `live` bytes grows to for churn (`write/churn.rs`):
/// twice its size, or if less the larger of [`MOST_OVER_LIVE`] times `live` and the churn
/// room of a shard of `shards`; none unless that is an eighth more than `cap` at least.
pub(crate) fn churn_cap(cap: u64, live: u64, shards: u64) -> Option<u64> {
    let most = live.saturating_mul(MOST_OVER_LIVE).max(churn_room(shards));
    let new = cap.saturating_mul(2).min(most) & !(PAGE - 1);
    (new >= cap.saturating_add(cap / 8)).then_some(new)
}

impl Sizing {
    fn slots(&self) -> u64 {
        self.desc.index_slots
    }

    fn cap(&self) -> u64 {
        self.desc.log_cap
    }

    fn avg_record(&self) -> u64 {
        self.live_bytes
            .checked_div(self.entries)
            .map_or(DEFAULT_AVG_RECORD, |a| a.max(32))
    }

    /// Slots for a ring of `cap` bytes: room for it to fill at the average record size, and at
    /// least twice the current entries.
    pub fn slots_for_cap(&self, cap: u64) -> u64 {
        let expected = cap / self.avg_record();
        let entries = self.entries;
        let mut slots = pow2_ceil((expected.saturating_mul(4) / 3).max(entries.saturating_mul(2)))
            .clamp(MIN_SLOTS, MAX_SLOTS);
        while slots > MIN_SLOTS
            && slots > entries.saturating_mul(2)
            && index_region_len(slots) > cap / 4
        {
            slots /= 2;
        }
        slots
    }

    /// Whether the new generation fits beside the active one under `max_size`.
    pub fn fits(&self, plan: &Plan) -> bool {
        HEADER_LEN
            .saturating_add(active_len(&self.desc))
            .saturating_add(plan_len(plan))
            <= self.max_size
    }

    /// The largest ring a growth could build now under `max_size`, leaving room for one later
    /// index rebuild.
    pub fn largest_cap(&self) -> u64 {
        let room = self
            .max_size
            .saturating_sub(HEADER_LEN + active_len(&self.desc));
        let idx = index_region_len(self.slots());
        room.saturating_sub(idx.saturating_mul(2).saturating_add(PAGE)) & !(PAGE - 1)
    }

    /// A growth plan for making room for a record of `size` bytes, or `None` at the cap.
    pub fn grow(&self, size: u64) -> Option<Plan> {
        let cap = self.cap();
        let live = self.live_bytes;
        let need = round_up(
            (size.saturating_mul(16)).max((live.saturating_add(size)).saturating_mul(8) / 7 + PAGE),
            PAGE,
        )
        .unwrap_or(u64::MAX);
        let largest = self.largest_cap();
        if largest < need || largest <= cap {
            return None;
        }
        // Double while doubling twice more stays possible; otherwise take all the cap allows,
        // so the final generation is as large as the cap permits.
        let new = if largest < cap.saturating_mul(4) {
            largest
        } else {
            cap.saturating_mul(2).max(need).min(largest)
        };
        // The ring the record needs, if the largest one's index (sized for it) does not fit
        // beside the active generation: a 2 MiB value in a 14 MiB ring under 64 MiB found none,
        // below the `TooLarge` limit it was refused with.
        // (Not for a ring the record does not outgrow: a growth by a few pages copies it all
        // for nothing.)
        [Some(new), (need > cap).then_some(need)]
            .into_iter()
            .flatten()
            .find_map(|c| self.grow_to(c))
    }

    /// A growth for churn to [`churn_cap`] for `live` bytes, never by the last step
    /// `max_size` allows (half of [`Sizing::largest_cap`] at most), which is a dense growth's
    /// to take.
    pub fn grow_for_churn(&self, live: u64) -> Option<Plan> {
        let new = churn_cap(self.cap(), live, self.shards)?;
        if new.saturating_mul(2) > self.largest_cap() {
            return None;
        }
        self.grow_to(new)
    }

    /// [`Sizing::grow`] to a ring of `new` bytes, if it fits.
    fn grow_to(&self, new: u64) -> Option<Plan> {
        // `largest_cap` kept room for a rebuild of the current index; the new one may be
        // larger (sized for the new ring): fewer slots, down to twice the entries, until a
        // rebuild of it fits beside it once the active generation is returned (the proptest
        // found a 405 KB value growing a 64 KiB ring to 6.3 MiB with a 1 MiB index under 8 MiB).
        let mut slots = self.slots_for_cap(new);
        let rebuild_fits = |slots: u64| {
            let plan = Plan {
                slots,
                log_cap: Some(new),
            };
            HEADER_LEN
                .saturating_add(plan_len(&plan))
                .saturating_add(index_region_len(slots))
                <= self.max_size
        };
        let fits = |slots: u64| {
            rebuild_fits(slots)
                && self.fits(&Plan {
                    slots,
                    log_cap: Some(new),
                })
        };
        while !fits(slots) && slots > MIN_SLOTS && slots / 2 > self.entries.saturating_mul(2) {
            slots /= 2;
        }
        fits(slots).then_some(Plan {
            slots,
            log_cap: Some(new),
        })
    }

    /// The smallest sensible ring: the one the map was created with.
    pub fn min_cap(&self) -> u64 {
        let budget = (self.min_pages.saturating_mul(PAGE)).saturating_sub(HEADER_LEN);
        plan_budget(budget, DEFAULT_AVG_RECORD)
            .log_cap
            .unwrap_or(PAGE)
    }

    /// A shrink plan when live data fills under an eighth of a ring larger than the churn room
    /// (within it, churn would grow it again); `None` when the smaller
    /// generation would not fit beside the active one under `max_size` (the proptest below
    /// found that a map filling its cap, say after `max_size` was lowered, would otherwise
    /// exceed it for the length of the switch; `max_size` holds at every instant).
    pub fn shrink(&self) -> Option<Plan> {
        let cap = self.cap();
        let live = self.live_bytes;
        // The cheap test first: this runs at the end of every write.
        if live.saturating_mul(8) >= cap || cap <= churn_room(self.shards) {
            return None;
        }
        let floor = self.min_cap();
        if cap <= floor {
            return None;
        }
        let new = round_up(live.saturating_mul(4), PAGE)
            .unwrap_or(u64::MAX)
            .max(floor);
        if new >= cap {
            return None;
        }
        let plan = Plan {
            slots: self.slots_for_cap(new),
            log_cap: Some(new),
        };
        self.fits(&plan).then_some(plan)
    }

    /// When `max_size` was lowered below the active generation: the largest generation that
    /// fits under it alone (with room for one index rebuild). `None` if the map fits.
    pub fn over_cap(&self) -> Option<Plan> {
        let max = self.max_size;
        if HEADER_LEN.saturating_add(active_len(&self.desc)) <= max {
            return None;
        }
        let room = max.saturating_sub(HEADER_LEN + PAGE);
        let mut slots = self.slots();
        while slots > MIN_SLOTS && index_region_len(slots).saturating_mul(2) > room / 4 {
            slots /= 2;
        }
        let cap = room.saturating_sub(index_region_len(slots).saturating_mul(2)) & !(PAGE - 1);
        (cap >= PAGE && cap < self.cap()).then_some(Plan {
            slots,
            log_cap: Some(cap),
        })
    }

    /// An index-only rebuild with `slots` slots; `None` when a larger index does not fit.
    pub fn index(&self, slots: u64) -> Option<Plan> {
        let plan = Plan {
            slots,
            log_cap: None,
        };
        if slots <= self.slots() {
            return Some(plan);
        }
        // Once published beside the active ring, a larger index must leave room to rebuild
        // itself at its size (as a growth leaves room for its index): else the rebuilds that
        // purge its tombstones at the cap would pass max_size.
        let rebuildable = HEADER_LEN
            .saturating_add(log_region_len(self.cap()))
            .saturating_add(index_region_len(slots).saturating_mul(2))
            <= self.max_size;
        (rebuildable && self.fits(&plan)).then_some(plan)
    }

    /// A compact rebuild: a ring about three times the live data, so that the writes that
    /// follow add half as much again before a growth is due (over half the ring; at twice the
    /// live data, as before, a page of new records started one), but no larger than today's
    /// ring unless twice the live data needs it; not below the initial size. `None` when a
    /// second generation that size does not fit under `max_size` (the ring then reclaims dead
    /// space by itself as it wraps).
    pub fn compact(&self) -> Option<Plan> {
        let live = self.live_bytes;
        let tight = live.saturating_mul(2).saturating_add(PAGE);
        let roomy = live.saturating_mul(3).saturating_add(PAGE);
        let cap = round_up(roomy.min(self.cap().max(tight)), PAGE)
            .unwrap_or(u64::MAX)
            .max(self.min_cap());
        let plan = Plan {
            slots: self.slots_for_cap(cap),
            log_cap: Some(cap),
        };
        self.fits(&plan).then_some(plan)
    }

    /// An empty map at its initial size.
    pub fn clear(&self) -> Plan {
        plan_budget(
            (self.min_pages.saturating_mul(PAGE)).saturating_sub(HEADER_LEN),
            DEFAULT_AVG_RECORD,
        )
    }

    /// The same shape again (a rebuild from verified records).
    pub fn same(&self) -> Plan {
        Plan {
            slots: self.slots(),
            log_cap: Some(self.cap()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::options::{DEFAULT_INITIAL_SIZE, DEFAULT_MAX_SIZE, MIN_SIZE};

    fn desc(slots: u64, cap: u64) -> Desc {
        Desc {
            generation: 1,
            index_slots: slots,
            log_cap: cap,
            ..Desc::default()
        }
    }

    #[test]
    fn churn_grows_to_twice_the_ring_or_six_times_the_live_data_or_the_room() {
        const MIB: u64 = 1 << 20;
        // Live data large beside the room: six times it bounds the growth.
        assert_eq!(churn_cap(16 * MIB, 8 * MIB, 1), Some(32 * MIB));
        assert_eq!(churn_cap(16 * MIB, 4 * MIB, 1), Some(24 * MIB));
        // Less than an eighth more: no growth (a presized ring, sparse already).
        assert_eq!(churn_cap(16 * MIB, 16 * MIB / 6, 1), None);
        // A small ring may grow to the room whatever its live data (four writers on two cores
        // lapped a 3 MiB ring holding 640 KB faster than a time slice).
        assert_eq!(churn_cap(3 * MIB, 640 << 10, 1), Some(6 * MIB));
        assert_eq!(churn_cap(6 * MIB, 640 << 10, 1), Some(CHURN_ROOM));
        assert_eq!(churn_cap(CHURN_ROOM, 640 << 10, 1), None);
        assert_eq!(churn_cap(MIB, 0, 1), Some(2 * MIB));
        // Each of S shards takes its part of the room.
        assert_eq!(churn_room(4), CHURN_ROOM / 4);
        assert_eq!(churn_cap(2 * MIB, 0, 4), None);
        for shards in [1, 4, 128] {
            for cap in (64 << 10..64 * MIB).step_by(997 * 1024) {
                for live in (0..cap).step_by((cap / 37) as usize) {
                    if let Some(new) = churn_cap(cap, live, shards) {
                        assert!(
                            new <= 2 * cap
                                && new <= (MOST_OVER_LIVE * live).max(churn_room(shards)),
                            "{cap} {live} {shards}"
                        );
                        assert!(new >= cap + cap / 8 && new % PAGE == 0, "{cap} {live}");
                    }
                }
            }
        }
    }

    /// A fresh default map: what `create` builds.
    fn fresh() -> Sizing {
        let p = initial(DEFAULT_INITIAL_SIZE);
        Sizing {
            desc: desc(p.slots, p.log_cap.unwrap()),
            entries: 0,
            live_bytes: 0,
            max_size: DEFAULT_MAX_SIZE,
            min_pages: DEFAULT_INITIAL_SIZE / PAGE,
            shards: 1,
        }
    }

    /// A value under the `TooLarge` limit grows a compacted ring: the largest ring's index
    /// (sized for it) did not fit beside the active generation, and no plan was made, so a 2 MiB
    /// value in a 14 MiB ring under 64 MiB was refused as too large for its limit of 3.2 MB.
    #[test]
    fn a_value_under_the_limit_finds_a_growth_with_a_smaller_index() {
        let s = Sizing {
            desc: desc(65536, 14_266_368),
            entries: 12_357,
            live_bytes: 4_753_248,
            max_size: 64 << 20,
            min_pages: 16,
            shards: 1,
        };
        let size = 2_097_184;
        assert!(
            size <= s.largest_cap() / 16,
            "under the limit TooLarge names"
        );
        let p = s.grow(size).expect("a plan");
        assert!(p.log_cap.unwrap() >= size * 16);
        assert!(s.fits(&p));
    }

    /// Tiny records grow a map to its cap with an index as large as the budget allows: each
    /// grown generation keeps room to rebuild its own index (a 64 MiB map of 40-byte records
    /// grew to a 16 MiB index and a 37 MiB ring, then rebuilt its index in one step, 9 MiB
    /// past max_size).
    #[test]
    fn growth_of_tiny_records_keeps_room_for_an_index_rebuild() {
        for max in [64u64 << 20, 512 << 20] {
            let mut s = fresh();
            s.max_size = max;
            let mut grown = 0;
            while let Some(p) = {
                s.live_bytes = s.desc.log_cap / 10 * 6;
                s.entries = (s.live_bytes / 40).min(s.desc.index_slots / 2 - 1);
                s.grow(0)
            } {
                assert!(
                    HEADER_LEN + plan_len(&p) + index_region_len(p.slots) <= max,
                    "{max}: {p:?}"
                );
                s.desc = desc(p.slots, p.log_cap.unwrap());
                grown += 1;
            }
            assert!(grown > 1, "{max}: {grown} growths");
        }
        // A larger index, when granted, leaves room to rebuild it at its size: the 64 MiB
        // map's 8 MiB index beside its 37 MiB ring may not double (2 x 16 MiB + 37 > 64).
        let mut s = fresh();
        s.max_size = 64 << 20;
        s.desc = desc(1 << 20, 37 << 20);
        s.entries = 600_000;
        assert_eq!(s.index(2 << 20), None);
        s.desc = desc(1 << 20, 24 << 20);
        let p = s
            .index(2 << 20)
            .expect("room for two 16 MiB indexes beside 24 MiB");
        assert!(HEADER_LEN + log_region_len(24 << 20) + 2 * index_region_len(p.slots) <= 64 << 20);
    }

    #[test]
    fn a_map_created_at_its_cap_keeps_room_for_an_index_rebuild() {
        for kb in [64u64, 1024, 4096, 65536, 524288] {
            let share = (kb << 10) - HEADER_LEN;
            let p = initial_under(share, share);
            assert!(
                plan_len(&p) + index_region_len(p.slots) <= share,
                "{kb} KiB: {p:?}"
            );
            // Below its cap the first generation takes the whole initial size, as before.
            assert_eq!(initial_under(share, 2 * share), initial(kb << 10));
        }
        // A shard of the smallest generation (an index page, a ring page) has nothing to spare.
        let least = 3 * PAGE;
        assert_eq!(initial_under(least, least), initial(HEADER_LEN + least));
    }

    #[test]
    fn a_fresh_map_fits_its_initial_size() {
        let s = fresh();
        assert_eq!(
            HEADER_LEN + active_len(&s.desc),
            DEFAULT_INITIAL_SIZE,
            "the default map's file is exactly its initial size"
        );
        assert_eq!(s.clear(), initial(DEFAULT_INITIAL_SIZE));
        assert_eq!(Some(s.min_cap()), s.clear().log_cap);
        assert_eq!(
            s.shrink(),
            None,
            "an empty map at its initial size never shrinks"
        );
        assert_eq!(s.over_cap(), None);
    }

    #[test]
    fn growth_doubles_then_takes_what_the_cap_allows() {
        let mut s = fresh();
        s.live_bytes = s.desc.log_cap / 2 + 1;
        s.entries = s.live_bytes / 1024;
        let p = s.grow(1024).expect("room to grow");
        assert_eq!(p.log_cap, Some(s.desc.log_cap * 2));
        assert!(s.fits(&p));
        // Near the cap (doubling twice more would not fit): all of it in one step.
        s.max_size = HEADER_LEN + active_len(&s.desc) * 4;
        assert!(s.largest_cap() < s.desc.log_cap * 4);
        let p = s.grow(1024).expect("room to grow");
        assert_eq!(p.log_cap, Some(s.largest_cap()));
        // A ring that large needs an index too large to fit beside the active one: none.
        s.entries = s.live_bytes / 32;
        assert_eq!(s.grow(32), None);
        // At the cap: none.
        s.max_size = HEADER_LEN + active_len(&s.desc) + PAGE;
        assert_eq!(s.grow(128), None);
    }

    #[test]
    fn shrink_waits_for_an_eighth_and_stops_at_the_initial_ring() {
        let mut s = fresh();
        s.desc = desc(1 << 16, 64 << 20);
        s.live_bytes = 8 << 20;
        assert_eq!(s.shrink(), None, "an eighth full is not sparse enough");
        s.live_bytes = (8 << 20) - 8;
        assert_eq!(s.shrink().and_then(|p| p.log_cap), Some(32 << 20));
        s.live_bytes = 0;
        assert_eq!(s.shrink().and_then(|p| p.log_cap), Some(s.min_cap()));
        // Not a ring churn may grow to, however sparse: it would grow again.
        s.desc = desc(1 << 14, CHURN_ROOM);
        assert_eq!(s.shrink(), None);
        s.shards = 4;
        assert!(s.shrink().is_some());
    }

    #[test]
    fn a_shrink_that_would_exceed_max_size_is_not_planned() {
        let mut s = fresh();
        s.desc = desc(1 << 12, 16 << 20);
        s.max_size = HEADER_LEN + active_len(&s.desc);
        assert_eq!(
            s.shrink(),
            None,
            "the map fills its cap: no room for a second generation"
        );
        s.max_size += 2 << 20;
        assert!(s.shrink().is_some_and(|p| s.fits(&p)));
    }

    #[test]
    fn an_index_rebuild_larger_than_the_cap_allows_is_refused() {
        let mut s = fresh();
        assert!(s.index(s.desc.index_slots).is_some(), "same size: always");
        s.max_size = HEADER_LEN + active_len(&s.desc);
        assert_eq!(s.index(s.desc.index_slots * 2), None);
    }

    /// A consistent state of a map: an active generation under `max_size` holding `live` bytes.
    fn sizing() -> impl Strategy<Value = Sizing> {
        (6u32..24, 4u32..20, 0u64..=1000, 16u32..40, 0u32..4).prop_flat_map(
            |(slots_log2, cap_pages_log2, fill_permille, max_log2, min_extra)| {
                let slots = 1u64 << slots_log2;
                let cap = PAGE << cap_pages_log2;
                let d = desc(slots, cap);
                // Every generation is built with room for one index rebuild beside it under
                // max_size (creation, growth and `over_cap` leave it).
                let used = HEADER_LEN + active_len(&d);
                let max = (used + index_region_len(slots)).max(1 << max_log2);
                let live = cap / 8 * 7 * fill_permille / 1000;
                // The smallest map is MIN_SIZE; the active generation is at least the initial one.
                let min_pages = (MIN_SIZE / PAGE + min_extra as u64).min(used / PAGE);
                (Just(d), Just(live), Just(max), Just(min_pages), 1u64..64).prop_map(
                    |(desc, live_bytes, max_size, min_pages, avg)| Sizing {
                        desc,
                        entries: (live_bytes / (avg * 32)).min(desc.index_slots / 2),
                        live_bytes,
                        max_size,
                        min_pages,
                        shards: 1,
                    },
                )
            },
        )
    }

    fn never_over(s: &Sizing, p: &Plan, what: &str) -> std::result::Result<(), TestCaseError> {
        prop_assert!(
            s.fits(p),
            "{what}: {p:?} beside the active generation exceeds max_size {}",
            s.max_size
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn plans_never_exceed_max_size_and_fit_the_live_data(s in sizing(), size in 32u64..1 << 20) {
            if let Some(p) = s.grow(size) {
                never_over(&s, &p, "grow")?;
                // Once the active generation is returned, the grown one has room for a
                // rebuild of its own index beside it.
                prop_assert!(
                    HEADER_LEN + plan_len(&p) + index_region_len(p.slots) <= s.max_size,
                    "grow {p:?} leaves no room to rebuild its index under {}", s.max_size
                );
                let cap = p.log_cap.unwrap();
                // The switch keeps cap - cap/8 for records, and one record is at most cap/16.
                prop_assert!(cap - cap / 8 >= s.live_bytes + size, "grow {p:?} cannot hold {} + {size}", s.live_bytes);
                prop_assert!(size * 16 <= cap);
                prop_assert!(cap > s.desc.log_cap, "a growth grows");
                prop_assert!(p.slots > s.entries, "grow {p:?}: no free slot for {} entries", s.entries);
            }
            if let Some(p) = s.shrink() {
                never_over(&s, &p, "shrink")?;
                let cap = p.log_cap.unwrap();
                prop_assert!(cap < s.desc.log_cap, "a shrink shrinks");
                prop_assert!(cap - cap / 8 >= s.live_bytes, "shrink {p:?} cannot hold {}", s.live_bytes);
                prop_assert!(p.slots > s.entries, "shrink {p:?}: no free slot for {} entries", s.entries);
            }
            if let Some(p) = s.compact() {
                never_over(&s, &p, "compact")?;
                let cap = p.log_cap.unwrap();
                prop_assert!(cap - cap / 8 >= s.live_bytes, "compact {p:?} cannot hold {}", s.live_bytes);
                // No growth is due right after it, and it does not grow a ring that has room.
                prop_assert!(cap >= s.live_bytes * 2 + PAGE, "compact {p:?}: a growth is due at once");
                prop_assert!(cap <= s.desc.log_cap.max(round_up(s.live_bytes * 2 + PAGE, PAGE).unwrap()).max(s.min_cap()),
                    "compact {p:?} grows a ring of {}", s.desc.log_cap);
            }
            if let Some(p) = s.index(slots_for_entries(s.entries + 1)) {
                never_over(&s, &p, "index")?;
            }
            // Lowering max_size below the map: the plan fits under it alone, with room for one
            // index rebuild beside it.
            let lowered = Sizing { max_size: s.max_size.min(HEADER_LEN + active_len(&s.desc) - PAGE), ..s };
            if let Some(p) = lowered.over_cap() {
                prop_assert!(HEADER_LEN + plan_len(&p) + index_region_len(p.slots) <= lowered.max_size,
                    "over_cap {p:?} exceeds {}", lowered.max_size);
            }
            let c = s.clear();
            prop_assert!(HEADER_LEN + plan_len(&c) <= s.min_pages * PAGE, "clear {c:?} exceeds the initial size");
        }
    }
}
