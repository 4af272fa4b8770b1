//! Mutations, run by the holder of the writer lock: set, add, remove, incr, leases, and making
//! room in the ring (cleaning and CLOCK eviction). When the ring or the index must change
//! size, a [`crate::plan`] chooses the shape and the child module [`switch`] builds the next
//! generation and switches to it. `Writer`'s state is private to this module and `switch`.

mod build;
mod churn;
mod lanes;
mod switch;

use std::sync::atomic::Ordering;

use self::build::Build;
pub use self::build::Compaction;
pub(crate) use self::lanes::{Fast, Plain, fast_set};
use self::switch::Fill;
use crate::arena::{Gen, NoSink, Probe};
use crate::error::{Error, Result};
use crate::failpoints::fp;
use crate::format::{
    self, CHUNK_HEAD_LEN, CONFIG_NO_EVICT, FLAG_CHUNK, FLAG_INT, FLAG_LEASE, FLAG_PAD,
    RECORD_HEADER_LEN, RecordHeader, gctl, record_size, sctl, slot,
};
use crate::lock;
use crate::plan::{self, Sizing};
use crate::raw::Window;
use crate::shared::Shared;
use crate::types::{Compare, Condition, Counter, Entry, IncrOptions, LeaseState};

/// Retired bytes one write punches at most: at the end of a write after the grace period, and
/// in the last advances of a build (punching a hole costs per page on tmpfs, about 0.25 ms a
/// MiB here, so a step bounds what one `set` pays however large the retired generation).
pub(crate) const RETIRE_STEP: u64 = 2 << 20;
/// Bytes of referenced records one evicting clean moves to the head at least (a second chance),
/// beside four times the bytes it makes room for.
const SECOND_CHANCE_FLOOR: u64 = 64 << 10;

/// Slot compare-and-swaps a locked write loses to fast writes of the same key before it
/// closes the fast-write gate for the rest of its critical section.
const LOST_RACES_BEFORE_QUIESCE: u32 = 4;

/// The state of one critical section under a shard's writer lock.
pub(crate) struct Writer<'a> {
    sh: &'a Shared,
    /// The shard whose writer lock is held.
    shard: usize,
    /// The active generation, as this critical section last switched to or loaded it.
    g: Gen,
    /// The wall-clock time of this critical section (one reading for all its expiry checks).
    now: u64,
    keybuf: Vec<u8>,
    buf: Vec<u8>,
    /// Growth failed for lack of file-system space during this critical section.
    no_space: bool,
    /// An index rebuild was refused by the placement step during this critical section (the
    /// other shards hold the budget): inserts go on while the index has empty slots.
    index_held: bool,
    /// What is left of the time this critical section may wait for readers' quiet requests.
    quiet_left: std::time::Duration,
    /// The shard's build in flight (format.md, "Incremental build"), as loaded.
    build: Option<Build>,
    /// Line 3 names a build that is not there: abandoned by the next write.
    build_stale: bool,
    /// This critical section closed the shard's fast-write gate and drained its lanes
    /// (format.md, "Lanes and chunks"); it stays closed until the lock is released.
    quiesced: bool,
    /// Bytes this critical section's cleaning copied (moved, or given a second chance): a
    /// chunk claim makes room only in one that copied nothing, so that no `set` copies more than
    /// one write's bounded share.
    copied_here: u64,
    /// Upkeep is cleaning (ahead of need, or for a chunk claim): it gives up rather than wait
    /// for a fast write, which only a write that needs the room does (bounded).
    no_wait: bool,
    /// What this hold's waits for the lock left of its lock timeout: every later wait (lanes,
    /// the placement lock) draws on it.
    patience: lock::Patience,
}

/// The absolute expiry at `now` for a TTL choice (see `SetOptions::ttl_ms`).
/// The clock is read only for a TTL.
pub(crate) fn expiry_at(
    sh: &Shared,
    now: impl FnOnce() -> u64,
    ttl_ms: Option<u64>,
) -> Result<u64> {
    let ttl = match ttl_ms {
        Some(t) => t,
        None => sh
            .mem
            .w()
            .load_u64(gctl!(default_ttl_ms), Ordering::Acquire)?,
    };
    Ok(if ttl == 0 {
        0
    } else {
        now().saturating_add(ttl)
    })
}

/// Outcome of a put.
pub(crate) struct Put {
    pub stored: bool,
    pub evicted: u64,
    /// The key was present (an overwrite).
    pub replaced: bool,
}

/// A lease value: the owner's process slot, incarnation and a per-request token.
fn lease_value(slot: u32, incarnation: u32, token: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..4].copy_from_slice(&slot.to_le_bytes());
    v[4..8].copy_from_slice(&incarnation.to_le_bytes());
    v[8..].copy_from_slice(&token.to_le_bytes());
    v
}

pub(crate) fn parse_lease(v: &[u8]) -> Option<(u32, u32, u64)> {
    let v: &[u8; 16] = v.try_into().ok()?;
    Some((
        u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
        u32::from_le_bytes([v[4], v[5], v[6], v[7]]),
        u64::from_le_bytes([v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]]),
    ))
}

impl<'a> Writer<'a> {
    /// The writer of shard `shard`, whose lock the caller holds (waiting for it drew on
    /// `patience`).
    #[inline]
    pub fn new(sh: &'a Shared, shard: usize, patience: lock::Patience) -> Result<Writer<'a>> {
        let mut wr = Writer {
            sh,
            shard,
            g: Gen::load(&sh.mem, shard)?,
            now: (sh.clock)(),
            keybuf: Vec::new(),
            buf: Vec::new(),
            no_space: false,
            index_held: false,
            quiet_left: lock::QUIET_BUDGET,
            build: None,
            build_stale: false,
            quiesced: false,
            copied_here: 0,
            no_wait: false,
            patience,
        };
        match wr.load_build()? {
            Ok(b) => wr.build = b,
            Err(()) => wr.build_stale = true,
        }
        Ok(wr)
    }

    /// What is left of this hold's patience (for a writer built again in the same hold).
    pub(crate) fn patience(&self) -> lock::Patience {
        self.patience
    }

    #[inline]
    pub(super) fn w(&self) -> &'a Window {
        self.sh.mem.w()
    }

    pub(super) fn ctl(&self, off: u64) -> Result<u64> {
        self.w().load_u64(off, Ordering::Acquire)
    }

    pub(super) fn ctl_set(&self, off: u64, v: u64) -> Result<()> {
        self.w().store_u64(off, v, Ordering::Release)
    }

    /// Adds to a counter of this shard. Only the holder of the shard's lock writes its
    /// counters, yet a load and a store would not do better: the line is the lock word's, which
    /// a waiting writer keeps reading, and a plain load then store pulls it twice where a
    /// locked add pulls it once (2 writers of one shard: 0.30x one writer instead of 0.37-0.43x).
    pub(super) fn ctl_add(&self, off: u64, v: u64) -> Result<()> {
        self.w().add_u64(off, v).map(|_| ())
    }

    /// Subtracts from a counter of this shard, saturating at zero.
    pub(super) fn ctl_sub(&self, off: u64, v: u64) -> Result<()> {
        self.w().sub_u64(off, v).map(|_| ())
    }

    /// Before a store that invalidates lock-free readers (the ring's tail, `active_gen`):
    /// waits while a reader asks for quiet, for at most [`lock::QUIET_BUDGET`] per critical
    /// section, so a reader can delay a writer by that much and no more.
    pub(super) fn honour_quiet(&mut self) -> Result<()> {
        if self.quiet_left.is_zero() {
            return Ok(());
        }
        if let Some(d) = lock::quiet_pending(&self.sh.mem, &lock::shard(self.shard))? {
            let d = d.min(self.quiet_left);
            std::thread::sleep(d);
            self.quiet_left = self
                .quiet_left
                .saturating_sub(d.max(std::time::Duration::from_micros(100)));
        }
        Ok(())
    }

    fn evict_enabled(&self) -> Result<bool> {
        Ok(self.w().load_u32(gctl!(config_flags), Ordering::Acquire)? & CONFIG_NO_EVICT == 0)
    }

    /// What the plans read: the active generation and the control block's counters.
    ///
    /// With several shards the plans see this shard alone: `max_size` less the header and what
    /// the other shards' active generations hold (read lock-free: the placement step, not this
    /// figure, keeps the hard cap), and the shard's part of the initial size.
    pub(super) fn sizing(&self) -> Result<Sizing> {
        self.sizing_with(true)
    }

    /// [`Writer::sizing`]; `slack`: whether the other shards' room for an index rebuild counts
    /// as theirs (for plans that take room; not for the test against a lowered `max_size`,
    /// which only the shards' regions themselves must fit).
    fn sizing_with(&self, slack: bool) -> Result<Sizing> {
        let mut max_size = self.ctl(gctl!(max_size))?;
        let mut min_pages = self.w().load_u32(gctl!(min_pages), Ordering::Acquire)? as u64;
        let shards = self.sh.shards() as u64;
        if shards > 1 {
            let header = self.sh.mem.header_len();
            let mut others = 0u64;
            for j in (0..self.sh.shards()).filter(|&j| j != self.shard) {
                // What the other shard holds, and the room its own plans keep for one index
                // rebuild (two index copies and a page, as `Sizing::largest_cap`), so that no
                // shard's growth takes another's.
                let d = Gen::load(&self.sh.mem, j)?.desc;
                let room = d.index_len().saturating_mul(2).saturating_add(format::PAGE);
                others = others.saturating_add(d.index_len().saturating_add(d.log_len()));
                if slack {
                    others = others.saturating_add(room);
                }
            }
            max_size = format::HEADER_LEN
                .saturating_add(max_size.saturating_sub(header.saturating_add(others)));
            let part = min_pages
                .saturating_mul(format::PAGE)
                .saturating_sub(header)
                / shards;
            min_pages = format::HEADER_LEN.saturating_add(part) / format::PAGE;
        }
        Ok(Sizing {
            desc: self.g.desc,
            entries: self.ctl(sctl!(self.shard, entries))?,
            live_bytes: self.live()?,
            max_size,
            min_pages,
            shards,
        })
    }

    /// The absolute expiry for a TTL choice (see `SetOptions::ttl_ms`).
    pub fn expiry(&self, ttl_ms: Option<u64>) -> Result<u64> {
        expiry_at(self.sh, || self.now, ttl_ms)
    }

    /// Ring bytes kept free so that moving any record during cleaning always fits.
    fn reserve(&self) -> u64 {
        self.g.cap() / 8
    }

    /// Probes for `key` as the writer. Damaged entries met on the way are dropped (tombstoned)
    /// and counted, then the probe is repeated.
    fn probe(&mut self, key: &[u8], h: u64, with_value: bool) -> Result<Probe> {
        for _ in 0..16 {
            let w = self.w();
            let probe = if with_value {
                let mut buf = std::mem::take(&mut self.buf);
                let p = self.g.lookup(w, key, h, &mut buf);
                self.buf = buf;
                p?
            } else {
                self.g.lookup(w, key, h, &mut NoSink)?
            };
            match probe {
                Probe::Suspect { idx, .. } => self.drop_damaged(idx)?,
                p => return Ok(p),
            }
        }
        Err(Error::corrupt(
            self.g.desc.index_off,
            "index probe keeps finding damage",
        ))
    }

    /// Tombstones a slot whose record is damaged, and recounts.
    fn drop_damaged(&mut self, idx: u64) -> Result<()> {
        self.abandon_build()?;
        self.quiesce()?;
        self.g.store_slot(self.w(), idx, slot::TOMBSTONE)?;
        self.recount()
    }

    fn has_room(&self, size: u64) -> Result<bool> {
        let (head, tail) = (self.g.head(self.w())?, self.g.tail(self.w())?);
        Ok(self.g.free(head, tail) >= self.g.footprint(head, size) + self.reserve())
    }

    /// Stores a record for `key`. With `only_if_absent`, an existing live value wins.
    pub fn put(
        &mut self,
        key: &[u8],
        h: u64,
        value: &[u8],
        flags: u32,
        expires_ms: u64,
        only_if_absent: bool,
    ) -> Result<Put> {
        if value.len() > u32::MAX as usize - 64 {
            return Err(Error::TooLarge {
                what: "value",
                len: value.len() as u64,
                max: u32::MAX as u64 - 64,
            });
        }
        let size = record_size(key.len(), value.len());
        let evictions_before = self.ctl(sctl!(self.shard, evictions))?;
        // Another process may have lowered max_size below what the map holds. With several
        // shards that needs a look only when max_size changed (the placement step keeps the
        // shards' generations within it otherwise), which spares every set the other shards'
        // descriptors.
        let max = self.ctl(gctl!(max_size))?;
        let checked = self.sh.cap_checked.get(self.shard);
        if checked.is_none_or(|c| c.load(Ordering::Relaxed) != max) {
            if let Some(plan) = self.sizing_with(false)?.over_cap() {
                self.switch(plan, Fill::Keep)?;
            }
            if let Some(c) = checked {
                c.store(max, Ordering::Relaxed);
            }
            if let Some(c) = self.sh.index_capped_at.get(self.shard) {
                c.store(0, Ordering::Relaxed);
            }
        }
        let mut lost = 0u32;
        for _ in 0..64 {
            let (idx, old) = match self.probe(key, h, false)? {
                Probe::Hit(hit) => {
                    let present =
                        !hit.hdr.expired(self.now) && hit.hdr.flags.get() & FLAG_LEASE == 0;
                    if only_if_absent && present {
                        return Ok(Put {
                            stored: false,
                            evicted: 0,
                            replaced: true,
                        });
                    }
                    (hit.idx, Some((hit.hdr.size(), hit.slot)))
                }
                Probe::Miss {
                    free: Some(idx), ..
                } => (idx, None),
                Probe::Miss { free: None, .. } => {
                    self.make_index_room()?;
                    continue;
                }
                // `probe` repairs damage before it returns.
                Probe::Suspect { offset, what, .. } => return Err(Error::corrupt(offset, what)),
            };
            if old.is_none() && self.hold_entries()? {
                continue;
            }
            if old.is_none() && !self.index_held && self.index_needs_room()? {
                self.make_index_room()?;
                continue;
            }
            if size.saturating_mul(16) > self.g.cap() || !self.has_room(size)? {
                self.make_room(size)?;
                continue;
            }
            let hdr = RecordHeader::new(key.len(), value.len(), flags, expires_ms).seal(key, value);
            self.alloc_active(size)?;
            let w = self.w();
            let pos = self.g.append(w, &hdr, key, value)?;
            fp!("put::between_append_and_publish");
            // From the value probed: a fast write (which only ever replaces a live slot) may
            // have come first, and then this record is dead and the put probes again.
            let prev = match old {
                Some((_, seen)) => seen,
                None => self.g.load_slot(w, idx)?,
            };
            if !self.g.cas_slot(w, idx, prev, slot::live(pos, h))? {
                // Past a few of those, no fast write runs until this one is done (the gate
                // closed, the lanes drained): a key that other processes overwrite without
                // pause outlasted the tries, and the set failed with `Full`.
                lost += 1;
                if lost >= LOST_RACES_BEFORE_QUIESCE {
                    self.quiesce()?;
                }
                continue;
            }
            self.mirror(idx, key, h)?;
            fp!("put::between_publish_and_counters");
            // Counters follow the publication; a crash here leaves them for recovery.
            match old {
                Some((old_size, seen)) => {
                    self.count_dead(slot::pos(seen), old_size)?;
                    self.ctl_add(sctl!(self.shard, live_bytes), size)?;
                    fp!("put::between_live_bytes_updates");
                    self.live_sub(old_size)?;
                }
                None => {
                    self.ctl_add(sctl!(self.shard, entries), 1)?;
                    fp!("put::between_entries_and_live_bytes");
                    self.ctl_add(sctl!(self.shard, live_bytes), size)?;
                    if prev == slot::EMPTY {
                        self.ctl_add(sctl!(self.shard, used_slots), 1)?;
                    }
                }
            }
            self.ctl_add(sctl!(self.shard, bytes_written), size)?;
            let r = self.after_write(size).and_then(|()| self.clean_ahead(size));
            self.upkeep(r);
            let evicted = self
                .ctl(sctl!(self.shard, evictions))?
                .saturating_sub(evictions_before);
            return Ok(Put {
                stored: true,
                evicted,
                replaced: old.is_some(),
            });
        }
        Err(Error::Full { needed: size })
    }

    /// Removes `key`; true if a live (unexpired) value was there.
    pub fn remove(&mut self, key: &[u8], h: u64) -> Result<bool> {
        let hit = loop {
            let Probe::Hit(hit) = self.probe(key, h, false)? else {
                return Ok(false);
            };
            // A fast write of the key may come first: then its record is the one removed.
            if self
                .g
                .cas_slot(self.w(), hit.idx, hit.slot, slot::TOMBSTONE)?
            {
                break hit;
            }
        };
        self.mirror(hit.idx, key, h)?;
        fp!("remove::between_tombstone_and_counters");
        self.ctl_sub(sctl!(self.shard, entries), 1)?;
        self.live_sub(hit.hdr.size())?;
        let present = !hit.hdr.expired(self.now) && hit.hdr.flags.get() & FLAG_LEASE == 0;
        let r = self.after_write(0).and_then(|()| self.maybe_shrink());
        self.upkeep(r);
        Ok(present)
    }

    /// The end of a write that is complete and counted: the upkeep it carries (a build's
    /// batch, cleaning ahead, a shrink) is not the write's, so its error does not fail the
    /// write (a retried `incr` would count twice, `set_if` would stop before its stamp). The
    /// shard owes a recovery instead, as after a kill in the middle of that upkeep (not for a
    /// lock timeout: the placement lock was not taken, nothing was begun).
    fn upkeep(&self, r: Result<()>) {
        if r.is_err_and(|e| !matches!(e, Error::LockTimeout { .. })) {
            lock::owe_recovery(&self.sh.mem, &lock::shard(self.shard));
        }
    }

    /// Atomic add on an integer counter.
    pub fn incr(
        &mut self,
        key: &[u8],
        h: u64,
        delta: i64,
        init: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64> {
        let o = IncrOptions {
            init,
            ttl_ms,
            ..IncrOptions::default()
        };
        // With `create` (the default) a counter is always returned.
        self.incr_with(key, h, delta, o)?
            .map(|c| c.value)
            .ok_or(Error::Busy)
    }

    /// Grants a loader's lease on `key`, or reports its value, or that another process loads it.
    pub fn lease(&mut self, key: &[u8], h: u64, lease_ms: u64, token: u64) -> Result<LeaseState> {
        let me = self.sh.me.ok_or(Error::ReadOnly)?;
        if let Probe::Hit(hit) = self.probe(key, h, true)?
            && !hit.hdr.expired(self.now)
        {
            let flags = hit.hdr.flags.get();
            if flags & FLAG_LEASE == 0 {
                return Ok(LeaseState::Value(Entry {
                    key: key.to_vec(),
                    value: std::mem::take(&mut self.buf),
                    flags,
                    expires_ms: hit.hdr.expires_ms.get(),
                }));
            }
            if let Some((slot, inc, _)) = parse_lease(&self.buf)
                && lock::alive(&self.sh.mem, Some(me), slot, inc)?
            {
                return Ok(LeaseState::Wait);
            }
        }
        let v = lease_value(me.slot, me.incarnation, token);
        let expires = self.now.saturating_add(lease_ms.max(1));
        self.put(key, h, &v, FLAG_LEASE, expires, false)?;
        Ok(LeaseState::Acquired(token))
    }

    /// Removes `key` if it holds this caller's lease.
    pub fn release_lease(&mut self, key: &[u8], h: u64, token: u64) -> Result<bool> {
        let me = self.sh.me.ok_or(Error::ReadOnly)?;
        if let Probe::Hit(hit) = self.probe(key, h, true)?
            && hit.hdr.flags.get() & FLAG_LEASE != 0
            && parse_lease(&self.buf) == Some((me.slot, me.incarnation, token))
        {
            // `remove` reports whether a *value* was present; a lease is not one.
            self.remove(key, h)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn index_needs_room(&self) -> Result<bool> {
        let used = self.ctl(sctl!(self.shard, used_slots))?;
        Ok(used.saturating_add(1).saturating_mul(4) > self.g.slots().saturating_mul(3))
    }

    /// At the cap, an index that cannot double holds at most 7/16 of its slots live: an insert
    /// past that evicts a few entries first (a clean with a fixed budget). The index rebuild
    /// behind the writes, which starts at 11/16 of the slots used (`maybe_index_build`), then
    /// always purges the tombstones before 3/4 are used, where [`Writer::make_index_room`]
    /// would evict a quarter of the index and rebuild it in one step (2.3 s at 512 MiB of tiny
    /// values); a rebuild comes once every 1/4 of the slots' inserts. True if it evicted.
    fn hold_entries(&mut self) -> Result<bool> {
        let slots = self.g.slots();
        let limit = (slots / 16).saturating_mul(7);
        if self.ctl(sctl!(self.shard, entries))? < limit
            || self.building_ring()
            || !self.evict_enabled()?
            || !self.index_capped()?
        {
            return Ok(false);
        }
        match self.clean(Target::Entries(limit.saturating_sub(1)), true) {
            Ok(()) => Ok(true),
            // Nothing left to evict: the insert goes the usual way.
            Err(Error::Full { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the budget refuses this shard's index a doubling (cached per generation for a
    /// map of several shards, whose plan reads every shard's descriptor).
    fn index_capped(&self) -> Result<bool> {
        let slots = self.g.slots();
        let key = self.g.cap() | u64::from(slots.trailing_zeros());
        let cache = self.sh.index_capped_at.get(self.shard);
        if cache.is_some_and(|c| c.load(Ordering::Relaxed) == key) {
            return Ok(true);
        }
        let capped = self.sizing()?.index(slots.saturating_mul(2)).is_none();
        if capped && let Some(c) = cache {
            c.store(key, Ordering::Relaxed);
        }
        Ok(capped)
    }

    /// Makes the index able to take one more key: rebuild it without tombstones, larger if the
    /// live entries need it, evicting first when the map is at its cap.
    fn make_index_room(&mut self) -> Result<()> {
        // A build in flight is finished first: the next generation's index has the room.
        if self.building() {
            return self.finish_build();
        }
        let entries = self.ctl(sctl!(self.shard, entries))?;
        let want = plan::slots_for_entries(entries.saturating_add(1));
        if want > self.g.slots() && !self.switch_index(want)? {
            if !self.evict_enabled()? {
                // Tombstones may be what fills it: rebuilt at its size while the live entries
                // leave room (the rebuild behind the writes normally came first), else full.
                let slots = self.g.slots();
                if entries.saturating_add(1).saturating_mul(8) <= slots.saturating_mul(5)
                    && self.switch_index(slots)?
                {
                    return Ok(());
                }
                return Err(self.full_error(RECORD_HEADER_LEN));
            }
            // Evict down to a quarter of the slots, then rebuild at the same size.
            self.clean(Target::Entries(self.g.slots() / 4), true)?;
            self.switch_index(self.g.slots())?;
        } else if want <= self.g.slots() {
            self.switch_index(self.g.slots())?;
        }
        Ok(())
    }

    fn full_error(&self, needed: u64) -> Error {
        if self.no_space {
            Error::NoSpace { requested: needed }
        } else {
            Error::Full { needed }
        }
    }

    /// Makes room in the ring for a record of `size` bytes (plus the reserve): grow if live
    /// data is dense and the cap allows, else clean in place, evicting at the cap.
    fn make_room(&mut self, size: u64) -> Result<()> {
        // The active ring filled before the build in flight completed: it is finished now;
        // an index rebuild goes on through the cleaning (its moves and reclaims mirrored).
        if self.building_ring() {
            return self.finish_build();
        }
        let cap = self.g.cap();
        let live = self.live()?;
        let too_big = size.saturating_mul(16) > cap;
        let wont_fit = live.saturating_add(size).saturating_add(self.reserve()) > cap;
        let dense = live.saturating_mul(2) > cap;
        if too_big || wont_fit || dense {
            if self.grow(size)? {
                return Ok(());
            }
            if too_big {
                let max = self.sizing()?.largest_cap().max(cap) / 16;
                return Err(Error::TooLarge {
                    what: "value",
                    len: size,
                    max: max.saturating_sub(RECORD_HEADER_LEN),
                });
            }
            // At the cap: a dense ring is cleaned by CLOCK eviction, which reclaims what it
            // walks over; moving every live record instead would copy the ring again and
            // again for each write.
            if self.evict_enabled()? {
                return self.clean(Target::Room(size), true);
            }
            if wont_fit {
                return Err(self.full_error(size));
            }
        }
        match self.clean(Target::Room(size), false) {
            Err(Error::Full { .. }) if self.evict_enabled()? => {
                self.clean(Target::Room(size), true)
            }
            Err(Error::Full { .. }) => Err(self.full_error(size)),
            r => r,
        }
    }

    /// Past three quarters of the ring used, a write also cleans ahead of need: it moves up to
    /// eight times its own bytes of live records from the tail (skipping dead ones, which is
    /// what frees room), so that a long run of live records at the tail is moved over the
    /// writes that fill the last quarter (the reserve keeps an eighth: those writes have an
    /// eighth of the ring, and any run fits in seven eighths, 7 < 8), not by the write that
    /// finds the ring full (half a 512 MiB ring, 140 ms, in one `set`). Not where cleaning
    /// evicts (a dense ring of an evicting map: eviction there is bounded per write already)
    /// nor while a growth or shrink is built (its ring takes over).
    fn clean_ahead(&mut self, wrote: u64) -> Result<()> {
        let w = self.w();
        let cap = self.g.cap();
        if self.g.free(self.g.head(w)?, self.g.tail(w)?) >= cap / 4 || self.building_ring() {
            return Ok(());
        }
        if self.evict_enabled()? && self.live()?.saturating_mul(2) > cap {
            return Ok(());
        }
        let target = Target::Ahead {
            free: cap / 4,
            moved: wrote.saturating_mul(8).max(crate::format::PAGE),
        };
        let was = std::mem::replace(&mut self.no_wait, true);
        let r = self.clean(target, false);
        self.no_wait = was;
        match r {
            // Nothing it could move now: the write that needs room decides.
            Err(Error::Full { .. }) => Ok(()),
            r => r,
        }
    }

    /// Advances the tail until `target` holds: dead records and pads are skipped, expired ones
    /// reclaimed, live ones moved to the head, or (with `evict`) evicted unless their CLOCK bit
    /// gives them a second chance.
    fn clean(&mut self, target: Target, evict: bool) -> Result<()> {
        let w = self.w();
        let g = self.g;
        let cap = g.cap();
        let start = g.tail(w)?;
        // Second chances are bounded per call by a fixed budget (past it, referenced records
        // are evicted too): a ring whose tail is all recently read records would otherwise
        // be moved in one set, O(ring). The budget is four times what the clean must free, at
        // least SECOND_CHANCE_FLOOR; evicting down to a number of entries frees that many
        // records of the average size (a quarter of an index full at the cap may move up to a
        // quarter of the ring; holding the entries at 7/16 of the index moves the floor).
        let chance_budget = match target {
            Target::Room(size) => size,
            Target::Ahead { .. } => 0,
            Target::Entries(n) => {
                let entries = self.ctl(sctl!(self.shard, entries))?;
                let live = self.live()?;
                let avg = live.checked_div(entries).unwrap_or(0);
                entries.saturating_sub(n).saturating_mul(avg).min(cap / 16)
            }
        }
        .saturating_mul(4)
        .max(SECOND_CHANCE_FLOOR);
        // An evicting map moves a bounded amount of live records in place a write (when its
        // ring is not dense): past it, `Full`, and the caller evicts instead.
        let move_budget = match target {
            Target::Room(size) if !evict && self.evict_enabled()? => {
                Some(size.saturating_mul(8).max(SECOND_CHANCE_FLOOR))
            }
            _ => None,
        };
        let (mut second_chances, mut moved) = (0u64, 0u64);
        loop {
            let done = match target {
                Target::Room(size) => self.has_room(size)?,
                Target::Entries(n) => self.ctl(sctl!(self.shard, entries))? <= n,
                Target::Ahead { free, moved: most } => {
                    moved >= most || g.free(g.head(w)?, g.tail(w)?) >= free
                }
            };
            if done {
                return Ok(());
            }
            self.honour_quiet()?;
            let (head, tail) = (g.head(w)?, g.tail(w)?);
            if tail >= head || tail.saturating_sub(start) > cap.saturating_mul(2) {
                return Err(Error::Full { needed: 0 });
            }
            if cap - g.phys(tail) < RECORD_HEADER_LEN {
                g.set_tail(w, g.next_lap(tail))?;
                continue;
            }
            let (hdr, size) = match g.header_at(w, tail)? {
                Ok(x) => x,
                Err(_) => return self.rebuild_verified(),
            };
            if hdr.flags.get() & FLAG_PAD != 0 {
                g.set_tail(w, g.next_lap(tail))?;
                continue;
            }
            if hdr.flags.get() & FLAG_CHUNK != 0 {
                // A lane's chunk (format.md, "Lanes and chunks"): closed, its owner's write
                // into it waited for, its unused end made a closed empty chunk; then its
                // records are cleaned as any others.
                let Some(fill) = self.close_chunk(tail, size)? else {
                    return self.rebuild_verified();
                };
                if fill == CHUNK_HEAD_LEN {
                    g.set_tail(w, tail + size)?;
                    continue;
                }
                if fill < size {
                    g.write_chunk(
                        w,
                        tail + fill,
                        size - fill,
                        format::CHUNK_CLOSED | CHUNK_HEAD_LEN,
                        0,
                    )?;
                }
                fp!("clean::before_entering_chunk");
                g.set_tail(w, tail + CHUNK_HEAD_LEN)?;
                continue;
            }
            g.read_key(w, tail, &hdr, &mut self.keybuf)?;
            let key = std::mem::take(&mut self.keybuf);
            let h = format::hash(&key, self.sh.seed);
            let probe = g.lookup(w, &key, h, &mut NoSink)?;
            self.keybuf = key;
            let hit = match probe {
                Probe::Hit(hit) if slot::pos(hit.slot) == tail => hit,
                _ => {
                    g.set_tail(w, tail + size)?;
                    continue;
                }
            };
            let referenced = hit.slot & slot::REF != 0;
            if hdr.expired(self.now) {
                self.reclaim(hit.idx, hit.slot, h, size, sctl!(self.shard, expirations))?;
            } else if evict && (!referenced || second_chances >= chance_budget) {
                self.reclaim(hit.idx, hit.slot, h, size, sctl!(self.shard, evictions))?;
            } else {
                let head = g.head(w)?;
                if g.footprint(head, size) > g.free(head, tail) {
                    if !evict {
                        return Err(Error::Full { needed: size });
                    }
                    self.reclaim(hit.idx, hit.slot, h, size, sctl!(self.shard, evictions))?;
                } else {
                    if evict {
                        second_chances = second_chances.saturating_add(size);
                    }
                    if move_budget.is_some_and(|b| moved >= b) {
                        return Err(Error::Full { needed: size });
                    }
                    moved = moved.saturating_add(size);
                    self.move_record(hit.idx, h, hit.slot, tail, &hdr, referenced && !evict)?;
                }
            }
            fp!("clean::before_tail_store");
            g.set_tail(w, tail + size)?;
        }
    }

    /// Tombstones a live slot and counts the reclaimed record under `counter`.
    /// The key is the one in `keybuf` (hash `h`), mirrored into a build in flight.
    fn reclaim(&mut self, idx: u64, seen: u64, h: u64, size: u64, counter: u64) -> Result<()> {
        if !self.g.cas_slot(self.w(), idx, seen, slot::TOMBSTONE)? {
            // Overwritten by a fast write meanwhile: the record was dead already.
            return Ok(());
        }
        let key = std::mem::take(&mut self.keybuf);
        let r = self.mirror(idx, &key, h);
        self.keybuf = key;
        r?;
        fp!("reclaim::between_tombstone_and_counters");
        self.ctl_sub(sctl!(self.shard, entries), 1)?;
        self.live_sub(size)?;
        self.ctl_add(counter, 1)
    }

    /// Copies the record at `pos` to the head and re-points its slot with one store (mirrored
    /// into an index rebuild in flight, whose slot for the key points into this ring).
    fn move_record(
        &mut self,
        idx: u64,
        h: u64,
        s: u64,
        pos: u64,
        hdr: &RecordHeader,
        keep_ref: bool,
    ) -> Result<()> {
        let w = self.w();
        let mut value = std::mem::take(&mut self.buf);
        crate::arena::size_buf(&mut value, hdr.value_len.get() as usize, pos)?;
        self.g.read_value(w, pos, hdr, &mut value)?;
        if hdr.checksum(&self.keybuf, &value) != hdr.crc.get() {
            self.buf = value;
            return self.drop_damaged(idx);
        }
        if let Err(e) = self.alloc_active(hdr.size()) {
            self.buf = value;
            return Err(e);
        }
        let new = self.g.append(w, hdr, &self.keybuf, &value)?;
        fp!("move::between_append_and_repoint");
        let repointed = self
            .g
            .replace_slot(w, idx, s, |s| slot::moved(s, new, keep_ref))?;
        self.ctl_add(sctl!(self.shard, bytes_copied), hdr.size())?;
        self.copied_here = self.copied_here.saturating_add(hdr.size());
        self.buf = value;
        if !repointed {
            // A fast write replaced the record meanwhile: the copy is dead.
            return Ok(());
        }
        let key = std::mem::take(&mut self.keybuf);
        let r = self.mirror_move(idx, &key, h);
        self.keybuf = key;
        r
    }

    /// Recomputes `entries`, `live_bytes` and `used_slots` from the index, dropping slots that
    /// point outside the ring's valid range or at nonsense.
    fn recount(&mut self) -> Result<()> {
        self.quiesce()?;
        let w = self.w();
        let g = self.g;
        let (head, tail) = (g.head(w)?, g.tail(w)?);
        let (mut entries, mut live, mut used) = (0u64, 0u64, 0u64);
        for i in 0..g.slots() {
            let s = g.load_slot(w, i)?;
            if s == slot::EMPTY {
                continue;
            }
            used += 1;
            if s == slot::TOMBSTONE {
                continue;
            }
            let pos = slot::pos(s);
            let header = if slot::is_valid(s) && tail <= pos && pos < head {
                g.header_at(w, pos)?.ok()
            } else {
                None
            };
            match header {
                Some((_, size)) => {
                    entries += 1;
                    live = live.saturating_add(size);
                }
                None => g.store_slot(w, i, slot::TOMBSTONE)?,
            }
        }
        self.ctl_set(sctl!(self.shard, entries), entries)?;
        fp!("recount::between_counters");
        self.set_live(live)?;
        self.ctl_set(sctl!(self.shard, used_slots), used)
    }

    /// Repairs what a writer killed mid-operation may have left: counters, a half-built
    /// generation, a broken ring (rebuilt from verified records).
    pub fn recover(&mut self) -> Result<()> {
        fp!("recover::start", |_| Err(Error::corrupt(
            0,
            "recovery failed (injected by a failpoint)"
        )));
        self.quiesce()?;
        let w = self.w();
        let (head, tail) = (self.g.head(w)?, self.g.tail(w)?);
        // A build in flight is abandoned (nothing of it is visible).
        self.abandon_build()?;
        self.recover_space()?;
        let sane = tail <= head
            && head - tail <= self.g.cap()
            && head <= format::MAX_POS
            && head % 8 == 0
            && tail % 8 == 0;
        fp!("recover::between_building_and_recount");
        if !sane {
            return self.rebuild_verified();
        }
        self.recount()
    }

    /// End-of-operation upkeep: return retired pages whose grace passed, and take a shrink
    /// that was due but deferred (one shrink per grace period).
    pub fn housekeep(&mut self) -> Result<()> {
        self.maintain()?;
        self.maybe_shrink()?;
        // `flush` writes the whole map back anyway: a build in flight (a shrink it just
        // started, say) is completed, and what it retired returned once its grace passed.
        self.complete_build()?;
        self.maintain()
    }

    /// [`Writer::housekeep`] at the end of a write: retired regions are punched at most
    /// [`RETIRE_STEP`] bytes a write, so no write pays for a whole retired generation.
    pub fn housekeep_step(&mut self) -> Result<()> {
        fp!("housekeep::step");
        self.maintain_by(RETIRE_STEP)?;
        self.maybe_shrink()
    }

    /// Shrinks when live data has fallen far below the ring (and above the initial size).
    fn maybe_shrink(&mut self) -> Result<()> {
        if self.building() {
            return Ok(());
        }
        // One shrink per grace period: while deletes continue, each earlier shrink's retired
        // regions still hold their pages, and stacking copies would raise memory before
        // lowering it.
        let since = self
            .now
            .saturating_sub(self.ctl(sctl!(self.shard, switched_ms))?);
        if since < self.sh.grace.as_millis() as u64 {
            return Ok(());
        }
        // The cheap test first (the plan repeats it): this runs at the end of every write.
        let live = self.live()?;
        if live.saturating_mul(8) >= self.g.cap() {
            return Ok(());
        }
        if let Some(plan) = self.sizing()?.shrink() {
            if self.ring_floor() >= self.g.cap() {
                // A record here needs the ring as it is (a build found it): no smaller ring.
                return Ok(());
            }
            // A shrink is never urgent: not while a fast write would have to be waited for.
            if !self.quiesce_or_defer()? {
                return Ok(());
            }
            // Built in bounded steps behind the writes, as a growth is, when the smaller ring
            // has the build's room (it has: a shrink keeps four times the live data).
            let r = self.start_shrink(plan).and_then(|started| {
                if started {
                    Ok(())
                } else {
                    self.switch(plan, Fill::Keep)
                }
            });
            match r {
                Err(Error::NoSpace { .. }) => {}
                Err(Error::Full { .. }) if self.sh.shards() > 1 => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// Tries to grow; false when at the cap or out of file-system space.
    fn grow(&mut self, size: u64) -> Result<bool> {
        if self.now < self.sh.no_grow_until.load(Ordering::Relaxed) {
            self.no_space = true;
            return Ok(false);
        }
        let Some(plan) = self.sizing()?.grow(size) else {
            return Ok(false);
        };
        match self.switch(plan, Fill::Keep) {
            Ok(()) => Ok(true),
            // The placement step found no room under max_size (other shards hold it).
            Err(Error::Full { .. }) if self.sh.shards() > 1 => Ok(false),
            Err(Error::NoSpace { .. }) => {
                self.no_space = true;
                self.sh
                    .no_grow_until
                    .store(self.now.saturating_add(1000), Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Rebuilds the index alone with `slots` slots; false if the cap does not allow it.
    fn switch_index(&mut self, slots: u64) -> Result<bool> {
        let Some(plan) = self.sizing()?.index(slots) else {
            return Ok(false);
        };
        match self.switch(plan, Fill::Keep) {
            Ok(()) => Ok(true),
            Err(Error::NoSpace { .. }) if slots > self.g.slots() => {
                self.no_space = true;
                Ok(false)
            }
            // The other shards hold the budget: a larger index is not to be had, and a rebuild
            // at the same size is skipped while the index still has an empty slot (probes end
            // there; tombstones are reused).
            Err(Error::Full { .. }) if self.sh.shards() > 1 => {
                let used = self.ctl(sctl!(self.shard, used_slots))?;
                if slots > self.g.slots() {
                    Ok(false)
                } else if used.saturating_add(2) < self.g.slots() {
                    self.index_held = true;
                    Ok(false)
                } else {
                    Err(self.full_error(RECORD_HEADER_LEN))
                }
            }
            Err(e) => Err(e),
        }
    }
}

impl Writer<'_> {
    /// Atomic add on an integer counter, with the options of [`IncrOptions`]; `None` when the
    /// key is absent and `create` is off (nothing is written then).
    pub fn incr_with(
        &mut self,
        key: &[u8],
        h: u64,
        delta: i64,
        o: IncrOptions,
    ) -> Result<Option<Counter>> {
        let overflow = || Error::InvalidArgument("counter overflows i64".into());
        let (value, expires) = match self.probe(key, h, true)? {
            Probe::Hit(hit)
                if !hit.hdr.expired(self.now) && hit.hdr.flags.get() & FLAG_LEASE == 0 =>
            {
                let bytes: [u8; 8] = match self.buf.as_slice().try_into() {
                    Ok(b) if hit.hdr.flags.get() & FLAG_INT != 0 => b,
                    _ => return Err(Error::NotAnInteger),
                };
                let v = i64::from_le_bytes(bytes)
                    .checked_add(delta)
                    .ok_or_else(overflow)?;
                let expires = match o.ttl_ms {
                    Some(_) => self.expiry(o.ttl_ms)?,
                    None => hit.hdr.expires_ms.get(),
                };
                (v, expires)
            }
            _ if !o.create => return Ok(None),
            _ => (
                o.init.checked_add(delta).ok_or_else(overflow)?,
                self.expiry(o.init_ttl_ms.or(o.ttl_ms))?,
            ),
        };
        self.put(key, h, &value.to_le_bytes(), FLAG_INT, expires, false)?;
        Ok(Some(Counter {
            value,
            expires_ms: expires,
        }))
    }

    /// Gives a live entry a new expiry; false if `key` is absent (or expired).
    ///
    /// A record's expiry is covered by its checksum, and a record's version (its position)
    /// promises unchanged bytes to readers that keep decoded copies; so the record is not
    /// patched in place, where a lock-free reader could see a torn header: a copy with the new
    /// expiry is appended and published with one store, as every write is.
    pub fn retime(&mut self, key: &[u8], h: u64, ttl_ms: u64) -> Result<bool> {
        let flags = match self.probe(key, h, true)? {
            Probe::Hit(hit)
                if !hit.hdr.expired(self.now) && hit.hdr.flags.get() & FLAG_LEASE == 0 =>
            {
                hit.hdr.flags.get()
            }
            _ => return Ok(false),
        };
        let expires = self.expiry(Some(ttl_ms))?;
        let value = std::mem::take(&mut self.buf);
        let r = self.put(key, h, &value, flags, expires, false);
        self.buf = value;
        r.map(|_| true)
    }
}

/// `active_alloc` for a ring region of `len` bytes reserved through `reserved`: 0 once all
/// of it is.
fn watermark(reserved: u64, len: u64) -> u64 {
    if reserved >= len { 0 } else { reserved }
}

/// What cleaning must achieve.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// Room for a record of this size plus the reserve.
    Room(u64),
    /// At most this many live entries.
    Entries(u64),
    /// Cleaning ahead of need: this much free ring, or stop once this many bytes were moved.
    Ahead { free: u64, moved: u64 },
}
/// Versioned writes (see [`Condition`]): one check and one write under the lock.
impl<'a> Writer<'a> {
    /// The integer at `key` if it holds a live one; `NotAnInteger` if it holds anything else.
    fn live_int(&mut self, key: &[u8]) -> Result<Option<i64>> {
        let h = format::hash(key, self.sh.seed);
        match self.probe(key, h, true)? {
            Probe::Hit(hit)
                if !hit.hdr.expired(self.now) && hit.hdr.flags.get() & FLAG_LEASE == 0 =>
            {
                match self.buf.as_slice().try_into() {
                    Ok(b) if hit.hdr.flags.get() & FLAG_INT != 0 => Ok(Some(i64::from_le_bytes(b))),
                    _ => Err(Error::NotAnInteger),
                }
            }
            _ => Ok(None),
        }
    }

    /// The writer of `shards` (as taken) whose shard holds hash `h`.
    fn of<'w>(ws: &'w mut [&mut Writer<'a>], h: u64) -> Result<&'w mut Writer<'a>> {
        let at = ws
            .iter()
            .position(|w| w.shard == format::shard_of(h, w.sh.shard_bits))
            .ok_or(Error::Busy)?;
        Ok(&mut *ws[at])
    }

    /// `set_if` (see `Shmap::set_if`) with the writers of every shard its keys are in, their
    /// locks taken in ascending shard order by the caller.
    pub fn set_if(
        ws: &mut [&mut Writer<'a>],
        key: &[u8],
        h: u64,
        value: Option<(&[u8], u32, u64)>,
        c: &Condition<'_>,
    ) -> Result<bool> {
        let seed = ws.first().ok_or(Error::Busy)?.sh.seed;
        let vh = format::hash(c.version_key, seed);
        let fh = c.floor_key.map(|f| format::hash(f, seed));
        let mut current = Self::of(ws, vh)?.live_int(c.version_key)?;
        if current.is_none()
            && c.compare != Compare::Eq
            && let (Some(floor), Some(fh)) = (c.floor_key, fh)
        {
            // A floor that is gone (evicted) holds nothing back: refuse.
            let Some(f) = Self::of(ws, fh)?.live_int(floor)? else {
                return Ok(false);
            };
            current = Some(f);
        }
        let holds = match (c.compare, current) {
            (Compare::Eq, cur) => cur == Some(c.version),
            (_, None) => true,
            (Compare::Le, Some(cur)) => cur <= c.version,
            (Compare::Lt, Some(cur)) => cur < c.version,
        };
        if !holds {
            return Ok(false);
        }
        // A stamp that fails (`Full` in an `evict: false` map) leaves a miss, never a value
        // without its stamp (which an older fill could overwrite): a fill's value is taken back
        // out; an invalidation removes first (a kill before its stamp leaves a miss too, where
        // stamping first would leave the stale value readable).
        match value {
            Some((v, flags, expires)) => {
                Self::of(ws, h)?.put(key, h, v, flags, expires, false)?;
                fp!("set_if::between_value_and_stamp");
                if let Err(e) = Self::stamp(ws, c, vh, fh) {
                    // If this fails too, what is left is what a kill before the stamp leaves.
                    let _ = Self::of(ws, h).and_then(|w| w.remove(key, h));
                    return Err(e);
                }
            }
            None => {
                Self::of(ws, h)?.remove(key, h)?;
                fp!("set_if::between_remove_and_stamp");
                Self::stamp(ws, c, vh, fh)?;
            }
        }
        Ok(true)
    }

    /// `set_if`'s version stamp (if it asks for one), then the floor raised to it.
    fn stamp(
        ws: &mut [&mut Writer<'a>],
        c: &Condition<'_>,
        vh: u64,
        fh: Option<u64>,
    ) -> Result<()> {
        let Some(ttl) = c.stamp else {
            return Ok(());
        };
        let vw = Self::of(ws, vh)?;
        let expires = vw.expiry(ttl)?;
        let bytes = c.version.to_le_bytes();
        vw.put(c.version_key, vh, &bytes, FLAG_INT, expires, false)?;
        fp!("set_if::between_stamp_and_floor");
        if let (Some(floor), Some(fh)) = (c.floor_key, fh) {
            let fw = Self::of(ws, fh)?;
            if fw.live_int(floor)?.is_none_or(|f| f < c.version) {
                fw.put(floor, fh, &bytes, FLAG_INT, 0, false)?;
            }
        }
        Ok(())
    }
}
