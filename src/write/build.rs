//! The incremental build, a child of `write` (design: `docs/incremental-build.md`; normative
//! text: format.md, "Incremental build"). A shard's growth builds its next generation `N`
//! behind a cursor over the active generation's index slots, a bounded batch on each write,
//! with every write to a key whose slot is below the cursor mirrored into `N`, and publishes it
//! with the switch's one store when the cursor reaches the end. Readers never look at `N`.

use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use super::{RETIRE_STEP, Writer, watermark};
use crate::arena::{self, Gen, NoSink, Probe};
use crate::error::{Error, Result};
use crate::failpoints::fp;
#[cfg(feature = "failpoints")]
use crate::failpoints::injected_sync_error;
use crate::format::{
    self, Desc, LOG_HEADER_LEN, PAGE, RecordHeader, index_region_len, log_region_len, round_up,
    sctl, slot,
};
use crate::plan::{Plan, plan_len, slots_for_entries};

/// `N`'s log region is reserved (`fallocate`d) ahead of use in steps of this many bytes.
pub(crate) const ALLOC_STEP: u64 = 1 << 20;
/// A batch copies at least this many bytes...
const BATCH_FLOOR: u64 = 64 << 10;
/// ... and visits at most this many slots (16 in unit tests, so that their small maps keep a
/// build in flight over many writes).
const BATCH_SLOTS: u64 = if cfg!(test) { 16 } else { 512 };
/// `build_cursor` with this bit set: the build is preparing `N`'s index (reserving and zeroing
/// it one [`ALLOC_STEP`] a write); the low bits are the index bytes prepared. A version-4
/// writer that predates it reads a cursor past the index and abandons the build.
const PREPARING: u64 = 1 << 63;
/// `build_cursor` with this bit set: `N` is an index rebuild, sharing `A`'s log region (its
/// descriptor names it): the copy and the mirror store `A`'s slot words, no record is copied.
/// A version-4 writer that predates it reads a cursor past the index and abandons the build.
const INDEX_ONLY: u64 = 1 << 62;
/// Index bytes a write prepares (a page in unit tests, so that their small maps prepare over
/// several writes).
const INDEX_STEP: u64 = if cfg!(test) { PAGE } else { ALLOC_STEP };

/// A build in flight, as this critical section loaded it from the shard's line 3.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Build {
    /// The next generation (its descriptor is in the slot `active` does not name).
    pub n: Gen,
    /// Slots of the active generation below this are mirrored.
    pub cursor: u64,
    /// While `N`'s index is being prepared: the bytes of it reserved and zeroed so far (the
    /// copy, and so the cursor, starts once all are).
    pub zeroed: Option<u64>,
    /// `N` is an index rebuild over `A`'s ring.
    pub index_only: bool,
}

impl Build {
    /// The `build_cursor` word for this state.
    fn word(&self) -> u64 {
        let flag = if self.index_only { INDEX_ONLY } else { 0 };
        match self.zeroed {
            Some(z) => PREPARING | flag | z,
            None => flag | self.cursor,
        }
    }
}

/// How long one hold of the writer lock by [`Writer::compact_step`] copies, at most (plus one
/// batch): between two holds the shard's other writers go on.
const COMPACT_HOLD: Duration = Duration::from_millis(1);

/// How many builds a compaction finishes or starts again before it switches in one step:
/// others' builds found in flight, and its own abandoned under it.
const COMPACT_TRIES: u32 = 3;

/// A compaction of one shard in progress, from one hold of its lock to the next
/// ([`Writer::compact_step`]).
#[derive(Debug, Default)]
pub struct Compaction {
    /// The generation number of the compaction's own build, once started.
    ours: Option<u64>,
    /// The last build of someone else's that it found in flight and finished.
    seen: Option<u64>,
    /// Builds of others finished, and its own started again.
    tries: u32,
}
/// What a compaction's batch counts as written (a batch then copies four times that, or 512
/// slots, see [`Writer::advance`]).
const COMPACT_BATCH: u64 = 64 << 10;

/// Whether `plan`'s ring has room for `live` bytes, for what the build mirrors and the writes
/// it copies meanwhile (half the live data again), and the ring's reserve.
fn holds(plan: &Plan, live: u64) -> bool {
    let c = plan.log_cap.unwrap_or(0);
    c - c / 8 >= live.saturating_add(live / 2)
}

impl Writer<'_> {
    /// Loads the shard's build in flight, if any. `Err(())`: line 3 names a build whose
    /// descriptor is not there (a build killed after its publication, or damage); it is
    /// abandoned by the next write.
    pub(super) fn load_build(&self) -> Result<std::result::Result<Option<Build>, ()>> {
        let s = self.shard;
        let g = self.ctl(sctl!(s, build_gen))?;
        if g == 0 {
            return Ok(Ok(None));
        }
        let slot = 1 - self.g.slot;
        let desc = arena::read_desc(self.w(), s, slot)?;
        let Ok(n) = Gen::from_desc(&self.sh.mem, desc, s, slot, g) else {
            return Ok(Err(()));
        };
        let word = self.ctl(sctl!(s, build_cursor))?;
        let index_only = word & INDEX_ONLY != 0;
        let low = word & !(PREPARING | INDEX_ONLY);
        let (cursor, zeroed) = if word & PREPARING != 0 {
            (0, Some(low))
        } else {
            (low, None)
        };
        let shares_ring =
            n.desc.log_off == self.g.desc.log_off && n.desc.log_cap == self.g.desc.log_cap;
        if cursor > self.g.slots()
            || zeroed.is_some_and(|z| z > n.desc.index_len())
            || n.number() == self.g.number()
            || index_only != shares_ring
        {
            return Ok(Err(()));
        }
        Ok(Ok(Some(Build {
            n,
            cursor,
            zeroed,
            index_only,
        })))
    }

    /// Gives up the shard's build in flight, if line 3 names one: clears it (the generation
    /// number first, so no later write mirrors), then releases its reservation (pages punched
    /// outside the active regions). The next due write starts a new one.
    pub(super) fn abandon_build(&mut self) -> Result<()> {
        self.build = None;
        self.build_stale = false;
        let s = self.shard;
        if self.ctl(sctl!(s, build_gen))? == 0 {
            return Ok(());
        }
        self.ctl_set(sctl!(s, build_gen), 0)?;
        for f in [
            sctl!(s, build_cursor),
            sctl!(s, build_alloc),
            sctl!(s, build_started_ms),
            sctl!(s, build_entries),
            sctl!(s, build_live),
            sctl!(s, build_used),
        ] {
            self.ctl_set(f, 0)?;
        }
        self.recover_space()
    }

    /// Whether a build is in flight for this critical section.
    pub(super) fn building(&self) -> bool {
        self.build.is_some()
    }

    /// Whether a build of a new ring is in flight (a growth, a shrink or a compaction, not an
    /// index rebuild): the active ring is then not cleaned, and fills until the build ends.
    pub(super) fn building_ring(&self) -> bool {
        self.build.is_some_and(|b| !b.index_only)
    }

    /// Whether the build in flight rebuilds the index over the active ring (cleaning the
    /// ring goes on meanwhile, mirrored; it is not finished when the ring needs room).
    pub(super) fn building_index(&self) -> bool {
        self.build.is_some_and(|b| b.index_only)
    }

    /// After a write of `wrote` bytes: advances a build in flight by one batch, or starts one
    /// when a growth is due (live data over half the ring, or cleaning copying much of what
    /// is written: `write/churn.rs`). Never fails the write: a build
    /// that cannot go on is abandoned.
    pub(super) fn after_write(&mut self, wrote: u64) -> Result<()> {
        fp!("after_write::start", |_| Err(injected_sync_error()));
        if self.build_stale {
            self.abandon_build()?;
        }
        if self.building() {
            let r = self.advance(wrote, false);
            return self.or_abandon(r);
        }
        let cap = self.g.cap();
        let live = self.live()?;
        let dense = live.saturating_mul(2) > cap;
        if self.now < self.sh.no_grow_until.load(Ordering::Relaxed)
            || (!dense && !self.may_churn(live)?)
        {
            return self.maybe_index_build();
        }
        // A shard at its cap is dense all the time: the plan (whose sizing reads every
        // shard's descriptor) is asked once per ring size. A ring that cannot grow may still
        // need its index rebuilt (tiny values fill the index first).
        if let Some(c) = self.sh.no_build_at.get(self.shard)
            && c.load(Ordering::Relaxed) == cap
        {
            return self.maybe_index_build();
        }
        let sizing = self.sizing()?;
        if !dense {
            // For churn alone (`write/churn.rs`): within its bounds, else not before the next
            // window says so.
            let plan = sizing.grow_for_churn(live).filter(|p| holds(p, live));
            if self.try_start(plan)? {
                return Ok(());
            }
            self.churn_forget();
            return self.maybe_index_build();
        }
        let plan = sizing.grow(0).filter(|p| holds(p, live));
        if self.try_start(plan)? {
            return Ok(());
        }
        if let Some(c) = self.sh.no_build_at.get(self.shard) {
            c.store(cap, Ordering::Relaxed);
        }
        self.maybe_index_build()
    }

    /// Starts a build per `plan`; false when there is none or no room for it (`Full`,
    /// `NoSpace`: the caller remembers the refusal). "Not yet" (retired space was in the way,
    /// see [`Writer::start_build`]) is not a refusal.
    fn try_start(&mut self, plan: Option<Plan>) -> Result<bool> {
        let Some(plan) = plan else {
            return Ok(false);
        };
        match self.start_build(plan) {
            Ok(_) => Ok(true),
            Err(Error::Full { .. }) | Err(Error::NoSpace { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Starts an index rebuild behind the writes when the index is over eleven sixteenths
    /// used (the one-step rebuild comes at three quarters): larger if the live entries need it
    /// and the cap allows, else at the same size if that leaves it under five eighths used. Its copy
    /// visits 512 slots a write, so it completes within a sixteenth of the slots' inserts.
    fn maybe_index_build(&mut self) -> Result<()> {
        let s = self.shard;
        let slots = self.g.slots();
        let used = self.ctl(sctl!(s, used_slots))?;
        if used.saturating_mul(16) <= slots.saturating_mul(11) {
            return Ok(());
        }
        // Refused once: asked again after another sixty-fourth of the slots is used.
        let retry = self.sh.no_index_build_at.get(s);
        if retry.is_some_and(|c| used < c.load(Ordering::Relaxed)) {
            return Ok(());
        }
        let entries = self.ctl(sctl!(s, entries))?;
        let sizing = self.sizing()?;
        let want = slots_for_entries(entries.saturating_add(1));
        let plan = if want > slots {
            sizing.index(want)
        } else {
            None
        }
        .or_else(|| {
            // At the same size while the live entries leave a sixteenth of the slots below the
            // trigger: a map that never evicts may hold more than half its index live, and its
            // tombstones must go all the same.
            (entries.saturating_mul(8) < slots.saturating_mul(5))
                .then(|| sizing.index(slots))
                .flatten()
        });
        if !self.try_start(plan)?
            && let Some(c) = retry
        {
            c.store(used.saturating_add(slots / 64), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether `plan`'s ring is below what a build to a smaller ring found a record of this
    /// shard's needs (see `Shared::ring_floor_at`): such a plan is built in one step, whose
    /// ring is sized for the largest record it carries, or not at all.
    pub(super) fn below_ring_floor(&self, plan: &Plan) -> bool {
        plan.log_cap.unwrap_or(0) < self.ring_floor()
    }

    /// Remembers that a ring of `floor` bytes is the least a record of this shard needs, while
    /// the shard's ring is `at` bytes.
    pub(super) fn note_ring_floor(&self, at: u64, floor: u64) {
        let s = self.shard;
        if let (Some(a), Some(of)) = (self.sh.ring_floor_at.get(s), self.sh.ring_floor_of.get(s)) {
            if a.swap(at, Ordering::Relaxed) == at {
                of.fetch_max(floor, Ordering::Relaxed);
            } else {
                of.store(floor, Ordering::Relaxed);
            }
        }
    }

    /// The smallest ring a record of this shard needs, as a build or a switch found it (0:
    /// none found, or the ring changed since).
    pub(super) fn ring_floor(&self) -> u64 {
        let s = self.shard;
        match (self.sh.ring_floor_at.get(s), self.sh.ring_floor_of.get(s)) {
            (Some(at), Some(of)) if at.load(Ordering::Relaxed) == self.g.cap() => {
                of.load(Ordering::Relaxed)
            }
            _ => 0,
        }
    }

    /// Starts building the shrink `plan` when its ring holds the live data with the build's
    /// room (see [`holds`]) and the largest record known (see [`Writer::below_ring_floor`]);
    /// false when it does not (the caller switches in one step, for the live data alone).
    pub(super) fn start_shrink(&mut self, plan: Plan) -> Result<bool> {
        let live = self.live()?;
        if !holds(&plan, live) || self.below_ring_floor(&plan) {
            return Ok(false);
        }
        // Started, or not yet (retired space was in the way): not a one-step switch either way.
        self.start_build(plan).map(|_| true)
    }

    /// One hold of the lock's share of a compaction ([`crate::Shmap::compact`]): starts
    /// building the compact generation behind the writes, or advances the build in flight by
    /// batches for about [`COMPACT_HOLD`]. True once there is nothing more to do; `c` carries
    /// the compaction from one hold to the next. Between holds other writers take the lock
    /// (their writes are mirrored, and advance the build too), so a compaction holds no writer
    /// off for longer than one hold. It switches in one step, as before, when the active ring
    /// could not take the writes the build lets through (see [`Writer::compact_can_wait`]).
    ///
    /// Done once a generation at least as new as the compaction's own is active: its own, or
    /// one that a later switch copied from the live records (a generation number is never
    /// reused). A build found in flight is someone else's, or this one's; either way it is
    /// finished first. A compaction whose build was abandoned under it (a dead peer's recovery,
    /// a damaged record, its ring filled) starts again, [`COMPACT_TRIES`] times at most, then
    /// switches in one step: `compact` ends after a bounded number of builds.
    pub fn compact_step(&mut self, c: &mut Compaction) -> Result<bool> {
        self.quiesce()?;
        if self.build_stale {
            self.abandon_build()?;
        }
        if c.ours.is_some_and(|g| self.g.number() >= g) {
            return self.maintain().map(|()| true);
        }
        if let Some(b) = self.build {
            let g = b.n.number();
            if c.ours != Some(g) && c.seen != Some(g) {
                // Someone else's build: finished first, and counted against the bound.
                c.seen = Some(g);
                c.tries += 1;
            }
            let t = Instant::now();
            while self.building() && t.elapsed() < COMPACT_HOLD {
                let r = self.advance(COMPACT_BATCH, false);
                self.or_abandon(r)?;
            }
            return Ok(false);
        }
        if c.ours.is_some() {
            c.tries += 1; // abandoned: start again
        }
        let Some(plan) = self.sizing()?.compact() else {
            return self.maintain().map(|()| true);
        };
        if c.tries > COMPACT_TRIES
            || self.below_ring_floor(&plan)
            || !self.compact_can_wait(&plan)?
        {
            return self.compact_in_one_step(plan).map(|()| true);
        }
        match self.start_build(plan) {
            Ok(true) => {
                c.ours = self.build.map(|b| b.n.number());
                c.tries += u32::from(c.ours.is_none()); // (never: a started build is in flight)
            }
            // A step of retired space was punched instead: started by a later hold.
            Ok(false) => return Ok(false),
            // The placement step found the budget held by other shards.
            Err(Error::Full { .. }) if self.sh.shards() > 1 => return Ok(true),
            Err(e) => return Err(e),
        }
        Ok(false)
    }

    /// Whether a compaction per `plan` can be built behind the writes: its ring holds the live
    /// data with the build's room, and the active ring has room for the writes that go on
    /// meanwhile. Each of them copies at least four times its bytes into the build (see
    /// [`Writer::advance`]), so a quarter of the live data, with the ring's reserve, is enough;
    /// with less (a map at its cap that evicts keeps its ring full), the first write that found
    /// the ring full would finish the build in one step, in another writer's `set`.
    fn compact_can_wait(&self, plan: &Plan) -> Result<bool> {
        let live = self.live()?;
        let w = self.w();
        let free = self.g.free(self.g.head(w)?, self.g.tail(w)?);
        Ok(holds(plan, live) && free >= (live / 4).saturating_add(self.reserve()))
    }

    /// Abandons the build if `r` failed; `Full` and `NoSpace` (no room in `N`, or in the file
    /// system for its next step) are not the write's errors.
    fn or_abandon(&mut self, r: Result<()>) -> Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(Error::Full { .. }) | Err(Error::NoSpace { .. }) => self.abandon_build(),
            Err(e) => {
                let _ = self.abandon_build();
                Err(e)
            }
        }
    }

    /// Starts building a generation per `plan` (a growth, a shrink or an index rebuild):
    /// reserves its extents, writes its descriptor and ring header, then line 3 (`build_gen`
    /// last). O(1): the index is reserved and zeroed by the next writes, the ring in
    /// [`ALLOC_STEP`] steps as it fills. False when it returned a step of retired space instead
    /// (the build is asked for again by a later write).
    fn start_build(&mut self, plan: Plan) -> Result<bool> {
        // No fast write while a build copies and mirrors: the gate stays closed until it is
        // published or abandoned (format.md, "Lanes and chunks"); a later write starts it
        // while a fast write is under way (no write waits for a build's start).
        if !self.quiesce_or_defer()? {
            return Ok(false);
        }
        // An index rebuild keeps the active ring: `N`'s descriptor names its log region.
        let index_only = plan.log_cap.is_none();
        let cap = plan.log_cap.unwrap_or(self.g.cap());
        // What earlier switches retired is returned in steps: one here if its grace passed,
        // the rest by the ends of writes, or by the last advances before the publication
        // (which records the active regions as retired: the line must be free). The
        // placement avoids what is still recorded.
        self.maintain_by(RETIRE_STEP)?;
        let space = self.space()?;
        if space.counted().saturating_add(plan_len(&plan)) > space.max_size {
            // What this shard's last switch retired, still within its grace period, is in the
            // way (an index rebuilt at the cap retires an index as large as the one it
            // reserves): returned now, grace or not (readers of a retired generation fail
            // validation and retry, as after a one-step switch), one step a write, and the
            // build starts on a later write.
            let s = self.shard;
            if self.ctl(sctl!(s, retired_index_len))? != 0
                || self.ctl(sctl!(s, retired_log_len))? != 0
            {
                self.punch_retired_step(RETIRE_STEP)?;
                return Ok(false);
            }
            return Err(Error::Full {
                needed: plan_len(&plan),
            });
        }
        let mem = &self.sh.mem;
        let idx_len = index_region_len(plan.slots);
        let log_len = log_region_len(cap);
        let (index_off, log_off, g) = if index_only {
            let log_off = self.g.desc.log_off;
            if self.sh.shards() == 1 {
                let (index_off, _) = self.place(&plan);
                self.record_building(index_off, idx_len)?;
                (index_off, log_off, None)
            } else {
                let (at, g) = self.place_shared(idx_len, None)?;
                (at, log_off, Some(g))
            }
        } else if self.sh.shards() == 1 {
            let (index_off, log_off) = self.place(&plan);
            let log_off = log_off.unwrap_or(0);
            let lo = index_off.min(log_off);
            let hi = (index_off + idx_len).max(log_off + log_len);
            self.record_building(lo, hi - lo)?;
            (index_off, log_off, None)
        } else {
            let (at, g) = self.place_shared(idx_len, Some(log_len))?;
            (at + log_len, at, Some(g))
        };
        let first = if index_only {
            0
        } else {
            log_len.min(ALLOC_STEP)
        };
        // The ring's first step, and the last page of the index and of the ring (so that the
        // file covers `N` wherever the placement put it); the rest of the index is reserved
        // by the preparing steps.
        let reserved = if index_only {
            self.reserve_regions(index_off + idx_len - PAGE, PAGE, None)
        } else {
            self.reserve_regions(index_off + idx_len - PAGE, PAGE, Some((log_off, first)))
                .and_then(|()| mem.allocate(log_off + log_len - PAGE, PAGE))
        };
        let g = self.reserved_generation(reserved, g)?;
        let desc_slot = 1 - self.g.slot;
        let mut desc = Desc {
            generation: g,
            index_off,
            index_slots: plan.slots,
            log_off,
            log_cap: cap,
            created_ms: self.now,
            ..Desc::default()
        };
        desc.crc = desc.compute_crc();
        let n = Gen::from_desc(mem, desc, self.shard, desc_slot, g)?;
        let w = mem.w();
        fence(Ordering::Release);
        if !index_only {
            arena::init_log(w, &desc, 0)?;
        }
        arena::write_desc(w, self.shard, desc_slot, desc)?;
        let s = self.shard;
        let b = Build {
            n,
            cursor: 0,
            zeroed: Some(0),
            index_only,
        };
        self.ctl_set(sctl!(s, build_cursor), b.word())?;
        self.ctl_set(sctl!(s, build_alloc), first)?;
        self.ctl_set(sctl!(s, build_started_ms), self.now)?;
        self.ctl_set(sctl!(s, build_entries), 0)?;
        self.ctl_set(sctl!(s, build_live), 0)?;
        self.ctl_set(sctl!(s, build_used), 0)?;
        self.ctl_set(sctl!(s, build_gen), g)?;
        fp!("build::started");
        self.ctl_add(sctl!(s, builds), 1)?;
        self.build = Some(b);
        Ok(true)
    }

    /// Prepares `N`'s index: reserves and zeroes its next [`INDEX_STEP`] (with `all`, the
    /// rest), then stores how far it got, or the cursor 0 once it is all prepared (the index
    /// may hold an older generation's bytes: nothing reads it before this is done).
    fn prepare_index(&mut self, b: &mut Build, all: bool) -> Result<()> {
        let Some(done) = b.zeroed else {
            return Ok(());
        };
        let (off, len) = (b.n.desc.index_off, b.n.desc.index_len());
        let to = if all {
            len
        } else {
            done.saturating_add(INDEX_STEP).min(len)
        };
        self.sh.mem.allocate(off + done, to - done)?;
        self.w().write_zeros(off + done, to - done)?;
        fp!("build::between_zero_and_cursor");
        b.zeroed = (to < len).then_some(to);
        self.ctl_set(sctl!(self.shard, build_cursor), b.word())?;
        self.build = Some(*b);
        Ok(())
    }

    /// Reserves `N`'s ring through byte `end` (ring offset) in [`ALLOC_STEP`] steps.
    fn alloc_through(&mut self, n: &Gen, end: u64) -> Result<()> {
        let word = sctl!(self.shard, build_alloc);
        let done = self.ctl(word)?;
        let want = LOG_HEADER_LEN.saturating_add(end);
        let to = self.alloc_ring(word, &n.desc, done, want)?;
        if to == done {
            return Ok(());
        }
        fp!("build::allocated_step");
        self.ctl_set(word, to)
    }

    /// Reserves the log region of `desc` from `done` (its bytes reserved so far, read from the
    /// shard word `word`) through `want`, rounded up to an [`ALLOC_STEP`] and at most the
    /// region; returns the new watermark (`done` when nothing was needed). A watermark past
    /// the region is damage.
    fn alloc_ring(&self, word: u64, desc: &Desc, done: u64, want: u64) -> Result<u64> {
        let len = desc.log_len();
        if done > len {
            return Err(Error::corrupt(word, "ring reservation past the log region"));
        }
        if want <= done || done == len {
            return Ok(done);
        }
        let to = round_up(want, ALLOC_STEP).unwrap_or(u64::MAX).min(len);
        self.sh.mem.allocate(desc.log_off + done, to - done)?;
        Ok(to)
    }

    /// Appends a record to `N`'s ring (never wraps during the build: `N` keeps its reserve
    /// free, else `Full` and the build is abandoned).
    fn append_n(&mut self, n: &Gen, hdr: &RecordHeader, key: &[u8], value: &[u8]) -> Result<u64> {
        let w = self.w();
        let head = n.head(w)?;
        let size = hdr.size();
        if size.saturating_mul(16) > n.cap() {
            // A smaller ring (a shrink, a compaction) than this record allows: `N`'s cleaning
            // could never move it (`put` keeps every record within a sixteenth of its ring).
            // The build is abandoned, and remembered until the ring changes.
            self.note_ring_floor(self.g.cap(), size.saturating_mul(16));
            return Err(Error::Full { needed: size });
        }
        if head.saturating_add(size).saturating_add(n.cap() / 8) > n.cap() {
            return Err(Error::Full { needed: size });
        }
        self.alloc_through(n, head + size)?;
        n.append(w, hdr, key, value)
    }

    /// Rule 1 (mirror): after a write to `key` (hash `h`) at slot `idx` of the active
    /// generation, applies the same change to `N` if `idx` is below the cursor: `N` then holds
    /// the key as the active generation's slot `idx` does now (its record, or nothing).
    pub(super) fn mirror(&mut self, idx: u64, key: &[u8], h: u64) -> Result<()> {
        let Some(b) = self.build else {
            return Ok(());
        };
        // (While `N`'s index is prepared the cursor is 0: nothing is mirrored.)
        if idx >= b.cursor {
            return Ok(());
        }
        let r = self.mirror_into(b, idx, key, h);
        fp!("build::between_mirror_and_unlock");
        // The write itself is done, and its counters come next: a build that cannot follow it
        // is abandoned, and its error is not the write's (failing the write here left the
        // counters unchanged for a record already published).
        if r.is_err() {
            let a = self.abandon_build();
            return self.or_owe_recovery(a);
        }
        Ok(())
    }

    /// [`Writer::mirror`] after cleaning moved the record of slot `idx` within the active
    /// ring: only an index rebuild, whose slots point into that ring, has anything to follow.
    pub(super) fn mirror_move(&mut self, idx: u64, key: &[u8], h: u64) -> Result<()> {
        if !self.building_index() {
            return Ok(());
        }
        self.mirror(idx, key, h)
    }

    fn mirror_into(&mut self, b: Build, idx: u64, key: &[u8], h: u64) -> Result<()> {
        fp!("build::mirror_into", |_| Err(injected_sync_error()));
        let n = b.n;
        let w = self.w();
        let s = self.shard;
        let a = self.g.load_slot(w, idx)?;
        let found = match n.lookup(w, key, h, &mut NoSink)? {
            Probe::Suspect { offset, what, .. } => return Err(Error::corrupt(offset, what)),
            p => p,
        };
        if !(slot::is_live(a) && slot::is_valid(a)) {
            if let Probe::Hit(hit) = found {
                n.store_slot(w, hit.idx, slot::TOMBSTONE)?;
                self.ctl_sub(sctl!(s, build_entries), 1)?;
                self.ctl_sub(sctl!(s, build_live), hit.hdr.size())?;
            }
            return Ok(());
        }
        let pos = slot::pos(a);
        let hdr = match self.g.header_at(w, pos)? {
            Ok((hdr, _)) => hdr,
            Err(what) => return Err(Error::corrupt(pos, what)),
        };
        let size = hdr.size();
        // An index rebuild points at the same record; a ring build copies it.
        let at = if b.index_only {
            pos
        } else {
            let mut value = std::mem::take(&mut self.buf);
            arena::size_buf(&mut value, hdr.value_len.get() as usize, pos)?;
            self.g.read_value(w, pos, &hdr, &mut value)?;
            let appended = self.append_n(&n, &hdr, key, &value);
            self.buf = value;
            appended?
        };
        match found {
            Probe::Hit(hit) => {
                n.store_slot(w, hit.idx, slot::moved(a, at, a & slot::REF != 0))?;
                self.ctl_add(sctl!(s, build_live), size)?;
                self.ctl_sub(sctl!(s, build_live), hit.hdr.size())?;
            }
            Probe::Miss { free: Some(i), .. } => {
                let used = self.ctl(sctl!(s, build_used))?;
                let prev = n.load_slot(w, i)?;
                if prev == slot::EMPTY && used.saturating_add(1).saturating_mul(4) > n.slots() * 3 {
                    return Err(Error::Full { needed: 0 });
                }
                n.store_slot(w, i, slot::moved(a, at, a & slot::REF != 0))?;
                self.ctl_add(sctl!(s, build_entries), 1)?;
                self.ctl_add(sctl!(s, build_live), size)?;
                if prev == slot::EMPTY {
                    self.ctl_add(sctl!(s, build_used), 1)?;
                }
            }
            _ => return Err(Error::Full { needed: 0 }),
        }
        if b.index_only {
            return Ok(());
        }
        self.ctl_add(sctl!(s, bytes_copied), size)
    }

    /// Rule 2 (advance): copies the next batch from the cursor on (`max(4 x wrote, 64 KiB)`
    /// bytes or 512 slots; with `all`, to the end), stores the cursor, and publishes `N` when
    /// the cursor reaches the end.
    pub(super) fn advance(&mut self, wrote: u64, all: bool) -> Result<()> {
        let Some(mut b) = self.build else {
            return Ok(());
        };
        if b.zeroed.is_some() {
            // One write prepares one step of the index; the copy starts on the next.
            self.prepare_index(&mut b, all)?;
            if !all {
                return Ok(());
            }
        }
        let w = self.w();
        let s = self.shard;
        let a = self.g;
        let n = b.n;
        let (head, tail) = (a.head(w)?, a.tail(w)?);
        let budget = wrote.saturating_mul(4).max(BATCH_FLOOR);
        let (mut copied, mut visited) = (0u64, 0u64);
        let (mut entries, mut live, mut used) = (0u64, 0u64, 0u64);
        let mut key = std::mem::take(&mut self.keybuf);
        let mut value = std::mem::take(&mut self.buf);
        let mask = n.slots() - 1;
        let r = (|| -> Result<()> {
            while b.cursor < a.slots() && (all || (copied < budget && visited < BATCH_SLOTS)) {
                let i = b.cursor;
                visited += 1;
                let sl = a.load_slot(w, i)?;
                // The cursor moves past the slot only once it is copied (or has nothing to
                // copy): a failure below leaves it unvisited.
                if slot::is_live(sl) && slot::is_valid(sl) {
                    let pos = slot::pos(sl);
                    if tail <= pos
                        && pos < head
                        && let Ok((hdr, size)) = a.header_at(w, pos)?
                        && !hdr.expired(self.now)
                    {
                        a.read_key(w, pos, &hdr, &mut key)?;
                        arena::size_buf(&mut value, hdr.value_len.get() as usize, pos)?;
                        a.read_value(w, pos, &hdr, &mut value)?;
                        if hdr.checksum(&key, &value) == hdr.crc.get() {
                            let h = format::hash(&key, self.sh.seed);
                            let at = if b.index_only {
                                pos
                            } else {
                                self.append_n(&n, &hdr, &key, &value)?
                            };
                            let mut j = n.home(h);
                            let mut probes = 0;
                            loop {
                                let t = n.load_slot(w, j)?;
                                if t == slot::EMPTY || t == slot::TOMBSTONE {
                                    if t == slot::EMPTY {
                                        used += 1;
                                    }
                                    break;
                                }
                                probes += 1;
                                if probes >= n.slots() {
                                    return Err(Error::Full { needed: 0 });
                                }
                                j = (j + 1) & mask;
                            }
                            n.store_slot(w, j, slot::moved(sl, at, sl & slot::REF != 0))?;
                            copied += size;
                            entries += 1;
                            live += size;
                        }
                    }
                }
                b.cursor += 1;
            }
            Ok(())
        })();
        self.keybuf = key;
        self.buf = value;
        // Counters of what was copied, then the cursor (a batch killed before the cursor
        // store is abandoned with the rest of the build).
        self.ctl_add(sctl!(s, build_entries), entries)?;
        self.ctl_add(sctl!(s, build_live), live)?;
        self.ctl_add(sctl!(s, build_used), used)?;
        if !b.index_only {
            self.ctl_add(sctl!(s, bytes_copied), copied)?;
        }
        r?;
        fp!("build::between_copy_and_cursor");
        self.ctl_set(sctl!(s, build_cursor), b.word())?;
        self.build = Some(b);
        if b.cursor >= a.slots() {
            // The retired line must be free for the publication: what an earlier switch
            // retired is punched in steps, one per write (all at once when forced).
            if all {
                self.punch_retired()?;
            } else if !self.punch_retired_step(RETIRE_STEP)? {
                return Ok(());
            }
            self.publish_build()?;
        }
        Ok(())
    }

    /// The fallback: the active ring (or its index) is full before the build completes, so
    /// this write finishes it now (today's cost of a switch), and counts that.
    pub(super) fn finish_build(&mut self) -> Result<()> {
        if !self.building() {
            return Ok(());
        }
        self.ctl_add(sctl!(self.shard, builds_forced), 1)?;
        let r = self.advance(0, true);
        self.or_abandon(r)
    }

    /// Completes a build in flight now, for a caller whose work is already proportional to
    /// the map (`flush`); not counted as forced.
    pub(super) fn complete_build(&mut self) -> Result<()> {
        if !self.building() {
            return Ok(());
        }
        let r = self.advance(0, true);
        self.or_abandon(r)
    }

    /// The publication (the version-3 switch's): the active regions recorded as retired, one
    /// store of `active`, the counters from line 3, then line 3 and the reservation cleared.
    fn publish_build(&mut self) -> Result<()> {
        let Some(b) = self.build else {
            return Ok(());
        };
        let mem = &self.sh.mem;
        let w = mem.w();
        let s = self.shard;
        let n = b.n;
        fp!("build::before_publish");
        if self.sh.durable() {
            mem.sync(n.desc.index_off, n.desc.index_len())?;
            if !b.index_only {
                mem.sync(n.desc.log_off, n.desc.log_len())?;
            }
        }
        // An index rebuild retires the old index only: the ring goes on as `N`'s.
        let old = self.g.desc;
        let (rl_off, rl_len) = if b.index_only {
            (0, 0)
        } else {
            (old.log_off, old.log_len())
        };
        self.ctl_set(sctl!(s, retired_ms), self.now)?;
        self.ctl_set(sctl!(s, retired_index_off), old.index_off)?;
        self.ctl_set(sctl!(s, retired_log_off), rl_off)?;
        self.ctl_set(sctl!(s, retired_index_len), old.index_len())?;
        self.ctl_set(sctl!(s, retired_log_len), rl_len)?;
        if self.sh.durable() {
            mem.sync(0, mem.header_len())?;
        }
        self.honour_quiet()?;
        if !b.index_only {
            self.watermark_for_either(self.ctl(sctl!(s, build_alloc))?, n.desc.log_len())?;
            fp!("build::between_watermark_and_active");
        }
        w.store_u64(sctl!(s, active), n.active_word(), Ordering::Release)?;
        fence(Ordering::Release);
        // From here on `N` is the shard's generation, whatever fails next: a writer that kept
        // `A` and the build would abandon it on its way out, punching `N`.
        self.g = n;
        self.build = None;
        let r = self.after_build_store(b.index_only);
        self.or_owe_recovery(r)
    }

    /// A build's bookkeeping after its store of `active`: counters from line 3, the ring's
    /// watermark, line 3 and the reservation cleared.
    fn after_build_store(&mut self, index_only: bool) -> Result<()> {
        fp!("build::between_active_and_counters", |_| Err(
            injected_sync_error()
        ));
        let mem = &self.sh.mem;
        let s = self.shard;
        let n = self.g;
        if self.sh.durable() {
            mem.sync(0, mem.header_len())?;
        }
        let alloc = self.ctl(sctl!(s, build_alloc))?;
        // What the copy left behind: entries it found expired (or damaged), which the writes
        // meanwhile kept counted in both generations alike. Counted as a one-step switch
        // counts what it drops (a kill here loses the count, never the entries).
        let entries = self.ctl(sctl!(s, build_entries))?;
        let dropped = self.ctl(sctl!(s, entries))?.saturating_sub(entries);
        self.ctl_add(sctl!(s, expirations), dropped)?;
        self.ctl_set(sctl!(s, entries), entries)?;
        self.set_live(self.ctl(sctl!(s, build_live))?)?;
        self.ctl_set(sctl!(s, used_slots), self.ctl(sctl!(s, build_used))?)?;
        // The rest of the ring is reserved in steps as the active generation's head reaches
        // it (`active_alloc`; 0 once all of it is). An index rebuild's ring keeps its own.
        if !index_only {
            self.ctl_set(sctl!(s, active_alloc), watermark(alloc, n.desc.log_len()))?;
        }
        self.ctl_set(sctl!(s, build_gen), 0)?;
        self.ctl_set(sctl!(s, build_cursor), 0)?;
        self.ctl_set(sctl!(s, build_alloc), 0)?;
        self.ctl_set(sctl!(s, build_started_ms), 0)?;
        self.ctl_set(sctl!(s, building_off), 0)?;
        self.ctl_set(sctl!(s, building_len), 0)?;
        self.ctl_set(sctl!(s, switched_ms), self.now)?;
        self.ctl_add(sctl!(s, switches), 1)
    }

    /// Before an append of `size` bytes at the active ring's head: reserves the next steps of
    /// a ring published with only part of it reserved (`active_alloc`).
    pub(super) fn alloc_active(&mut self, size: u64) -> Result<()> {
        let word = sctl!(self.shard, active_alloc);
        let done = self.ctl(word)?;
        if done == 0 {
            return Ok(());
        }
        let w = self.w();
        let g = self.g;
        let head = g.head(w)?;
        let room = g.cap() - g.phys(head);
        // Wrapping writes at the start of the ring, reserved first: the pad then the record
        // past it need all of the first lap.
        let end = if room < size {
            g.cap()
        } else {
            g.phys(head) + size
        };
        let want = LOG_HEADER_LEN.saturating_add(end);
        let to = self.alloc_ring(word, &g.desc, done, want)?;
        if to == done {
            return Ok(());
        }
        self.ctl_set(word, watermark(to, g.desc.log_len()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use proptest::prelude::*;

    use super::*;
    use crate::format::RecordHeader;
    use crate::shared::Shared;
    use crate::{Options, SetOptions, Shmap};

    /// A record's contents: value, flags, expiry.
    type Rec = (Vec<u8>, u32, u64);

    /// The unexpired, intact records slots `range` of generation `g` point to, by key.
    fn records(
        sh: &Shared,
        g: &Gen,
        range: std::ops::Range<u64>,
        now: u64,
    ) -> BTreeMap<Vec<u8>, Rec> {
        records_at(sh, g, range, now)
            .into_iter()
            .map(|(k, (r, _))| (k, r))
            .collect()
    }

    /// [`records`] with where each one is in its ring.
    fn records_at(
        sh: &Shared,
        g: &Gen,
        range: std::ops::Range<u64>,
        now: u64,
    ) -> BTreeMap<Vec<u8>, (Rec, u64)> {
        let w = sh.mem.w();
        let (head, tail) = (g.head(w).unwrap(), g.tail(w).unwrap());
        let mut out = BTreeMap::new();
        for i in range {
            let s = g.load_slot(w, i).unwrap();
            if !slot::is_live(s) || !slot::is_valid(s) {
                continue;
            }
            let pos = slot::pos(s);
            assert!(
                tail <= pos && pos < head,
                "slot {i} points outside the ring"
            );
            let (hdr, _): (RecordHeader, u64) = g.header_at(w, pos).unwrap().unwrap();
            if hdr.expired(now) {
                continue;
            }
            let mut key = Vec::new();
            g.read_key(w, pos, &hdr, &mut key).unwrap();
            let mut value = vec![0u8; hdr.value_len.get() as usize];
            g.read_value(w, pos, &hdr, &mut value).unwrap();
            assert_eq!(hdr.checksum(&key, &value), hdr.crc.get());
            let rec = (value, hdr.flags.get(), hdr.expires_ms.get());
            let prev = out.insert(key, (rec, pos));
            assert!(prev.is_none(), "a key twice in one index");
        }
        out
    }

    /// The cursor invariant: with a build in flight, `N` holds exactly the records of the
    /// active generation's slots below the cursor (none while `N`'s index is prepared).
    /// Returns the build's phase and whether it is an index rebuild, if one is in flight.
    fn check_invariant(sh: &Shared, now: u64) -> Option<(Phase, bool)> {
        let wr = Writer::new(sh, 0, crate::lock::Patience::new(sh.lock_timeout)).unwrap();
        assert!(!wr.build_stale, "line 3 names a build that is not there");
        let b = wr.build?;
        let w = sh.mem.w();
        let s = 0;
        if b.zeroed.is_some() {
            // Preparing N's index: nothing is copied or mirrored yet.
            assert_eq!(b.cursor, 0);
            assert_eq!(
                w.load_u64(sctl!(s, build_entries), Ordering::Acquire)
                    .unwrap(),
                0
            );
            return Some((Phase::Preparing, b.index_only));
        }
        let below = records(sh, &wr.g, 0..b.cursor, now);
        let in_n = records(sh, &b.n, 0..b.n.slots(), now);
        assert_eq!(below, in_n, "cursor {} of {}", b.cursor, wr.g.slots());
        if b.index_only {
            // Over the same ring, the same records: each key where the active slot points.
            let pos = |g: &Gen, r| -> Vec<(Vec<u8>, u64)> {
                records_at(sh, g, r, now)
                    .into_iter()
                    .map(|(k, (_, p))| (k, p))
                    .collect()
            };
            assert_eq!(
                pos(&wr.g, 0..b.cursor),
                pos(&b.n, 0..b.n.slots()),
                "index rebuild: slots point elsewhere than the active ones"
            );
        }
        // N's counters cover every live slot of N (expired ones included).
        let mut entries = 0;
        for i in 0..b.n.slots() {
            if slot::is_live(b.n.load_slot(w, i).unwrap()) {
                entries += 1;
            }
        }
        assert_eq!(
            w.load_u64(sctl!(s, build_entries), Ordering::Acquire)
                .unwrap(),
            entries
        );
        Some((Phase::Copying, b.index_only))
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Phase {
        Preparing,
        Copying,
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u16, u16),
        SetTtl(u16, u16, u8),
        Remove(u16),
        Incr(u16),
        Expire(u16, u8),
        Get(u16),
        Tick(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0u16..3000, 0u16..400).prop_map(|(k, l)| Op::Set(k, l)),
            1 => (0u16..3000, 0u16..400, 1u8..50).prop_map(|(k, l, t)| Op::SetTtl(k, l, t)),
            3 => (0u16..3000).prop_map(Op::Remove),
            1 => (3000u16..3010).prop_map(Op::Incr),
            1 => (0u16..3000, 1u8..50).prop_map(|(k, t)| Op::Expire(k, t)),
            3 => (0u16..3000).prop_map(Op::Get),
            1 => (1u8..20).prop_map(Op::Tick),
        ]
    }

    /// Random operations on a small map (64 KiB to start: it grows through several builds)
    /// against a model; after every write the cursor invariant holds, and the map's contents
    /// equal the model's.
    /// What [`run`] saw: writes checked mid-build, of them those preparing and those of an
    /// index rebuild, and the builds.
    #[derive(Debug, Default)]
    struct Seen {
        in_flight: u64,
        preparing: u64,
        index_only: u64,
        builds: u64,
    }

    fn run(ops: &[Op]) -> Seen {
        run_with(ops, 1, |o| o.initial_size(64 << 10).evict(false))
    }

    /// `ops` on a map made with `opts` (and a test clock, no grace period), checking the
    /// invariant after every `every`th.
    fn run_with(ops: &[Op], every: usize, opts: impl Fn(Options) -> Options) -> Seen {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let clock = Arc::new(AtomicU64::new(1_700_000_000_000));
        let c = clock.clone();
        let opts = opts(Options::new())
            .retire_grace(std::time::Duration::ZERO)
            .clock(Arc::new(move || c.load(Ordering::Relaxed)));
        // An evicting map may drop any key: its contents are then a subset of the model.
        let evicting = opts.evict == Some(true);
        let map = Shmap::open(dir.path().join("m").to_str().unwrap(), &opts).unwrap();
        let sh = map.shared().unwrap();
        let mut model: BTreeMap<Vec<u8>, (Vec<u8>, u64)> = BTreeMap::new();
        let mut seen = Seen::default();
        let mut checked = 0u64;
        for (i, op) in ops.iter().enumerate() {
            let now = clock.load(Ordering::Relaxed);
            let key = |k: u16| format!("key-{k}").into_bytes();
            let val = |k: u16, l: u16| vec![(k % 251) as u8; l as usize];
            match *op {
                Op::Set(k, l) => {
                    map.set(&key(k), &val(k, l)).unwrap();
                    model.insert(key(k), (val(k, l), 0));
                }
                Op::SetTtl(k, l, t) => {
                    let o = SetOptions {
                        ttl_ms: Some(t as u64),
                        flags: 0,
                    };
                    map.set_with(&key(k), &val(k, l), o).unwrap();
                    model.insert(key(k), (val(k, l), now + t as u64));
                }
                Op::Remove(k) => {
                    map.remove(&key(k)).unwrap();
                    model.remove(&key(k));
                }
                Op::Incr(k) => {
                    let v = map.incr(&key(k), 1, 0, None).unwrap();
                    let e = model.get(&key(k)).map_or(0, |e| e.1);
                    model.insert(key(k), (v.to_le_bytes().to_vec(), e));
                }
                Op::Expire(k, t) => {
                    let mut live = model.get(&key(k)).is_some_and(|e| e.1 == 0 || e.1 > now);
                    let found = map.expire(&key(k), t as u64).unwrap();
                    if evicting && live && !found {
                        model.remove(&key(k));
                        live = false;
                    }
                    assert_eq!(found, live, "{op:?}");
                    if live {
                        model.get_mut(&key(k)).unwrap().1 = now + t as u64;
                    }
                }
                Op::Tick(t) => {
                    clock.fetch_add(t as u64, Ordering::Relaxed);
                }
                // A read sets the record's CLOCK bit: cleaning at the cap then moves it
                // (a second chance) instead of evicting it.
                Op::Get(k) => {
                    let got = map.get(&key(k)).unwrap();
                    if !(evicting && got.is_none()) {
                        assert_eq!(got, model.get(&key(k)).map(|e| e.0.clone()), "{op:?}");
                    }
                }
            }
            let now = clock.load(Ordering::Relaxed);
            model.retain(|_, e| e.1 == 0 || e.1 > now);
            if i % every != 0 {
                continue;
            }
            if let Some((phase, index_only)) = check_invariant(sh, now) {
                seen.in_flight += 1;
                seen.preparing += u64::from(phase == Phase::Preparing);
                seen.index_only += u64::from(index_only);
            }
            checked += 1;
        }
        for (k, (v, _)) in &model {
            let got = map.get(k).unwrap();
            if evicting && got.is_none() {
                continue;
            }
            assert_eq!(got.as_ref(), Some(v), "{}", String::from_utf8_lossy(k));
        }
        let keys = map.keys().unwrap();
        if evicting {
            assert!(keys.iter().all(|k| model.contains_key(k)));
        } else {
            assert_eq!(keys.len(), model.len());
        }
        assert!(checked > 0);
        seen.builds = map.stats().unwrap().builds;
        seen
    }

    #[test]
    fn the_cursor_invariant_holds_with_builds_in_flight() {
        // Deterministic: a fill with overwrites and removes, then random operations.
        let mut ops = Vec::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..6000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 3000) as u16;
            ops.push(match i % 10 {
                0..=6 => Op::Set(k, (x >> 20) as u16 % 400),
                7 => Op::Remove(k),
                8 => Op::SetTtl(k, 50, (x >> 30) as u8 % 40 + 1),
                _ => Op::Tick((x >> 40) as u8 % 5 + 1),
            });
        }
        let seen = run(&ops);
        assert!(seen.builds >= 3, "{seen:?}");
        // Each build prepares its index over several writes (a page each here).
        assert!(seen.preparing >= seen.builds, "{seen:?}");
        assert!(seen.in_flight >= 10, "{seen:?}");
    }

    /// Index rebuilds behind the writes: a map at its cap (no room for a second ring) whose
    /// index fills with tombstones (new keys, removes) rebuilds it over the active ring while
    /// cleaning and eviction go on, and the invariant holds after every write.
    #[test]
    fn the_cursor_invariant_holds_through_index_rebuilds() {
        // Long-lived keys, set once: cleaning moves them around the ring again and again.
        let mut ops: Vec<Op> = (0..800).map(|k| Op::Set(k, 80)).collect();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..40_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Keys move forward (each is new once), so removes leave tombstones; the live set
            // stays small, so the ring is cleaned in place (records moved) at its cap.
            let base = (i / 4) as u64 + 1000;
            ops.push(match i % 4 {
                0 => Op::Set((base % 60_000) as u16, (x >> 20) as u16 % 100),
                1 => Op::Remove(((base - 100) % 60_000) as u16),
                2 => Op::Get(((base - x % 100) % 60_000) as u16),
                _ if x.is_multiple_of(7) => Op::Incr(60_000 + (x % 10) as u16),
                _ => Op::Set(((base - x % 100) % 60_000) as u16, (x >> 20) as u16 % 100),
            });
        }
        let seen = run_with(&ops, 4, |o| {
            o.initial_size(256 << 10).max_size(256 << 10).evict(true)
        });
        assert!(
            seen.index_only > 0,
            "no index rebuild was seen in flight: {seen:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
        #[test]
        fn the_cursor_invariant_holds_under_random_operations(ops in prop::collection::vec(op(), 500..3000)) {
            run(&ops);
        }

        #[test]
        fn the_cursor_invariant_holds_at_the_cap(ops in prop::collection::vec(op(), 500..3000)) {
            run_with(&ops, 1, |o| o.initial_size(128 << 10).max_size(128 << 10).evict(true));
        }
    }
}
