//! The per-process attachment to one map file (`Shared`): the mapping, this process's slot,
//! the map's seed and the handle options every write and read needs. Made by `attach`, used by
//! `write`, `scan` and `map`; it releases the process slot and marks a clean detach on drop.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use zerocopy::FromBytes;

use crate::error::{Error, Result};
use crate::failpoints::fp;
use crate::format::{self, Control, PAGE, ShardEntry, Superblock, gctl};
use crate::lock::{self, Patience, Proc};
use crate::options::{Clock, Options};
use crate::raw::Mem;

/// Per-process state of one attached file, shared by every handle (and thread) of the process.
pub(crate) struct Shared {
    pub mem: Mem,
    pub me: Option<Proc>,
    pub seed: u64,
    pub path: PathBuf,
    pub clock: Clock,
    /// `clock` is the system clock (see [`Shared::expired`]).
    system_clock: bool,
    pub grace: Duration,
    /// After growth failed for lack of file-system space, no new attempt before this time
    /// (wall-clock ms): each attempt scans the index, and a full disk stays full for a while.
    pub no_grow_until: AtomicU64,
    pub on_tmpfs: bool,
    pub created_ms: u64,
    /// `log2` of the map's shard count.
    pub shard_bits: u32,
    /// Serialises this process's writers before they touch a shard's writer lock (one per
    /// shard).
    pub local: Vec<Mutex<()>>,
    /// Serialises this process's threads before they touch `place_lock`.
    place_local: Mutex<()>,
    /// Per shard of a map of several: the `max_size` this process last checked the shard's
    /// generation against (empty with one shard, which checks at every write).
    pub cap_checked: Vec<AtomicU64>,
    /// Per shard, the ring capacity at which starting a build was refused (no plan, or no
    /// room): not tried again until the ring changes.
    pub no_build_at: Vec<AtomicU64>,
    /// Per shard, the ring capacity at which a build to a smaller ring met a record over a
    /// sixteenth of the new ring (`ring_floor_of`: sixteen times that record): until the ring
    /// changes, no shrink or compaction builds a ring below it.
    pub ring_floor_at: Vec<AtomicU64>,
    /// See `ring_floor_at`.
    pub ring_floor_of: Vec<AtomicU64>,
    /// Per shard: the used-slot count below which an index rebuild behind the writes, once
    /// refused, is not asked for again.
    pub no_index_build_at: Vec<AtomicU64>,
    /// Per shard of a map of several: the generation (`cap | log2(slots)`) whose index was
    /// refused a doubling at the cap; an index that cannot grow holds its entries at 7/16 of
    /// its slots (see `Writer::hold_entries`). Asked again when the generation changes or
    /// `max_size` does (empty with one shard, whose plan is a few loads).
    pub index_capped_at: Vec<AtomicU64>,
    /// Per shard: the lane this process claimed in it (`k + 1`; 0 = none), see format.md,
    /// "Lanes and chunks".
    lane_of: Vec<AtomicU64>,
    /// Per shard: held by this process's thread inside a fast write or a chunk claim (tried,
    /// never waited for: a thread that cannot take it takes the locked path), with the chunks
    /// this process claimed there.
    pub lane_local: Vec<Mutex<LaneChunks>>,
    /// Per shard: this process's measure of how much of what is written cleaning copies
    /// (see `Writer::churning`).
    pub churn: Vec<Mutex<Churn>>,
    /// The longest wait for another process.
    pub lock_timeout: Duration,
    /// The fork epoch when the attachment was made (see [`Shared::forked`]).
    epoch: u64,
    /// The file's (device, inode).
    pub key: (u64, u64),
}

/// One shard's write churn as this process measured it, over windows of one ring's length of
/// head advance each (see `write/churn.rs`).
#[derive(Default, Debug)]
pub(crate) struct Churn {
    /// The ring the open window is over (`log_off`, `log_cap`).
    pub ring: (u64, u64),
    /// Where the open window started: the ring's head, the shard's bytes copied and builds
    /// started.
    pub head: u64,
    pub copied: u64,
    pub builds: u64,
    /// The last closed window's verdict: cleaning copied over a sixteenth of what else went
    /// into the ring (the head's advance less the copies).
    pub hot: bool,
}

/// The chunks this process claimed in one shard's active generation, oldest first: a fast
/// write that replaces a record in one of them counts it in the chunk's `dead`, so that
/// cleaning passes a chunk whose records are all dead without reading them.
#[derive(Default)]
pub(crate) struct LaneChunks {
    /// The generation they are in; 0: none.
    pub generation: u64,
    /// Their length (the same for a generation's chunks).
    pub len: u64,
    /// Their positions, ascending.
    pub at: std::collections::VecDeque<u64>,
}

impl LaneChunks {
    /// The chunk of generation `g` that holds position `pos`, if it is one of these.
    pub fn holding(&self, g: u64, pos: u64) -> Option<u64> {
        if g != self.generation {
            return None;
        }
        let i = self.at.partition_point(|&c| c <= pos);
        let c = *self.at.get(i.checked_sub(1)?)?;
        (pos < c.saturating_add(self.len)).then_some(c)
    }

    /// Adds a chunk of generation `g` of `len` bytes at `pos`, forgetting those the tail
    /// (`tail`) passed and any of another generation.
    pub fn claimed(&mut self, g: u64, len: u64, pos: u64, tail: u64) {
        if g != self.generation || len != self.len {
            self.at.clear();
            self.generation = g;
            self.len = len;
        }
        while self
            .at
            .front()
            .is_some_and(|&c| c.saturating_add(len) <= tail)
        {
            self.at.pop_front();
        }
        self.at.push_back(pos);
    }
}

/// One zeroed word per shard.
fn per_shard(shard_bits: u32) -> Vec<AtomicU64> {
    (0..1usize << shard_bits)
        .map(|_| AtomicU64::new(0))
        .collect()
}

/// One word per shard of a map of several shards; none for a map of one.
fn per_shard_of_several(shard_bits: u32) -> Vec<AtomicU64> {
    if shard_bits == 0 {
        Vec::new()
    } else {
        per_shard(shard_bits)
    }
}

impl Shared {
    /// Whether a record expiring at `expires_ms` (not 0) has expired, for a read. With the system
    /// clock, a record that expires more than [`crate::raw::COARSE_SLACK_MS`] after the kernel's
    /// coarse clock is alive without reading the exact clock: the same answer, ~30 ns sooner.
    pub(crate) fn expired(&self, expires_ms: u64) -> bool {
        if self.system_clock
            && expires_ms
                > crate::raw::realtime_coarse_ms().saturating_add(crate::raw::COARSE_SLACK_MS)
        {
            return false;
        }
        expires_ms <= (self.clock)()
    }

    pub(crate) fn new(
        mem: Mem,
        me: Option<Proc>,
        sb: &Superblock,
        path: &Path,
        opts: &Options,
        key: (u64, u64),
    ) -> Result<Shared> {
        let on_tmpfs = mem.is_tmpfs();
        let shard_bits = sb.shard_bits.get();
        mem.set_shard_bits(shard_bits);
        Ok(Shared {
            mem,
            me,
            seed: sb.seed.get(),
            path: path.to_path_buf(),
            clock: opts.clock.clone(),
            system_clock: opts.system_clock,
            grace: opts.grace,
            no_grow_until: AtomicU64::new(0),
            on_tmpfs,
            created_ms: sb.created_ms.get(),
            shard_bits,
            local: (0..1usize << shard_bits).map(|_| Mutex::new(())).collect(),
            place_local: Mutex::new(()),
            no_build_at: per_shard(shard_bits),
            ring_floor_at: per_shard(shard_bits),
            ring_floor_of: per_shard(shard_bits),
            no_index_build_at: per_shard(shard_bits),
            cap_checked: per_shard_of_several(shard_bits),
            index_capped_at: per_shard_of_several(shard_bits),
            lane_of: per_shard(shard_bits),
            lane_local: (0..1usize << shard_bits)
                .map(|_| Mutex::new(LaneChunks::default()))
                .collect(),
            churn: (0..1usize << shard_bits)
                .map(|_| Mutex::new(Churn::default()))
                .collect(),
            lock_timeout: opts.lock_timeout,
            epoch: {
                crate::raw::ensure_fork_handler();
                crate::raw::fork_epoch()
            },
            key,
        })
    }

    /// Whether this attachment was made before a `fork()` of this process: then it is the
    /// parent's (its locks are the parent's open file description's) and must not be used or
    /// released here. One relaxed load.
    #[inline]
    pub fn forked(&self) -> bool {
        crate::raw::fork_epoch() != self.epoch
    }

    /// The lane this process claimed in shard `shard`, if any.
    #[inline]
    pub fn lane(&self, shard: usize) -> Option<usize> {
        let k = self.lane_of.get(shard)?.load(Ordering::Relaxed);
        k.checked_sub(1).map(|k| k as usize)
    }

    /// Records the lane this process holds in shard `shard` (`None`: none).
    pub fn set_lane(&self, shard: usize, lane: Option<usize>) {
        if let Some(l) = self.lane_of.get(shard) {
            l.store(lane.map_or(0, |k| k as u64 + 1), Ordering::Relaxed);
        }
    }

    /// The word naming this process in a lane's `owner` (its writer-lock word; 0 read-only).
    #[inline]
    pub fn owner_word(&self) -> u64 {
        self.me.map_or(0, |m| u64::from(m.word()))
    }

    /// The number of shards.
    #[inline]
    pub fn shards(&self) -> usize {
        1 << self.shard_bits
    }

    /// Takes the placement lock (after the caller's shard lock; format.md, "Placement lock"),
    /// waiting at most what is left of the caller's `patience`. Its state is re-derived from
    /// the shard table by every holder, so a dead holder leaves nothing to repair: the duty is
    /// cleared at once. Release with [`Shared::unlock_place`] before dropping the returned guard.
    pub fn lock_place(&self, patience: &mut Patience) -> Result<std::sync::MutexGuard<'_, ()>> {
        let me = self.me.ok_or(Error::ReadOnly)?;
        let local = lock::lock_local(&self.place_local, patience)?;
        if lock::lock_writer(&self.mem, &lock::PLACE, me, patience)? == lock::Acquired::Recover {
            lock::recovered(&self.mem, &lock::PLACE)?;
        }
        Ok(local)
    }

    /// Releases the placement lock.
    pub fn unlock_place(&self) {
        lock::unlock_writer(&self.mem, &lock::PLACE);
    }

    /// The shard of a key with hash `h`.
    #[inline]
    pub fn shard_of(&self, h: u64) -> usize {
        crate::place::shard_of(h, self.shard_bits)
    }

    /// Whether writes must be `msync`ed to be durable (false on tmpfs).
    pub fn durable(&self) -> bool {
        !self.on_tmpfs
    }

    /// The last process out writes the whole file back before it marks the map clean.
    fn final_sync(&self) -> Result<()> {
        fp!("detach::final_sync", |_| Err(
            crate::failpoints::injected_sync_error()
        ));
        self.mem.sync(0, self.mem.file_len())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // In a child forked without exec, the slot byte and the flock belong to the parent's
        // open file description: unlocking them here would release the parent's. Only the
        // mapping and the descriptor go (closing it leaves the parent's locks in place).
        if self.forked() {
            return;
        }
        let Some(me) = self.me else { return };
        lock::release(&self.mem, me);
        // The last process out (we get the exclusive lock without waiting) marks a clean detach,
        // only once everything is written back: a map marked clean skips recovery at the next
        // open, even after the OS crashed (unsynced pages lost).
        if self.mem.file().try_lock().is_ok() && self.final_sync().is_ok() {
            let w = self.mem.w();
            let _ = w.store_u32(gctl!(clean), 1, Ordering::Release);
            let _ = self.mem.sync(0, PAGE);
        }
        let _ = self.mem.file().unlock();
    }
}

/// Reads a copy of shard `shard`'s table entry.
pub(crate) fn read_shard(mem: &Mem, shard: usize) -> Result<ShardEntry> {
    let at = format::shard_off(shard);
    let mut buf = [0u8; std::mem::size_of::<ShardEntry>()];
    // Each field is read with relaxed loads; counters may be mutually a little out of date.
    mem.w().read(at, &mut buf)?;
    ShardEntry::read_from_bytes(&buf).map_err(|_| Error::corrupt(at, "shard table entry"))
}

/// Reads a copy of the global control block.
pub(crate) fn read_control(mem: &Mem) -> Result<Control> {
    let mut buf = [0u8; std::mem::size_of::<Control>()];
    // Each field is read with relaxed loads; counters may be mutually a little out of date.
    mem.w().read(format::CONTROL_OFF, &mut buf)?;
    Control::read_from_bytes(&buf).map_err(|_| Error::corrupt(format::CONTROL_OFF, "control"))
}

#[cfg(test)]
mod tests {
    use super::LaneChunks;

    #[test]
    fn a_lanes_chunks_are_found_by_position_and_forgotten_behind_the_tail() {
        let mut c = LaneChunks::default();
        assert_eq!(c.holding(0, 10), None, "none yet, even for generation 0");
        c.claimed(3, 4096, 8192, 0);
        c.claimed(3, 4096, 20480, 0);
        assert_eq!(c.holding(3, 8192), Some(8192));
        assert_eq!(c.holding(3, 12287), Some(8192));
        assert_eq!(c.holding(3, 12288), None, "between two chunks");
        assert_eq!(c.holding(3, 24575), Some(20480));
        assert_eq!(c.holding(3, 8191), None);
        assert_eq!(c.holding(4, 8192), None, "another generation");
        // A claim once the tail passed the first one forgets it.
        c.claimed(3, 4096, 40960, 12288);
        assert_eq!(c.holding(3, 8192), None);
        assert_eq!(c.at.len(), 2);
        // A claim in a new generation forgets the old one's.
        c.claimed(5, 4096, 0, 0);
        assert_eq!(c.holding(3, 20480), None);
        assert_eq!(c.holding(5, 100), Some(0));
    }
}
