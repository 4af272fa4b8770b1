//! Building the next generation (growth, shrink, index rebuild, clear, repair), placing regions
//! in the file, and returning retired space to the OS. See format.md, "Generation switch".

use std::fs::File;
use std::sync::atomic::{Ordering, fence};

use zerocopy::IntoBytes;

use crate::arena::{self, Gen};
use crate::error::{Error, Result};
use crate::failpoints::fp;
use crate::format::{
    self, CONFIG_NO_EVICT, Desc, FLAG_LEASE, HEADER_LEN, MAX_SLOTS, MIN_SLOTS, PAGE, Superblock,
    ctl, index_region_len, log_region_len, round_up, slot,
};
use crate::options::{DEFAULT_MAX_SIZE, Options};
use crate::raw::Mem;
use crate::write::Writer;

/// The shape of a new generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub slots: u64,
    /// A new ring of this capacity, or `None` to keep the active log (index-only rebuild).
    pub log_cap: Option<u64>,
}

/// What the new generation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Every live, unexpired record (evicting by CLOCK order if they do not fit).
    Keep,
    /// Only records whose checksum verifies, wherever the ring's head and tail say they are.
    Verified,
    /// Nothing.
    Empty,
}

/// Average record size assumed before there is data.
const DEFAULT_AVG_RECORD: u64 = 128;

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

/// Bytes of regions a plan needs (keeping the log counts only the new index).
fn plan_len(p: &Plan) -> u64 {
    index_region_len(p.slots).saturating_add(p.log_cap.map_or(0, log_region_len))
}

fn active_len(d: &Desc) -> u64 {
    d.index_len().saturating_add(d.log_len())
}

fn avg_record(wr: &Writer) -> Result<u64> {
    let entries = wr.ctl(ctl!(entries))?;
    let live = wr.ctl(ctl!(live_bytes))?;
    Ok(live
        .checked_div(entries)
        .map_or(DEFAULT_AVG_RECORD, |a| a.max(32)))
}

/// Slots for a ring of `cap` bytes: room for it to fill at the average record size, and at
/// least twice the current entries.
fn slots_for_cap(wr: &Writer, cap: u64) -> Result<u64> {
    let expected = cap / avg_record(wr)?;
    let entries = wr.ctl(ctl!(entries))?;
    let mut slots = pow2_ceil((expected.saturating_mul(4) / 3).max(entries.saturating_mul(2)))
        .clamp(MIN_SLOTS, MAX_SLOTS);
    while slots > MIN_SLOTS
        && slots > entries.saturating_mul(2)
        && index_region_len(slots) > cap / 4
    {
        slots /= 2;
    }
    Ok(slots)
}

/// Whether the new generation fits beside the active one under `max_size`.
pub(crate) fn fits(wr: &Writer, plan: &Plan) -> Result<bool> {
    let max = wr.ctl(ctl!(max_size))?;
    Ok(HEADER_LEN
        .saturating_add(active_len(&wr.g.desc))
        .saturating_add(plan_len(plan))
        <= max)
}

/// The largest ring a growth could build now under `max_size`, leaving room for one later
/// index rebuild.
pub(crate) fn largest_cap(wr: &Writer) -> Result<u64> {
    let max = wr.ctl(ctl!(max_size))?;
    let room = max.saturating_sub(HEADER_LEN + active_len(&wr.g.desc));
    let idx = index_region_len(wr.g.slots());
    Ok(room.saturating_sub(idx.saturating_mul(2).saturating_add(PAGE)) & !(PAGE - 1))
}

/// A growth plan for making room for a record of `size` bytes, or `None` at the cap.
pub(crate) fn grow_plan(wr: &Writer, size: u64) -> Result<Option<Plan>> {
    let cap = wr.g.cap();
    let live = wr.ctl(ctl!(live_bytes))?;
    let need = round_up(
        (size.saturating_mul(16)).max((live.saturating_add(size)).saturating_mul(8) / 7 + PAGE),
        PAGE,
    )
    .unwrap_or(u64::MAX);
    let largest = largest_cap(wr)?;
    if largest < need || largest <= cap {
        return Ok(None);
    }
    // Double while doubling twice more stays possible; otherwise take all the cap allows,
    // so the final generation is as large as the cap permits.
    let new = if largest < cap.saturating_mul(4) {
        largest
    } else {
        cap.saturating_mul(2).max(need).min(largest)
    };
    let slots = slots_for_cap(wr, new)?;
    let plan = Plan {
        slots,
        log_cap: Some(new),
    };
    Ok(fits(wr, &plan)?.then_some(plan))
}

/// The smallest sensible ring: the one the map was created with.
fn min_cap(wr: &Writer) -> Result<u64> {
    let pages = wr.w().load_u32(ctl!(min_pages), Ordering::Acquire)? as u64;
    let budget = (pages.saturating_mul(PAGE)).saturating_sub(HEADER_LEN);
    Ok(plan_budget(budget, DEFAULT_AVG_RECORD)
        .log_cap
        .unwrap_or(PAGE))
}

/// A shrink plan when live data fills under an eighth of the ring.
pub(crate) fn shrink_plan(wr: &Writer) -> Result<Option<Plan>> {
    let cap = wr.g.cap();
    let live = wr.ctl(ctl!(live_bytes))?;
    // The cheap test first: this runs at the end of every write.
    if live.saturating_mul(8) >= cap {
        return Ok(None);
    }
    let floor = min_cap(wr)?;
    if cap <= floor {
        return Ok(None);
    }
    let new = round_up(live.saturating_mul(4), PAGE)
        .unwrap_or(u64::MAX)
        .max(floor);
    if new >= cap {
        return Ok(None);
    }
    let slots = slots_for_cap(wr, new)?;
    Ok(Some(Plan {
        slots,
        log_cap: Some(new),
    }))
}

/// When `max_size` was lowered below the active generation: the largest generation that fits
/// under it alone (with room for one index rebuild). `None` if the map fits.
pub(crate) fn over_cap_plan(wr: &Writer) -> Result<Option<Plan>> {
    let max = wr.ctl(ctl!(max_size))?;
    if HEADER_LEN.saturating_add(active_len(&wr.g.desc)) <= max {
        return Ok(None);
    }
    let room = max.saturating_sub(HEADER_LEN + PAGE);
    let mut slots = wr.g.slots();
    while slots > MIN_SLOTS && index_region_len(slots).saturating_mul(2) > room / 4 {
        slots /= 2;
    }
    let cap = room.saturating_sub(index_region_len(slots).saturating_mul(2)) & !(PAGE - 1);
    Ok((cap >= PAGE && cap < wr.g.cap()).then_some(Plan {
        slots,
        log_cap: Some(cap),
    }))
}

/// A live record to carry into a new generation.
struct Carry {
    pos: u64,
    slot: u64,
    size: u64,
    hash: u64,
}

impl<'a> Writer<'a> {
    /// Builds a new generation per `plan` and switches to it with one store.
    pub fn switch(&mut self, mut plan: Plan, fill: Fill) -> Result<()> {
        // Return what earlier switches retired (if their grace passed) before taking more.
        self.maintain()?;
        let mut carry = if fill == Fill::Empty {
            Vec::new()
        } else {
            self.collect(fill)?
        };
        if let Some(cap) = plan.log_cap.as_mut() {
            carry.sort_unstable_by_key(|c| c.pos);
            let largest = carry.iter().map(|c| c.size).max().unwrap_or(0);
            *cap = (*cap).max(round_up(largest.saturating_mul(16), PAGE).unwrap_or(u64::MAX));
            let budget = *cap - *cap / 8;
            let total = carry.iter().fold(0u64, |t, c| t.saturating_add(c.size));
            if total > budget {
                self.fit(&mut carry, budget)?;
            }
        }
        plan.slots = plan.slots.max(slots_for_entries(carry.len() as u64));

        let g = self.g.number() + 1;
        let mem = &self.sh.mem;
        let (index_off, log_off) = self.place(&plan);
        let idx_len = index_region_len(plan.slots);
        let lo = index_off.min(log_off.unwrap_or(u64::MAX));
        let hi = (index_off + idx_len)
            .max(log_off.map_or(0, |o| o + log_region_len(plan.log_cap.unwrap_or(0))));
        // Retired regions keep their pages for a grace period; when they and the new regions
        // together would exceed max_size, return them now (a stalled reader of them then reads
        // zeros and retries; the SIGBUS risk only exists on a full file system, where this
        // punch is exactly what frees space).
        let new_len = idx_len + log_off.map_or(0, |_| log_region_len(plan.log_cap.unwrap_or(0)));
        if self.w().load_u32(ctl!(free_dirty), Ordering::Acquire)? != 0
            && mem.allocated_bytes()?.saturating_add(new_len) > self.ctl(ctl!(max_size))?
        {
            self.punch_free(&[])?;
            self.w().store_u32(ctl!(free_dirty), 0, Ordering::Release)?;
        }
        self.ctl_set(ctl!(building_off), lo)?;
        fp!("switch::between_building_off_and_len");
        self.ctl_set(ctl!(building_len), hi - lo)?;
        let reserved = self.reserve_regions(
            index_off,
            idx_len,
            log_off.map(|o| (o, log_region_len(plan.log_cap.unwrap_or(0)))),
        );
        if let Err(e) = reserved {
            self.ctl_set(ctl!(building_off), 0)?;
            self.ctl_set(ctl!(building_len), 0)?;
            return Err(e);
        }
        let mut desc = Desc {
            generation: g,
            index_off,
            index_slots: plan.slots,
            log_off: log_off.unwrap_or(self.g.desc.log_off),
            log_cap: plan.log_cap.unwrap_or(self.g.cap()),
            created_ms: self.now,
            ..Desc::default()
        };
        desc.crc = desc.compute_crc();
        fp!("switch::after_reserve");
        let new = Gen::from_desc(mem, desc, g)?;
        let w = mem.w();
        // Index regions may hold an older generation's bytes: zero before use.
        fence(Ordering::Release);
        let zeros = vec![0u8; 1 << 16];
        let mut off = index_off;
        while off < index_off + idx_len {
            let n = (index_off + idx_len - off).min(zeros.len() as u64);
            w.write(off, &zeros[..n as usize])?;
            off += n;
        }

        let mask = plan.slots - 1;
        let (mut live, mut copied) = (0u64, 0u64);
        if plan.log_cap.is_some() {
            arena::init_log(w, &desc, 0)?;
        }
        let mut key = Vec::new();
        let mut value = Vec::new();
        let mut count = 0u64;
        for c in &carry {
            let s = if plan.log_cap.is_some() {
                let Ok((hdr, _)) = self.g.header_at(w, c.pos)? else {
                    continue;
                };
                self.g.read_key(w, c.pos, &hdr, &mut key)?;
                arena::size_buf(&mut value, hdr.value_len.get() as usize, c.pos)?;
                self.g.read_value(w, c.pos, &hdr, &mut value)?;
                if hdr.checksum(&key, &value) != hdr.crc.get() {
                    continue;
                }
                let pos = new.append(w, &hdr, &key, &value)?;
                copied += c.size;
                slot::moved(c.slot, pos, c.slot & slot::REF != 0)
            } else {
                c.slot
            };
            let mut i = format::home(c.hash, plan.slots);
            while new.load_slot(w, i)? != slot::EMPTY {
                i = (i + 1) & mask;
            }
            new.store_slot(w, i, s)?;
            live = live.saturating_add(c.size);
            count += 1;
            fp!("switch::while_filling");
        }
        if self.sh.durable() {
            mem.sync(index_off, idx_len)?;
            if let Some(o) = log_off {
                mem.sync(o, desc.log_len())?;
            }
        }
        arena::write_desc(w, desc)?;
        fp!("switch::between_descriptor_and_publish");
        if self.sh.durable() {
            mem.sync(0, PAGE)?;
        }
        self.honour_quiet()?;
        // The switch: one store. Everything after it may overwrite the old generation, so a
        // release fence orders the store before those writes.
        w.store_u64(ctl!(active_gen), g, Ordering::Release)?;
        fence(Ordering::Release);
        if self.sh.durable() {
            mem.sync(0, PAGE)?;
        }
        self.g = new;
        fp!("switch::between_publish_and_counters");
        self.ctl_set(ctl!(entries), count)?;
        self.ctl_set(ctl!(live_bytes), live)?;
        self.ctl_set(ctl!(used_slots), count)?;
        self.ctl_set(ctl!(building_off), 0)?;
        fp!("switch::between_building_clears");
        self.ctl_set(ctl!(building_len), 0)?;
        self.ctl_set(ctl!(switched_ms), self.now)?;
        self.ctl_add(ctl!(switches), 1)?;
        self.ctl_add(ctl!(bytes_copied), copied)?;
        w.store_u32(ctl!(free_dirty), 1, Ordering::Release)?;
        Ok(())
    }

    /// Live records of the active generation (expired ones are reclaimed here).
    fn collect(&mut self, fill: Fill) -> Result<Vec<Carry>> {
        let w = self.w();
        let g = self.g;
        let (head, tail) = (g.head(w)?, g.tail(w)?);
        let mut out = Vec::new();
        let mut key = Vec::new();
        let mut value = Vec::new();
        let mut expired = 0;
        for i in 0..g.slots() {
            let s = g.load_slot(w, i)?;
            if !slot::is_live(s) || !slot::is_valid(s) {
                continue;
            }
            let pos = slot::pos(s);
            if fill == Fill::Keep && !(tail <= pos && pos < head) {
                continue;
            }
            let Ok((hdr, size)) = g.header_at(w, pos)? else {
                continue;
            };
            if hdr.expired(self.now) {
                if hdr.flags.get() & FLAG_LEASE == 0 {
                    expired += 1;
                }
                continue;
            }
            g.read_key(w, pos, &hdr, &mut key)?;
            if fill == Fill::Verified {
                arena::size_buf(&mut value, hdr.value_len.get() as usize, pos)?;
                g.read_value(w, pos, &hdr, &mut value)?;
                if hdr.checksum(&key, &value) != hdr.crc.get() {
                    continue;
                }
            }
            out.push(Carry {
                pos,
                slot: s,
                size,
                hash: format::hash(&key, self.sh.seed),
            });
        }
        self.ctl_add(ctl!(expirations), expired)?;
        Ok(out)
    }

    /// Drops records (CLOCK order: unreferenced oldest first, then oldest) until the rest fit
    /// in `budget` bytes. Refuses with `Full` when eviction is off.
    fn fit(&mut self, carry: &mut Vec<Carry>, budget: u64) -> Result<()> {
        let mut total = carry.iter().fold(0u64, |t, c| t.saturating_add(c.size));
        if !self.evict_enabled()? {
            return Err(Error::Full {
                needed: total.saturating_sub(budget),
            });
        }
        let mut drop = vec![false; carry.len()];
        for pass in 0..2 {
            for (i, c) in carry.iter().enumerate() {
                if total <= budget {
                    break;
                }
                if !drop[i] && (pass == 1 || c.slot & slot::REF == 0) {
                    drop[i] = true;
                    total = total.saturating_sub(c.size);
                }
            }
        }
        let evicted = drop.iter().filter(|d| **d).count() as u64;
        let mut it = drop.iter();
        carry.retain(|_| !*it.next().unwrap_or(&false));
        self.ctl_add(ctl!(evictions), evicted)
    }

    /// The byte ranges in use: the header and the active generation's regions.
    fn in_use(&self) -> Vec<(u64, u64)> {
        let d = &self.g.desc;
        vec![
            (0, HEADER_LEN),
            (d.index_off, d.index_off + d.index_len()),
            (d.log_off, d.log_off + d.log_len()),
        ]
    }

    /// First-fit placement after the header, away from the active regions.
    fn place(&self, plan: &Plan) -> (u64, Option<u64>) {
        let mut used = self.in_use();
        let alloc = |len: u64, used: &mut Vec<(u64, u64)>| {
            used.sort_unstable();
            let mut at = HEADER_LEN;
            for &(s, e) in used.iter() {
                if at + len <= s {
                    break;
                }
                at = at.max(e);
            }
            used.push((at, at + len));
            at
        };
        let log = plan
            .log_cap
            .map(|cap| alloc(log_region_len(cap), &mut used));
        let index = alloc(index_region_len(plan.slots), &mut used);
        (index, log)
    }

    /// Reserves the new regions with `fallocate`. When the file system is full, returns
    /// retired space early (skipping the grace period) and tries once more.
    fn reserve_regions(
        &mut self,
        index_off: u64,
        idx_len: u64,
        log: Option<(u64, u64)>,
    ) -> Result<()> {
        let mem = &self.sh.mem;
        let try_all = || -> Result<()> {
            mem.allocate(index_off, idx_len)?;
            if let Some((o, l)) = log {
                mem.allocate(o, l)?;
            }
            Ok(())
        };
        match try_all() {
            Err(Error::NoSpace { .. }) => {
                self.punch_free(&[(index_off, index_off + idx_len)])?;
                try_all().map_err(|e| match e {
                    Error::NoSpace { .. } => Error::NoSpace {
                        requested: idx_len + log.map_or(0, |l| l.1),
                    },
                    e => e,
                })
            }
            r => r,
        }
    }

    /// Punches holes over every byte of the file outside the header, the active regions and
    /// `keep`.
    fn punch_free(&self, keep: &[(u64, u64)]) -> Result<()> {
        let mut used = self.in_use();
        used.extend_from_slice(keep);
        used.sort_unstable();
        let end = self.sh.mem.refresh_len()?;
        let mut at = 0;
        for (s, e) in used {
            if s > at {
                self.sh.mem.punch(at, s - at)?;
            }
            at = at.max(e);
        }
        if end > at {
            self.sh.mem.punch(at, end - at)?;
        }
        Ok(())
    }

    /// Returns retired regions to the OS once the grace period since the last switch passed.
    pub fn maintain(&mut self) -> Result<()> {
        let w = self.w();
        if w.load_u32(ctl!(free_dirty), Ordering::Acquire)? == 0 {
            return Ok(());
        }
        let since = self.now.saturating_sub(self.ctl(ctl!(switched_ms))?);
        let now_real = (self.sh.clock)();
        let since = since.max(now_real.saturating_sub(self.ctl(ctl!(switched_ms))?));
        if since < self.sh.grace.as_millis() as u64 {
            return Ok(());
        }
        self.punch_free(&[])?;
        fp!("maintain::between_punch_and_flag");
        w.store_u32(ctl!(free_dirty), 0, Ordering::Release)
    }

    /// For a process alone with the file: punch all free space and truncate the unused tail.
    pub fn trim_alone(&mut self) -> Result<()> {
        self.punch_free(&[])?;
        self.w().store_u32(ctl!(free_dirty), 0, Ordering::Release)?;
        let d = &self.g.desc;
        let end = (d.index_off + d.index_len()).max(d.log_off + d.log_len());
        if self.sh.mem.refresh_len()? > end {
            self.sh
                .mem
                .file()
                .set_len(end)
                .map_err(|e| Error::io("truncate map file", e))?;
        }
        Ok(())
    }

    /// Empties the map and returns it to its initial size.
    pub fn clear(&mut self) -> Result<()> {
        let pages = self.w().load_u32(ctl!(min_pages), Ordering::Acquire)? as u64;
        let plan = plan_budget(
            (pages.saturating_mul(PAGE)).saturating_sub(HEADER_LEN),
            DEFAULT_AVG_RECORD,
        );
        self.switch(plan, Fill::Empty)
    }

    /// Rebuilds compactly: a ring about twice the live data (not below the initial size).
    pub fn compact(&mut self) -> Result<()> {
        let live = self.ctl(ctl!(live_bytes))?;
        let cap = round_up(live.saturating_mul(2).saturating_add(PAGE), PAGE)
            .unwrap_or(u64::MAX)
            .max(min_cap(self)?);
        let slots = slots_for_cap(self, cap)?;
        let plan = Plan {
            slots,
            log_cap: Some(cap),
        };
        // A second generation that would not fit under max_size is not built: the ring
        // reclaims dead space by itself as it wraps.
        if fits(self, &plan)? {
            self.switch(plan, Fill::Keep)?;
        }
        self.maintain()
    }

    /// Rebuilds the generation from records whose checksums verify (after damage or an OS
    /// crash), at the same size.
    pub fn rebuild_verified(&mut self) -> Result<()> {
        let plan = Plan {
            slots: self.g.slots(),
            log_cap: Some(self.g.cap()),
        };
        self.switch(plan, Fill::Verified)
    }
}

/// Creates a new, empty map in `file` (the caller is alone with it). The superblock is
/// written last, so a creator killed midway leaves a file that is re-created.
pub(crate) fn create(file: &File, opts: &Options) -> Result<Superblock> {
    file.set_len(0)
        .map_err(|e| Error::io("truncate map file", e))?;
    let now = (opts.clock)();
    let seed = opts.seed.unwrap_or_else(random_seed);
    let size = round_up(opts.initial_size, PAGE).unwrap_or(u64::MAX);
    let plan = plan_budget(size - HEADER_LEN, DEFAULT_AVG_RECORD);
    let cap = plan.log_cap.unwrap_or(PAGE);
    let index_off = HEADER_LEN;
    let log_off = index_off + index_region_len(plan.slots);
    let end = log_off + log_region_len(cap);
    let mem = Mem::new(
        file.try_clone().map_err(|e| Error::io("dup", e))?,
        true,
        end,
    )?;
    mem.allocate(0, end)?;
    let w = mem.w();
    let mut desc = Desc {
        generation: 1,
        index_off,
        index_slots: plan.slots,
        log_off,
        log_cap: cap,
        created_ms: now,
        ..Desc::default()
    };
    desc.crc = desc.compute_crc();
    arena::write_desc(w, desc)?;
    arena::init_log(w, &desc, 0)?;
    w.store_u64(ctl!(active_gen), 1, Ordering::Release)?;
    w.store_u64(
        ctl!(max_size),
        opts.max_size.unwrap_or(DEFAULT_MAX_SIZE).max(size),
        Ordering::Release,
    )?;
    w.store_u64(
        ctl!(default_ttl_ms),
        opts.max_age_ms.unwrap_or(0),
        Ordering::Release,
    )?;
    let flags = if opts.evict == Some(false) {
        CONFIG_NO_EVICT
    } else {
        0
    };
    w.store_u32(ctl!(config_flags), flags, Ordering::Release)?;
    w.store_u32(ctl!(min_pages), (size / PAGE) as u32, Ordering::Release)?;
    w.store_u64(ctl!(switched_ms), now, Ordering::Release)?;
    let sb = Superblock::new(seed, now);
    mem.sync(0, end)?;
    w.write(0, sb.as_bytes())?;
    mem.sync(0, PAGE)?;
    Ok(sb)
}

/// A per-map random seed, from std's randomly keyed hasher (no extra dependency).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}
