//! The fast write and what the lock holder does for it (format.md, "Lanes and chunks").
//!
//! Two writers of one shard share its lock word, ring head and counters on every locked
//! `set`; each costs a cache-line transfer between cores, which is what kept two writer
//! processes near one's throughput (docs/shards.md). A process that overwrites keys gets a
//! *lane*: a line of its own holding its announcement and counters, and a *chunk* of the ring
//! claimed under the lock, into which it appends records without the lock and publishes them by
//! compare-and-swap of the key's slot. What the writers still share is the index line.
//!
//! Kill-safety: every step is one store or read-modify-write; a record past `fill` is nothing, a
//! record below it that no slot names is dead, and a count short by the last record is
//! recounted by whoever adopts the dead owner's lane (under the lock, whose own recovery
//! covers a kill of the adopter).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Writer;
use crate::arena::{Gen, NoSink, Probe};
use crate::error::{Error, Result};
use crate::failpoints::fp;
use crate::format::{
    self, CHUNK_CLOSED, CHUNK_HEAD_LEN, FLAG_CHUNK, FLAG_LEASE, LANES, RecordHeader, lane,
    leaves_closable, record_size, sctl, slot, valid_fill,
};
use crate::lock;
use crate::shared::{LaneChunks, Shared};

/// Chunks are at most this long (about sixty 100-byte sets), and a ring's sixty-fourth.
const CHUNK_MAX: u64 = 8 << 10;
/// No chunk under this (a ring under 128 KiB): its writers take the lock.
const CHUNK_MIN: u64 = 2 << 10;
/// Slot compare-and-swaps one fast write tries (each after a new probe) before the lock.
const SLOT_TRIES: u32 = 8;

/// The chunk length for a ring of `cap` bytes, if it has chunks.
pub(crate) fn chunk_len(cap: u64) -> Option<u64> {
    let len = (cap / 64).min(CHUNK_MAX) & !7;
    (len >= CHUNK_MIN).then_some(len)
}

/// What a fast write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fast {
    /// Stored and published.
    Done,
    /// The process has no lane or no usable chunk in this shard: the locked path, which may
    /// claim them.
    Prepare,
    /// Anything else (absent key, gate closed, a lease, another thread in the lane): the
    /// locked path.
    Locked,
}

/// What a plain `set` stores: `key` (hash `h`), `value`, its flags and absolute expiry.
pub(crate) struct Plain<'a> {
    pub key: &'a [u8],
    pub h: u64,
    pub value: &'a [u8],
    pub flags: u32,
    pub expires_ms: u64,
}

/// Stores `p` in shard `shard` without the writer lock, if the key is in the active
/// generation and this process has a lane and a chunk with room there.
pub(crate) fn fast_set(sh: &Shared, shard: usize, p: &Plain<'_>) -> Result<Fast> {
    let Some(k) = sh.lane(shard) else {
        return Ok(Fast::Prepare);
    };
    if sh.forked() {
        return Ok(Fast::Locked);
    }
    let Some(Ok(local)) = sh.lane_local.get(shard).map(|m| m.try_lock()) else {
        return Ok(Fast::Locked);
    };
    let w = sh.mem.w();
    let busy = lane!(shard, k, busy);
    // The announcement, then the gate: a quiescing lock holder stores the gate, then reads
    // `busy`; one of the two sees the other.
    w.swap_u64(busy, 1)?;
    let r = announced(sh, shard, k, &local, p);
    w.store_u64(busy, 0, Ordering::Release)?;
    r
}

/// The fast write, between the announcement and its retraction.
fn announced(
    sh: &Shared,
    shard: usize,
    k: usize,
    chunks: &LaneChunks,
    p: &Plain<'_>,
) -> Result<Fast> {
    let &Plain {
        key,
        h,
        value,
        flags,
        expires_ms,
    } = p;
    let w = sh.mem.w();
    if w.load_u64(sctl!(shard, fast_gate), Ordering::SeqCst)? != 0 {
        return Ok(Fast::Locked);
    }
    let g = Gen::load(&sh.mem, shard)?;
    // The slot this write will compare-and-swap: fetched once, for writing.
    g.prefetch_home(w, h);
    if w.load_u64(lane!(shard, k, chunk_gen), Ordering::Acquire)? != g.number() {
        return Ok(Fast::Prepare);
    }
    let chunk = w.load_u64(lane!(shard, k, chunk), Ordering::Acquire)?;
    // `fill` with the announcement's ordering (a closer stores `CLOSED`, then reads `busy`);
    // then `chunk_gen` again: a closer clears it before the tail passes the chunk, so a `fill`
    // read from bytes written after that (the ring lapped) comes with the cleared word.
    let fill_off = g.fill_off(chunk);
    let fill = w.load_u64(fill_off, Ordering::SeqCst)?;
    if fill & CHUNK_CLOSED != 0
        || w.load_u64(lane!(shard, k, chunk_gen), Ordering::Acquire)? != g.number()
    {
        return Ok(Fast::Prepare);
    }
    let Ok((chdr, csize)) = g.header_at(w, chunk)? else {
        return Ok(Fast::Prepare);
    };
    let size = record_size(key.len(), value.len());
    if size.saturating_mul(4) > csize {
        return Ok(Fast::Locked);
    }
    let fits = chdr.flags.get() & FLAG_CHUNK != 0
        && g.chunk_owner(w, chunk)? == (k as u64) << 32 | sh.owner_word()
        && fill >= CHUNK_HEAD_LEN
        && fill
            .checked_add(size)
            .is_some_and(|end| end <= csize && leaves_closable(csize - end));
    if !fits {
        return Ok(Fast::Prepare);
    }
    let Probe::Hit(mut hit) = g.lookup(w, key, h, &mut NoSink)? else {
        return Ok(Fast::Locked);
    };
    if hit.hdr.flags.get() & FLAG_LEASE != 0 {
        return Ok(Fast::Locked);
    }
    let hdr = RecordHeader::new(key.len(), value.len(), flags, expires_ms).seal(key, value);
    let pos = chunk + fill;
    g.write_record(w, pos, &hdr, key, value)?;
    fp!("fast::between_record_and_fill");
    if w.cas_u64(fill_off, fill, fill + size)?.is_err() {
        // Closed by a cleaner meanwhile: the bytes past `fill` are nothing.
        return Ok(Fast::Prepare);
    }
    fp!("fast::between_fill_and_slot");
    let mut tries = 0;
    while !g.cas_slot(w, hit.idx, hit.slot, slot::live(pos, h))? {
        tries += 1;
        // Another write, a move or a reader's reference bit came first: the record (below
        // `fill`) is published with the slot's new value, or left dead.
        match g.lookup(w, key, h, &mut NoSink)? {
            Probe::Hit(again) if tries < SLOT_TRIES && again.hdr.flags.get() & FLAG_LEASE == 0 => {
                hit = again
            }
            _ => return Ok(Fast::Locked),
        }
    }
    fp!("fast::between_slot_and_counters");
    let old = hit.hdr.size();
    w.add_u64(lane!(shard, k, live_delta), size.wrapping_sub(old))?;
    w.add_u64(lane!(shard, k, written), size)?;
    // The replaced record, if it is in one of this lane's chunks that no cleaner closed yet (a
    // closer stores `closed`, then waits for `busy`: while this write is announced, such a
    // chunk's head stays in the ring), is counted dead there.
    if let Some(c) = chunks.holding(g.number(), slot::pos(hit.slot))
        && w.load_u64(lane!(shard, k, closed), Ordering::SeqCst)? <= c
    {
        fp!("fast::before_dead");
        w.add_u64(g.dead_off(c), old)?;
    }
    Ok(Fast::Done)
}

impl Writer<'_> {
    /// Whether lane `k` of this shard is claimed (by anyone, dead or alive).
    fn lane_owner(&self, k: usize) -> Result<u64> {
        self.ctl(lane!(self.shard, k, owner))
    }

    /// Whether the owner word `owner` (a lane's) names a live process.
    fn owner_alive(&self, owner: u64) -> Result<bool> {
        let (slot, inc) = lock::owner_of(owner as u32);
        lock::alive(&self.sh.mem, self.sh.me, slot, inc)
    }

    /// The shard's `live_bytes`: line 1's word plus every lane's `live_delta`.
    pub(super) fn live(&self) -> Result<u64> {
        let mut deltas = [0u64; LANES];
        for (k, d) in deltas.iter_mut().enumerate() {
            *d = self.ctl(lane!(self.shard, k, live_delta))?;
        }
        Ok(format::live_of(
            self.ctl(sctl!(self.shard, live_bytes))?,
            deltas,
        ))
    }

    /// Takes `v` off line 1's `live_bytes`, two's-complement: the lanes' deltas may hold what
    /// line 1 lacks (a record a fast write grew, removed under the lock).
    pub(super) fn live_sub(&self, v: u64) -> Result<()> {
        self.w()
            .add_u64(sctl!(self.shard, live_bytes), v.wrapping_neg())
            .map(|_| ())
    }

    /// Stores `live` as the shard's `live_bytes` (the truth, under quiescence): the lanes'
    /// deltas are then part of it.
    pub(super) fn set_live(&self, live: u64) -> Result<()> {
        self.ctl_set(sctl!(self.shard, live_bytes), live)?;
        for k in 0..LANES {
            self.ctl_set(lane!(self.shard, k, live_delta), 0)?;
        }
        Ok(())
    }

    /// Stops fast writes in this shard until the lock is released: closes the gate and waits
    /// for every announced lane to retract, adopting dead owners' lanes (format.md, "Lanes and
    /// chunks"). Nothing to do while no lane is claimed: lanes are claimed under the lock.
    pub(crate) fn quiesce(&mut self) -> Result<()> {
        if self.quiesced {
            return Ok(());
        }
        let mut claimed = false;
        for k in 0..LANES {
            claimed |= self.lane_owner(k)? != 0;
        }
        if !claimed {
            // Not recorded as done: a lane claimed later in this critical section (whose own
            // build would then start) needs the gate closed then.
            return Ok(());
        }
        let w = self.w();
        w.swap_u64(sctl!(self.shard, fast_gate), 1)?;
        fp!("quiesce::after_gate");
        let mut recount = false;
        for k in 0..LANES {
            // A drain that fails leaves `quiesced` false: the next call drains again.
            recount |= self.drain(k)?;
        }
        self.quiesced = true;
        if recount {
            self.recount()?;
        }
        Ok(())
    }

    /// [`Writer::quiesce`] for work that can wait for a later write (a build's start, a
    /// shrink): false, and nothing waited for, while a fast write is under way.
    pub(crate) fn quiesce_or_defer(&mut self) -> Result<bool> {
        let was = std::mem::replace(&mut self.no_wait, true);
        let r = self.quiesce();
        self.no_wait = was;
        match r {
            Ok(()) => Ok(true),
            Err(Error::Full { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until lane `k` is not inside a fast write, for at most what is left of the hold's
    /// lock timeout (one for all its waits: for the lock, every lane, the placement lock;
    /// `no_wait`: a few microseconds' spin). A dead owner's lane is adopted: true if it was
    /// announced (its count may be short by one record: the caller recounts).
    fn drain(&mut self, k: usize) -> Result<bool> {
        let mut patience = self.patience;
        let r = self.drain_within(k, &mut patience);
        self.patience = patience;
        r
    }

    /// [`Writer::drain`], its wait drawing on `patience`.
    fn drain_within(&mut self, k: usize, patience: &mut lock::Patience) -> Result<bool> {
        let w = self.w();
        let mut spins = 0u32;
        let mut wait = patience.wait();
        loop {
            let owner = self.lane_owner(k)?;
            if owner == 0 {
                return Ok(false);
            }
            if w.load_u64(lane!(self.shard, k, busy), Ordering::SeqCst)? == 0 {
                return Ok(false);
            }
            // A fast write lasts a fraction of a microsecond: spin, then check the owner.
            spins += 1;
            if spins < 256 {
                std::hint::spin_loop();
                continue;
            }
            if !self.owner_alive(owner)? {
                return self.adopt(k);
            }
            if self.no_wait {
                // Upkeep (cleaning ahead, a chunk claim, a build's start): no write waits
                // longer for it.
                return Err(Error::Full { needed: 0 });
            }
            if wait.spent() {
                let (slot, _) = lock::owner_of(owner as u32);
                return Err(Error::LockTimeout {
                    waited_ms: wait.waited().as_millis() as u64,
                    holder_pid: lock::pid_of(&self.sh.mem, slot).ok().filter(|&p| p != 0),
                    held_ms: None,
                });
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Frees lane `k` of a dead owner, its `live_delta` folded into line 1 (a kill in between
    /// leaves the lock to a recovery, which recounts). Its `written` stays: the shard's
    /// `bytes_written` sums the lanes whoever owns them, and a cumulative count, which no
    /// recount restores, folded by an adopter killed before it cleared the lane was counted
    /// twice. True if the owner died inside a fast write: its count may be short by its last
    /// record, so the recount is owed first (the lane is the only record of that) and the
    /// caller recounts.
    fn adopt(&mut self, k: usize) -> Result<bool> {
        let s = self.shard;
        let busy = self.ctl(lane!(s, k, busy))? != 0;
        if busy {
            lock::owe_recovery(&self.sh.mem, &lock::shard(s));
        }
        let delta = self.ctl(lane!(s, k, live_delta))?;
        self.w().add_u64(sctl!(s, live_bytes), delta)?;
        fp!("adopt::after_fold");
        self.ctl_set(lane!(s, k, live_delta), 0)?;
        fp!("adopt::before_free");
        self.ctl_set(lane!(s, k, chunk_gen), 0)?;
        self.ctl_set(lane!(s, k, busy), 0)?;
        self.ctl_set(lane!(s, k, owner), 0)?;
        Ok(busy)
    }

    /// Closes the chunk at the tail (`pos`, `size` bytes) and waits for its owner's fast write
    /// into it, if one is under way; returns its `fill`, checked (`None`: damage).
    pub(super) fn close_chunk(&mut self, pos: u64, size: u64) -> Result<Option<u64>> {
        let w = self.w();
        let off = self.g.fill_off(pos);
        let mut fill = w.load_u64(off, Ordering::Acquire)?;
        while fill & CHUNK_CLOSED == 0 {
            match w.cas_u64_seqcst(off, fill, fill | CHUNK_CLOSED)? {
                Ok(_) => break,
                Err(now) => fill = now,
            }
        }
        fp!("close::after_closed");
        let fill = fill & !CHUNK_CLOSED;
        let owner = self.g.chunk_owner(w, pos)?;
        let k = (owner >> 32) as usize;
        if k < LANES && self.lane_owner(k)? == owner & 0xFFFF_FFFF && owner != 0 {
            // Its owner counts no more dead records in it once it sees this (`announced`).
            w.swap_u64(lane!(self.shard, k, closed), pos.saturating_add(1))?;
            if self.drain(k)? {
                self.recount()?;
            } else if self.ctl(lane!(self.shard, k, chunk))? == pos {
                // The owner's next write claims another chunk (see `announced`).
                self.ctl_set(lane!(self.shard, k, chunk_gen), 0)?;
            }
        }
        if !valid_fill(fill, size) {
            return Ok(None);
        }
        // Every record its owner replaced: the chunk is passed whole.
        let dead = w.load_u64(self.g.dead_off(pos), Ordering::Acquire)?;
        Ok(Some(if dead == fill - CHUNK_HEAD_LEN {
            CHUNK_HEAD_LEN
        } else {
            fill
        }))
    }

    /// Claims a lane of this shard for this process, adopting a dead owner's; false if all
    /// eight are live.
    fn claim_lane(&mut self) -> Result<bool> {
        let mine = self.sh.owner_word();
        if mine == 0 {
            return Ok(false);
        }
        let mut free = None;
        for k in 0..LANES {
            let owner = self.lane_owner(k)?;
            if owner == mine {
                free = Some(k);
                break;
            }
            if free.is_none() && (owner == 0 || !self.owner_alive(owner)?) {
                free = Some(k);
            }
        }
        let Some(k) = free else {
            return Ok(false);
        };
        let owner = self.lane_owner(k)?;
        if owner != mine {
            if owner != 0 && self.adopt(k)? {
                self.recount()?;
                return Ok(false);
            }
            self.ctl_set(lane!(self.shard, k, owner), mine)?;
            fp!("lane::after_claim");
        }
        self.sh.set_lane(self.shard, Some(k));
        Ok(true)
    }

    /// [`Writer::prepare_fast`] after a write that succeeded: its failure is not the write's
    /// (as for any upkeep, see `Writer::upkeep`).
    pub(crate) fn prepare_fast_after_write(&mut self) {
        let was = std::mem::replace(&mut self.no_wait, true);
        let r = self.prepare_fast();
        self.no_wait = was;
        self.upkeep(r);
    }

    /// After a locked overwrite: gives this process a lane and a chunk of the ring, so that
    /// its next overwrites in this shard need no lock. Not while a build is in flight or the
    /// gate is closed (fast writes would then wait for the lock anyway).
    fn prepare_fast(&mut self) -> Result<()> {
        let Some(csize) = chunk_len(self.g.cap()) else {
            return Ok(());
        };
        if self.building() || self.build_stale || self.sh.forked() {
            return Ok(());
        }
        if self.ctl(sctl!(self.shard, fast_gate))? != 0 {
            return Ok(());
        }
        let sh = self.sh;
        let Some(Ok(mut local)) = sh.lane_local.get(self.shard).map(|m| m.try_lock()) else {
            return Ok(());
        };
        if sh.lane(self.shard).is_none() && !self.claim_lane()? {
            return Ok(());
        }
        let Some(k) = sh.lane(self.shard) else {
            return Ok(());
        };
        let mine = sh.owner_word();
        if self.lane_owner(k)? != mine {
            // Adopted by another process after this one was taken for dead (a stopped process):
            // claim again at the next write.
            sh.set_lane(self.shard, None);
            return Ok(());
        }
        // Room for the chunk without a write's worth of cleaning more than a small one's: a
        // chunk stands for a few hundred writes, and the cleaning ahead they would each carry
        // is not done in one (a live run at the tail is moved by locked writes, a step each).
        // In a dense ring of an evicting shard it makes its room as a write does.
        let cap = self.g.cap();
        let dense = self.evict_enabled()? && self.live()?.saturating_mul(2) > cap;
        // One write's cleaning a critical section, the chunk's or the write's.
        if dense {
            if !self.has_room(csize)? {
                if self.copied_here != 0 {
                    return Ok(());
                }
                // As a write of the chunk's length makes room: growth while the map may
                // grow, CLOCK eviction at the cap.
                match self.make_room(csize) {
                    Err(Error::Full { .. } | Error::NoSpace { .. } | Error::TooLarge { .. }) => {
                        return Ok(());
                    }
                    r => r?,
                }
            }
        } else {
            // The chunk's writes will not clean ahead: the quarter of the ring that cleaning
            // ahead keeps free stays free past the chunk. Dead records are passed over at no
            // cost to the budget; live ones are moved, at most the chunk's length of them.
            let w = self.w();
            let room = cap / 4 + csize;
            if self.g.free(self.g.head(w)?, self.g.tail(w)?) < room {
                if self.copied_here != 0 || self.building_ring() {
                    return Ok(());
                }
                let target = super::Target::Ahead {
                    free: room,
                    moved: csize,
                };
                match self.clean(target, false) {
                    Err(Error::Full { .. }) => {}
                    r => r?,
                }
                if self.g.free(self.g.head(w)?, self.g.tail(w)?) < room {
                    return Ok(());
                }
            }
        }
        if self.building() || self.g.cap() != cap || !self.has_room(csize)? {
            return Ok(());
        }
        self.alloc_active(csize)?;
        let owner = (k as u64) << 32 | mine;
        let pos = self.g.append_chunk(self.w(), csize, owner)?;
        fp!("chunk::between_append_and_lane");
        self.ctl_set(lane!(self.shard, k, chunk), pos)?;
        self.ctl_set(lane!(self.shard, k, chunk_gen), self.g.number())?;
        local.claimed(self.g.number(), csize, pos, self.g.tail(self.w())?);
        self.after_write(csize)
    }

    /// After a locked write replaced the record at `pos` (`size` bytes): counts it dead in its
    /// chunk if the chunk is one of this process's and not closed (no cleaner runs meanwhile:
    /// this one holds the lock), as a fast write does.
    pub(super) fn count_dead(&self, pos: u64, size: u64) -> Result<()> {
        let sh = self.sh;
        let Some(k) = sh.lane(self.shard) else {
            return Ok(());
        };
        let Some(Ok(local)) = sh.lane_local.get(self.shard).map(|m| m.try_lock()) else {
            return Ok(());
        };
        if let Some(c) = local.holding(self.g.number(), pos)
            && self.ctl(lane!(self.shard, k, closed))? <= c
        {
            self.w().add_u64(self.g.dead_off(c), size)?;
        }
        Ok(())
    }

    /// At the end of a critical section: opens the gate again if it is closed and no build
    /// is in flight (a build keeps it closed until it is published or abandoned).
    pub(crate) fn release_gate(&self) -> Result<()> {
        let gate = sctl!(self.shard, fast_gate);
        if self.ctl(gate)? != 0 && self.ctl(sctl!(self.shard, build_gen))? == 0 {
            self.ctl_set(gate, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_a_sixty_fourth_of_the_ring_up_to_8_kib() {
        assert_eq!(chunk_len(64 << 10), None);
        assert_eq!(chunk_len((128 << 10) - 8), None);
        assert_eq!(chunk_len(128 << 10), Some(2048));
        assert_eq!(chunk_len(256 << 10), Some(4096));
        assert_eq!(chunk_len(1 << 20), Some(8192));
        assert_eq!(chunk_len(64 << 20), Some(8 << 10));
        assert_eq!(chunk_len((1 << 20) + 8), Some(8192));
    }

    #[test]
    fn a_chunk_closes_with_nothing_or_a_closed_chunk_left() {
        let head = CHUNK_HEAD_LEN;
        assert!(leaves_closable(0));
        assert!(!leaves_closable(8));
        assert!(!leaves_closable(head - 8));
        assert!(leaves_closable(head));
        // An empty chunk (a closed empty one over another's end) may be any length.
        assert!(valid_fill(head, head + 8));
        assert!(valid_fill(head, 8192));
        assert!(!valid_fill(head + 8, head + 40));
        assert!(valid_fill(8192, 8192));
        assert!(!valid_fill(head - 8, 8192));
        assert!(!valid_fill(head + 4, 8192));
        assert!(!valid_fill(8200, 8192));
    }
}
