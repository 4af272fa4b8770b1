//! The per-thread table of open handles. Each Node thread (main or worker) has its own N-API
//! environment and its own table; ids are indexes into it, handed to JS by `open`.

use std::cell::RefCell;

use napi::Env;
use napi::bindgen_prelude::Buffer;
use shmap::{Error, Shmap};

/// One open map and the buffers it shares with JS.
pub struct Handle {
    /// The map.
    pub map: Shmap,
    /// The buffer JS writes keys into (in practice one per thread, shared by its handles).
    pub key: Buffer,
    /// The buffer values are copied into (and written from).
    pub io: Buffer,
    /// Three native-endian f64s (a per-thread `Float64Array` in JS): the record version JS holds
    /// a decoded copy of, for `getIf`, and the version of the record the last hit copied; then,
    /// with `stamp`, the coarse wall clock of the last get.
    pub ver: Buffer,
    /// Whether every get also reports [`shmap::coarse_clock_ms`] in `ver[2]` (shmap/redis's
    /// clock for its L1 hits: cheaper than a `Date.now()` of its own).
    pub stamp: bool,
}

// Handles stay inline: every call looks its slot up, and a Box would add a pointer chase to each.
#[allow(clippy::large_enum_variant)]
enum Slot {
    Open(Handle),
    Closed,
    Free,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    /// Whether the environment cleanup hook is registered.
    hooked: bool,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

fn busy() -> Error {
    Error::InvalidArgument("shmap handle table is in use (re-entrant call)".into())
}

/// Stores a new handle; returns its id.
pub fn insert(env: &Env, h: Handle) -> shmap::Result<u32> {
    TABLE.with(|t| {
        let mut t = t.try_borrow_mut().map_err(|_| busy())?;
        if !t.hooked {
            // Drop every handle (and the Buffer references) before this thread's environment
            // goes away, while deleting a reference is still allowed.
            env.add_env_cleanup_hook((), |()| {
                // A panic here (a bug) must not unwind into Node: the handles are leaked then.
                let _ = std::panic::catch_unwind(|| {
                    let table =
                        TABLE.with(|t| t.try_borrow_mut().map(|mut t| std::mem::take(&mut *t)));
                    drop(table);
                });
            })
            .map_err(|e| Error::InvalidArgument(format!("cannot register cleanup: {e}")))?;
            t.hooked = true;
        }
        let slot = Slot::Open(h);
        let id = match t.slots.iter().position(|s| matches!(s, Slot::Free)) {
            Some(i) => {
                t.slots[i] = slot;
                i
            }
            None => {
                t.slots.push(slot);
                t.slots.len() - 1
            }
        };
        u32::try_from(id).map_err(|_| Error::InvalidArgument("too many handles".into()))
    })
}

/// Runs `f` with the open handle `id`.
pub fn with<T>(id: u32, f: impl FnOnce(&mut Handle) -> shmap::Result<T>) -> shmap::Result<T> {
    TABLE.with(|t| {
        let mut t = t.try_borrow_mut().map_err(|_| busy())?;
        match t.slots.get_mut(id as usize) {
            Some(Slot::Open(h)) => f(h),
            _ => Err(Error::Closed),
        }
    })
}

/// Closes the handle `id`, releasing its map now; later calls fail with `Closed`.
pub fn close(id: u32) -> shmap::Result<()> {
    let old = TABLE.with(|t| {
        let mut t = t.try_borrow_mut().map_err(|_| busy())?;
        match t.slots.get_mut(id as usize) {
            Some(s @ Slot::Open(_)) => Ok(Some(std::mem::replace(s, Slot::Closed))),
            _ => Ok(None),
        }
    })?;
    // Close and drop outside the table's borrow.
    if let Some(Slot::Open(h)) = old {
        h.map.close()?;
    }
    Ok(())
}

/// Forgets the handle `id` (its JS object is gone); the id may be reused.
pub fn free(id: u32) {
    let old = TABLE.with(|t| {
        let mut t = t.try_borrow_mut().ok()?;
        let s = t.slots.get_mut(id as usize)?;
        Some(std::mem::replace(s, Slot::Free))
    });
    drop(old);
}
