//! Scans (`keys`, `entries`, [`crate::Shmap::scan`]): lock-free, chunk by chunk, in hash order.
//!
//! A scan holds nobody off. It walks the active index one chunk of home slots at a time, copies
//! what the chunk holds, and validates the copy like a single read (same generation, the ring's
//! tail not past any record it read); a chunk that raced a writer is read again, and a chunk
//! that met a generation switch is read again in the new generation. Home slots are the top bits
//! of the key's hash (format.md, "Index region"), so slot order is hash order at every index
//! size, and the position of a scan is one hash value: every key whose hash is below it has
//! been visited. That gives the semantics, also across growth, shrink and rebuilds:
//!
//! - every entry present (and not expired) for the whole scan is returned;
//! - each key at most once (keys are visited in increasing hash order);
//! - an entry written, replaced or removed during the scan may or may not appear, with any of
//!   the values it had meanwhile.
//!
//! It is not a snapshot: two entries returned may never have been present at the same moment.

use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

use crate::arena::{Failures, Gen};
use crate::error::{Error, Result};
use crate::format::{self, FLAG_LEASE, FLAG_PAD, slot};
use crate::lock;
use crate::shared::Shared;
use crate::types::Entry;

/// Home slots per chunk: the unit a scan copies and validates at once.
const CHUNK: u64 = 512;
/// Attempts at one chunk before a scan gives up with `Busy` (writers honour a reader's request
/// for quiet, so a few suffice in practice).
const CHUNK_TRIES: u32 = 200;

/// What a scan returns (see [`crate::Shmap::scan`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Only keys that start with these bytes (empty: every key). The filter runs inside the
    /// scan; it does not make the scan cheaper than a full one.
    pub prefix: Vec<u8>,
    /// At most this many entries per call (`None`: no limit). A call may return fewer and still
    /// a cursor; only `None` as the next cursor means the scan is complete.
    pub limit: Option<usize>,
    /// Whether to copy values (else entries have empty values).
    pub values: bool,
}

impl ScanOptions {
    /// Every key, no values, no limit.
    pub fn new() -> ScanOptions {
        ScanOptions::default()
    }
    /// Only keys starting with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<Vec<u8>>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// At most `n` entries per call.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }
    /// Copy values too.
    pub fn values(mut self, values: bool) -> Self {
        self.values = values;
        self
    }
}

/// Where a resumable scan stands: every key whose hash is below it has been visited. Valid
/// for the map it came from, across any writes, growth or shrink; [`ScanCursor::START`] begins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScanCursor(u64);

impl ScanCursor {
    /// The beginning of a scan.
    pub const START: ScanCursor = ScanCursor(0);

    /// The cursor as a number (to hand to another process or language).
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// A cursor from [`ScanCursor::to_u64`].
    pub fn from_u64(v: u64) -> ScanCursor {
        ScanCursor(v)
    }
}

struct Found {
    hash: u64,
    entry: Entry,
}

/// Scans from `cursor`: up to `o.limit` matching entries, and the cursor to continue from
/// (`None`: the scan is complete).
pub(crate) fn scan_from(
    sh: &Shared,
    cursor: ScanCursor,
    o: &ScanOptions,
) -> Result<(Vec<Entry>, Option<ScanCursor>)> {
    let limit = o.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut at = Some(cursor.0);
    if limit == 0 {
        return Ok((out, at.map(ScanCursor)));
    }
    while let Some(c) = at {
        let (mut found, next) = chunk_validated(sh, c, o)?;
        found.sort_unstable_by_key(|f| f.hash);
        let room = limit - out.len();
        if found.len() > room {
            // Cut between two hashes, never inside one: keys of equal hash (a 64-bit
            // collision) stay together, so resuming after the last hash skips none.
            let last = found[room - 1].hash;
            let keep = found.iter().take_while(|f| f.hash <= last).count();
            found.truncate(keep);
            out.extend(found.into_iter().map(|f| f.entry));
            return Ok((out, last.checked_add(1).map(ScanCursor)));
        }
        out.extend(found.into_iter().map(|f| f.entry));
        at = next;
        if out.len() == limit {
            break;
        }
    }
    Ok((out, at.map(ScanCursor)))
}

/// Reads the chunk that starts at hash `c` until a copy validates; returns its entries and the
/// hash where the next chunk starts.
fn chunk_validated(sh: &Shared, c: u64, o: &ScanOptions) -> Result<(Vec<Found>, Option<u64>)> {
    let now = (sh.clock)();
    let mut failures = Failures::default();
    for attempt in 0..CHUNK_TRIES {
        // Shard after shard: the cursor's top bits name the shard it is in.
        let g = Gen::load(&sh.mem, sh.shard_of(c))?;
        if let Some(r) = chunk(sh, &g, c, o, now)? {
            return Ok(r);
        }
        failures.failed(sh.mem.w(), &g)?;
        if attempt >= 1 {
            lock::request_quiet(&sh.mem, &lock::shard(g.shard));
        }
        if attempt >= 3 {
            std::thread::sleep(Duration::from_micros(50 << attempt.min(8)));
        }
    }
    Err(Error::Busy)
}

/// One optimistic pass over the chunk starting at hash `c` in generation `g`; `None` when a
/// writer raced it.
fn chunk(
    sh: &Shared,
    g: &Gen,
    c: u64,
    o: &ScanOptions,
    now: u64,
) -> Result<Option<(Vec<Found>, Option<u64>)>> {
    let w = sh.mem.w();
    let slots = g.slots();
    let shift = 64 - slots.trailing_zeros();
    let a = g.home(c);
    let b = (a + CHUNK).min(slots);
    // Hashes of this chunk: [c, end); `None` = to the end of the hash space. Within shard `s`
    // of `2^bits`, home slots order the hash bits after the shard's; the chunk's last one ends
    // the shard, and the next chunk begins the next shard.
    let bits = g.bits;
    let base = if bits == 0 {
        0
    } else {
        (g.shard as u64) << (64 - bits)
    };
    let end = if b < slots {
        Some(base | ((b << shift) >> bits))
    } else if g.shard + 1 < sh.shards() {
        Some(((g.shard + 1) as u64) << (64 - bits))
    } else {
        None
    };
    let mut found = Vec::new();
    let mut oldest = u64::MAX;
    let mut key = Vec::new();
    // Entries whose home is in [a, b) lie from their home up to the next empty slot, possibly
    // past b (and, for the last chunk, wrapping to the start). Each slot is read at most once.
    for j in 0..slots {
        let i = (a + j) & (slots - 1);
        let s = g.load_slot(w, i)?;
        if s == slot::EMPTY {
            if a + j >= b {
                break;
            }
            continue;
        }
        if !slot::is_live(s) || !slot::is_valid(s) {
            continue;
        }
        let pos = slot::pos(s);
        let Ok((hdr, _)) = g.header_at(w, pos)? else {
            // Torn (the tail moved past it) or damaged: validation below decides which.
            oldest = oldest.min(pos);
            continue;
        };
        oldest = oldest.min(pos);
        let flags = hdr.flags.get();
        if flags & FLAG_PAD != 0 {
            continue;
        }
        g.read_key(w, pos, &hdr, &mut key)?;
        let h = format::hash(&key, sh.seed);
        if h < c || end.is_some_and(|e| h >= e) || !key.starts_with(&o.prefix) {
            continue;
        }
        if hdr.expired(now) || flags & FLAG_LEASE != 0 {
            continue;
        }
        let mut value = Vec::new();
        if o.values {
            // Allocate only a length read from a record that was intact when read.
            if !intact(g, w, pos)? {
                return Ok(None);
            }
            let len = hdr.value_len.get() as usize;
            value
                .try_reserve_exact(len)
                .map_err(|_| Error::corrupt(pos, "value length exceeds available memory"))?;
            value.resize(len, 0);
            g.read_value(w, pos, &hdr, &mut value)?;
            if hdr.checksum(&key, &value) != hdr.crc.get() {
                continue;
            }
        }
        found.push(Found {
            hash: h,
            entry: Entry {
                key: key.clone(),
                value,
                flags,
                expires_ms: hdr.expires_ms.get(),
            },
        });
    }
    if !intact(g, w, oldest)? {
        return Ok(None);
    }
    Ok(Some((found, end)))
}

/// After copying records at positions `>= oldest` of `g`: true if none was overwritten
/// meanwhile (the generation is still active and the tail has not passed them).
fn intact(g: &Gen, w: &crate::raw::Window, oldest: u64) -> Result<bool> {
    fence(Ordering::Acquire);
    if !g.is_active(w)? {
        return Ok(false);
    }
    Ok(oldest == u64::MAX || g.tail(w)? <= oldest)
}
