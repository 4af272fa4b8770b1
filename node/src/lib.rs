//! The native half of the npm package `shmap`: a thin N-API layer over [`shmap::Shmap`].
//!
//! The JS layer (`index.js`) owns validation and value encoding; this file only moves bytes.
//! Crossing N-API costs far more than a lookup, so the hot paths pass numbers only: JS writes
//! the key into a per-thread Buffer the addon keeps a reference to, and calls `get(id, keyLen)`;
//! the value is copied straight out of the map into the handle's `io` Buffer (also kept here),
//! and the returned number packs the value's length and its type tag (see [`packed`]). Writes
//! go the other way through the same two buffers. Nothing here allocates on the read path.
//!
//! A hit also writes the record's version into a third per-thread buffer (`ver`, a
//! `Float64Array` in JS). JS keeps decoded copies of large strings with their versions and reads
//! such keys with `getIf`, which passes the held version back through `ver`: when the record is
//! still that one, nothing is copied and [`UNCHANGED`] tells JS to return its copy.
//!
//! Handles are small integers into a per-thread table ([`registry`]) rather than napi-rs class
//! instances: a class method call adds napi-rs's receiver borrow tracking and identity checks
//! (measured side by side on a loaded machine: a method that does nothing 390 ns, a `#[napi]`
//! function 230 ns, a raw callback 85 ns). JS frees a handle's slot when its `Shmap` object is
//! collected (a `FinalizationRegistry`), and the thread's table is emptied when its Node
//! environment shuts down.
//!
//! The three hottest calls (`get`, `has`, `put`) are registered as raw N-API callbacks by
//! [`raw`], the only module with `unsafe`; everything else goes through `#[napi]`. napi-rs hands
//! out the kept Buffers' bytes as slices, so no code here touches raw memory.

pub mod cli;
mod error;
mod raw;
mod registry;

use napi::Env;
use napi::bindgen_prelude::{Buffer, BufferSlice, Object};
use napi_derive::napi;
use shmap::{LeaseState, Lookup, Meta, Options, SetOptions, Shmap, Version};
use std::time::Duration;

use crate::error::{Result, guard, invalid};
use crate::registry::{Handle, with};

/// Type tag of a value, kept in the record's user flags (bits 0..4). Must match `index.js`.
mod tag {
    /// Raw bytes, returned as a Buffer (also what other writers' flag-0 values read as).
    pub const BYTES: u32 = 0;
    /// An integer counter: 8 bytes, little-endian i64, stored with [`shmap::Shmap::FLAG_INT`].
    pub const INT: u32 = 9;
    /// Mask of the bits the JS layer uses.
    pub const MASK: u32 = 0xF;
}

/// Return value of a read that found nothing.
const MISS: f64 = -1.0;

/// Return value of `getIf` when the record is still the version JS holds (nothing copied).
const UNCHANGED: f64 = -2.0;

/// Versions cross to JS as f64s, exact below 2^53; beyond (never in practice) a hit reports
/// [`NO_VERSION`] and JS does not keep a copy.
const EXACT: u64 = 1 << 53;

/// What a hit reports as its version when it cannot be represented exactly.
const NO_VERSION: f64 = -1.0;

/// Packs a hit's length and tag into one number: `len * 16 + tag` (exact below 2^49 bytes).
fn packed(meta: Meta) -> f64 {
    meta.len as f64 * 16.0 + f64::from(tag_of(meta.flags))
}

/// The value did not fit in `io`: `-3 - len` tells JS how large a buffer to hand over.
fn too_small(meta: Meta) -> f64 {
    -3.0 - meta.len as f64
}

/// The `i`th f64 of a `ver` buffer (NaN, no version, if it is too short: `open` refuses those).
fn ver_get(ver: &[u8], i: usize) -> f64 {
    ver.get(i * 8..i * 8 + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(f64::NAN, f64::from_ne_bytes)
}

fn ver_set(ver: &mut [u8], i: usize, v: f64) {
    if let Some(b) = ver.get_mut(i * 8..i * 8 + 8) {
        b.copy_from_slice(&v.to_ne_bytes());
    }
}

/// The version JS says it holds: `ver[0]` = generation, `ver[1]` = position. Anything that is
/// not an exact version (JS never passes one) holds nothing.
fn held_version(ver: &[u8]) -> Option<Version> {
    let (g, p) = (ver_get(ver, 0), ver_get(ver, 1));
    let exact = |x: f64| (0.0..EXACT as f64).contains(&x) && x.fract() == 0.0;
    (exact(g) && exact(p)).then_some(Version {
        generation: g as u64,
        pos: p as u64,
    })
}

/// Reports a hit's version to JS in `ver`, or [`NO_VERSION`] if an f64 cannot hold it.
fn report_version(ver: &mut [u8], v: Version) {
    if v.generation < EXACT && v.pos < EXACT {
        ver_set(ver, 0, v.generation as f64);
        ver_set(ver, 1, v.pos as f64);
    } else {
        ver_set(ver, 0, NO_VERSION);
        ver_set(ver, 1, NO_VERSION);
    }
}

fn tag_of(flags: u32) -> u32 {
    if flags & Shmap::FLAG_INT != 0 {
        tag::INT
    } else if flags & 0xFFFF & !tag::MASK != 0 {
        // Written by someone else with flags we do not know: hand out the bytes.
        tag::BYTES
    } else {
        flags & tag::MASK
    }
}

fn flags_of(tag: u32) -> u32 {
    if tag == tag::INT {
        Shmap::FLAG_INT
    } else {
        tag & tag::MASK
    }
}

/// A TTL argument from JS: negative = the map's default, 0 = never expire, else milliseconds.
fn ttl_of(ms: f64) -> Option<u64> {
    if ms < 0.0 { None } else { Some(ms as u64) }
}

/// Options for opening a map, as validated by the JS layer.
#[napi(object)]
pub struct OpenOptions {
    /// Size of a new map's file in bytes.
    pub initial_size: Option<f64>,
    /// Cap on the file's memory in bytes (stored in the map).
    pub max_size: Option<f64>,
    /// Default time to live in ms (0 = never; stored in the map).
    pub max_age: Option<f64>,
    /// Start empty.
    pub reset: Option<bool>,
    /// Refuse writes through this handle.
    pub read_only: Option<bool>,
    /// Evict when full (stored in the map).
    pub evict: Option<bool>,
    /// The longest wait for another process, in ms (then `ERR_SHMAP_LOCK_TIMEOUT`).
    pub lock_timeout: Option<f64>,
    /// Permission bits of a new file, and the widest accepted on open.
    pub mode: Option<u32>,
    /// Owners trusted besides this process's effective uid and root.
    pub trusted_owners: Option<Vec<u32>>,
    /// Shards of a new map (a power of two 1 ..= 128, or 0 for twice the cores).
    pub shards: Option<u32>,
}

/// What `lease` found: `state` 0 = a value (`code` as from `get`), 1 = acquired (`token`),
/// 2 = wait.
#[napi(object)]
pub struct LeaseOut {
    /// 0 value, 1 acquired, 2 wait.
    pub state: u32,
    /// For a value: as returned by `get` (packed length and tag, or `-3 - len` if `io` is
    /// too small).
    pub code: f64,
    /// For an acquired lease: the token to release it with.
    pub token: f64,
}

/// One entry for `entries()`.
#[napi(object)]
pub struct EntryOut {
    /// The key, decoded as UTF-8 (lossily).
    pub key: String,
    /// The value's bytes.
    pub value: Buffer,
    /// Its type tag.
    pub tag: u32,
}

/// A snapshot of a map's counters (numbers are exact below 2^53).
#[napi(object)]
pub struct StatsOut {
    /// Live entries (including expired ones not yet reclaimed).
    pub entries: f64,
    /// Bytes of records live entries occupy.
    pub live_bytes: f64,
    /// Bytes of superseded, deleted or padding records still in the ring.
    pub dead_bytes: f64,
    /// The file's length.
    pub file_bytes: f64,
    /// The file's allocated storage.
    pub file_allocated_bytes: f64,
    /// The configured cap.
    pub max_size: f64,
    /// The active generation.
    pub generation: f64,
    /// Live entries evicted so far.
    pub evictions: f64,
    /// Expired entries reclaimed so far.
    pub expired: f64,
    /// Generation switches so far.
    pub switches: f64,
    /// Incremental builds of a grown generation started so far.
    pub builds: f64,
    /// Builds a write had to finish at once (the ring filled first).
    pub builds_forced: f64,
    /// Bytes of the ring.
    pub log_capacity: f64,
    /// Slots of the index.
    pub index_slots: f64,
    /// Used index slots (live and tombstones).
    pub used_slots: f64,
    /// Record bytes written by writes.
    pub bytes_written: f64,
    /// Record bytes copied by cleaning and switches.
    pub bytes_copied: f64,
    /// Shards (fixed when the map was created; the counters sum them).
    pub shards: f64,
    /// Default time to live in ms (0 = none).
    pub max_age: f64,
    /// Whether eviction is on.
    pub evict: bool,
    /// Hits of this handle's reads.
    pub hits: f64,
    /// Misses of this handle's reads.
    pub misses: f64,
}

/// Opens the map `name` (a bare name is `/dev/shm/<name>`, a path is that file) and returns
/// its handle id. `key` is this thread's key buffer, `io` the handle's value buffer, `ver` this
/// thread's version buffer (at least 16 bytes).
#[napi]
pub fn open(
    env: Env,
    name: String,
    o: OpenOptions,
    key: Buffer,
    io: Buffer,
    ver: Buffer,
) -> Result<u32> {
    guard(|| {
        let mut opts = Options::new();
        if let Some(n) = o.initial_size {
            opts = opts.initial_size(n as u64);
        }
        if let Some(n) = o.max_size {
            opts = opts.max_size(n as u64);
        }
        if let Some(ms) = o.max_age {
            opts = opts.max_age(max_age_of(ms));
        }
        opts = opts
            .reset(o.reset.unwrap_or(false))
            .read_only(o.read_only.unwrap_or(false));
        if let Some(evict) = o.evict {
            opts = opts.evict(evict);
        }
        if let Some(ms) = o.lock_timeout {
            opts = opts.lock_timeout(Duration::from_millis(ms as u64));
        }
        if let Some(mode) = o.mode {
            opts = opts.mode(mode);
        }
        if let Some(uids) = o.trusted_owners {
            opts = opts.trusted_owners(uids);
        }
        if let Some(n) = o.shards {
            opts = opts.shards(n);
        }
        if ver.len() < 24 {
            return Err(invalid("the version buffer is shorter than 24 bytes"));
        }
        let map = Shmap::open(&name, &opts)?;
        registry::insert(
            &env,
            Handle {
                map,
                key,
                io,
                ver,
                stamp: false,
            },
        )
    })
}

fn max_age_of(ms: f64) -> Option<Duration> {
    if ms > 0.0 {
        Some(Duration::from_millis(ms as u64))
    } else {
        None
    }
}

fn key_of(key: &[u8], len: u32) -> shmap::Result<&[u8]> {
    key.get(..len as usize)
        .ok_or_else(|| invalid("key length exceeds the key buffer"))
}

fn store(
    h: &Handle,
    key: &[u8],
    value: &[u8],
    tag: u32,
    ttl: f64,
    add: bool,
) -> shmap::Result<bool> {
    let o = SetOptions {
        ttl_ms: ttl_of(ttl),
        flags: flags_of(tag),
    };
    if add {
        h.map.add(key, value, o)
    } else {
        h.map.set_with(key, value, o).map(|_| true)
    }
}

/// `get(id, keyLen)` and `getIf(id, keyLen)` (registered by [`raw`]): copies the value of the
/// key (the first `key_len` bytes of the key buffer) into the handle's `io`, and its version
/// into `ver`. Returns -1 when absent, `-3 - len` when `io` is too small, else
/// `len * 16 + tag`. With `if_changed` (`getIf`), `ver` holds the version JS has a copy of: if
/// the key's record is still that one, nothing is copied and the result is -2.
pub fn get_impl(id: u32, key_len: u32, if_changed: bool) -> Result<f64> {
    guard(|| {
        with(id, |h| {
            if h.stamp {
                ver_set(&mut h.ver, 2, shmap::coarse_clock_ms() as f64);
            }
            let held = if if_changed {
                held_version(&h.ver)
            } else {
                None
            };
            Ok(
                match h
                    .map
                    .read_into_if_changed(key_of(&h.key, key_len)?, &mut h.io, held)?
                {
                    Lookup::Miss => MISS,
                    Lookup::Hit(meta) => {
                        report_version(&mut h.ver, meta.version);
                        packed(meta)
                    }
                    Lookup::TooSmall(meta) => too_small(meta),
                    Lookup::Unchanged(_) => UNCHANGED,
                },
            )
        })
    })
}

/// `put(id, keyLen, valueLen, tag, ttl, add)` (registered by [`raw`]): stores the first
/// `value_len` bytes of `io` under the key with type `tag`; `ttl` < 0 means the map's default.
/// With `add`, only if absent; returns whether it stored.
pub fn put_impl(
    id: u32,
    key_len: u32,
    value_len: u32,
    tag: u32,
    ttl: f64,
    add: bool,
) -> Result<bool> {
    guard(|| {
        with(id, |h| {
            let value =
                h.io.get(..value_len as usize)
                    .ok_or_else(|| invalid("value length exceeds the io buffer"))?;
            store(h, key_of(&h.key, key_len)?, value, tag, ttl, add)
        })
    })
}

/// As `put`, with the value's bytes passed directly (Buffer and Uint8Array values).
#[napi]
pub fn put_bytes(
    id: u32,
    key_len: u32,
    value: BufferSlice,
    tag: u32,
    ttl: f64,
    add: bool,
) -> Result<bool> {
    guard(|| {
        with(id, |h| {
            store(h, key_of(&h.key, key_len)?, &value, tag, ttl, add)
        })
    })
}

/// `has(id, keyLen)` (registered by [`raw`]): whether the key is present.
pub fn has_impl(id: u32, key_len: u32) -> Result<bool> {
    guard(|| with(id, |h| h.map.contains(key_of(&h.key, key_len)?)))
}

/// Removes the key; true if it was present.
#[napi]
pub fn remove(id: u32, key_len: u32) -> Result<bool> {
    guard(|| with(id, |h| h.map.remove(key_of(&h.key, key_len)?)))
}

/// Adds `delta` to the counter at the key (missing = 0); returns the new value.
#[napi]
pub fn incr(id: u32, key_len: u32, delta: f64, ttl: f64) -> Result<f64> {
    guard(|| {
        with(id, |h| {
            let v = h
                .map
                .incr(key_of(&h.key, key_len)?, delta as i64, 0, ttl_of(ttl))?;
            Ok(v as f64)
        })
    })
}

/// Whether another loader holds an unexpired lease on the key (lock-free: what a waiting
/// `getOrSet` polls, so that a waiter stopped while it waits holds no writer off).
#[napi]
pub fn lease_held(id: u32, key_len: u32) -> Result<bool> {
    guard(|| with(id, |h| h.map.lease_held(key_of(&h.key, key_len)?)))
}

/// What `removeMap` did: `state` 0 = removed, 1 = absent, 2 = in use (nothing removed);
/// `pids` the attached processes (for 0: those a forced removal left on the unlinked file).
#[napi(object)]
pub struct RemoveOut {
    /// 0 removed, 1 absent, 2 in use.
    pub state: u32,
    /// Pids of attached processes.
    pub pids: Vec<u32>,
}

/// Removes the map `name` unless processes have it open (`force`: anyway); see
/// `shmap::remove_map`.
#[napi]
pub fn remove_map(name: String, force: bool) -> Result<RemoveOut> {
    guard(|| {
        Ok(match shmap::remove_map(&name, force)? {
            shmap::RemoveOutcome::Removed { still_attached } => RemoveOut {
                state: 0,
                pids: still_attached,
            },
            shmap::RemoveOutcome::InUse { pids } => RemoveOut { state: 2, pids },
            _ => RemoveOut {
                state: 1,
                pids: Vec::new(),
            },
        })
    })
}

/// Asks to load the key once across processes (see `Shmap::lease`). A found value is copied
/// into `io` as by `get`.
#[napi]
pub fn lease(id: u32, key_len: u32, lease_ms: f64) -> Result<LeaseOut> {
    guard(|| {
        with(id, |h| {
            Ok(
                match h
                    .map
                    .lease(key_of(&h.key, key_len)?, lease_ms.max(1.0) as u64)?
                {
                    LeaseState::Value(e) => {
                        let meta = Meta {
                            len: e.value.len(),
                            flags: e.flags,
                            expires_ms: e.expires_ms,
                            version: Default::default(),
                        };
                        let code = match h.io.get_mut(..e.value.len()) {
                            Some(dst) => {
                                dst.copy_from_slice(&e.value);
                                packed(meta)
                            }
                            None => too_small(meta),
                        };
                        LeaseOut {
                            state: 0,
                            code,
                            token: 0.0,
                        }
                    }
                    LeaseState::Acquired(token) => LeaseOut {
                        state: 1,
                        code: 0.0,
                        token: token as f64,
                    },
                    LeaseState::Wait => LeaseOut {
                        state: 2,
                        code: 0.0,
                        token: 0.0,
                    },
                },
            )
        })
    })
}

/// Drops this process's lease `token` on the key (a loader that failed).
#[napi]
pub fn release_lease(id: u32, key_len: u32, token: f64) -> Result<bool> {
    guard(|| {
        with(id, |h| {
            h.map.release_lease(key_of(&h.key, key_len)?, token as u64)
        })
    })
}

/// Replaces the handle's io buffer (JS grows it when a value does not fit).
#[napi]
pub fn set_io_buffer(id: u32, io: Buffer) -> Result<()> {
    guard(|| {
        with(id, |h| {
            h.io = io;
            Ok(())
        })
    })
}

/// Removes every entry.
#[napi]
pub fn clear(id: u32) -> Result<()> {
    guard(|| with(id, |h| h.map.clear()))
}

/// Number of entries (including expired ones not yet reclaimed).
#[napi]
pub fn len(id: u32) -> Result<f64> {
    guard(|| with(id, |h| h.map.len().map(|n| n as f64)))
}

/// Every live key, decoded as UTF-8.
#[napi]
pub fn keys(id: u32) -> Result<Vec<String>> {
    guard(|| {
        with(id, |h| {
            Ok(h.map
                .keys()?
                .into_iter()
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .collect())
        })
    })
}

/// Every live entry.
#[napi]
pub fn entries(id: u32) -> Result<Vec<EntryOut>> {
    guard(|| {
        with(id, |h| {
            Ok(h.map
                .entries()?
                .into_iter()
                .map(|e| EntryOut {
                    key: String::from_utf8_lossy(&e.key).into_owned(),
                    tag: tag_of(e.flags),
                    value: e.value.into(),
                })
                .collect())
        })
    })
}

/// A snapshot of the map's counters.
#[napi]
pub fn stats(id: u32) -> Result<StatsOut> {
    guard(|| {
        with(id, |h| {
            let s = h.map.stats()?;
            Ok(StatsOut {
                entries: s.entries as f64,
                live_bytes: s.live_bytes as f64,
                dead_bytes: s.dead_bytes as f64,
                file_bytes: s.file_bytes as f64,
                file_allocated_bytes: s.file_allocated_bytes as f64,
                max_size: s.max_size as f64,
                generation: s.generation as f64,
                evictions: s.evictions as f64,
                expired: s.expirations as f64,
                switches: s.switches as f64,
                builds: s.builds as f64,
                builds_forced: s.builds_forced as f64,
                log_capacity: s.log_capacity as f64,
                index_slots: s.index_slots as f64,
                used_slots: s.used_slots as f64,
                bytes_written: s.bytes_written as f64,
                bytes_copied: s.bytes_copied as f64,
                shards: s.shards as f64,
                max_age: s.default_ttl_ms as f64,
                evict: s.evict,
                hits: s.hits as f64,
                misses: s.misses as f64,
            })
        })
    })
}

/// Writes the map to its file (a no-op in effect on tmpfs).
#[napi]
pub fn flush(id: u32) -> Result<()> {
    guard(|| with(id, |h| h.map.flush()))
}

/// Closes the handle: its map and buffer are released now, and later calls fail with
/// `ERR_SHMAP_CLOSED`. Idempotent.
#[napi]
pub fn close(id: u32) -> Result<()> {
    guard(|| registry::close(id))
}

/// Forgets the handle (its JS object was collected). Called by a FinalizationRegistry, where
/// nothing could take an error: a panic dropping the handle (a bug) is swallowed, not unwound
/// into Node.
#[napi]
pub fn free(id: u32) {
    let _ = std::panic::catch_unwind(|| registry::free(id));
}

/// Sets the cap on the file's memory, for every process.
#[napi]
pub fn set_max_size(id: u32, bytes: f64) -> Result<()> {
    guard(|| with(id, |h| h.map.set_max_size(bytes as u64)))
}

/// Sets the default time to live in ms for every process (0 = never expire).
#[napi]
pub fn set_max_age(id: u32, ms: f64) -> Result<()> {
    guard(|| with(id, |h| h.map.set_max_age(max_age_of(ms))))
}

/// Turns eviction on or off for every process.
#[napi]
pub fn set_evict(id: u32, evict: bool) -> Result<()> {
    guard(|| with(id, |h| h.map.set_evict(evict)))
}

/// Makes the handle read-only (or writable again).
#[napi]
pub fn set_read_only(id: u32, read_only: bool) -> Result<()> {
    guard(|| {
        with(id, |h| {
            if read_only != h.map.is_read_only() {
                h.map = h.map.with_read_only(read_only)?;
            }
            Ok(())
        })
    })
}

/// How far the coarse clock a stamping handle reports may lag the exact wall clock, in ms
/// ([`shmap::COARSE_SLACK_MS`]).
#[napi]
pub const COARSE_SLACK_MS: u32 = shmap::COARSE_SLACK_MS as u32;

/// From now on (`on`) every get of the handle also reports the coarse wall clock in `ver[2]`
/// (see [`registry::Handle::stamp`]).
#[napi]
pub fn stamp_clock(id: u32, on: bool) -> Result<()> {
    guard(|| {
        with(id, |h| {
            h.stamp = on;
            Ok(())
        })
    })
}

/// Whether the handle refuses writes.
#[napi]
pub fn is_read_only(id: u32) -> Result<bool> {
    guard(|| with(id, |h| Ok(h.map.is_read_only())))
}

/// The file behind the map.
#[napi]
pub fn path(id: u32) -> Result<String> {
    guard(|| with(id, |h| Ok(h.map.path().to_string_lossy().into_owned())))
}

// Store primitives for the adapters (Keyv, express-session, rate limiters): expiries, counters
// with creation options, and prefix operations filtered here so that only matching keys cross
// N-API.

/// Expiry of the key in wall-clock ms: -1 when absent, 0 for never.
#[napi]
pub fn expires_at(id: u32, key_len: u32) -> Result<f64> {
    guard(|| {
        with(id, |h| {
            Ok(match h.map.expires_at(key_of(&h.key, key_len)?)? {
                None => MISS,
                Some(ms) => ms as f64,
            })
        })
    })
}

/// Gives the key a new time to live (ms from now, 0 = never); false if it was absent.
#[napi]
pub fn expire(id: u32, key_len: u32, ttl: f64) -> Result<bool> {
    guard(|| with(id, |h| h.map.expire(key_of(&h.key, key_len)?, ttl as u64)))
}

/// `incr` with options: `ttl` (< 0: keep an existing entry's expiry) on every call, `init_ttl`
/// (< 0: none) only when the call creates the entry, `create` false to leave a missing key
/// missing. Returns the new value, or NaN when nothing was created; the entry's expiry (ms,
/// 0 = never) is written into `ver[0]`, the per-thread scratch of version reports.
#[napi]
pub fn incr_with(
    id: u32,
    key_len: u32,
    delta: f64,
    ttl: f64,
    init_ttl: f64,
    create: bool,
) -> Result<f64> {
    guard(|| {
        with(id, |h| {
            let o = shmap::IncrOptions {
                init: 0,
                ttl_ms: ttl_of(ttl),
                init_ttl_ms: ttl_of(init_ttl),
                create,
            };
            Ok(
                match h.map.incr_with(key_of(&h.key, key_len)?, delta as i64, o)? {
                    None => f64::NAN,
                    Some(c) => {
                        ver_set(&mut h.ver, 0, c.expires_ms as f64);
                        c.value as f64
                    }
                },
            )
        })
    })
}

/// The live keys that start with the first `prefix_len` bytes of the key buffer (all keys for
/// 0), at most `limit` of them (< 0: no limit), decoded as UTF-8.
#[napi]
pub fn keys_with_prefix(id: u32, prefix_len: u32, limit: f64) -> Result<Vec<String>> {
    guard(|| {
        with(id, |h| {
            let prefix = key_of(&h.key, prefix_len)?;
            let limit = if limit < 0.0 {
                usize::MAX
            } else {
                limit as usize
            };
            // The core's scan filters and stops at the limit (lock-free, scan semantics).
            let o = shmap::ScanOptions::new().prefix(prefix).limit(limit);
            Ok(h.map
                .scan(&o)?
                .into_iter()
                .map(|e| String::from_utf8_lossy(&e.key).into_owned())
                .collect())
        })
    })
}

/// Removes every key that starts with the first `prefix_len` bytes of the key buffer, in
/// batches of `batch` keys: each found by a resumable lock-free scan, then removed under one
/// hold of the writer lock (`Shmap::remove_prefix`). Returns how many were present.
#[napi]
pub fn delete_prefix(id: u32, prefix_len: u32, batch: u32) -> Result<f64> {
    guard(|| {
        with(id, |h| {
            let prefix = key_of(&h.key, prefix_len)?;
            let n = h.map.remove_prefix(prefix, batch as usize)?;
            Ok(n as f64)
        })
    })
}

/// One batch of a resumable scan (`scan_batch`). The cursor is a 64-bit hash, more than a
/// float64 holds exactly, so it crosses N-API as two u32 halves.
#[napi(object)]
pub struct ScanBatch {
    /// The keys found, decoded as UTF-8 (lossily).
    pub keys: Vec<String>,
    /// Their values' bytes (empty unless asked for).
    pub values: Vec<Buffer>,
    /// Their values' type tags (empty unless asked for).
    pub tags: Vec<u32>,
    /// Whether the scan is complete (then `next_hi`/`next_lo` mean nothing).
    pub done: bool,
    /// The high 32 bits of the cursor to continue from.
    pub next_hi: u32,
    /// The low 32 bits of the cursor to continue from.
    pub next_lo: u32,
}

/// Up to `limit` (>= 1) live entries whose keys start with `prefix`, from the cursor
/// `hi << 32 | lo` (0 starts), with their values if `values`; see `Shmap::scan_from`.
#[napi]
pub fn scan_batch(
    id: u32,
    prefix: BufferSlice,
    hi: u32,
    lo: u32,
    limit: u32,
    values: bool,
) -> Result<ScanBatch> {
    guard(|| {
        with(id, |h| {
            let o = shmap::ScanOptions::new()
                .prefix(&prefix[..])
                .limit(limit.max(1) as usize)
                .values(values);
            let at = shmap::ScanCursor::from_u64(u64::from(hi) << 32 | u64::from(lo));
            let (found, next) = h.map.scan_from(at, &o)?;
            let mut out = ScanBatch {
                keys: Vec::with_capacity(found.len()),
                values: Vec::new(),
                tags: Vec::new(),
                done: next.is_none(),
                next_hi: 0,
                next_lo: 0,
            };
            if let Some(c) = next {
                let c = c.to_u64();
                out.next_hi = (c >> 32) as u32;
                out.next_lo = c as u32;
            }
            for e in found {
                out.keys.push(String::from_utf8_lossy(&e.key).into_owned());
                if values {
                    out.tags.push(tag_of(e.flags));
                    out.values.push(e.value.into());
                }
            }
            Ok(out)
        })
    })
}

/// Removes the keys packed in `keys` (lengths in `lens`), under one hold of the writer lock;
/// returns how many were present.
#[napi]
pub fn remove_packed(id: u32, keys: BufferSlice, lens: Vec<u32>) -> Result<f64> {
    guard(|| {
        with(id, |h| {
            let mut list = Vec::with_capacity(lens.len());
            let mut at = 0usize;
            for len in lens {
                let end = at + len as usize;
                list.push(
                    keys.get(at..end)
                        .ok_or_else(|| invalid("key lengths exceed the key bytes"))?,
                );
                at = end;
            }
            h.map.remove_many(&list).map(|n| n as f64)
        })
    })
}

/// The hot-path functions `get`, `getIf`, `has`, `put` and `noop`, as raw N-API callbacks.
#[napi]
pub fn fast_api(env: &Env) -> napi::Result<Object<'_>> {
    raw::functions(env)
}

/// The condition of `putIf` (see `Shmap::set_if`), as validated by the JS layer.
#[napi(object)]
pub struct IfVersion {
    /// The integer entry holding the version to compare with.
    pub version_key: Buffer,
    /// Compared with when `version_key` is absent (`Le`/`Lt` only); absent too = refused.
    pub floor_key: Option<Buffer>,
    /// The caller's version (a safe integer).
    pub version: f64,
    /// 0 `<=`, 1 `<`, 2 `===`.
    pub compare: u32,
    /// On success also store `version` at `version_key` (and raise `floor_key`).
    pub stamp: bool,
    /// The stamp's time to live in ms (< 0: the map's default, 0: never).
    pub stamp_ttl: f64,
}

/// Stores `value` (tag `tag`, `ttl` as in `put`) under the key in the key buffer, or removes
/// the key when `value` is absent, only if `cond` holds; returns whether it held.
#[napi]
pub fn put_if(
    id: u32,
    key_len: u32,
    value: Option<BufferSlice>,
    tag: u32,
    ttl: f64,
    cond: IfVersion,
) -> Result<bool> {
    guard(|| {
        let compare = match cond.compare {
            0 => shmap::Compare::Le,
            1 => shmap::Compare::Lt,
            2 => shmap::Compare::Eq,
            _ => return Err(invalid("unknown comparison")),
        };
        let c = shmap::Condition {
            version_key: &cond.version_key,
            floor_key: cond.floor_key.as_deref(),
            version: cond.version as i64,
            compare,
            stamp: cond.stamp.then_some(ttl_of(cond.stamp_ttl)),
        };
        let o = SetOptions {
            ttl_ms: ttl_of(ttl),
            flags: flags_of(tag),
        };
        with(id, |h| {
            h.map
                .set_if(key_of(&h.key, key_len)?, value.as_deref(), o, &c)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(g: f64, p: f64) -> Vec<u8> {
        let mut b = vec![0; 16];
        ver_set(&mut b, 0, g);
        ver_set(&mut b, 1, p);
        b
    }

    #[test]
    fn held_versions_are_exact_or_none() {
        let v = |generation, pos| Some(Version { generation, pos });
        assert_eq!(held_version(&buf(3.0, 4096.0)), v(3, 4096));
        assert_eq!(held_version(&buf(0.0, 0.0)), v(0, 0));
        let top = (EXACT - 1) as f64;
        assert_eq!(held_version(&buf(top, top)), v(EXACT - 1, EXACT - 1));
        for (g, p) in [
            (-1.0, 8.0),
            (1.0, -1.0),
            (EXACT as f64, 8.0),
            (1.0, EXACT as f64),
            (1.5, 8.0),
            (f64::NAN, 8.0),
            (1.0, f64::INFINITY),
        ] {
            assert_eq!(held_version(&buf(g, p)), None, "{g} {p}");
        }
        assert_eq!(held_version(&[0; 8]), None, "a short buffer holds nothing");
    }

    #[test]
    fn reported_versions_round_trip_or_say_none() {
        let mut b = vec![0; 16];
        let exact = Version {
            generation: 7,
            pos: EXACT - 8,
        };
        report_version(&mut b, exact);
        assert_eq!(held_version(&b), Some(exact));
        for v in [
            Version {
                generation: EXACT,
                pos: 8,
            },
            Version {
                generation: 1,
                pos: u64::MAX,
            },
        ] {
            report_version(&mut b, v);
            assert_eq!(ver_get(&b, 0), NO_VERSION);
            assert_eq!(held_version(&b), None);
        }
    }
}
