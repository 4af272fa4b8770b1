//! The generation switch, a child of `write` (it runs under the same writer lock, on the same
//! `Writer`): building the next generation to the shape a [`crate::plan`] chose (growth, shrink,
//! index rebuild, clear, repair), placing regions in the file, switching with one store, and
//! returning retired space to the OS. See format.md, "Generation switch".

use std::sync::atomic::{Ordering, fence};

use super::{Writer, watermark};
use crate::arena::{self, Gen};
use crate::error::{Error, Result};
use crate::failpoints::fp;
use crate::format::{
    self, Desc, FLAG_LEASE, PAGE, gctl, index_region_len, log_region_len, round_up, sctl, slot,
};
use crate::place;
use crate::plan::{Plan, plan_len, slots_for_entries};

/// Generation numbers stay below this (the `active` word holds `generation << 1`; 2^62
/// switches are never made).
const MAX_GENERATION: u64 = 1 << 62;

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

/// A live record to carry into a new generation.
struct Carry {
    pos: u64,
    slot: u64,
    size: u64,
    hash: u64,
}

impl Writer<'_> {
    /// Builds a new generation per `plan` and switches to it with one store.
    pub fn switch(&mut self, plan: Plan, fill: Fill) -> Result<()> {
        let r = self.switch_once(plan, fill);
        if r.is_err() {
            // Cut short by an error (an `msync`, a `fallocate`), not a kill: the regions it
            // reserved are given back now, as the next recovery would after a kill (outside
            // the active regions: past its store of `active` they are the active ones).
            let _ = self.recover_space();
        }
        r
    }

    fn switch_once(&mut self, mut plan: Plan, fill: Fill) -> Result<()> {
        // No fast write may land in the generation being copied (format.md, "Lanes and
        // chunks").
        self.quiesce()?;
        // Any other switch replaces a build in flight; a reservation left by one that failed
        // before is given back.
        self.abandon_build()?;
        self.recover_space()?;
        // Return what earlier switches retired (if their grace passed) before taking more; a
        // shard that switches again within the grace period returns them now (its retired
        // line has room for one switch's regions).
        self.maintain()?;
        self.punch_retired()?;
        // With several shards, a switch the budget cannot hold is refused before any work
        // proportional to the shard (the placement step decides; this reading is its hint).
        if self.sh.shards() > 1 {
            let space = self.space()?;
            if space.counted().saturating_add(plan_len(&plan)) > space.max_size {
                return Err(Error::Full {
                    needed: plan_len(&plan),
                });
            }
        }
        // Expired and evicted records are counted once the switch is published: one that fails
        // before leaves them in place, and its retry would count them again.
        let (mut carry, expired) = if fill == Fill::Empty {
            (Vec::new(), 0)
        } else {
            self.collect(fill)?
        };
        let mut evicted = 0;
        if let Some(cap) = plan.log_cap.as_mut() {
            carry.sort_unstable_by_key(|c| c.pos);
            let largest = carry.iter().map(|c| c.size).max().unwrap_or(0);
            let floor = round_up(largest.saturating_mul(16), PAGE).unwrap_or(u64::MAX);
            if floor >= *cap {
                // The largest record sets the new ring: no shrink of it can go lower (the next
                // writes would otherwise switch again, to the same ring, one after another).
                *cap = floor;
                self.note_ring_floor(floor, floor);
            }
            let budget = *cap - *cap / 8;
            let total = carry.iter().fold(0u64, |t, c| t.saturating_add(c.size));
            if total > budget {
                evicted = self.fit(&mut carry, budget)?;
            }
        }
        plan.slots = plan.slots.max(slots_for_entries(carry.len() as u64));

        let mem = &self.sh.mem;
        let idx_len = index_region_len(plan.slots);
        let (index_off, log_off, g) = if self.sh.shards() == 1 {
            let (index_off, log_off) = self.place(&plan);
            let lo = index_off.min(log_off.unwrap_or(u64::MAX));
            let hi = (index_off + idx_len)
                .max(log_off.map_or(0, |o| o + log_region_len(plan.log_cap.unwrap_or(0))));
            self.record_building(lo, hi - lo)?;
            (index_off, log_off, None)
        } else {
            let (at, g) = self.place_shared(idx_len, plan.log_cap.map(log_region_len))?;
            let log_off = plan.log_cap.map(|_| at);
            let index_off = at + plan.log_cap.map_or(0, log_region_len);
            (index_off, log_off, Some(g))
        };
        // A new ring is reserved for what is carried into it and one step more; the rest in
        // steps as its head reaches it (`active_alloc`), and its last page now, so that the
        // file covers it.
        let log_len = log_region_len(plan.log_cap.unwrap_or(0));
        let carried = carry.iter().fold(0u64, |t, c| t.saturating_add(c.size));
        let log_alloc = round_up(
            format::LOG_HEADER_LEN
                .saturating_add(carried)
                .saturating_add(super::build::ALLOC_STEP),
            super::build::ALLOC_STEP,
        )
        .unwrap_or(u64::MAX)
        .min(log_len);
        let reserved = self
            .reserve_regions(index_off, idx_len, log_off.map(|o| (o, log_alloc)))
            .and_then(|()| match log_off {
                Some(o) if log_alloc < log_len => mem.allocate(o + log_len - PAGE, PAGE),
                _ => Ok(()),
            });
        let g = self.reserved_generation(reserved, g)?;
        let desc_slot = 1 - self.g.slot;
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
        let new = Gen::from_desc(mem, desc, self.shard, desc_slot, g)?;
        let w = mem.w();
        // Index regions may hold an older generation's bytes: zero before use.
        fence(Ordering::Release);
        w.write_zeros(index_off, idx_len)?;

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
            let mut i = format::home(format::in_shard(c.hash, self.g.bits), plan.slots);
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
        // What the switch retires: the old index, and the old log unless it is kept. Recorded
        // before the publication (lengths last), so a switch killed in between over-counts.
        let old = self.g.desc;
        let (rl_off, rl_len) = if log_off.is_some() {
            (old.log_off, old.log_len())
        } else {
            (0, 0)
        };
        self.ctl_set(sctl!(self.shard, retired_ms), self.now)?;
        self.ctl_set(sctl!(self.shard, retired_index_off), old.index_off)?;
        self.ctl_set(sctl!(self.shard, retired_log_off), rl_off)?;
        self.ctl_set(sctl!(self.shard, retired_index_len), old.index_len())?;
        self.ctl_set(sctl!(self.shard, retired_log_len), rl_len)?;
        fp!("switch::retired_written");
        arena::write_desc(w, self.shard, desc_slot, desc)?;
        fp!("switch::between_descriptor_and_publish", |_| Err(
            crate::failpoints::injected_sync_error()
        ));
        if self.sh.durable() {
            mem.sync(0, mem.header_len())?;
        }
        self.honour_quiet()?;
        if log_off.is_some() {
            self.watermark_for_either(log_alloc, log_len)?;
            fp!("switch::between_watermark_and_publish");
        }
        // The switch: one store. Everything after it may overwrite the old generation, so a
        // release fence orders the store before those writes.
        w.store_u64(
            sctl!(self.shard, active),
            format::active_word(g, desc_slot),
            Ordering::Release,
        )?;
        fence(Ordering::Release);
        // From here on `new` is the shard's generation, whatever fails next.
        self.g = new;
        let log = log_off.map(|_| (log_alloc, log_len));
        let r = self.after_switch_store(count, live, log, copied, (expired, evicted));
        self.or_owe_recovery(r)
    }

    /// A one-step switch's bookkeeping after its store of `active`: counters, the new ring's
    /// watermark (`log`: reserved through, length), the reservation forgotten, and the
    /// records it left behind (`gone`: expired, evicted).
    fn after_switch_store(
        &mut self,
        count: u64,
        live: u64,
        log: Option<(u64, u64)>,
        copied: u64,
        gone: (u64, u64),
    ) -> Result<()> {
        fp!("switch::between_publish_and_counters", |_| Err(
            crate::failpoints::injected_sync_error()
        ));
        let mem = &self.sh.mem;
        if self.sh.durable() {
            mem.sync(0, mem.header_len())?;
        }
        self.ctl_set(sctl!(self.shard, entries), count)?;
        self.set_live(live)?;
        self.ctl_set(sctl!(self.shard, used_slots), count)?;
        if let Some((reserved, len)) = log {
            self.ctl_set(sctl!(self.shard, active_alloc), watermark(reserved, len))?;
        }
        self.ctl_set(sctl!(self.shard, building_off), 0)?;
        fp!("switch::between_building_clears");
        self.ctl_set(sctl!(self.shard, building_len), 0)?;
        self.ctl_set(sctl!(self.shard, switched_ms), self.now)?;
        self.ctl_add(sctl!(self.shard, switches), 1)?;
        self.ctl_add(sctl!(self.shard, expirations), gone.0)?;
        self.ctl_add(sctl!(self.shard, evictions), gone.1)?;
        self.ctl_add(sctl!(self.shard, bytes_copied), copied)
    }

    /// An error after a switch's store of `active` leaves the shard as a kill there would: the
    /// next holder of the lock recovers (recounts, forgets the reservation) as after a kill.
    pub(super) fn or_owe_recovery(&self, r: Result<()>) -> Result<()> {
        if r.is_err() {
            crate::lock::owe_recovery(&self.sh.mem, &crate::lock::shard(self.shard));
        }
        r
    }

    /// After reserving a new generation's regions (`reserved`): on failure gives back what
    /// part of it was allocated and forgets the reservation; else the generation's number
    /// (`g`, or the next one).
    pub(super) fn reserved_generation(
        &mut self,
        reserved: Result<()>,
        g: Option<u64>,
    ) -> Result<u64> {
        if let Err(e) = reserved {
            self.recover_space()?;
            return Err(e);
        }
        match g {
            Some(g) => Ok(g),
            None => self.next_generation(),
        }
    }

    /// Takes the next generation number from the global `next_gen`: unique map-wide, and above
    /// this shard's active one even if the word was damaged. A number taken by a switch that
    /// then fails is skipped, which is harmless.
    pub(super) fn next_generation(&self) -> Result<u64> {
        let w = self.w();
        let floor = self.g.number().saturating_add(1);
        if floor >= MAX_GENERATION {
            return Err(Error::corrupt(
                format::desc_off(self.shard, self.g.slot),
                format!(
                    "generation number {} is beyond the largest",
                    self.g.number()
                ),
            ));
        }
        let mut cur = w.load_u64(gctl!(next_gen), Ordering::Acquire)?;
        loop {
            let g = if cur >= MAX_GENERATION {
                floor
            } else {
                cur.max(floor)
            };
            match w.cas_u64(gctl!(next_gen), cur, g + 1)? {
                Ok(_) => return Ok(g),
                Err(now) => cur = now,
            }
        }
    }

    /// The placement step of a map of several shards (format.md, "Placement lock"): under
    /// `place_lock`, reads every shard's counted extents, reserves one extent for the new log
    /// (if any) followed by the new index as this shard's `building`, and takes a generation
    /// number. `Full` when the counted bytes would pass `max_size`.
    pub(super) fn place_shared(
        &mut self,
        idx_len: u64,
        log_len: Option<u64>,
    ) -> Result<(u64, u64)> {
        let want = idx_len.saturating_add(log_len.unwrap_or(0));
        let _local = self.sh.lock_place(&mut self.patience)?;
        let r = (|| {
            let space = self.space()?;
            let ext = space
                .place(want)
                .map_err(|n| Error::Full { needed: n.want })?;
            self.record_building(ext.off, ext.len)?;
            Ok((ext.off, self.next_generation()?))
        })();
        self.sh.unlock_place();
        r
    }

    /// Records the shard's building reservation: offset, then length (a reservation killed in
    /// between is no reservation).
    pub(super) fn record_building(&self, off: u64, len: u64) -> Result<()> {
        self.ctl_set(sctl!(self.shard, building_off), off)?;
        fp!("switch::between_building_off_and_len");
        self.ctl_set(sctl!(self.shard, building_len), len)
    }

    /// Every counted extent of the map (format.md, "Placement lock"): each shard's building
    /// extent, active regions and retired extents, read in that order so that a switch
    /// publishing meanwhile is seen counted one way or the other. Called under `place_lock`.
    pub(super) fn space(&self) -> Result<place::Space> {
        let w = self.w();
        let mut used = Vec::new();
        for j in 0..self.sh.shards() {
            let ext = |off: u64, len: u64| place::Extent { off, len };
            used.push(ext(
                w.load_u64(sctl!(j, building_off), Ordering::Acquire)?,
                w.load_u64(sctl!(j, building_len), Ordering::Acquire)?,
            ));
            let d = Gen::load(&self.sh.mem, j)?.desc;
            used.push(ext(d.index_off, d.index_len()));
            used.push(ext(d.log_off, d.log_len()));
            used.push(ext(
                w.load_u64(sctl!(j, retired_index_off), Ordering::Acquire)?,
                w.load_u64(sctl!(j, retired_index_len), Ordering::Acquire)?,
            ));
            used.push(ext(
                w.load_u64(sctl!(j, retired_log_off), Ordering::Acquire)?,
                w.load_u64(sctl!(j, retired_log_len), Ordering::Acquire)?,
            ));
        }
        used.retain(|e| e.len > 0);
        Ok(place::Space {
            header_len: self.sh.mem.header_len(),
            max_size: w.load_u64(gctl!(max_size), Ordering::Acquire)?,
            used,
        })
    }

    /// Live records of the active generation, and how many expired ones it leaves behind.
    fn collect(&mut self, fill: Fill) -> Result<(Vec<Carry>, u64)> {
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
        Ok((out, expired))
    }

    /// Drops records (CLOCK order: unreferenced oldest first, then oldest) until the rest fit
    /// in `budget` bytes; returns how many it dropped. Refuses with `Full` when eviction is off.
    fn fit(&mut self, carry: &mut Vec<Carry>, budget: u64) -> Result<u64> {
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
        Ok(evicted)
    }

    /// The byte ranges in use: the header and the active generation's regions (every shard's,
    /// in a map of several).
    fn in_use(&self) -> Vec<(u64, u64)> {
        let d = &self.g.desc;
        let mut v = vec![
            (0, self.sh.mem.header_len()),
            (d.index_off, d.index_off + d.index_len()),
            (d.log_off, d.log_off + d.log_len()),
        ];
        for j in (0..self.sh.shards()).filter(|&j| j != self.shard) {
            // A shard whose descriptor cannot be read keeps everything: nothing is punched.
            match Gen::load(&self.sh.mem, j) {
                Ok(o) => {
                    let d = o.desc;
                    v.push((d.index_off, d.index_off + d.index_len()));
                    v.push((d.log_off, d.log_off + d.log_len()));
                }
                Err(_) => v.push((0, u64::MAX)),
            }
        }
        v
    }

    /// The shard's retired extents not punched yet (an unreadable word counts as none).
    fn retired_extents(&self) -> Vec<(u64, u64)> {
        let s = self.shard;
        [
            (sctl!(s, retired_index_off), sctl!(s, retired_index_len)),
            (sctl!(s, retired_log_off), sctl!(s, retired_log_len)),
        ]
        .into_iter()
        .filter_map(|(off, len)| match (self.ctl(off), self.ctl(len)) {
            (Ok(o), Ok(l)) if l != 0 => Some((o, o.saturating_add(l))),
            _ => None,
        })
        .collect()
    }

    /// [`Writer::in_use`] and the shard's retired extents not punched yet: what neither a
    /// placement nor the recovery of a reservation may touch.
    fn in_use_or_retired(&self) -> Vec<(u64, u64)> {
        let mut v = self.in_use();
        v.extend(self.retired_extents());
        v
    }

    /// First-fit placement after the header, away from the active regions and from what the
    /// shard retired and has not punched yet (a build starts with them recorded, and punches
    /// them before its publication).
    pub(super) fn place(&self, plan: &Plan) -> (u64, Option<u64>) {
        let mut used = self.in_use_or_retired();
        let alloc = |len: u64, used: &mut Vec<(u64, u64)>| {
            used.sort_unstable();
            let mut at = self.sh.mem.header_len();
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
    pub(super) fn reserve_regions(
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
            // In a map of several shards free space is not this shard's to punch.
            Err(Error::NoSpace { .. }) if self.sh.shards() == 1 => {
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

    /// Punches holes over `[off, off + len)` except where the header and the active
    /// generation's regions are (a retired or building extent recorded by a switch killed
    /// before or after its publication may be the active one).
    fn punch_outside_active(&self, off: u64, len: u64) -> Result<()> {
        self.punch_outside(off, len, self.in_use())
    }

    /// Punches `[off, off + len)` outside the extents `used`.
    fn punch_outside(&self, off: u64, len: u64, mut used: Vec<(u64, u64)>) -> Result<()> {
        let end = off.saturating_add(len).min(self.sh.mem.refresh_len()?);
        used.sort_unstable();
        let mut at = off;
        for (s, e) in used {
            if at >= end {
                break;
            }
            if s > at {
                self.sh.mem.punch(at, s.min(end) - at)?;
            }
            at = at.max(e);
        }
        if end > at {
            self.sh.mem.punch(at, end - at)?;
        }
        Ok(())
    }

    /// Punches the shard's retired extents, then forgets them (lengths first). Idempotent: a
    /// writer killed in between leaves them recorded, and the next one punches them again.
    pub(super) fn punch_retired(&mut self) -> Result<()> {
        let s = self.shard;
        let index = (
            self.ctl(sctl!(s, retired_index_off))?,
            self.ctl(sctl!(s, retired_index_len))?,
        );
        let log = (
            self.ctl(sctl!(s, retired_log_off))?,
            self.ctl(sctl!(s, retired_log_len))?,
        );
        if index.1 == 0 && log.1 == 0 {
            return Ok(());
        }
        for (off, len) in [index, log] {
            if len != 0 {
                self.punch_outside_active(off, len)?;
            }
        }
        fp!("maintain::between_punch_and_flag");
        self.ctl_set(sctl!(s, retired_index_len), 0)?;
        self.ctl_set(sctl!(s, retired_log_len), 0)?;
        self.ctl_set(sctl!(s, retired_index_off), 0)?;
        self.ctl_set(sctl!(s, retired_log_off), 0)?;
        self.ctl_set(sctl!(s, retired_ms), 0)
    }

    /// Punches at most `max` bytes (a multiple of the page size) of the shard's retired
    /// extents, from the end of the log's, then the index's, and shortens the extent with one
    /// store (a writer killed before it punches the same bytes again). True once nothing is
    /// retired (the offsets and `retired_ms` are then cleared).
    pub(super) fn punch_retired_step(&mut self, max: u64) -> Result<bool> {
        let s = self.shard;
        for (off_f, len_f) in [
            (sctl!(s, retired_log_off), sctl!(s, retired_log_len)),
            (sctl!(s, retired_index_off), sctl!(s, retired_index_len)),
        ] {
            let len = self.ctl(len_f)?;
            if len == 0 {
                continue;
            }
            let off = self.ctl(off_f)?;
            let n = len.min(max);
            self.punch_outside_active(off.saturating_add(len - n), n)?;
            fp!("build::between_retired_step_and_length");
            self.ctl_set(len_f, len - n)?;
            if len > n
                || self.ctl(sctl!(s, retired_log_len))? != 0
                || self.ctl(sctl!(s, retired_index_len))? != 0
            {
                return Ok(false);
            }
            break;
        }
        self.ctl_set(sctl!(s, retired_index_off), 0)?;
        self.ctl_set(sctl!(s, retired_log_off), 0)?;
        self.ctl_set(sctl!(s, retired_ms), 0)?;
        Ok(true)
    }

    /// What a writer killed mid-switch left in the shard's space line: a building reservation
    /// (its pages are punched, outside the active regions, then it is forgotten) and retired
    /// extents (kept for the grace period; a retired extent that is the active one is never
    /// punched).
    pub(super) fn recover_space(&mut self) -> Result<()> {
        let s = self.shard;
        let (off, len) = (
            self.ctl(sctl!(s, building_off))?,
            self.ctl(sctl!(s, building_len))?,
        );
        if len != 0 {
            // The reservation is one span from the new index to the new log, which may hold
            // the regions the publication retired: those keep their pages for the grace period
            // (readers may still be copying from them), and are punched after it.
            self.punch_outside(off, len, self.in_use_or_retired())?;
        }
        self.ctl_set(sctl!(s, building_len), 0)?;
        self.ctl_set(sctl!(s, building_off), 0)
    }

    /// Returns retired regions to the OS once the grace period since they were retired passed.
    pub fn maintain(&mut self) -> Result<()> {
        self.maintain_by(u64::MAX)
    }

    /// [`Writer::maintain`], punching at most `max` bytes (a multiple of the page size) now:
    /// the end of a write punches a large retired region over several writes.
    pub fn maintain_by(&mut self, max: u64) -> Result<()> {
        let s = self.shard;
        if self.ctl(sctl!(s, retired_index_len))? == 0 && self.ctl(sctl!(s, retired_log_len))? == 0
        {
            return Ok(());
        }
        let retired = self.ctl(sctl!(s, retired_ms))?;
        let since = self.now.saturating_sub(retired);
        let now_real = (self.sh.clock)();
        let since = since.max(now_real.saturating_sub(retired));
        if since < self.sh.grace.as_millis() as u64 {
            return Ok(());
        }
        if max == u64::MAX {
            return self.punch_retired();
        }
        self.punch_retired_step(max).map(|_| ())
    }

    /// For a process alone with the file: punch all free space and truncate the unused tail.
    pub fn trim_alone(&mut self) -> Result<()> {
        // A build left in flight by a clean detach would lose its pages below: abandoned.
        self.abandon_build()?;
        self.punch_free(&[])?;
        let s = self.shard;
        for f in [
            sctl!(s, retired_index_len),
            sctl!(s, retired_log_len),
            sctl!(s, retired_index_off),
            sctl!(s, retired_log_off),
            sctl!(s, retired_ms),
        ] {
            self.ctl_set(f, 0)?;
        }
        let end = self.in_use().iter().map(|r| r.1).max().unwrap_or(u64::MAX);
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
        let plan = self.sizing()?.clear();
        match self.switch(plan, Fill::Empty) {
            // The other shards hold the budget: empty this one in place.
            Err(Error::Full { .. }) if self.sh.shards() > 1 => self.clear_in_place(),
            r => r,
        }
    }

    /// Empties the shard without a switch: every live slot becomes a tombstone (the records it
    /// pointed to are dead bytes the ring reclaims as it wraps).
    fn clear_in_place(&mut self) -> Result<()> {
        self.abandon_build()?;
        self.quiesce()?;
        let w = self.w();
        for i in 0..self.g.slots() {
            if slot::is_live(self.g.load_slot(w, i)?) {
                self.g.store_slot(w, i, slot::TOMBSTONE)?;
            }
        }
        self.ctl_set(sctl!(self.shard, entries), 0)?;
        self.set_live(0)
    }

    /// Rebuilds compactly per `plan` (a ring about three times the live data) in one step: the
    /// compaction whose active ring has no room for a build ([`Writer::compact_step`]).
    pub(super) fn compact_in_one_step(&mut self, plan: Plan) -> Result<()> {
        match self.switch(plan, Fill::Keep) {
            // The placement step found the budget held by other shards: as above.
            Err(Error::Full { .. }) if self.sh.shards() > 1 => {}
            r => r?,
        }
        self.maintain()
    }

    /// Before a switch's store of `active` naming a ring of `len` bytes reserved through
    /// `reserved`: lowers `active_alloc` to a watermark true of either ring, the lower of the
    /// two, so that a kill between that store and the new ring's own watermark leaves no
    /// watermark past a smaller ring's end or over pages it never reserved (below it both
    /// rings are reserved; above it a later append reserves again, which is idempotent).
    pub(super) fn watermark_for_either(&self, reserved: u64, len: u64) -> Result<()> {
        let old_len = self.g.desc.log_len();
        let old = match self.ctl(sctl!(self.shard, active_alloc))? {
            0 => old_len,
            a => a.min(old_len),
        };
        let both = old.min(reserved).min(len).max(1);
        self.ctl_set(sctl!(self.shard, active_alloc), both)
    }

    /// Rebuilds the generation from records whose checksums verify (after damage or an OS
    /// crash), at the same size.
    pub fn rebuild_verified(&mut self) -> Result<()> {
        let plan = self.sizing()?.same();
        self.switch(plan, Fill::Verified)
    }
}
