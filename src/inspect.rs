//! Read-only inspection of a map file, for `shmap-inspect`: what the header says, who holds
//! the lock, and a verification walk. Never writes a byte and never takes a lock.

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::format::ctl;
use crate::lock;
use crate::map::Shmap;

/// The holder of the writer lock, if any: (process slot, recorded pid, alive).
pub fn lock_owner(map: &Shmap) -> Result<Option<(u32, u32, bool)>> {
    let sh = map.shared()?;
    let word = sh.mem.w().load_u32(ctl!(writer_lock), Ordering::Acquire)?;
    if word == 0 {
        return Ok(None);
    }
    let (slot, inc) = lock::owner_of(word);
    let alive = lock::alive(&sh.mem, None, slot, inc)?;
    Ok(Some((slot, lock::pid_of(&sh.mem, slot)?, alive)))
}
