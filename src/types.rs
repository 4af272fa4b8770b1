//! The value types of the public API, shared by every layer: what reads return (`Meta`,
//! `Version`, `Lookup`, `Entry`), what writes take (`SetOptions`, `IncrOptions`, `Condition`)
//! and report (`LeaseState`, `Counter`), and `Stats`. A leaf: it imports nothing of the crate,
//! so `write`, `scan` and `map` all depend on it and not on each other.

/// Identifies one immutable record: the generation it was read in and its position there.
/// Equal versions mean equal bytes (a position is never reused within a generation's log), so a
/// caller holding a decoded copy can ask [`crate::Shmap::read_into_if_changed`] to skip the copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Version {
    /// The generation the record was read in.
    pub generation: u64,
    /// The record's position in that generation's log.
    pub pos: u64,
}

/// Metadata of a value found by a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Length of the value in bytes.
    pub len: usize,
    /// The flags it was stored with (user bits 0..16, plus [`crate::Shmap::FLAG_INT`] for counters).
    pub flags: u32,
    /// Expiry in wall-clock milliseconds, 0 = never.
    pub expires_ms: u64,
    /// The record's version.
    pub version: Version,
}

/// Result of reading into a caller's fixed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// No such key (or expired).
    Miss,
    /// Copied into the buffer.
    Hit(Meta),
    /// The buffer is smaller than the value (`meta.len` bytes); nothing useful was copied.
    TooSmall(Meta),
    /// The record is the one the caller said it holds; nothing was copied.
    Unchanged(Meta),
}

/// One entry, as returned by [`crate::Shmap::entries`] and [`crate::Shmap::scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Its flags.
    pub flags: u32,
    /// Expiry in wall-clock milliseconds, 0 = never.
    pub expires_ms: u64,
}

/// Per-call write options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Time to live in milliseconds: `None` = the map's default, `Some(0)` = never expire.
    pub ttl_ms: Option<u64>,
    /// User flags (bits 0..16), returned by reads; the Node addon stores value types here.
    pub flags: u32,
}

/// What a lease request found (see [`crate::Shmap::lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// The key holds a value.
    Value(Entry),
    /// This caller now holds the lease (with this token): load the value and `set` it, or
    /// `release_lease` on failure.
    Acquired(u64),
    /// Another live process holds an unexpired lease: wait and ask again.
    Wait,
}

/// A snapshot of a map's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live entries (including expired ones not yet reclaimed).
    pub entries: u64,
    /// Bytes of records live entries occupy.
    pub live_bytes: u64,
    /// Bytes of superseded, deleted or padding records still in the ring.
    pub dead_bytes: u64,
    /// Bytes of the ring.
    pub log_capacity: u64,
    /// Slots of the index.
    pub index_slots: u64,
    /// Used index slots (live and tombstones).
    pub used_slots: u64,
    /// The file's length.
    pub file_bytes: u64,
    /// The file's allocated storage.
    pub file_allocated_bytes: u64,
    /// The configured cap.
    pub max_size: u64,
    /// Shards (fixed when the map was created; the counters here sum them).
    pub shards: u64,
    /// The active generation.
    pub generation: u64,
    /// Live entries evicted so far.
    pub evictions: u64,
    /// Expired entries reclaimed so far.
    pub expirations: u64,
    /// Generation switches so far (growth, shrink, rebuilds, clears).
    pub switches: u64,
    /// Incremental builds of a grown generation started so far (format.md, "Incremental
    /// build"); their publications count as switches.
    pub builds: u64,
    /// Builds a write had to finish at once (the active ring or index filled first).
    pub builds_forced: u64,
    /// Shards with a build in flight now.
    pub building: u64,
    /// Record bytes written by writes.
    pub bytes_written: u64,
    /// Record bytes copied by cleaning and switches.
    pub bytes_copied: u64,
    /// Default time to live in ms (0 = none).
    pub default_ttl_ms: u64,
    /// Whether eviction is on.
    pub evict: bool,
    /// Hits of this handle's reads.
    pub hits: u64,
    /// Misses of this handle's reads.
    pub misses: u64,
}

/// How [`crate::Shmap::set_if`] compares the version held in the map with the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Holds when the map's version is at most the caller's (or there is none).
    Le,
    /// Holds when the map's version is below the caller's (or there is none).
    Lt,
    /// Holds when the map holds exactly the caller's version (never when there is none).
    Eq,
}

/// The condition of a versioned write ([`crate::Shmap::set_if`]), checked under the writer lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition<'a> {
    /// An integer entry (written by `incr`, `set_int` or a stamp) holding the version to
    /// compare with; absent or expired means "none". It may be the written key itself.
    pub version_key: &'a [u8],
    /// For `Le`/`Lt`: the integer compared with when `version_key` is absent. When it is given
    /// and absent too (say, evicted), the condition fails: a lost floor holds nothing back.
    pub floor_key: Option<&'a [u8]>,
    /// The caller's version.
    pub version: i64,
    /// How to compare.
    pub compare: Compare,
    /// When `Some(ttl)`: on success also store `version` at `version_key` (with that time to
    /// live, as in [`SetOptions::ttl_ms`]) and raise `floor_key` (if given; it never expires)
    /// to at least `version`, in the same critical section.
    pub stamp: Option<Option<u64>>,
}

/// Options of [`crate::Shmap::incr_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncrOptions {
    /// The value a missing (or expired) counter starts from before `delta` is added.
    pub init: i64,
    /// Time to live set on every call, as in [`SetOptions`]; `None` keeps an existing entry's
    /// expiry (a new entry then gets `init_ttl_ms`, or the map's default).
    pub ttl_ms: Option<u64>,
    /// Time to live of an entry this call creates (`Some(0)` = never expire); an existing
    /// entry's expiry is left alone unless `ttl_ms` is given. OpenResty's `init_ttl`.
    pub init_ttl_ms: Option<u64>,
    /// Whether a missing key is created (default true); when false, a missing key is left
    /// missing and the call returns `None`.
    pub create: bool,
}

impl Default for IncrOptions {
    fn default() -> Self {
        IncrOptions {
            init: 0,
            ttl_ms: None,
            init_ttl_ms: None,
            create: true,
        }
    }
}

/// A counter after [`crate::Shmap::incr_with`]: its new value and its expiry, from the same step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// The new value.
    pub value: i64,
    /// Expiry in wall-clock milliseconds, 0 = never.
    pub expires_ms: u64,
}
