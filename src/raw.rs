//! The one module that owns the mapping and every raw access to it. All of the crate's
//! `unsafe` lives here.
//!
//! Memory that other processes write is never reached through `&` or `&mut`: every access is an
//! atomic load, store or read-modify-write through a raw pointer into the mapping, after a bounds
//! check against the mapping's length. Byte ranges are copied with relaxed atomic word loads and
//! stores (a byte-wise atomic memcpy), so a racing writer yields stale or mixed bytes that the
//! caller's validation rejects, never undefined behaviour. The module also wraps the syscalls std
//! lacks: `fallocate`, OFD byte-range locks and futexes.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};

/// One `MAP_SHARED` mapping of the file, possibly longer than the file (pages past the end are
/// never touched: callers check offsets against the file length first).
pub(crate) struct Window {
    map: MmapRaw,
    writable: bool,
}

/// The file and its mappings. A mapping is replaced by a longer one when the file outgrows it;
/// old mappings stay mapped until the `Mem` is dropped, so a reader that still holds one is safe.
pub(crate) struct Mem {
    file: File,
    writable: bool,
    current: AtomicPtr<Window>,
    // Boxed so `current` stays valid when the Vec reallocates.
    #[allow(clippy::vec_box)]
    windows: Mutex<Vec<Box<Window>>>,
    known_len: AtomicU64,
    /// Per shard, the generation whose descriptor this process has validated and mapped (0:
    /// none).
    verified_gen: [AtomicU64; 128],
    /// The map's header length (from its superblock; regions start at or after it).
    header_len: AtomicU64,
    /// `log2` of the map's shard count (from its superblock).
    shard_bits: std::sync::atomic::AtomicU32,
}

/// Virtual address space reserved per mapping beyond what the file needs: growth within it
/// needs no remap. Reserving address space costs nothing until pages are touched.
const WINDOW_GRANULE: u64 = 1 << 30;

impl Mem {
    /// Maps `file` with a window of at least `min_window` bytes.
    pub fn new(file: File, writable: bool, min_window: u64) -> Result<Mem> {
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat map file", e))?
            .len();
        let mem = Mem {
            file,
            writable,
            current: AtomicPtr::new(std::ptr::null_mut()),
            windows: Mutex::new(Vec::new()),
            known_len: AtomicU64::new(len),
            verified_gen: [const { AtomicU64::new(0) }; 128],
            header_len: AtomicU64::new(crate::format::HEADER_LEN),
            shard_bits: std::sync::atomic::AtomicU32::new(0),
        };
        mem.remap(min_window.max(len))?;
        Ok(mem)
    }

    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether the mapping is writable.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The current window.
    #[inline]
    pub fn w(&self) -> &Window {
        // SAFETY: `current` always points at a `Box<Window>` owned by `self.windows` (set in
        // `remap` before `new` returns); boxes are never removed or moved until `self` drops.
        unsafe { &*self.current.load(Ordering::Acquire) }
    }

    /// The generation of shard `shard` last validated and mapped by this process.
    #[inline]
    pub fn verified_gen(&self, shard: usize) -> u64 {
        self.verified_gen
            .get(shard)
            .map_or(0, |v| v.load(Ordering::Acquire))
    }

    /// Records that generation `g` of shard `shard` has a valid descriptor and mapped regions.
    pub fn set_verified_gen(&self, shard: usize, g: u64) {
        if let Some(v) = self.verified_gen.get(shard) {
            v.store(g, Ordering::Release);
        }
    }

    /// The map's header length.
    #[inline]
    pub fn header_len(&self) -> u64 {
        self.header_len.load(Ordering::Relaxed)
    }

    /// Records the header length the superblock states.
    pub fn set_header_len(&self, len: u64) {
        self.header_len.store(len, Ordering::Relaxed);
    }

    /// `log2` of the map's shard count.
    #[inline]
    pub fn shard_bits(&self) -> u32 {
        self.shard_bits.load(Ordering::Relaxed)
    }

    /// Records the superblock's shard bits (and the header length that goes with them).
    pub fn set_shard_bits(&self, bits: u32) {
        self.shard_bits.store(bits, Ordering::Relaxed);
        self.set_header_len(crate::format::header_len(bits));
    }

    /// File length as last observed (the file never shrinks while mapped).
    #[inline]
    pub fn file_len(&self) -> u64 {
        self.known_len.load(Ordering::Acquire)
    }

    /// Makes sure `[0, end)` lies within the file and the current window; returns that window.
    /// Errors with `Corrupt` when the file really is shorter.
    pub fn ensure(&self, end: u64) -> Result<&Window> {
        if end > self.file_len() {
            let len = self.refresh_len()?;
            if end > len {
                return Err(Error::corrupt(
                    end,
                    format!("region ends at byte {end}, beyond the file's {len} bytes"),
                ));
            }
        }
        if end > self.w().len() {
            self.remap(end)?;
        }
        Ok(self.w())
    }

    /// Re-reads the file length.
    pub fn refresh_len(&self) -> Result<u64> {
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat map file", e))?
            .len();
        self.known_len.fetch_max(len, Ordering::AcqRel);
        Ok(self.file_len())
    }

    fn remap(&self, need: u64) -> Result<()> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = windows.last()
            && w.len() >= need
        {
            return Ok(());
        }
        let len = need
            .checked_add(WINDOW_GRANULE)
            .and_then(|n| crate::format::round_up(n, WINDOW_GRANULE))
            .filter(|&n| isize::try_from(n).is_ok())
            .ok_or_else(|| Error::corrupt(need, "map length overflows the address space"))?;
        let mut opts = MmapOptions::new();
        opts.len(len as usize);
        let map = if self.writable {
            opts.map_raw(&self.file)
        } else {
            opts.map_raw_read_only(&self.file)
        }
        .map_err(|e| Error::io("mmap map file", e))?;
        let mut boxed = Box::new(Window {
            map,
            writable: self.writable,
        });
        let ptr: *mut Window = &mut *boxed;
        windows.push(boxed);
        self.current.store(ptr, Ordering::Release);
        Ok(())
    }

    /// Reserves `[off, off + len)` in the file (extending it), so later page faults there
    /// cannot fail for lack of space.
    pub fn allocate(&self, off: u64, len: u64) -> Result<()> {
        let end = off
            .checked_add(len)
            .ok_or(Error::NoSpace { requested: len })?;
        // SAFETY: fallocate only reads its integer arguments; the fd is open for our lifetime.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                0,
                off as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => {
                    return Err(Error::NoSpace { requested: len });
                }
                // No fallocate on this file system: extend sparsely (documented risk).
                Some(libc::EOPNOTSUPP) if self.file_len() < end => {
                    self.file
                        .set_len(end)
                        .map_err(|e| Error::io("extend map file", e))?;
                }
                Some(libc::EOPNOTSUPP) => {}
                _ => return Err(Error::io("fallocate map file", err)),
            }
        }
        self.known_len.fetch_max(end, Ordering::AcqRel);
        self.ensure(end).map(|_| ())
    }

    /// Returns the blocks of `[off, off + len)` to the OS; the range reads as zeros afterwards.
    /// Returns false where the file system cannot punch holes.
    pub fn punch(&self, off: u64, len: u64) -> Result<bool> {
        if len == 0 {
            return Ok(true);
        }
        // SAFETY: as in `allocate`; KEEP_SIZE leaves the file length unchanged, so no mapped
        // page goes past the end of the file.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(Error::io("punch hole in map file", err)),
        }
    }

    /// Bytes of storage the file holds (its allocated blocks).
    pub fn allocated_bytes(&self) -> Result<u64> {
        let m = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat map file", e))?;
        Ok(m.blocks() * 512)
    }

    /// Writes `[off, off + len)` back to the file and waits (`msync(MS_SYNC)`).
    pub fn sync(&self, off: u64, len: u64) -> Result<()> {
        let w = self.w();
        let start = off & !(crate::format::PAGE - 1);
        let end = off.saturating_add(len).min(self.file_len()).min(w.len());
        if end <= start {
            return Ok(());
        }
        w.map
            .flush_range(start as usize, (end - start) as usize)
            .map_err(|e| Error::io("msync map file", e))
    }

    /// Takes an OFD lock on the byte at `off` without waiting; true if taken.
    pub fn try_lock_byte(&self, off: u64) -> Result<bool> {
        let mut fl = flock_at(off, libc::F_WRLCK);
        // SAFETY: `fl` is a valid, initialised `struct flock` that lives across the call.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
            _ => Err(Error::io("lock process slot", err)),
        }
    }

    /// Releases an OFD lock taken by [`Mem::try_lock_byte`].
    pub fn unlock_byte(&self, off: u64) {
        let mut fl = flock_at(off, libc::F_UNLCK);
        // SAFETY: as in `try_lock_byte`. Unlocking cannot fail in a way we could act on.
        unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    }

    /// Whether the file lives on tmpfs (RAM), where `msync` buys no durability.
    pub fn is_tmpfs(&self) -> bool {
        // SAFETY: `statfs` is plain integers, all-zero is valid; fstatfs writes only into it.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: the fd is open and `st` is a valid out-pointer for the duration of the call.
        let rc = unsafe { libc::fstatfs(self.file.as_raw_fd(), &mut st) };
        rc == 0 && st.f_type == libc::TMPFS_MAGIC
    }

    /// Whether another open file description holds a lock on the byte at `off`.
    pub fn byte_locked(&self, off: u64) -> Result<bool> {
        let mut fl = flock_at(off, libc::F_WRLCK);
        // SAFETY: as in `try_lock_byte`; F_OFD_GETLK writes only into `fl`.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        if rc != 0 {
            return Err(Error::io(
                "test process slot lock",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
    }
}

fn flock_at(off: u64, kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct of integers, for which all-zero is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = off as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // required by OFD locks
    fl
}

impl Window {
    /// Whether stores are allowed.
    #[inline]
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Length of the mapping in bytes.
    #[inline]
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    #[inline]
    fn check(&self, off: u64, len: u64, align: u64) -> Result<*mut u8> {
        match off.checked_add(len) {
            Some(end) if end <= self.len() && off.is_multiple_of(align) => {
                // SAFETY: `off < end <= len`, so the offset stays inside the mapping.
                Ok(unsafe { self.map.as_mut_ptr().add(off as usize) })
            }
            _ => Err(Error::corrupt(
                off,
                format!("access of {len} bytes beyond the mapping or misaligned"),
            )),
        }
    }

    #[inline]
    fn check_write(&self, off: u64, len: u64, align: u64) -> Result<*mut u8> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        self.check(off, len, align)
    }

    #[inline]
    fn a64(&self, off: u64) -> Result<&AtomicU64> {
        let p = self.check(off, 8, 8)?;
        // SAFETY: `p` is 8-aligned and in bounds of a live mapping that outlives `&self`;
        // shared memory is only ever accessed atomically, so no non-atomic access races.
        Ok(unsafe { AtomicU64::from_ptr(p.cast()) })
    }

    #[inline]
    fn a64w(&self, off: u64) -> Result<&AtomicU64> {
        let p = self.check_write(off, 8, 8)?;
        // SAFETY: as in `a64`, and the mapping is writable.
        Ok(unsafe { AtomicU64::from_ptr(p.cast()) })
    }

    #[inline]
    fn a32(&self, off: u64) -> Result<&AtomicU32> {
        let p = self.check(off, 4, 4)?;
        // SAFETY: as in `a64`, for a 4-aligned word.
        Ok(unsafe { AtomicU32::from_ptr(p.cast()) })
    }

    #[inline]
    fn a32w(&self, off: u64) -> Result<&AtomicU32> {
        let p = self.check_write(off, 4, 4)?;
        // SAFETY: as in `a64`, for a 4-aligned word in a writable mapping.
        Ok(unsafe { AtomicU32::from_ptr(p.cast()) })
    }

    /// Atomic 8-byte load.
    #[inline]
    pub fn load_u64(&self, off: u64, o: Ordering) -> Result<u64> {
        Ok(self.a64(off)?.load(o))
    }

    /// `N` consecutive atomic 8-byte loads (relaxed) behind one bounds check: a record header
    /// read as words, not bytes, so that its copy moves whole words (a byte-wise copy into a
    /// buffer, then word-sized reads of it, stalls on store forwarding).
    #[inline]
    pub fn load_words<const N: usize>(&self, off: u64) -> Result<[u64; N]> {
        let p = self.check(off, 8 * N as u64, 8)?;
        let mut out = [0u64; N];
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: `p + 8 i` is 8-aligned (`off` is, checked) and its 8 bytes are in bounds
            // (all `8 N` were checked) of a live mapping; shared memory is only ever accessed
            // atomically, so no non-atomic access races.
            *o = unsafe { AtomicU64::from_ptr(p.add(8 * i).cast::<u64>()) }.load(Ordering::Relaxed);
        }
        Ok(out)
    }

    /// Atomic 8-byte store.
    #[inline]
    pub fn store_u64(&self, off: u64, v: u64, o: Ordering) -> Result<()> {
        self.a64w(off)?.store(v, o);
        Ok(())
    }

    /// Atomic 8-byte compare-and-swap; `Ok(Err(actual))` when the value differed.
    #[inline]
    pub fn cas_u64(&self, off: u64, old: u64, new: u64) -> Result<std::result::Result<u64, u64>> {
        Ok(self
            .a64w(off)?
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire))
    }

    /// Asks for the line at `off` with intent to write: a line another core also holds then
    /// comes over once, exclusive, rather than shared for a load and again for a store.
    #[inline]
    pub fn prefetch_write(&self, off: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Ok(p) = self.check(off, 8, 8) {
            // SAFETY: a prefetch is a hint that never faults nor changes memory; `p` is in
            // bounds of the live mapping anyway (checked).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(
                    p.cast::<i8>(),
                )
            };
        }
    }

    /// Atomic 8-byte swap, sequentially consistent: one side of a store-then-load handshake
    /// (format.md, "Lanes and chunks"), whose other side loads with `SeqCst` too.
    #[inline]
    pub fn swap_u64(&self, off: u64, v: u64) -> Result<u64> {
        Ok(self.a64w(off)?.swap(v, Ordering::SeqCst))
    }

    /// Atomic 8-byte compare-and-swap, sequentially consistent (see [`Window::swap_u64`]).
    #[inline]
    pub fn cas_u64_seqcst(
        &self,
        off: u64,
        old: u64,
        new: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        Ok(self
            .a64w(off)?
            .compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst))
    }

    /// Atomic 8-byte add; returns the previous value.
    #[inline]
    pub fn add_u64(&self, off: u64, v: u64) -> Result<u64> {
        Ok(self.a64w(off)?.fetch_add(v, Ordering::AcqRel))
    }

    /// Atomic 8-byte subtract (saturating at zero); returns the previous value.
    #[inline]
    pub fn sub_u64(&self, off: u64, v: u64) -> Result<u64> {
        let a = self.a64w(off)?;
        Ok(a.fetch_update(Ordering::AcqRel, Ordering::Acquire, |x| {
            Some(x.saturating_sub(v))
        })
        .unwrap_or_else(|x| x))
    }

    /// Atomic 4-byte load.
    #[inline]
    pub fn load_u32(&self, off: u64, o: Ordering) -> Result<u32> {
        Ok(self.a32(off)?.load(o))
    }

    /// Atomic 4-byte store.
    #[inline]
    pub fn store_u32(&self, off: u64, v: u32, o: Ordering) -> Result<()> {
        self.a32w(off)?.store(v, o);
        Ok(())
    }

    /// Atomic 4-byte swap.
    #[inline]
    pub fn swap_u32(&self, off: u64, v: u32) -> Result<u32> {
        Ok(self.a32w(off)?.swap(v, Ordering::AcqRel))
    }

    /// Atomic 4-byte compare-and-swap.
    #[inline]
    pub fn cas_u32(&self, off: u64, old: u32, new: u32) -> Result<std::result::Result<u32, u32>> {
        Ok(self
            .a32w(off)?
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire))
    }

    /// Copies `dst.len()` bytes at `off` out of the mapping with relaxed atomic loads.
    #[inline]
    pub fn read(&self, off: u64, dst: &mut [u8]) -> Result<()> {
        let p = self.check(off, dst.len() as u64, 1)?;
        // SAFETY: `[p, p + dst.len())` is in bounds (checked above) and only accessed atomically.
        unsafe { atomic_load_bytes(p, dst) };
        Ok(())
    }

    /// Copies `src` into the mapping at `off` with relaxed atomic stores.
    #[inline]
    pub fn write(&self, off: u64, src: &[u8]) -> Result<()> {
        let p = self.check_write(off, src.len() as u64, 1)?;
        // SAFETY: as in `read`, and the mapping is writable.
        unsafe { atomic_store_bytes(p, src) };
        Ok(())
    }

    /// Zeroes `[off, off + len)` with [`Window::write`] (an index region may hold an older
    /// generation's bytes).
    pub fn write_zeros(&self, off: u64, len: u64) -> Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        // The whole range is in bounds (so `off + len` does not overflow) before any store.
        self.check_write(off, len, 1)?;
        let end = off + len;
        let mut at = off;
        while at < end {
            let n = (end - at).min(ZEROS.len() as u64);
            self.write(at, &ZEROS[..n as usize])?;
            at += n;
        }
        Ok(())
    }

    /// Sleeps while the 4-byte word at `off` equals `expected`, at most `timeout` (a shared,
    /// not process-private, futex: waiters in other processes are woken too).
    pub fn futex_wait(&self, off: u64, expected: u32, timeout: Duration) -> Result<()> {
        let p = self.check(off, 4, 4)?;
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `p` is an aligned, mapped 4-byte word; the kernel only reads it and `ts`.
        // EAGAIN (value changed), EINTR and ETIMEDOUT are all "go and look again".
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                p,
                libc::FUTEX_WAIT,
                expected,
                &ts as *const libc::timespec,
            )
        };
        Ok(())
    }

    /// Wakes every waiter on the 4-byte word at `off`.
    pub fn futex_wake(&self, off: u64) -> Result<()> {
        let p = self.check(off, 4, 4)?;
        // SAFETY: as in `futex_wait`; FUTEX_WAKE does not touch the word.
        unsafe { libc::syscall(libc::SYS_futex, p, libc::FUTEX_WAKE, i32::MAX) };
        Ok(())
    }
}

/// Milliseconds of `CLOCK_MONOTONIC`: one clock for every process of the machine (it counts
/// from boot and never steps), so a timestamp one process stores in the map another can compare
/// with its own reading. Waits and deadlines in the map's control block use it.
pub(crate) fn monotonic_ms() -> u64 {
    clock_ms(libc::CLOCK_MONOTONIC)
}

/// [`monotonic_ms`] at the kernel tick's resolution (1-10 ms, never ahead of it): a few ns
/// instead of ~25, for the timestamp every lock acquisition stores (`lock_since_ms`, read only
/// to say how long a holder has held the lock).
pub(crate) fn monotonic_coarse_ms() -> u64 {
    clock_ms(libc::CLOCK_MONOTONIC_COARSE)
}

/// Wall-clock ms at the kernel tick's resolution, never ahead of the exact clock (the time of
/// the last tick): a few ns instead of ~25-40. Read on every hit of an entry with a TTL, which
/// needs the exact clock only when the entry expires within [`COARSE_SLACK_MS`] of it.
pub fn realtime_coarse_ms() -> u64 {
    clock_ms(libc::CLOCK_REALTIME_COARSE)
}

/// How far behind the exact wall clock [`realtime_coarse_ms`] may be, with a wide margin: a
/// tick is 1-10 ms (HZ 100-1000).
pub const COARSE_SLACK_MS: u64 = 50;

fn clock_ms(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call; CLOCK_MONOTONIC and the
    // COARSE clocks always exist on Linux (since 2.6.32), so the call cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec as u64 / 1_000_000)
}

/// The effective uid of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// Bumped in the child after every `fork()` (by a `pthread_atfork` handler): an attachment made
/// before the fork sees a different value and refuses to act (see `attach::Shared::forked`).
static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// Registers the fork handler when the library is loaded (an ELF constructor), before any
/// thread of this process can attach or fork: no `Once` is involved, whose state a fork in
/// the middle of a first registration would leave "running" in the child forever.
extern "C" fn register_fork_handler() {
    if FORK_HANDLER_REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: the handler is a plain `extern "C"` function that only does an atomic add
    // (async-signal-safe, as a child handler after a multi-threaded fork must be); the other
    // two handlers are none.
    unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
}

#[used]
// SAFETY: `.init_array` holds constructors the loader runs once, in order, before `main` (or at
// `dlopen` for the Node addon); the entry is a function pointer of the type the loader calls
// (`extern "C" fn()`), and the function only registers a fork handler.
#[unsafe(link_section = ".init_array")]
static REGISTER_FORK_HANDLER: extern "C" fn() = register_fork_handler;

static FORK_HANDLER_REGISTERED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Makes sure the fork handler is registered (called when an attachment is made). The
/// reference keeps the constructor's object linked in; should the loader not have run it,
/// this registers it now.
pub(crate) fn ensure_fork_handler() {
    if !FORK_HANDLER_REGISTERED.load(Ordering::Acquire) {
        std::hint::black_box(REGISTER_FORK_HANDLER)();
    }
}

/// A mutex over this process's own (never shared) state, such as the attachment registry,
/// that a child forked while another thread held it can still take. After `fork()` only the
/// forking thread exists in the child: a lock held by another thread at that moment would stay
/// held forever, and the child's next `Shmap::open` would hang. The lock word records the fork
/// epoch of its holder, so the child recognises such a lock as stale, takes it over and starts
/// from a fresh value (the old one, perhaps half-updated by the vanished thread, is leaked,
/// never dropped). No fork handler waits for the lock, so `fork()` is never delayed by it.
pub(crate) struct ForkMutex<T> {
    /// 0: free; otherwise 1 + the fork epoch of the process whose thread holds it.
    word: AtomicU64,
    value: std::cell::UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `ForkGuard`, and at most one guard exists at a
// time in a process (the word is taken by compare-and-swap, and a stale word belongs to a thread
// that does not exist in this process); so sharing the mutex is as safe as `Mutex<T>`'s.
unsafe impl<T: Send> Sync for ForkMutex<T> {}

/// Exclusive access to a [`ForkMutex`]'s value; unlocks when dropped.
pub(crate) struct ForkGuard<'a, T> {
    m: &'a ForkMutex<T>,
}

impl<T: Default> ForkMutex<T> {
    /// A free mutex over `value`.
    pub const fn new(value: T) -> ForkMutex<T> {
        ForkMutex {
            word: AtomicU64::new(0),
            value: std::cell::UnsafeCell::new(value),
        }
    }

    /// Takes the lock, waiting while another thread of this process holds it (the holders
    /// keep it for one attachment's open, which is itself bounded).
    pub fn lock(&self) -> ForkGuard<'_, T> {
        let mine = fork_epoch().wrapping_add(1).max(1);
        let mut nap = Duration::from_micros(20);
        let mut spins = 0u32;
        loop {
            match self
                .word
                .compare_exchange(0, mine, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return ForkGuard { m: self },
                Err(cur) if cur != mine => {
                    // Held by a thread of the process this one was forked from: it does not
                    // exist here and will never unlock.
                    if self
                        .word
                        .compare_exchange(cur, mine, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        // SAFETY: we hold the lock (no guard exists: the word was stale), so
                        // this is the only access to the value. The old value is moved out and
                        // leaked: the vanished thread may have left it half-updated.
                        std::mem::forget(std::mem::take(unsafe { &mut *self.value.get() }));
                        return ForkGuard { m: self };
                    }
                }
                Err(_) => {
                    if spins < 50 {
                        spins += 1;
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(nap);
                        nap = (nap * 2).min(Duration::from_millis(1));
                    }
                }
            }
        }
    }
}

impl<T> std::ops::Deref for ForkGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no other reference to the value exists.
        unsafe { &*self.m.value.get() }
    }
}

impl<T> std::ops::DerefMut for ForkGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this the only reference.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T> Drop for ForkGuard<'_, T> {
    fn drop(&mut self) {
        self.m.word.store(0, Ordering::Release);
    }
}

/// The current fork epoch (one relaxed load).
#[inline]
pub(crate) fn fork_epoch() -> u64 {
    FORK_EPOCH.load(Ordering::Relaxed)
}

/// Copies of at least this many bytes use `rep movsb` on x86_64 (fast strings); shorter ones
/// the atomic word loop, whose start-up cost is lower.
#[cfg(target_arch = "x86_64")]
const BULK: usize = 256;

/// A racy bulk copy as one opaque `rep movsb`: the compiler cannot assume anything about the
/// bytes (no data-race UB at the language level), and the hardware copies byte by byte in
/// effect, which is a byte-wise atomic memcpy (P1478) at x86's memory model. The same technique
/// as the `atomic-memcpy` crate's inline assembly.
///
/// # Safety
/// `src` must be valid for `n` bytes of reads and `dst` for `n` bytes of writes, and the two
/// ranges must not overlap.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn rep_movsb(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: per the caller: both ranges are valid and disjoint. The direction flag is clear
    // on entry to inline asm (the ABI guarantees it), so the copy runs forwards; `rep movsb`
    // touches no flags and no stack. Without `nomem`, the block is a compiler barrier for
    // memory, so the acquire fence callers issue afterwards orders it like atomic loads.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Byte-wise atomic copy out of shared memory: relaxed `u64` loads for aligned words,
/// relaxed `u8` loads at the edges (or one `rep movsb` for bulk on x86_64).
///
/// # Safety
/// `src .. src + dst.len()` must be valid for reads and only ever accessed atomically.
#[inline]
unsafe fn atomic_load_bytes(src: *const u8, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if dst.len() >= BULK {
        // SAFETY: `src` is valid for `dst.len()` bytes per the caller; `dst` is a private
        // buffer, disjoint from the mapping.
        unsafe { rep_movsb(src, dst.as_mut_ptr(), dst.len()) };
        return;
    }
    let lead = (src.align_offset(8)).min(dst.len());
    let (head, rest) = dst.split_at_mut(lead);
    for (i, b) in head.iter_mut().enumerate() {
        // SAFETY: in bounds per the caller; AtomicU8 has no alignment requirement.
        *b = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
    }
    // SAFETY: `lead <= dst.len()`, so the pointer stays in bounds.
    let mut p = unsafe { src.add(lead) };
    let mut words = rest.chunks_exact_mut(8);
    for w in &mut words {
        // SAFETY: `p` is 8-aligned (advanced by `lead`, then by 8) and 8 bytes are in bounds.
        let v = unsafe { AtomicU64::from_ptr(p.cast::<u64>().cast_mut()) }.load(Ordering::Relaxed);
        w.copy_from_slice(&v.to_ne_bytes());
        // SAFETY: stays within `src + dst.len()`.
        p = unsafe { p.add(8) };
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        // SAFETY: in bounds: the remainder is the last `< 8` bytes of the range.
        *b = unsafe { AtomicU8::from_ptr(p.add(i).cast_mut()) }.load(Ordering::Relaxed);
    }
}

/// Byte-wise atomic copy into shared memory; the mirror of [`atomic_load_bytes`].
///
/// # Safety
/// `dst .. dst + src.len()` must be valid for writes and only ever accessed atomically.
#[inline]
unsafe fn atomic_store_bytes(dst: *mut u8, src: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if src.len() >= BULK {
        // SAFETY: `dst` is valid for `src.len()` bytes of writes per the caller; `src` is a
        // private buffer, disjoint from the mapping.
        unsafe { rep_movsb(src.as_ptr(), dst, src.len()) };
        return;
    }
    let lead = (dst.align_offset(8)).min(src.len());
    let (head, rest) = src.split_at(lead);
    for (i, b) in head.iter().enumerate() {
        // SAFETY: in bounds per the caller.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(*b, Ordering::Relaxed);
    }
    // SAFETY: `lead <= src.len()`.
    let mut p = unsafe { dst.add(lead) };
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        // SAFETY: `p` is 8-aligned and 8 bytes are in bounds.
        unsafe { AtomicU64::from_ptr(p.cast::<u64>()) }.store(v, Ordering::Relaxed);
        // SAFETY: stays within `dst + src.len()`.
        p = unsafe { p.add(8) };
    }
    for (i, b) in words.remainder().iter().enumerate() {
        // SAFETY: in bounds: the last `< 8` bytes of the range.
        unsafe { AtomicU8::from_ptr(p.add(i)) }.store(*b, Ordering::Relaxed);
    }
}

// SAFETY: a `Window` is a mapping of shared memory reached only through atomics and bounds-checked
// raw pointers; nothing in it is tied to a thread.
unsafe impl Send for Window {}
// SAFETY: as above; all accessors take `&self` and are atomic.
unsafe impl Sync for Window {}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(len: u64) -> (tempfile::NamedTempFile, Mem) {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(len).unwrap();
        let file = f.reopen().unwrap();
        let m = Mem::new(file, true, len).unwrap();
        (f, m)
    }

    #[test]
    fn byte_copies_round_trip_at_every_alignment() {
        let (_f, m) = mem(4096);
        let w = m.w();
        let src: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for off in 0..9 {
            for len in [0, 1, 7, 8, 9, 31, 100, 255, 256, 257, 1000] {
                w.write(off, &src[..len]).unwrap();
                let mut dst = vec![0xAA; len];
                w.read(off, &mut dst).unwrap();
                assert_eq!(dst, &src[..len], "off {off} len {len}");
            }
        }
    }

    #[test]
    fn out_of_bounds_and_misaligned_are_errors() {
        let (_f, m) = mem(4096);
        let w = m.w();
        assert!(w.load_u64(w.len() - 4, Ordering::Relaxed).is_err());
        assert!(w.load_u64(3, Ordering::Relaxed).is_err());
        assert!(w.load_u64(u64::MAX - 2, Ordering::Relaxed).is_err());
        let mut buf = [0u8; 16];
        assert!(w.read(w.len() - 8, &mut buf).is_err());
        assert!(w.load_u64(8, Ordering::Relaxed).is_ok());
        // `load_words` checks all its words at once, and their alignment.
        assert!(w.load_words::<3>(w.len() - 16).is_err());
        assert!(w.load_words::<3>(4).is_err());
        assert!(w.load_words::<3>(u64::MAX - 7).is_err());
        w.write(64, &(1..=24).collect::<Vec<u8>>()).unwrap();
        let words = w.load_words::<3>(64).unwrap();
        let bytes: Vec<u8> = words.iter().flat_map(|x| x.to_ne_bytes()).collect();
        assert_eq!(
            bytes,
            (1..=24).collect::<Vec<u8>>(),
            "the bytes in file order"
        );
    }

    #[test]
    fn ensure_refuses_regions_beyond_the_file() {
        let (_f, m) = mem(8192);
        assert!(m.ensure(8192).is_ok());
        assert!(matches!(m.ensure(8193), Err(Error::Corrupt { .. })));
        m.allocate(8192, 4096).unwrap();
        assert!(m.ensure(12288).is_ok());
    }

    #[test]
    fn remap_keeps_old_windows_valid() {
        let (_f, m) = mem(4096);
        let old = m.w() as *const Window;
        m.w().store_u64(0, 7, Ordering::Relaxed).unwrap();
        let big = m.w().len() + 4096;
        m.allocate(0, big).unwrap();
        assert_ne!(old, m.w() as *const Window);
        assert_eq!(m.w().load_u64(0, Ordering::Relaxed).unwrap(), 7);
        // SAFETY (test): old windows live as long as `m`.
        #[allow(clippy::undocumented_unsafe_blocks)]
        let old = unsafe { &*old };
        assert_eq!(old.load_u64(0, Ordering::Relaxed).unwrap(), 7);
    }

    #[test]
    fn read_only_windows_refuse_writes() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(4096).unwrap();
        let m = Mem::new(File::open(f.path()).unwrap(), false, 4096).unwrap();
        assert!(matches!(
            m.w().store_u64(0, 1, Ordering::Relaxed),
            Err(Error::ReadOnly)
        ));
        assert!(matches!(m.w().write(0, b"x"), Err(Error::ReadOnly)));
        assert_eq!(m.w().load_u64(0, Ordering::Relaxed).unwrap(), 0);
    }

    #[test]
    fn ofd_byte_locks_are_per_open_file() {
        let (f, m) = mem(4096);
        let other = Mem::new(f.reopen().unwrap(), true, 4096).unwrap();
        assert!(m.try_lock_byte(100).unwrap());
        assert!(other.byte_locked(100).unwrap());
        assert!(!other.try_lock_byte(100).unwrap());
        m.unlock_byte(100);
        assert!(!other.byte_locked(100).unwrap());
        assert!(other.try_lock_byte(100).unwrap());
    }
}
