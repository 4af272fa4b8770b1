//! shmap: a shared-memory key/value cache in one file, for many processes.
//!
//! Every process maps the same file (`/dev/shm/<name>` by default, or any path on disk). A read
//! is a hash probe and a copy, without locks; a write appends an immutable record to a ring and
//! publishes it with one atomic store, under a writer lock that is recovered when its holder
//! dies. The map grows, shrinks and rebuilds itself by building a new generation beside the
//! old one and switching one pointer. The byte layout is specified in `format.md`.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("doc-map");
//! use shmap::{Options, Shmap};
//! let map = Shmap::open(path.to_str().unwrap(), &Options::new())?;
//! map.set(b"greeting", b"hello")?;
//! assert_eq!(map.get(b"greeting")?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(map.incr(b"hits", 1, 0, None)?, 1);
//! # Ok::<(), shmap::Error>(())
//! ```

mod arena;
mod attach;
mod create;
mod error;
#[doc(hidden)]
pub mod failpoints;
pub mod format;
pub mod inspect;
mod lock;
mod map;
mod options;
mod place;
mod plan;
mod raw;
mod remove;
mod scan;
mod shared;
mod types;
mod write;

pub use error::{Error, Result};
pub use map::{Shmap, open_for_inspection};
pub use options::{
    Clock, DEFAULT_INITIAL_SIZE, DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_SIZE, DEFAULT_MODE, MIN_SIZE,
    Options, resolve, system_clock,
};
pub use raw::{COARSE_SLACK_MS, realtime_coarse_ms as coarse_clock_ms};
pub use remove::{RemoveOutcome, remove_map, remove_map_path};
pub use scan::{ScanCursor, ScanOptions};
pub use types::{
    Compare, Condition, Counter, Entry, IncrOptions, LeaseState, Lookup, Meta, SetOptions, Stats,
    Version,
};
