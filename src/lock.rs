//! Cross-process locking that survives `kill -9`: the process table, the writer lock and
//! shared holds (see format.md, "Writer lock and shared holds").
//!
//! A process is identified by its process-table slot and that slot's incarnation; it holds the
//! slot by an OFD lock on one byte, which the kernel drops when the process dies. So "is the
//! lock owner alive?" has an exact answer, immune to pid reuse, and a dead owner's lock is taken
//! over by compare-and-swap. Waiters sleep on shared futexes with a timeout and re-test liveness
//! on every wake-up; nobody spins for long.

use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{LOCK_INC_MASK, LOCK_WAITERS, PROC_SLOTS, ctl, proc_lock_byte, proc_off};
use crate::raw::Mem;

const PID: usize = std::mem::offset_of!(crate::format::ProcSlot, pid);
const INC: usize = std::mem::offset_of!(crate::format::ProcSlot, incarnation);
const SHARED: usize = std::mem::offset_of!(crate::format::ProcSlot, shared);
const STARVING: usize = std::mem::offset_of!(crate::format::ProcSlot, starving);

/// A waiter that has waited this long asks newcomers to step back.
const STARVING_AFTER: Duration = Duration::from_millis(2);
/// A newcomer steps back at most this long for a starving waiter.
const POLITE_FOR: Duration = Duration::from_millis(5);

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
        // Whatever a dead predecessor left in `shared` and `starving` is held by no one.
        release_dead_shared(mem, slot)?;
        clear_starving(mem, slot)?;
        let old = w.load_u32(proc_off(slot, INC), Ordering::Acquire)?;
        let mut inc = old.wrapping_add(1) & LOCK_INC_MASK;
        if inc == 0 {
            inc = 1;
        }
        w.store_u32(proc_off(slot, INC), inc, Ordering::Release)?;
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
    let _ = release_dead_shared(mem, me.slot);
    let _ = w.store_u32(proc_off(me.slot, PID), 0, Ordering::Release);
    mem.unlock_byte(proc_lock_byte(me.slot));
}

/// Moves a slot's `shared` count out of the global `readers` count (exactly once: by swap).
fn release_dead_shared(mem: &Mem, slot: u32) -> Result<()> {
    let w = mem.w();
    let stale = w.swap_u32(proc_off(slot, SHARED), 0)?;
    if stale > 0 {
        w.sub_u32(ctl!(readers), stale)?;
        w.futex_wake(ctl!(readers))?;
    }
    Ok(())
}

/// Clears a slot's `starving` flag and its share of the global count (exactly once: by swap).
fn clear_starving(mem: &Mem, slot: u32) -> Result<()> {
    let w = mem.w();
    if w.swap_u32(proc_off(slot, STARVING), 0)? != 0 {
        w.sub_u32(ctl!(starving), 1)?;
    }
    Ok(())
}

/// Steps back while another process is starving for the lock, for at most [`POLITE_FOR`];
/// then clears the starving flags of dead processes.
fn be_polite(mem: &Mem, me: Proc) -> Result<()> {
    let w = mem.w();
    let t = Instant::now();
    while w.load_u32(ctl!(starving), Ordering::Acquire)? > 0 {
        if t.elapsed() > POLITE_FOR {
            for slot in 0..PROC_SLOTS {
                if slot != me.slot
                    && w.load_u32(proc_off(slot, STARVING), Ordering::Acquire)? != 0
                    && !mem.byte_locked(proc_lock_byte(slot))?
                {
                    clear_starving(mem, slot)?;
                }
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    Ok(())
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

/// How the writer lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// From a live owner or free.
    Clean,
    /// Taken over from a dead owner: the caller must recover.
    FromDead,
}

/// Takes the writer lock, then waits until no shared hold remains.
pub(crate) fn lock_writer(mem: &Mem, me: Proc) -> Result<Acquired> {
    let w = mem.w();
    let off = ctl!(writer_lock);
    let mine = me.word();
    if w.load_u32(ctl!(starving), Ordering::Acquire)? > 0 {
        be_polite(mem, me)?;
    }
    let mut start = None;
    let mut starving = false;
    let mut backoff = Backoff::new();
    let mut spins = 0u32;
    let how = loop {
        let cur = match w.cas_u32(off, 0, mine)? {
            Ok(_) => break Acquired::Clean,
            Err(cur) => cur,
        };
        if spins < 100 {
            spins += 1;
            std::hint::spin_loop();
            if spins.is_multiple_of(10) {
                std::thread::yield_now();
            }
            continue;
        }
        let (slot, inc) = owner_of(cur);
        if !alive(mem, Some(me), slot, inc)? {
            // Keep WAITERS so that our unlock wakes whoever else sleeps here.
            if w.cas_u32(off, cur, mine | (cur & LOCK_WAITERS))?.is_ok() {
                break Acquired::FromDead;
            }
            continue;
        }
        let since = *start.get_or_insert_with(Instant::now);
        if !starving && since.elapsed() > STARVING_AFTER {
            starving = true;
            w.store_u32(proc_off(me.slot, STARVING), 1, Ordering::Release)?;
            w.add_u32(ctl!(starving), 1)?;
        }
        if cur & LOCK_WAITERS == 0 && w.cas_u32(off, cur, cur | LOCK_WAITERS)?.is_err() {
            continue;
        }
        w.futex_wait(off, cur | LOCK_WAITERS, backoff.next())?;
    };
    if starving {
        clear_starving(mem, me.slot)?;
    }
    if let Err(e) = wait_for_readers(mem, me) {
        unlock_writer(mem);
        return Err(e);
    }
    Ok(how)
}

/// Releases the writer lock and wakes sleepers.
pub(crate) fn unlock_writer(mem: &Mem) {
    let w = mem.w();
    if let Ok(prev) = w.swap_u32(ctl!(writer_lock), 0)
        && prev & LOCK_WAITERS != 0
    {
        let _ = w.futex_wake(ctl!(writer_lock));
    }
}

fn wait_for_readers(mem: &Mem, me: Proc) -> Result<()> {
    let w = mem.w();
    // Dekker with `lock_shared`: our lock store, then their count; their count, then our lock.
    fence(Ordering::SeqCst);
    let mut backoff = Backoff::new();
    loop {
        let r = w.load_u32(ctl!(readers), Ordering::SeqCst)?;
        if r == 0 {
            return Ok(());
        }
        w.futex_wait(ctl!(readers), r, backoff.next())?;
        reap_dead_readers(mem, me)?;
    }
}

/// Subtracts the shared holds of dead processes from `readers`.
pub(crate) fn reap_dead_readers(mem: &Mem, me: Proc) -> Result<()> {
    let w = mem.w();
    for slot in 0..PROC_SLOTS {
        if slot == me.slot || w.load_u32(proc_off(slot, SHARED), Ordering::Acquire)? == 0 {
            continue;
        }
        if !mem.byte_locked(proc_lock_byte(slot))? {
            release_dead_shared(mem, slot)?;
        }
    }
    Ok(())
}

/// Takes a shared hold: excludes writers, not other readers. Returns with the hold taken.
/// If the writer that blocks us died, we take its lock to recover the map, then retry.
pub(crate) fn lock_shared(mem: &Mem, me: Proc, recover: &dyn Fn() -> Result<()>) -> Result<()> {
    let w = mem.w();
    let mut backoff = Backoff::new();
    loop {
        w.add_u32(proc_off(me.slot, SHARED), 1)?;
        w.add_u32(ctl!(readers), 1)?;
        fence(Ordering::SeqCst);
        let held = w.load_u32(ctl!(writer_lock), Ordering::SeqCst)?;
        if held == 0 {
            return Ok(());
        }
        unlock_shared(mem, me)?;
        let (slot, inc) = owner_of(held);
        if !alive(mem, Some(me), slot, inc)? {
            recover()?;
            continue;
        }
        if held & LOCK_WAITERS == 0
            && w.cas_u32(ctl!(writer_lock), held, held | LOCK_WAITERS)?
                .is_err()
        {
            continue;
        }
        w.futex_wait(ctl!(writer_lock), held | LOCK_WAITERS, backoff.next())?;
    }
}

/// Drops a shared hold.
pub(crate) fn unlock_shared(mem: &Mem, me: Proc) -> Result<()> {
    let w = mem.w();
    w.sub_u32(proc_off(me.slot, SHARED), 1)?;
    if w.sub_u32(ctl!(readers), 1)? == 1 {
        w.futex_wake(ctl!(readers))?;
    }
    Ok(())
}

/// Forgets every lock and shared hold: only for a process that is alone with the file.
pub(crate) fn reset_all(mem: &Mem) -> Result<()> {
    let w = mem.w();
    w.store_u32(ctl!(writer_lock), 0, Ordering::Release)?;
    w.store_u32(ctl!(readers), 0, Ordering::Release)?;
    w.store_u32(ctl!(starving), 0, Ordering::Release)?;
    for slot in 0..PROC_SLOTS {
        w.store_u32(proc_off(slot, SHARED), 0, Ordering::Release)?;
        w.store_u32(proc_off(slot, STARVING), 0, Ordering::Release)?;
        w.store_u32(proc_off(slot, PID), 0, Ordering::Release)?;
    }
    Ok(())
}

/// The pid recorded in a process slot (for inspection).
pub(crate) fn pid_of(mem: &Mem, slot: u32) -> Result<u32> {
    mem.w().load_u32(proc_off(slot, PID), Ordering::Acquire)
}
