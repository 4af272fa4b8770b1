//! Cross-process locking that survives `kill -9` and `SIGSTOP`: the process table, the writer
//! lock, and the two hints (a starving writer's, a starving reader's) that keep waits fair (see
//! format.md, "Writer lock").
//!
//! A process is identified by its process-table slot and that slot's incarnation; it holds the
//! slot by an OFD lock on one byte, which the kernel drops when the process dies. So "is the
//! lock owner alive?" has an exact answer, immune to pid reuse, and a dead owner's lock is taken
//! over by compare-and-swap. Waiters sleep on shared futexes with a timeout, re-test liveness on
//! every wake-up, and give up once the hold's [`Patience`] (one `lock_timeout` for all the waits
//! of one hold) is spent (a live owner keeps its lock: it may resume mid-write).
//!
//! Kill-safety: every piece of shared lock state is one atomic word, changed by one store or
//! read-modify-write, so a process killed between any two instructions leaves either the old or
//! the new word. The hints are deadlines on the shared monotonic clock, not counts: one left by a
//! dead or stopped process expires by itself within milliseconds.

use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::failpoints::fp;
use crate::format::{
    LOCK_INC_MASK, LOCK_WAITERS, PROC_SLOTS, gctl, proc_lock_byte, proc_off, sctl,
};
use crate::raw::{Mem, monotonic_coarse_ms, monotonic_ms};

const PID: usize = std::mem::offset_of!(crate::format::ProcSlot, pid);
const INC: usize = std::mem::offset_of!(crate::format::ProcSlot, incarnation);

/// A waiter that has waited this long asks newcomers to step back.
const STARVING_AFTER: Duration = Duration::from_millis(2);
/// How far ahead a starving writer's deadline is set (refreshed on each wake-up).
const POLITE_MS: u64 = 5;
/// How far ahead a starving reader's quiet request is set.
pub(crate) const QUIET_MS: u64 = 1;
/// Total time one critical section waits for quiet requests: the most a reader, however many,
/// can delay a writer.
pub(crate) const QUIET_BUDGET: Duration = Duration::from_millis(2);

/// What one hold of a writer lock may wait for other processes, in all: the lock itself, this
/// process's other threads, lanes inside a fast write, the placement lock. One lock timeout for
/// the time spent waiting (not the hold's own work in between), so that waits met one after
/// another (a stopped lock holder, then a stopped fast writer) do not add up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Patience {
    timeout: Duration,
    /// What the hold's finished waits took.
    spent: Duration,
}

impl Patience {
    pub(crate) fn new(timeout: Duration) -> Patience {
        Patience {
            timeout,
            spent: Duration::ZERO,
        }
    }

    /// One wait: timed from its first [`Wait::waited`] (an uncontended lock reads no clock)
    /// until it is dropped, when its time counts as spent.
    pub(crate) fn wait(&mut self) -> Wait<'_> {
        Wait {
            p: self,
            start: None,
        }
    }
}

/// One wait of a hold, drawing on its [`Patience`].
pub(crate) struct Wait<'a> {
    p: &'a mut Patience,
    start: Option<Instant>,
}

impl Wait<'_> {
    /// This wait's time so far (the first call starts its clock).
    fn own(&mut self) -> Duration {
        self.start.get_or_insert_with(Instant::now).elapsed()
    }

    /// What the hold has waited so far, this wait included.
    pub(crate) fn waited(&mut self) -> Duration {
        self.p.spent.saturating_add(self.own())
    }

    /// The hold's budget is spent.
    pub(crate) fn spent(&mut self) -> bool {
        self.waited() >= self.p.timeout
    }

    /// What is left of the hold's budget.
    pub(crate) fn left(&mut self) -> Duration {
        self.p.timeout.saturating_sub(self.waited())
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.start {
            self.p.spent = self.p.spent.saturating_add(t.elapsed());
        }
    }
}

/// This process's claim on a process-table slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proc {
    pub slot: u32,
    pub incarnation: u32,
}

impl Proc {
    /// The writer-lock word naming this process.
    pub fn word(self) -> u32 {
        (self.slot << 20) | self.incarnation
    }
}

/// Splits a writer-lock word into (slot, incarnation).
pub(crate) fn owner_of(word: u32) -> (u32, u32) {
    (((word & !LOCK_WAITERS) >> 20) & 0x3FF, word & LOCK_INC_MASK)
}

/// Claims a free process slot: the first whose byte we can OFD-lock.
pub(crate) fn claim(mem: &Mem) -> Result<Proc> {
    let pid = std::process::id();
    let start = pid % PROC_SLOTS;
    for i in 0..PROC_SLOTS {
        let slot = (start + i) % PROC_SLOTS;
        if !mem.try_lock_byte(proc_lock_byte(slot))? {
            continue;
        }
        let w = mem.w();
        let old = w.load_u32(proc_off(slot, INC), Ordering::Acquire)?;
        let mut inc = old.wrapping_add(1) & LOCK_INC_MASK;
        if inc == 0 {
            inc = 1;
        }
        // The new incarnation first: a writer-lock word or lease naming the dead predecessor
        // no longer matches, whatever the pid says.
        w.store_u32(proc_off(slot, INC), inc, Ordering::Release)?;
        fp!("claim::between_incarnation_and_pid");
        w.store_u32(proc_off(slot, PID), pid, Ordering::Release)?;
        return Ok(Proc {
            slot,
            incarnation: inc,
        });
    }
    Err(Error::TooManyProcesses)
}

/// Gives the slot back (on clean detach).
pub(crate) fn release(mem: &Mem, me: Proc) {
    let w = mem.w();
    let _ = w.store_u32(proc_off(me.slot, PID), 0, Ordering::Release);
    fp!("release::between_pid_and_unlock");
    mem.unlock_byte(proc_lock_byte(me.slot));
}

/// Whether the process named by slot `slot` with `incarnation` is alive.
pub(crate) fn alive(mem: &Mem, me: Option<Proc>, slot: u32, incarnation: u32) -> Result<bool> {
    if let Some(me) = me
        && me.slot == slot
    {
        return Ok(me.incarnation == incarnation);
    }
    if !mem.byte_locked(proc_lock_byte(slot))? {
        return Ok(false);
    }
    let now = mem.w().load_u32(proc_off(slot, INC), Ordering::Acquire)?;
    Ok(now == incarnation)
}

/// Spin rounds before a waiter's first yield, and the `pause`s in each (about 30-50 ns apiece
/// on x86; the lock word is read after every eighth), together a few microseconds. Measured
/// with `node` writers on 2 cores (4 shards): 4 writers 1.53-1.56M sets/s -> 1.73-1.77M, 2
/// writers 1.64-1.68M -> 1.75M, `sched_yield`s in the adapters' app 1,088 -> 317 in 3 s; reading
/// after every eighth `pause` rather than each, one shard: 2 writers 0.97-1.02M -> 1.10-1.13M.
const SPIN_ROUNDS: u32 = 4;
const SPIN_READS: u32 = 32;

/// Backoff for futex waits: short first, then up to 50 ms between liveness checks.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_micros(200))
    }
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_millis(50));
        d
    }
}

/// The words of one lock: its lock word and the recovery duty, holder's start time and the two
/// hints that go with it. Every function here takes the set it works on, so the same protocol
/// serves more than one lock (format version 3's per-shard writer locks and its placement lock,
/// format.md); each shard has one set ([`shard`]) and the placement lock has [`PLACE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockWords {
    /// The lock word (`0`, or `WAITERS | slot << 20 | incarnation`).
    pub lock: u64,
    /// `1` while a recovery is owed.
    pub recovery: u64,
    /// When the holder took the lock (monotonic ms).
    pub since: u64,
    /// A starving writer's deadline.
    pub starving: u64,
    /// A starving reader's deadline.
    pub quiet: u64,
}

/// Shard `i`'s writer lock (format.md, "Writer lock").
pub(crate) const fn shard(i: usize) -> LockWords {
    LockWords {
        lock: sctl!(i, writer_lock),
        recovery: sctl!(i, recovery),
        since: sctl!(i, lock_since_ms),
        starving: sctl!(i, starving_until_ms),
        quiet: sctl!(i, quiet_until_ms),
    }
}

/// The placement lock (global; format.md, "Placement lock").
pub(crate) const PLACE: LockWords = LockWords {
    lock: gctl!(place_lock),
    recovery: gctl!(place_recovery),
    since: gctl!(place_since_ms),
    starving: gctl!(place_starving_until_ms),
    quiet: gctl!(place_quiet_until_ms),
};

/// How the writer lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Free or from a live owner, and no recovery is pending.
    Clean,
    /// Taken over from a dead owner, or a recovery is still pending (`recovery` is set): the
    /// caller must recover, then call [`recovered`].
    Recover,
}

/// A deadline on the shared clock that is still ahead of `now` (and not absurdly far ahead:
/// a word from another time namespace, or garbage, is ignored).
fn pending(deadline: u64, now: u64, horizon: u64) -> Option<u64> {
    (deadline > now && deadline - now <= horizon).then(|| deadline - now)
}

/// Steps back while a starving waiter's deadline is pending, at most [`POLITE_MS`].
fn be_polite(mem: &Mem, lw: &LockWords) -> Result<()> {
    let w = mem.w();
    let until = w.load_u64(lw.starving, Ordering::Acquire)?;
    if until == 0 {
        return Ok(()); // the common case: no clock read
    }
    if let Some(ms) = pending(until, monotonic_ms(), POLITE_MS) {
        let t = Instant::now();
        let budget = Duration::from_millis(ms);
        while t.elapsed() < budget && w.load_u32(lw.lock, Ordering::Acquire)? != 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    Ok(())
}

/// This process's mutex for a lock (another thread of this process may hold it while it
/// waits for another process), waited for at most what is left of `patience`.
pub(crate) fn lock_local<'a>(
    local: &'a Mutex<()>,
    patience: &mut Patience,
) -> Result<MutexGuard<'a, ()>> {
    let mut nap = Duration::from_micros(20);
    let mut spins = 0u32;
    let mut wait = patience.wait();
    loop {
        match local.try_lock() {
            Ok(g) => return Ok(g), // the common case, at once: no clock read
            Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
        // Critical sections are microseconds: yield first, sleep only if it lasts.
        if spins < 64 {
            spins += 1;
            std::thread::yield_now();
            continue;
        }
        if wait.spent() {
            return Err(Error::LockTimeout {
                waited_ms: wait.waited().as_millis() as u64,
                holder_pid: Some(std::process::id()),
                held_ms: None,
            });
        }
        std::thread::sleep(nap.min(wait.left()));
        nap = (nap * 2).min(Duration::from_millis(1));
    }
}

/// Takes the writer lock, waiting for a live owner at most what is left of `patience`.
pub(crate) fn lock_writer(
    mem: &Mem,
    lw: &LockWords,
    me: Proc,
    patience: &mut Patience,
) -> Result<Acquired> {
    let w = mem.w();
    let off = lw.lock;
    let mine = me.word();
    be_polite(mem, lw)?;
    let mut starving: Option<u64> = None;
    let mut backoff = Backoff::new();
    let mut spins = 0u32;
    let mut wait = patience.wait();
    let got = loop {
        let cur = match w.cas_u32(off, 0, mine)? {
            Ok(_) => break Acquired::Clean,
            Err(cur) => cur,
        };
        if spins < 100 {
            spins += 1;
            // A critical section is about a microsecond: first wait that long on the core,
            // reading (not writing) the lock's line, so that a holder running on another core
            // is not answered with a context switch; then yield now and then.
            if spins <= SPIN_ROUNDS {
                for i in 0..SPIN_READS {
                    std::hint::spin_loop();
                    // Every eighth `pause` only: each read pulls the line from the holder,
                    // which writes its counters on that line too.
                    if i % 8 == 7 && w.load_u32(off, Ordering::Relaxed)? == 0 {
                        break;
                    }
                }
            } else {
                std::hint::spin_loop();
                if spins.is_multiple_of(10) {
                    std::thread::yield_now();
                }
            }
            continue;
        }
        let (slot, inc) = owner_of(cur);
        if !alive(mem, Some(me), slot, inc)? {
            // The duty to recover is recorded before the takeover, and cleared only once a
            // recovery succeeded: whoever holds the lock next, after any kill, recovers.
            w.store_u32(lw.recovery, 1, Ordering::Release)?;
            fp!("lock_writer::between_recovery_flag_and_takeover");
            // Keep WAITERS so that our unlock wakes whoever else sleeps here.
            if w.cas_u32(off, cur, mine | (cur & LOCK_WAITERS))?.is_ok() {
                break Acquired::Recover;
            }
            continue;
        }
        // The clock is read only once the lock turned out to be taken: most acquisitions are not.
        if wait.spent() {
            if let Some(mine) = starving {
                // Leave no trace: withdraw our deadline unless someone replaced it.
                let _ = w.cas_u64(lw.starving, mine, 0)?;
            }
            return Err(timeout_error(mem, lw, cur, wait.waited()));
        }
        // Starving on this lock word: this wait's time, not the hold's.
        if wait.own() > STARVING_AFTER {
            let until = monotonic_ms() + POLITE_MS;
            w.store_u64(lw.starving, until, Ordering::Release)?;
            starving = Some(until);
        }
        if cur & LOCK_WAITERS == 0 && w.cas_u32(off, cur, cur | LOCK_WAITERS)?.is_err() {
            continue;
        }
        let nap = backoff.next().min(wait.left());
        w.futex_wait(off, cur | LOCK_WAITERS, nap.max(Duration::from_micros(100)))?;
    };
    fp!("lock_writer::between_cas_and_since");
    w.store_u64(lw.since, monotonic_coarse_ms(), Ordering::Release)?;
    if let Some(mine) = starving {
        let _ = w.cas_u64(lw.starving, mine, 0)?;
    }
    if got == Acquired::Clean && w.load_u32(lw.recovery, Ordering::Acquire)? != 0 {
        return Ok(Acquired::Recover);
    }
    Ok(got)
}

/// The lock-timeout error for a wait on the lock word `word`: who holds it, since when.
fn timeout_error(mem: &Mem, lw: &LockWords, word: u32, waited: Duration) -> Error {
    let (slot, _) = owner_of(word);
    let w = mem.w();
    let pid = w.load_u32(proc_off(slot, PID), Ordering::Acquire).ok();
    let since = w.load_u64(lw.since, Ordering::Acquire).unwrap_or(0);
    let now = monotonic_ms();
    Error::LockTimeout {
        waited_ms: waited.as_millis() as u64,
        holder_pid: pid.filter(|&p| p != 0),
        held_ms: (since != 0 && since <= now).then(|| now - since),
    }
}

/// Owes a recovery: the holder failed with an error in the middle of a sequence of stores
/// (after a publication), which leaves what a kill there would; the next holder recovers.
pub(crate) fn owe_recovery(mem: &Mem, lw: &LockWords) {
    let _ = mem.w().store_u32(lw.recovery, 1, Ordering::Release);
}

/// Records that the recovery a [`Acquired::Recover`] asked for succeeded.
pub(crate) fn recovered(mem: &Mem, lw: &LockWords) -> Result<()> {
    mem.w().store_u32(lw.recovery, 0, Ordering::Release)
}

/// Releases the writer lock and wakes sleepers.
pub(crate) fn unlock_writer(mem: &Mem, lw: &LockWords) {
    let w = mem.w();
    if let Ok(prev) = w.swap_u32(lw.lock, 0)
        && prev & LOCK_WAITERS != 0
    {
        let _ = w.futex_wake(lw.lock);
    }
}

/// A reader that keeps failing validation asks writers for a moment of quiet: writers that are
/// about to invalidate readers (move the ring's tail, switch generations) wait while it is
/// pending, for at most [`QUIET_BUDGET`] per critical section. One word, a deadline: a reader
/// that dies or stops leaves nothing that outlives [`QUIET_MS`].
pub(crate) fn request_quiet(mem: &Mem, lw: &LockWords) {
    let w = mem.w();
    if !w.writable() {
        return;
    }
    let until = monotonic_ms() + QUIET_MS;
    if let Ok(cur) = w.load_u64(lw.quiet, Ordering::Relaxed)
        && cur < until
    {
        let _ = w.cas_u64(lw.quiet, cur, until);
    }
}

/// For a writer: how long a reader's quiet request still asks for, if any.
pub(crate) fn quiet_pending(mem: &Mem, lw: &LockWords) -> Result<Option<Duration>> {
    let until = mem.w().load_u64(lw.quiet, Ordering::Acquire)?;
    if until == 0 {
        return Ok(None);
    }
    Ok(pending(until, monotonic_ms(), QUIET_MS + 1).map(Duration::from_millis))
}

/// Forgets every lock and hint: only for a process that is alone with the file. The recovery
/// duty is kept (the caller recovers when it is set).
pub(crate) fn reset_all(mem: &Mem, shards: usize) -> Result<()> {
    let w = mem.w();
    for lw in (0..shards).map(shard).chain([PLACE]) {
        w.store_u32(lw.lock, 0, Ordering::Release)?;
        w.store_u64(lw.since, 0, Ordering::Release)?;
        w.store_u64(lw.quiet, 0, Ordering::Release)?;
        w.store_u64(lw.starving, 0, Ordering::Release)?;
    }
    for slot in 0..PROC_SLOTS {
        w.store_u32(proc_off(slot, PID), 0, Ordering::Release)?;
    }
    Ok(())
}

/// The pid recorded in a process slot (for inspection).
pub(crate) fn pid_of(mem: &Mem, slot: u32) -> Result<u32> {
    mem.w().load_u32(proc_off(slot, PID), Ordering::Acquire)
}

/// Pids of the processes attached now (their slot is locked), for messages.
pub(crate) fn attached_pids(mem: &Mem) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for slot in 0..PROC_SLOTS {
        if mem.byte_locked(proc_lock_byte(slot))? {
            out.push(pid_of(mem, slot)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hold's budget is what its waits took, not the time since its first wait: a hold that
    /// waited, then worked past its timeout (a long switch), may still wait what is left
    /// (the first cut counted from the first wait, and the placement lock then timed out at
    /// its first contended check).
    #[test]
    fn patience_counts_the_waits_not_the_work_between_them() {
        let mut p = Patience::new(Duration::from_millis(200));
        {
            let mut w = p.wait();
            assert!(w.left() > Duration::from_millis(190));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!w.spent());
        }
        // The hold's own work: not waiting.
        std::thread::sleep(Duration::from_millis(300));
        {
            // A wait that never needed the clock costs nothing.
            let _uncontended = p.wait();
        }
        let mut w = p.wait();
        let left = w.left().as_millis();
        assert!((100..=150).contains(&left), "{left} ms left");
        assert!(!w.spent());
        std::thread::sleep(Duration::from_millis(160));
        assert!(w.spent());
    }

    #[test]
    fn deadlines_expire_and_far_ones_are_ignored() {
        assert_eq!(pending(105, 100, 5), Some(5));
        assert_eq!(pending(100, 100, 5), None);
        assert_eq!(pending(90, 100, 5), None);
        // A deadline from another clock (or garbage) far ahead is not waited for.
        assert_eq!(pending(u64::MAX, 100, 5), None);
    }

    #[test]
    fn owner_word_round_trips() {
        let p = Proc {
            slot: 1023,
            incarnation: LOCK_INC_MASK,
        };
        assert_eq!(owner_of(p.word() | LOCK_WAITERS), (1023, LOCK_INC_MASK));
    }
}
