//! The public handle: lock-free reads, the write API (which delegates to [`crate::write`]
//! under the writer lock), iteration and stats.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use crate::arena::{Failures, Gen, Hit, NoSink, Probe, Sink, SliceSink};
use crate::attach::{attach, open_read_only};
use crate::error::{Error, Result};
use crate::format::{self, CONFIG_NO_EVICT, FLAG_INT, FLAG_LEASE, gctl, sctl, slot};
use crate::lock::{self, Acquired, Patience};
use crate::options::{MIN_SIZE, Options, resolve};
use crate::scan::{ScanCursor, ScanOptions};
use crate::shared::{Shared, read_control, read_shard};
use crate::types::{
    Condition, Counter, Entry, IncrOptions, LeaseState, Lookup, Meta, SetOptions, Stats, Version,
};
use crate::write::{self, Compaction, Fast, Writer};

/// The pause between two steps of [`Shmap::compact`], for the writers that waited meanwhile.
const COMPACT_PAUSE: Duration = Duration::from_micros(50);

/// A handle on a map. Cheap to clone; `Send + Sync`; threads and processes mix freely.
pub struct Shmap {
    sh: Arc<Shared>,
    read_only: bool,
    closed: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Clone for Shmap {
    fn clone(&self) -> Self {
        Shmap {
            sh: self.sh.clone(),
            read_only: self.read_only,
            closed: AtomicBool::new(self.closed.load(Ordering::Relaxed)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Shmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shmap")
            .field("path", &self.sh.path)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Shmap {
    /// Flag of values written by [`Shmap::incr`]: an 8-byte little-endian `i64`.
    pub const FLAG_INT: u32 = FLAG_INT;
    /// Longest key.
    pub const MAX_KEY_LEN: usize = format::MAX_KEY_LEN;

    fn from_shared(sh: Arc<Shared>, read_only: bool) -> Shmap {
        Shmap {
            sh,
            read_only,
            closed: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Opens (creating if needed) the map `name_or_path`: a bare name is `/dev/shm/<name>`,
    /// a path is that file.
    pub fn open(name_or_path: impl AsRef<str>, opts: &Options) -> Result<Shmap> {
        let path = resolve(name_or_path.as_ref())?;
        Shmap::open_path(&path, opts)
    }

    /// Opens the map at exactly `path`.
    pub fn open_path(path: &Path, opts: &Options) -> Result<Shmap> {
        check_sizes(opts)?;
        let sh = attach(path, opts)?;
        let map = Shmap::from_shared(sh, opts.read_only);
        if !opts.read_only {
            map.apply_options(opts)?;
        }
        Ok(map)
    }

    fn apply_options(&self, opts: &Options) -> Result<()> {
        let w = self.sh.mem.w();
        if let Some(max) = opts.max_size {
            w.store_u64(gctl!(max_size), max, Ordering::Release)?;
        }
        if let Some(ttl) = opts.max_age_ms {
            w.store_u64(gctl!(default_ttl_ms), ttl, Ordering::Release)?;
        }
        if let Some(evict) = opts.evict {
            self.set_evict(evict)?;
        }
        if opts.reset {
            self.clear()?;
        }
        Ok(())
    }

    /// The file behind the map.
    pub fn path(&self) -> &Path {
        &self.sh.path
    }

    fn live(&self) -> Result<&Shared> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        if self.sh.forked() {
            return Err(Error::Forked);
        }
        Ok(&self.sh)
    }

    fn hash(&self, key: &[u8]) -> Result<u64> {
        if key.is_empty() || key.len() > format::MAX_KEY_LEN {
            return Err(Error::TooLarge {
                what: "key",
                len: key.len() as u64,
                max: format::MAX_KEY_LEN as u64,
            });
        }
        Ok(format::hash(key, self.sh.seed))
    }

    /// The lock-free read path shared by every single-key read. It never takes a lock: after
    /// two failed validations it asks writers for a moment of quiet (a deadline they honour
    /// for at most 2 ms per write, see `lock::request_quiet`), then retries with backoff.
    fn read(&self, key: &[u8], sink: &mut dyn Sink) -> Result<Option<(Meta, Hit)>> {
        let sh = self.live()?;
        let h = self.hash(key)?;
        let mut failures = Failures::default();
        let shard = sh.shard_of(h);
        for attempt in 0..200u32 {
            let g = Gen::load(&sh.mem, shard)?;
            let w = sh.mem.w();
            let probe = g.lookup(w, key, h, sink)?;
            if g.still_valid(w, &probe)? {
                // Nothing raced this probe: damage it found is real.
                if let Probe::Suspect { offset, what, .. } = probe {
                    return Err(Error::corrupt(offset, what));
                }
                return Ok(self.finish_read(&g, probe));
            }
            failures.failed(w, &g)?;
            if attempt >= 2 {
                lock::request_quiet(&sh.mem, &lock::shard(shard));
            }
            if attempt >= 3 {
                std::thread::sleep(Duration::from_micros(50 << attempt.min(8)));
            }
        }
        Err(Error::Busy)
    }

    fn finish_read(&self, g: &Gen, probe: Probe) -> Option<(Meta, Hit)> {
        // The clock is read only for records that can expire.
        let hit = match probe {
            Probe::Hit(hit)
                if hit.hdr.flags.get() & FLAG_LEASE == 0
                    && (hit.hdr.expires_ms.get() == 0
                        || !self.sh.expired(hit.hdr.expires_ms.get())) =>
            {
                hit
            }
            _ => {
                bump(&self.misses);
                return None;
            }
        };
        bump(&self.hits);
        g.touch(self.sh.mem.w(), hit.idx, hit.slot);
        let meta = Meta {
            len: hit.hdr.value_len.get() as usize,
            flags: hit.hdr.flags.get() & !format::FLAG_PAD,
            expires_ms: hit.hdr.expires_ms.get(),
            version: Version {
                generation: g.number(),
                pos: slot::pos(hit.slot),
            },
        };
        Some((meta, hit))
    }

    /// The value of `key`, copied out.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self.get_into(key, &mut v)?.map(|_| v))
    }

    /// Copies the value of `key` into `buf` (reusing its allocation); returns its metadata.
    pub fn get_into(&self, key: &[u8], buf: &mut Vec<u8>) -> Result<Option<Meta>> {
        Ok(self.read(key, buf)?.map(|(m, _)| m))
    }

    /// Copies the value of `key` into a fixed buffer; reports the needed length if it is too
    /// small. No allocation: this is the Node addon's hot path.
    pub fn read_into(&self, key: &[u8], out: &mut [u8]) -> Result<Lookup> {
        self.read_into_if_changed(key, out, None)
    }

    /// Like [`Shmap::read_into`], but when the record is still the one of version `held`, copies
    /// nothing and returns [`Lookup::Unchanged`]: a caller that keeps decoded values (the Node
    /// addon keeps strings) skips the copy and the decoding of values that did not change.
    pub fn read_into_if_changed(
        &self,
        key: &[u8],
        out: &mut [u8],
        held: Option<Version>,
    ) -> Result<Lookup> {
        let held = held.map(|v| (v.generation, v.pos));
        Ok(match self.read(key, &mut SliceSink(out, held))? {
            None => Lookup::Miss,
            Some((m, hit)) if hit.unchanged => Lookup::Unchanged(m),
            Some((m, hit)) if hit.copied => Lookup::Hit(m),
            Some((m, _)) => Lookup::TooSmall(m),
        })
    }

    /// Calls `f` with the value of `key` (copied into a per-thread buffer, so no allocation
    /// per call); `None` when absent.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8], Meta) -> R) -> Result<Option<R>> {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|b| {
            let mut b = b.try_borrow_mut().map_err(|_| {
                Error::InvalidArgument("get_with called from inside get_with".into())
            })?;
            match self.read(key, &mut *b)? {
                Some((m, _)) => Ok(Some(f(&b, m))),
                None => Ok(None),
            }
        })
    }

    /// Whether `key` is present (and not expired).
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.read(key, &mut NoSink)?.is_some())
    }

    /// The writer lock of shard `shard`.
    fn writer_of(&self, shard: usize) -> Result<WriteGuard<'_>> {
        let sh = self.live()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        WriteGuard::take(sh, shard)
    }

    /// The writer lock of the shard of a key with hash `h`.
    fn writer(&self, h: u64) -> Result<WriteGuard<'_>> {
        self.writer_of(self.sh.shard_of(h))
    }

    /// Stores `value` under `key` with the map's default time to live.
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.set_with(key, value, SetOptions::default()).map(|_| ())
    }

    /// Stores `value` under `key`; returns the number of live entries evicted to make room.
    pub fn set_with(&self, key: &[u8], value: &[u8], o: SetOptions) -> Result<u64> {
        let h = self.hash(key)?;
        check_flags(o.flags)?;
        let sh = self.live()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let shard = sh.shard_of(h);
        // An overwrite in this process's chunk needs no lock (format.md, "Lanes and chunks").
        let expires = write::expiry_at(sh, || (sh.clock)(), o.ttl_ms)?;
        let plain = write::Plain {
            key,
            h,
            value,
            flags: o.flags,
            expires_ms: expires,
        };
        let fast = write::fast_set(sh, shard, &plain)?;
        if fast == Fast::Done {
            return Ok(0);
        }
        let mut g = self.writer(h)?;
        let wr = g.writer()?;
        let put = wr.put(key, h, value, o.flags, expires, false)?;
        if put.replaced && fast == Fast::Prepare {
            wr.prepare_fast_after_write();
        }
        Ok(put.evicted)
    }

    /// Stores `value` only if `key` is absent (or expired); true if stored.
    pub fn add(&self, key: &[u8], value: &[u8], o: SetOptions) -> Result<bool> {
        let h = self.hash(key)?;
        check_flags(o.flags)?;
        let mut g = self.writer(h)?;
        let wr = g.exclusive()?;
        wr.put(key, h, value, o.flags, wr.expiry(o.ttl_ms)?, true)
            .map(|r| r.stored)
    }

    /// Removes `key`; true if it was present.
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        let h = self.hash(key)?;
        let mut g = self.writer(h)?;
        g.writer()?.remove(key, h)
    }

    /// Adds `delta` to the integer counter at `key`, atomically across processes; a missing
    /// (or expired) key starts at `init`. `ttl_ms` as in [`SetOptions`]; `None` keeps an existing
    /// entry's expiry. Fails with [`Error::NotAnInteger`] on a value not written by `incr`/`set_int`.
    pub fn incr(&self, key: &[u8], delta: i64, init: i64, ttl_ms: Option<u64>) -> Result<i64> {
        let h = self.hash(key)?;
        let mut g = self.writer(h)?;
        g.exclusive()?.incr(key, h, delta, init, ttl_ms)
    }

    /// Stores an integer counter (readable by `incr`).
    pub fn set_int(&self, key: &[u8], v: i64, ttl_ms: Option<u64>) -> Result<()> {
        self.set_with(
            key,
            &v.to_le_bytes(),
            SetOptions {
                ttl_ms,
                flags: FLAG_INT,
            },
        )
        .map(|_| ())
    }

    /// Removes every entry and shrinks the map to its initial size.
    ///
    /// Shard by shard, each under its own lock: each shard's clear is atomic, the whole is not
    /// (an entry written before `clear` began is gone when it returns).
    pub fn clear(&self) -> Result<()> {
        for s in 0..self.sh.shards() {
            let mut g = self.writer_of(s)?;
            g.writer()?.clear()?;
        }
        Ok(())
    }

    /// Rebuilds the map compactly now (normally this happens by itself), returning when done.
    /// The copy is the incremental build's, a step of about a millisecond per hold of a shard's
    /// writer lock: other writers go on in between (format.md, "Incremental build").
    pub fn compact(&self) -> Result<()> {
        for s in 0..self.sh.shards() {
            let mut c = Compaction::default();
            loop {
                let done = {
                    let mut g = self.writer_of(s)?;
                    g.writer()?.compact_step(&mut c)?
                };
                if done {
                    break;
                }
                crate::failpoints::fp!("compact::between_holds");
                // A moment for the writers that waited: the lock is free now.
                std::thread::sleep(COMPACT_PAUSE);
            }
        }
        Ok(())
    }

    /// Asks to load `key` once across all processes (see format.md, Leases): returns its value
    /// if present, `Acquired(token)` if the caller should load it (for at most `lease_ms`), or
    /// `Wait` while another live process loads it.
    pub fn lease(&self, key: &[u8], lease_ms: u64) -> Result<LeaseState> {
        let h = self.hash(key)?;
        let token = next_token();
        let mut g = self.writer(h)?;
        g.exclusive()?.lease(key, h, lease_ms, token)
    }

    /// Whether another live process (or another request of this one) holds an unexpired lease
    /// on `key`. Lock-free, like a read: what a waiter polls between [`Shmap::lease`] calls, so
    /// that a waiter stopped or slow while it waits holds no writer off.
    pub fn lease_held(&self, key: &[u8]) -> Result<bool> {
        let sh = self.live()?;
        let h = self.hash(key)?;
        let mut buf = [0u8; 16];
        let shard = sh.shard_of(h);
        for attempt in 0..200u32 {
            let g = Gen::load(&sh.mem, shard)?;
            let w = sh.mem.w();
            let probe = g.lookup(w, key, h, &mut SliceSink(&mut buf, None))?;
            if g.still_valid(w, &probe)? {
                let Probe::Hit(hit) = probe else {
                    return Ok(false);
                };
                let flags = hit.hdr.flags.get();
                if flags & FLAG_LEASE == 0 || !hit.copied || hit.hdr.expired((sh.clock)()) {
                    return Ok(false);
                }
                return Ok(match crate::write::parse_lease(&buf) {
                    Some((slot, inc, _)) => lock::alive(&sh.mem, sh.me, slot, inc)?,
                    None => false,
                });
            }
            if attempt >= 2 {
                lock::request_quiet(&sh.mem, &lock::shard(shard));
            }
            if attempt >= 3 {
                std::thread::sleep(Duration::from_micros(50 << attempt.min(8)));
            }
        }
        Err(Error::Busy)
    }

    /// Drops the lease `token` on `key`, if it is still held (a loader that failed).
    pub fn release_lease(&self, key: &[u8], token: u64) -> Result<bool> {
        let h = self.hash(key)?;
        let mut g = self.writer(h)?;
        g.exclusive()?.release_lease(key, h, token)
    }

    /// Number of entries (including expired ones not yet reclaimed).
    pub fn len(&self) -> Result<u64> {
        let sh = self.live()?;
        let w = sh.mem.w();
        let mut n = 0u64;
        for s in 0..sh.shards() {
            n = n.saturating_add(w.load_u64(sctl!(s, entries), Ordering::Acquire)?);
        }
        Ok(n)
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every live, unexpired entry. Not a snapshot: see [`Shmap::scan`] for what a scan
    /// guarantees while writers run.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        self.scan(&ScanOptions::new().values(true))
    }

    /// Every live, unexpired key (scan semantics as in [`Shmap::scan`]).
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .scan(&ScanOptions::new())?
            .into_iter()
            .map(|e| e.key)
            .collect())
    }

    /// The entries matching `o` (all of them, or the first `o.limit` in scan order), read
    /// without holding anyone off. Semantics, also while other processes write, grow or shrink
    /// the map: every entry present and unexpired for the whole scan is returned; each key at
    /// most once; an entry written, replaced or removed during the scan may or may not appear.
    /// It is not a snapshot. Values are copied only with `o.values`.
    pub fn scan(&self, o: &ScanOptions) -> Result<Vec<Entry>> {
        Ok(self.scan_from(ScanCursor::START, o)?.0)
    }

    /// A resumable scan: up to `o.limit` matching entries from `cursor`, and the cursor to
    /// continue from (`None` when the scan is complete). A scan continued with the returned
    /// cursors has the semantics of [`Shmap::scan`] over its whole duration, whatever happens
    /// in between; cursors stay valid across writes, growth and shrink of the map.
    pub fn scan_from(
        &self,
        cursor: ScanCursor,
        o: &ScanOptions,
    ) -> Result<(Vec<Entry>, Option<ScanCursor>)> {
        crate::scan::scan_from(self.live()?, cursor, o)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Result<Stats> {
        let sh = self.live()?;
        let w = sh.mem.w();
        let c = read_control(&sh.mem)?;
        let mut st = Stats {
            file_bytes: sh.mem.refresh_len()?,
            file_allocated_bytes: sh.mem.allocated_bytes()?,
            max_size: c.max_size,
            shards: sh.shards() as u64,
            default_ttl_ms: c.default_ttl_ms,
            evict: c.config_flags & CONFIG_NO_EVICT == 0,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            ..Stats::default()
        };
        // Sums over the shards (not one instant's snapshot while writers run); saturating, as the
        // words come from the file.
        for s in 0..sh.shards() {
            let g = Gen::load(&sh.mem, s)?;
            let e = read_shard(&sh.mem, s)?;
            let (head, tail) = (g.head(w)?, g.tail(w)?);
            st.entries = st.entries.saturating_add(e.entries);
            st.live_bytes = st.live_bytes.saturating_add(e.live());
            st.dead_bytes = st
                .dead_bytes
                .saturating_add(head.saturating_sub(tail).saturating_sub(e.live()));
            st.log_capacity = st.log_capacity.saturating_add(g.cap());
            st.index_slots = st.index_slots.saturating_add(g.slots());
            st.used_slots = st.used_slots.saturating_add(e.used_slots);
            st.generation = st.generation.max(g.number());
            st.evictions = st.evictions.saturating_add(e.evictions);
            st.expirations = st.expirations.saturating_add(e.expirations);
            st.switches = st.switches.saturating_add(e.switches);
            st.builds = st.builds.saturating_add(e.builds);
            st.builds_forced = st.builds_forced.saturating_add(e.builds_forced);
            st.building = st.building.saturating_add(u64::from(e.build_gen != 0));
            st.bytes_written = st.bytes_written.saturating_add(e.written());
            st.bytes_copied = st.bytes_copied.saturating_add(e.bytes_copied);
        }
        Ok(st)
    }

    /// Writes the map to its file and waits (a no-op in effect on tmpfs); also returns retired
    /// regions' memory to the OS once their grace period has passed.
    pub fn flush(&self) -> Result<()> {
        let sh = self.live()?;
        if !self.read_only && sh.mem.writable() {
            for s in 0..sh.shards() {
                let mut g = WriteGuard::take(sh, s)?;
                g.writer()?.housekeep()?;
            }
        }
        sh.mem.sync(0, sh.mem.file_len())
    }

    /// Sets the cap on the file's memory, for every process.
    pub fn set_max_size(&self, bytes: u64) -> Result<()> {
        if bytes < MIN_SIZE {
            return Err(Error::InvalidArgument(format!(
                "max_size {bytes} is below the minimum {MIN_SIZE}"
            )));
        }
        self.writable_window()?
            .store_u64(gctl!(max_size), bytes, Ordering::Release)
    }

    /// Sets the default time to live for every process (`None` = never expire).
    pub fn set_max_age(&self, max_age: Option<Duration>) -> Result<()> {
        let ms = max_age.map_or(0, |d| d.as_millis().max(1) as u64);
        self.writable_window()?
            .store_u64(gctl!(default_ttl_ms), ms, Ordering::Release)
    }

    /// Turns eviction on or off for every process.
    pub fn set_evict(&self, evict: bool) -> Result<()> {
        let w = self.writable_window()?;
        let off = gctl!(config_flags);
        loop {
            let cur = w.load_u32(off, Ordering::Acquire)?;
            let new = if evict {
                cur & !CONFIG_NO_EVICT
            } else {
                cur | CONFIG_NO_EVICT
            };
            if w.cas_u32(off, cur, new)?.is_ok() {
                return Ok(());
            }
        }
    }

    fn writable_window(&self) -> Result<&crate::raw::Window> {
        let sh = self.live()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        Ok(sh.mem.w())
    }

    /// Whether this handle refuses writes.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// A handle on the same map that refuses writes (or accepts them again).
    pub fn with_read_only(&self, read_only: bool) -> Result<Shmap> {
        let sh = self.live()?;
        if !read_only && !sh.mem.writable() {
            return Err(Error::ReadOnly);
        }
        Ok(Shmap::from_shared(self.sh.clone(), read_only))
    }

    /// Closes this handle: later calls fail with [`Error::Closed`]. The process detaches when its
    /// last handle is closed or dropped.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if self.sh.mem.writable() {
            self.sh.mem.sync(0, self.sh.mem.file_len())?;
        }
        Ok(())
    }

    /// Whether [`Shmap::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// A process-unique lease token.
fn next_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Counts a read: a plain load and store, not a locked read-modify-write, because a handle is
/// normally used by one thread and a lost count under sharing is harmless.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn check_flags(flags: u32) -> Result<()> {
    if flags & !(format::USER_FLAGS | FLAG_INT) != 0 {
        return Err(Error::InvalidArgument(format!(
            "flags {flags:#x} use bits reserved by the format"
        )));
    }
    Ok(())
}

fn check_sizes(opts: &Options) -> Result<()> {
    if opts.shards != 0 && (!opts.shards.is_power_of_two() || opts.shards > 128) {
        return Err(Error::InvalidArgument(format!(
            "shards must be a power of two from 1 to 128 (or 0: twice the cores), not {}",
            opts.shards
        )));
    }
    if opts.initial_size < MIN_SIZE {
        return Err(Error::InvalidArgument(format!(
            "initial_size {} is below the minimum {MIN_SIZE}",
            opts.initial_size
        )));
    }
    if let Some(max) = opts.max_size
        && (max < MIN_SIZE || max < opts.initial_size)
    {
        return Err(Error::InvalidArgument(format!(
            "max_size {max} is below the minimum {MIN_SIZE} or below initial_size {}",
            opts.initial_size
        )));
    }
    Ok(())
}

/// A shard's writer lock plus this process's mutex for it, released on drop.
pub(crate) struct WriteGuard<'a> {
    sh: &'a Shared,
    shard: usize,
    _local: MutexGuard<'a, ()>,
    how: Acquired,
    /// What the waits for the lock left of this hold's lock timeout, for the writer's.
    patience: Patience,
    wr: Option<Writer<'a>>,
}

impl<'a> WriteGuard<'a> {
    /// Takes shard `shard`'s writer lock.
    pub fn take(sh: &'a Shared, shard: usize) -> Result<WriteGuard<'a>> {
        let me = sh.me.ok_or(Error::ReadOnly)?;
        let mut patience = Patience::new(sh.lock_timeout);
        let local = lock::lock_local(sh.local.get(shard).ok_or(Error::Busy)?, &mut patience)?;
        let how = lock::lock_writer(&sh.mem, &lock::shard(shard), me, &mut patience)?;
        Ok(WriteGuard {
            sh,
            shard,
            _local: local,
            how,
            patience,
            wr: None,
        })
    }

    /// The writer for this critical section; recovers first if the lock came from a dead owner
    /// or a recovery is still pending. The duty is cleared only once recovery succeeded.
    pub fn writer(&mut self) -> Result<&mut Writer<'a>> {
        if self.wr.is_none() {
            // Built in place: a `Writer` is a few hundred bytes, moved twice it was a tenth
            // of a small `set`.
            let wr = self
                .wr
                .insert(Writer::new(self.sh, self.shard, self.patience)?);
            if self.how == Acquired::Recover {
                let r = wr
                    .recover()
                    .and_then(|()| lock::recovered(&self.sh.mem, &lock::shard(self.shard)));
                if let Err(e) = r {
                    // No writer without its recovery: a later call recovers again, with what
                    // is left of this hold's patience.
                    self.patience = wr.patience();
                    self.wr = None;
                    return Err(e);
                }
                self.how = Acquired::Clean;
            }
        }
        self.wr.as_mut().ok_or(Error::Busy)
    }

    /// [`WriteGuard::writer`] for a read-modify-write: no fast write of the shard runs until
    /// the lock is released (format.md, "Lanes and chunks").
    pub fn exclusive(&mut self) -> Result<&mut Writer<'a>> {
        let wr = self.writer()?;
        wr.quiesce()?;
        Ok(wr)
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // No upkeep on a shard whose recovery did not complete (a panic inside it unwinds
        // through here with the writer already built).
        if self.how == Acquired::Clean
            && let Some(wr) = self.wr.as_mut()
        {
            let _ = wr.housekeep_step();
            let _ = wr.release_gate();
        }
        lock::unlock_writer(&self.sh.mem, &lock::shard(self.shard));
    }
}

/// A read-only view for tools: no writer lock, no process slot, never writes a byte.
///
/// It holds a shared `flock` so that no process that finds itself alone (exclusive `flock`)
/// creates, recovers or truncates the file under it. The `flock` is only tried, never waited
/// for: after about a second of a creator or recoverer holding it exclusively, `Busy`.
#[doc(hidden)]
pub fn open_for_inspection(path: &Path) -> Result<Shmap> {
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut tries = 0;
    loop {
        match file.try_lock_shared() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => return Err(Error::Busy),
            Err(TryLockError::Error(e)) => return Err(Error::io("flock map file", e)),
        }
    }
    let opts = Options::new().read_only(true);
    let sh = Arc::new(open_read_only(path, file, &opts)?);
    Ok(Shmap::from_shared(sh, true))
}

impl Shmap {
    /// The creation time of the map (wall-clock ms).
    pub fn created_ms(&self) -> u64 {
        self.sh.created_ms
    }

    pub(crate) fn shared(&self) -> Result<&Shared> {
        self.live()
    }

    /// The (device, inode) of the file this handle is attached to (tests: which file a handle
    /// ended on when the path was removed and re-created).
    #[doc(hidden)]
    pub fn file_identity(&self) -> (u64, u64) {
        self.sh.key
    }
}

impl Shmap {
    /// Stores `value` under `key` (or, with `None`, removes `key`) only if the condition holds,
    /// atomically across processes: no other write falls between the check and the write.
    /// Returns whether it held. This is what keeps a near cache coherent: a fill that read its
    /// source before an invalidation (which stamped a newer version) cannot put the old value
    /// back; versions live in entries of their own, so the value stays a plain entry.
    /// Fails with [`Error::NotAnInteger`] if a version entry holds something else. A write
    /// whose stamp fails (`Full` in an `evict: false` map) leaves `key` absent (a value it was
    /// storing is taken back out, with the value it replaced), never a value without its stamp.
    pub fn set_if(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        o: SetOptions,
        c: &Condition<'_>,
    ) -> Result<bool> {
        let h = self.hash(key)?;
        self.hash(c.version_key)?;
        if let Some(f) = c.floor_key {
            self.hash(f)?;
        }
        check_flags(o.flags)?;
        let sh = self.live()?;
        let mut hashes = vec![h, self.hash(c.version_key)?];
        if let Some(f) = c.floor_key {
            hashes.push(self.hash(f)?);
        }
        // The shards of all its keys, locked in ascending order (format.md, "Writer lock").
        let mut shards: Vec<usize> = hashes.iter().map(|&x| sh.shard_of(x)).collect();
        shards.sort_unstable();
        shards.dedup();
        let mut guards = Vec::with_capacity(shards.len());
        for &s in &shards {
            guards.push(self.writer_of(s)?);
        }
        let mut ws = Vec::with_capacity(guards.len());
        for g in guards.iter_mut() {
            ws.push(g.exclusive()?);
        }
        let at = shards
            .iter()
            .position(|&s| s == sh.shard_of(h))
            .ok_or(Error::Busy)?;
        let value = match value {
            Some(v) => Some((v, o.flags, ws[at].expiry(o.ttl_ms)?)),
            None => None,
        };
        Writer::set_if(&mut ws, key, h, value, c)
    }
}

// Store primitives for the adapters (Keyv, express-session, rate limiters).
impl Shmap {
    /// The expiry of `key` in wall-clock milliseconds (0 = never), without copying its value;
    /// `None` when absent or expired. A lock-free read, like `get`.
    pub fn expires_at(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.read(key, &mut NoSink)?.map(|(m, _)| m.expires_ms))
    }

    /// Gives `key` a new time to live without changing its value: `ttl_ms` from now, 0 = never
    /// expire (unlike Redis's `PEXPIRE k 0`, which deletes). Atomic under the writer lock;
    /// returns whether the key was present. The record is rewritten as a copy with the new
    /// expiry (records are immutable: see `Writer::retime`).
    pub fn expire(&self, key: &[u8], ttl_ms: u64) -> Result<bool> {
        let h = self.hash(key)?;
        let mut g = self.writer(h)?;
        g.exclusive()?.retime(key, h, ttl_ms)
    }

    /// Adds `delta` to the integer counter at `key` with the choices of [`IncrOptions`]; returns
    /// the new value and expiry from the same atomic step, or `None` (writing nothing) when
    /// the key is absent and `o.create` is false.
    pub fn incr_with(&self, key: &[u8], delta: i64, o: IncrOptions) -> Result<Option<Counter>> {
        let h = self.hash(key)?;
        let mut g = self.writer(h)?;
        g.exclusive()?.incr_with(key, h, delta, o)
    }

    /// Removes each of `keys` under one hold of each of their shards' writer locks (so the
    /// caller bounds the batch); returns how many were present.
    pub fn remove_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<u64> {
        let hashes = keys
            .iter()
            .map(|k| self.hash(k.as_ref()))
            .collect::<Result<Vec<u64>>>()?;
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| self.sh.shard_of(hashes[i]));
        let mut n = 0;
        let mut at = 0;
        // One hold of each shard's lock for that shard's keys, shards in ascending order.
        while at < order.len() {
            let shard = self.sh.shard_of(hashes[order[at]]);
            let mut g = self.writer_of(shard)?;
            let wr = g.writer()?;
            while at < order.len() && self.sh.shard_of(hashes[order[at]]) == shard {
                if at > 0 {
                    crate::failpoints::fp!("remove_many::between_removes");
                }
                let i = order[at];
                n += u64::from(wr.remove(keys[i].as_ref(), hashes[i])?);
                at += 1;
            }
        }
        Ok(n)
    }

    /// Removes every key that starts with `prefix` (every key for an empty one) in batches: a
    /// resumable scan ([`Shmap::scan_from`], lock-free) finds up to `batch` matching keys, one
    /// hold of the writer lock removes them ([`Shmap::remove_many`]), and the scan goes on from
    /// its cursor. No hold is longer than one batch, so other writers get in between batches
    /// however many keys match. Returns how many were present. A key present under the prefix
    /// for the whole call is removed; one written under it during the call may or may not be
    /// (scan semantics).
    pub fn remove_prefix(&self, prefix: &[u8], batch: usize) -> Result<u64> {
        let o = ScanOptions::new().prefix(prefix).limit(batch.max(1));
        let mut at = Some(ScanCursor::START);
        let mut n = 0;
        while let Some(c) = at {
            let (found, next) = self.scan_from(c, &o)?;
            if !found.is_empty() {
                let keys: Vec<&[u8]> = found.iter().map(|e| &e.key[..]).collect();
                n += self.remove_many(&keys)?;
            }
            at = next;
        }
        Ok(n)
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Shmap>();
    check::<Options>();
}
