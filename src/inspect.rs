//! Read-only inspection of a map file, for `shmap-inspect`: what the header says, who holds the
//! lock, what the index and the ring hold, and a verification walk that lists every
//! inconsistency with its file offset.
//!
//! The contract: the file is opened `O_RDONLY` and mapped read-only ([`open_for_inspection`]),
//! no lock is taken but a shared `flock` (tried, never waited for), no process slot is claimed,
//! and not a byte changes. Writers may run meanwhile, so everything here reads like a lock-free
//! reader (format.md, "Reading without locks"): copy, then re-check the generation and the ring's
//! tail, and retry or discard what a writer may have changed. A finding is reported only when
//! that re-check proves it was not a race:
//!
//! - a record copied at position `p` is intact if the tail, loaded after the copy, is `<= p`
//!   (writers move the tail before they overwrite ring bytes);
//! - a live slot value never comes back once replaced (positions only grow), and a slot never
//!   becomes empty again within a generation; so a slot re-read unchanged, or an empty slot seen
//!   after a live one, proves a state that really existed;
//! - control-block counters are compared with a recount only when no writer ran meanwhile.
//!
//! The binary renders the typed reports defined here as text or JSON.

use std::collections::HashMap;
use std::fmt;
use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, fence};

use zerocopy::FromBytes;

use crate::arena::Gen;
use crate::error::Error;
use crate::format::{
    self, CHUNK_CLOSED, CHUNK_HEAD_LEN, CONFIG_NO_EVICT, Desc, FLAG_CHUNK, FLAG_INT, FLAG_LEASE,
    FLAG_PAD, HEADER_LEN, LOCK_WAITERS, LOG_HEADER_LEN, LogHeader, MAGIC, PROC_SLOTS, ProcSlot,
    RECORD_HEADER_LEN, RecordHeader, SLOT_LEN, Superblock, USER_FLAGS, gctl, sctl, slot,
};
use crate::lock;
use crate::map::{Shmap, open_for_inspection};
use crate::shared::{Shared, read_control, read_shard};

/// The global control block and one shard's table entry, read together (relaxed loads: the
/// words may be mutually a little out of date while writers run).
#[derive(Debug, Clone)]
struct Ctl {
    active_gen: u64,
    writer_lock: u32,
    recovery: u32,
    max_size: u64,
    default_ttl_ms: u64,
    config_flags: u32,
    clean: u32,
    entries: u64,
    live_bytes: u64,
    used_slots: u64,
    evictions: u64,
    expirations: u64,
    switched_ms: u64,
    min_pages: u32,
    building_off: u64,
    building_len: u64,
    build_gen: u64,
    build_cursor: u64,
    retired_len: u64,
    bytes_written: u64,
    bytes_copied: u64,
    switches: u64,
}

fn read_ctl(sh: &Shared, shard: usize) -> Result<Ctl> {
    let c = read_control(&sh.mem)?;
    let e = read_shard(&sh.mem, shard)?;
    Ok(Ctl {
        active_gen: e.active >> 1,
        writer_lock: e.writer_lock,
        recovery: e.recovery,
        max_size: c.max_size,
        default_ttl_ms: c.default_ttl_ms,
        config_flags: c.config_flags,
        clean: c.clean,
        entries: e.entries,
        live_bytes: e.live(),
        used_slots: e.used_slots,
        evictions: e.evictions,
        expirations: e.expirations,
        switched_ms: e.switched_ms,
        min_pages: c.min_pages,
        building_off: e.building_off,
        building_len: e.building_len,
        build_gen: e.build_gen,
        build_cursor: e.build_cursor,
        retired_len: e.retired_index_len.saturating_add(e.retired_log_len),
        bytes_written: e.written(),
        bytes_copied: e.bytes_copied,
        switches: e.switches,
    })
}

/// How many times a whole pass restarts when the generation switches under it.
const PASSES: u32 = 20;
/// How many times one slot is re-read when a writer moves its record meanwhile.
const SLOT_TRIES: u32 = 64;

/// Why a file cannot be inspected at all (the tool's exit status 2).
#[derive(Debug)]
#[non_exhaustive]
pub enum Unreadable {
    /// The file does not start with the shmap magic; `found` holds its first bytes (up to 8).
    NotAMap {
        /// The file's first bytes.
        found: Vec<u8>,
    },
    /// The file is shorter than the header every map has.
    Truncated {
        /// The file's length.
        len: u64,
    },
    /// Another process holds the file exclusively: it is creating, recovering or detaching
    /// from the map.
    Busy,
    /// Writers switched generations (or moved records) during every attempt to read.
    Racing,
    /// The library refused the file or an I/O call failed: another format version, a damaged
    /// superblock, a missing file, permissions.
    Map(Error),
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreadable::NotAMap { found } if found.is_empty() => write!(
                f,
                "not a map file: it is empty (a map whose creator died before writing its \
                 header is empty too; opening it with shmap re-creates it)"
            ),
            Unreadable::NotAMap { found } => {
                let hex: Vec<String> = found.iter().map(|b| format!("{b:02x}")).collect();
                write!(
                    f,
                    "not a map file: it starts with bytes {}, not the shmap magic \
                     53 48 4d 41 50 00 0d 0a (\"SHMAP\\0\\r\\n\")",
                    hex.join(" ")
                )
            }
            Unreadable::Truncated { len } => write!(
                f,
                "truncated: the file is {len} bytes, shorter than the {HEADER_LEN}-byte header \
                 of every map (cut short, or its creator died while writing it)"
            ),
            Unreadable::Busy => write!(
                f,
                "busy: the map is being created or recovered (another process holds it \
                 exclusively); try again in a moment"
            ),
            Unreadable::Racing => write!(
                f,
                "busy: writers kept switching generations during every attempt to read the \
                 map; try again"
            ),
            Unreadable::Map(Error::UnsupportedVersion { found, supported }) => write!(
                f,
                "unsupported format version: the file has version {found}, this tool reads \
                 version {supported}; use a shmap-inspect built for version {found}"
            ),
            Unreadable::Map(Error::UnsupportedShards { found, supported }) => write!(
                f,
                "unsupported shard count: the file has {found} shards, this tool reads maps of \
                 at most {supported}; use a shmap-inspect of the release that created it"
            ),
            Unreadable::Map(Error::Corrupt { offset, what }) => {
                write!(f, "damaged at byte {offset}: {what}")
            }
            Unreadable::Map(e) => write!(f, "{e}"),
        }
    }
}

impl Unreadable {
    /// A stable name for the kind of failure (the tool's JSON `error_kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Unreadable::NotAMap { .. } => "not_a_map",
            Unreadable::Truncated { .. } => "truncated",
            Unreadable::Busy | Unreadable::Racing => "busy",
            Unreadable::Map(Error::UnsupportedVersion { .. })
            | Unreadable::Map(Error::UnsupportedShards { .. }) => "unsupported_version",
            Unreadable::Map(Error::Corrupt { .. }) => "damaged",
            Unreadable::Map(Error::Io { .. }) => "io",
            Unreadable::Map(_) => "other",
        }
    }
}

impl std::error::Error for Unreadable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Unreadable::Map(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for Unreadable {
    fn from(e: Error) -> Self {
        match e {
            Error::Busy => Unreadable::Racing,
            e => Unreadable::Map(e),
        }
    }
}

/// The result type of inspection.
pub type Result<T> = std::result::Result<T, Unreadable>;

/// An inconsistency, at a byte offset of the file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// File offset of the byte, field, slot or record concerned.
    pub offset: u64,
    /// What is wrong, for a person.
    pub what: String,
}

/// Something worth knowing that is not damage: left by a process that died, or a check that
/// could not be made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// File offset concerned, if any.
    pub offset: Option<u64>,
    /// What it is.
    pub what: String,
}

/// Where the active generation's regions are and how full the ring is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// When the generation was published (wall-clock ms).
    pub created_ms: u64,
    /// File offset of the index region.
    pub index_offset: u64,
    /// Index slots.
    pub index_slots: u64,
    /// Bytes of the index region.
    pub index_bytes: u64,
    /// File offset of the log region.
    pub log_offset: u64,
    /// Ring capacity in bytes.
    pub log_capacity: u64,
    /// Bytes of the log region (header and ring, page-rounded).
    pub log_bytes: u64,
    /// Virtual position of the next record.
    pub head: u64,
    /// Virtual position of the oldest valid byte.
    pub tail: u64,
    /// The generation that created the log (older than the active one after an index-only
    /// rebuild).
    pub log_generation: u64,
}

/// What the active index holds, counted slot by slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Live slots whose record is neither expired nor a lease.
    pub live: u64,
    /// Live slots whose record has expired (not yet reclaimed).
    pub expired: u64,
    /// Live slots holding an unexpired loader's lease.
    pub leases: u64,
    /// Tombstones.
    pub tombstones: u64,
    /// Slots whose value or record makes no sense (see `--verify`).
    pub damaged: u64,
    /// Bytes of the records the live, expired and lease slots point to.
    pub live_bytes: u64,
}

impl Census {
    /// Slots in use: everything but empty slots.
    pub fn used_slots(&self) -> u64 {
        self.live + self.expired + self.leases + self.tombstones + self.damaged
    }
}

/// The writer lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds it.
    Free,
    /// A process holds it.
    Held {
        /// The owner's process-table slot.
        slot: u32,
        /// The owner's incarnation of that slot.
        incarnation: u32,
        /// The pid recorded in that slot (informational: pids are reused).
        pid: u32,
        /// Whether the owner is alive (its slot is still locked with that incarnation).
        alive: bool,
        /// Whether someone is waiting for it.
        waiters: bool,
    },
}

/// A process-table slot in use, or left behind by a process that died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Slot number.
    pub slot: u32,
    /// Recorded pid.
    pub pid: u32,
    /// Incarnation.
    pub incarnation: u32,
}

/// How the processes that used the map last left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastExit {
    /// The last process detached cleanly after a flush (`clean` is 1).
    Clean,
    /// Processes are attached now.
    InUse,
    /// Nobody is attached and `clean` is 0: the last process died without detaching. The next
    /// open recovers.
    Unclean,
    /// The writer lock is held by a dead process: a writer was killed mid-operation. The next
    /// writer recovers.
    WriterDied,
}

impl LastExit {
    /// The stable name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            LastExit::Clean => "clean",
            LastExit::InUse => "in_use",
            LastExit::Unclean => "unclean",
            LastExit::WriterDied => "writer_died",
        }
    }
}

/// Control-block settings shared by every process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Cap on the file's allocated bytes.
    pub max_size: u64,
    /// Default time to live in ms (0 = never expire).
    pub default_ttl_ms: u64,
    /// Whether a full map evicts.
    pub evict: bool,
    /// The initial size, below which the map never shrinks.
    pub min_size: u64,
}

/// Counters kept in the control block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Live index slots, as counted by writers.
    pub entries: u64,
    /// Bytes of live records, as counted by writers.
    pub live_bytes: u64,
    /// Live slots plus tombstones, as counted by writers.
    pub used_slots: u64,
    /// Live records evicted so far.
    pub evictions: u64,
    /// Expired records reclaimed so far.
    pub expirations: u64,
    /// Generation switches so far.
    pub switches: u64,
    /// Record bytes appended by writes.
    pub bytes_written: u64,
    /// Record bytes copied by cleaning and switches.
    pub bytes_copied: u64,
}

/// One shard's line of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSummary {
    /// The shard's number.
    pub shard: usize,
    /// Its active generation.
    pub generation: u64,
    /// Index slots of the active generation (0 when its descriptor is unusable).
    pub index_slots: u64,
    /// Ring capacity of the active generation (0 when its descriptor is unusable).
    pub log_capacity: u64,
    /// Bytes between the ring's tail and head.
    pub ring_used: u64,
    /// Live slots, as counted by writers.
    pub entries: u64,
    /// Bytes of live records, as counted by writers.
    pub live_bytes: u64,
    /// Bytes of the active generation's regions.
    pub footprint: u64,
    /// The shard's fair share of `max_size` (format.md, "Shard table").
    pub fair_share: u64,
    /// The shard's writer lock.
    pub lock: LockState,
    /// A recovery of this shard is pending.
    pub recovery_pending: bool,
}

/// Everything `shmap-inspect FILE` shows.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The file.
    pub path: PathBuf,
    /// Format version (always the one this build reads: others are [`Unreadable`]).
    pub format_version: u32,
    /// When the map was created (wall-clock ms).
    pub created_ms: u64,
    /// The hash seed.
    pub hash_seed: u64,
    /// `log2` of the shard count.
    pub shard_bits: u32,
    /// One line per shard, in shard order.
    pub shards: Vec<ShardSummary>,
    /// The file's length.
    pub apparent_bytes: u64,
    /// Storage the file holds (allocated blocks).
    pub allocated_bytes: u64,
    /// Shard 0's active generation number.
    pub generation: u64,
    /// The active generation's regions; `None` when its descriptor is unusable (see `problems`).
    pub layout: Option<Layout>,
    /// The index, counted; `None` with `layout`.
    pub census: Option<Census>,
    /// Settings.
    pub settings: Settings,
    /// Counters.
    pub counters: Counters,
    /// When the last generation switch happened (wall-clock ms).
    pub switched_ms: u64,
    /// The writer lock.
    pub lock: LockState,
    /// A recovery is pending: a writer died holding the lock, or a recovery failed; the next
    /// writer recovers.
    pub recovery_pending: bool,
    /// The file's owner uid.
    pub owner_uid: u32,
    /// The file's permission bits.
    pub mode: u32,
    /// Attached processes (their slot is locked).
    pub processes: Vec<Process>,
    /// Slots left by processes that died without detaching.
    pub stale_processes: Vec<Process>,
    /// The control block's `clean` flag.
    pub clean_flag: bool,
    /// How the map was left.
    pub last_exit: LastExit,
    /// A generation switch in progress (or interrupted): offset and length of its regions.
    pub building: Option<(u64, u64)>,
    /// Retired regions still hold blocks to return to the OS (after their grace period).
    pub free_dirty: bool,
    /// Damage noticed on the way (the descriptor or the ring's head and tail); `--verify`
    /// looks much further.
    pub problems: Vec<Problem>,
}

impl Summary {
    /// `(head - tail) - live_bytes`: bytes of superseded, deleted and padding records.
    pub fn dead_bytes(&self) -> Option<u64> {
        let (l, c) = (self.layout.as_ref()?, self.census.as_ref()?);
        Some(l.head.saturating_sub(l.tail).saturating_sub(c.live_bytes))
    }

    /// Used slots over slots.
    pub fn load_factor(&self) -> Option<f64> {
        let (l, c) = (self.layout.as_ref()?, self.census.as_ref()?);
        Some(c.used_slots() as f64 / l.index_slots as f64)
    }
}

/// What `--verify` found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// The generation verified (0 when the descriptor is unusable).
    pub generation: u64,
    /// Index slots walked.
    pub index_slots: u64,
    /// Live slots among them (including expired entries and leases).
    pub live_slots: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Records walked in the ring (pads excluded).
    pub records: u64,
    /// Records no slot points to (superseded or deleted, awaiting cleaning).
    pub dead_records: u64,
    /// Pad records walked.
    pub pads: u64,
    /// Tail of the ring when the walk started.
    pub tail: u64,
    /// Head of the ring when the walk started.
    pub head: u64,
    /// Whether the control-block counters could be compared with the recount.
    pub counters_checked: bool,
    /// Passes made (more than one when writers switched generations meanwhile).
    pub passes: u32,
    /// Inconsistencies, sorted by offset.
    pub problems: Vec<Problem>,
    /// Non-damage findings.
    pub notes: Vec<Note>,
}

/// A live, unexpired entry, for `--keys` and `--dump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The key.
    pub key: Vec<u8>,
    /// The value (only when asked for).
    pub value: Option<Vec<u8>>,
    /// Length of the value.
    pub value_len: u32,
    /// Flags as stored (user bits 0..16 and `INT`).
    pub flags: u32,
    /// Expiry in wall-clock ms (0 = never).
    pub expires_ms: u64,
}

impl Item {
    /// The value as a counter, when it was written by `incr`/`set_int`.
    pub fn int_value(&self) -> Option<i64> {
        let v: [u8; 8] = self.value.as_deref()?.try_into().ok()?;
        (self.flags & FLAG_INT != 0).then(|| i64::from_le_bytes(v))
    }
}

/// An open map file, for inspection only.
pub struct Inspector {
    map: Shmap,
    now_ms: u64,
}

/// One slot read like a lock-free reader.
enum SlotRead {
    Empty,
    Tombstone,
    Invalid(u64),
    Live(Box<Rec>),
    /// The slot points behind the tail, and still did after the tail was seen there.
    BehindTail {
        pos: u64,
        tail: u64,
    },
    /// The generation switched: the pass must restart.
    Switched,
}

/// A live slot's record, copied.
struct Rec {
    slot: u64,
    pos: u64,
    /// The header and the record's size, or why its lengths make no sense.
    hdr: std::result::Result<(RecordHeader, u64), &'static str>,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    /// The head, loaded after the slot.
    head: u64,
}

impl Inspector {
    /// Opens `path` read-only. `now_ms` is the time against which expiry is judged.
    pub fn open(path: &Path, now_ms: u64) -> Result<Inspector> {
        let map = match open_for_inspection(path) {
            Ok(m) => m,
            Err(Error::Busy) => return Err(Unreadable::Busy),
            Err(e @ Error::Io { .. }) => return Err(Unreadable::Map(e)),
            Err(e) => return Err(diagnose(path).unwrap_or(Unreadable::Map(e))),
        };
        let insp = Inspector { map, now_ms };
        let sh = insp.sh()?;
        let len = sh.mem.refresh_len()?;
        if len < HEADER_LEN {
            return Err(Unreadable::Truncated { len });
        }
        Ok(insp)
    }

    fn sh(&self) -> Result<&Shared> {
        Ok(self.map.shared()?)
    }

    fn superblock(&self) -> Result<Superblock> {
        let mut buf = [0u8; 128];
        self.sh()?.mem.w().read(0, &mut buf)?;
        Ok(Superblock::read_from_bytes(&buf).map_err(|_| Error::corrupt(0, "superblock"))?)
    }

    /// The summary: header, control block, lock, processes, layout and a count of the index
    /// (shard 0's), and a line per shard.
    pub fn summary(&self) -> Result<Summary> {
        let sh = self.sh()?;
        let sb = self.superblock()?;
        let c = read_ctl(sh, 0)?;
        let apparent_bytes = sh.mem.refresh_len()?;
        let (owner_uid, mode) = {
            use std::os::unix::fs::MetadataExt;
            let m = sh
                .mem
                .file()
                .metadata()
                .map_err(|e| Error::io("stat map file", e))?;
            (m.uid(), m.mode() & 0o7777)
        };
        let allocated_bytes = sh.mem.allocated_bytes()?;
        let (processes, stale_processes) = self.processes()?;
        let lock = self.lock_state(&c)?;
        let mut problems = Vec::new();
        let (mut layout, mut census) = (None, None);
        for _ in 0..PASSES {
            let g = match load_gen(sh, 0)? {
                Ok(g) => g,
                Err(p) => {
                    problems.push(p);
                    break;
                }
            };
            let l = self.layout(&g)?;
            problems.extend(ring_bounds(&g, l.head, l.tail));
            match self.census(&g)? {
                Some(cs) => {
                    layout = Some(l);
                    census = Some(cs);
                    break;
                }
                None => problems.clear(),
            }
        }
        if layout.is_none() && problems.is_empty() {
            return Err(Unreadable::Racing);
        }
        let last_exit = last_exit(&lock, c.clean == 1, !processes.is_empty());
        let shards = self.shard_summaries()?;
        Ok(Summary {
            path: sh.path.clone(),
            format_version: sb.version.get(),
            created_ms: sb.created_ms.get(),
            hash_seed: sb.seed.get(),
            shard_bits: sb.shard_bits.get(),
            shards,
            apparent_bytes,
            allocated_bytes,
            generation: c.active_gen,
            layout,
            census,
            settings: Settings {
                max_size: c.max_size,
                default_ttl_ms: c.default_ttl_ms,
                evict: c.config_flags & CONFIG_NO_EVICT == 0,
                min_size: c.min_pages as u64 * format::PAGE,
            },
            counters: counters(&c),
            switched_ms: c.switched_ms,
            lock,
            recovery_pending: c.recovery != 0,
            owner_uid,
            mode,
            processes,
            stale_processes,
            clean_flag: c.clean == 1,
            last_exit,
            building: (c.building_off != 0 || c.building_len != 0)
                .then_some((c.building_off, c.building_len)),
            free_dirty: c.retired_len != 0,
            problems,
        })
    }

    /// A summary line per shard; a shard whose descriptor is unusable shows zeros there.
    fn shard_summaries(&self) -> Result<Vec<ShardSummary>> {
        let sh = self.sh()?;
        let n = sh.shards();
        let mut out = Vec::with_capacity(n);
        for s in 0..n {
            let c = read_ctl(sh, s)?;
            let (mut index_slots, mut log_capacity, mut ring_used, mut footprint) = (0, 0, 0, 0);
            if let Ok(g) = load_gen(sh, s)? {
                let (head, tail) = head_tail(&g, sh.mem.w())?;
                index_slots = g.slots();
                log_capacity = g.cap();
                ring_used = head.saturating_sub(tail);
                footprint = g.desc.index_len().saturating_add(g.desc.log_len());
            }
            out.push(ShardSummary {
                shard: s,
                generation: c.active_gen,
                index_slots,
                log_capacity,
                ring_used,
                entries: c.entries,
                live_bytes: c.live_bytes,
                footprint,
                fair_share: c.max_size.saturating_sub(sh.mem.header_len()) / n as u64,
                lock: self.lock_state(&c)?,
                recovery_pending: c.recovery != 0,
            });
        }
        Ok(out)
    }

    fn layout(&self, g: &Gen) -> Result<Layout> {
        let w = self.sh()?.mem.w();
        let d = &g.desc;
        let (head, tail) = head_tail(g, w)?;
        let mut lh = [0u8; LOG_HEADER_LEN as usize];
        w.read(d.log_off, &mut lh)?;
        let lh = LogHeader::read_from_bytes(&lh).map_err(|_| Error::corrupt(d.log_off, "log"))?;
        Ok(Layout {
            created_ms: d.created_ms,
            index_offset: d.index_off,
            index_slots: d.index_slots,
            index_bytes: d.index_len(),
            log_offset: d.log_off,
            log_capacity: d.log_cap,
            log_bytes: d.log_len(),
            head,
            tail,
            log_generation: lh.generation,
        })
    }

    /// Counts the index; `None` if the generation switched meanwhile.
    fn census(&self, g: &Gen) -> Result<Option<Census>> {
        let mut cs = Census::default();
        for i in 0..g.slots() {
            match self.read_slot(g, i, false)? {
                SlotRead::Empty => {}
                SlotRead::Tombstone => cs.tombstones += 1,
                SlotRead::Invalid(_) | SlotRead::BehindTail { .. } => cs.damaged += 1,
                SlotRead::Switched => return Ok(None),
                SlotRead::Live(r) => match r.hdr {
                    Ok((hdr, size)) if hdr.flags.get() & (FLAG_PAD | FLAG_CHUNK) == 0 => {
                        cs.live_bytes = cs.live_bytes.saturating_add(size);
                        if hdr.expired(self.now_ms) {
                            cs.expired += 1;
                        } else if hdr.flags.get() & FLAG_LEASE != 0 {
                            cs.leases += 1;
                        } else {
                            cs.live += 1;
                        }
                    }
                    _ => cs.damaged += 1,
                },
            }
        }
        Ok(unchanged(g, self.sh()?.mem.w())?.then_some(cs))
    }

    /// Whether a lane of `shard` was left announced by a dead process: a fast writer killed
    /// after its publication, whose count the next writer to adopt the lane recounts.
    fn dead_fast_writer(&self, shard: usize) -> Result<bool> {
        let sh = self.sh()?;
        let e = read_shard(&sh.mem, shard)?;
        for l in &e.lanes {
            if l.owner != 0 && l.busy != 0 {
                let (slot, inc) = crate::lock::owner_of(l.owner as u32);
                if !crate::lock::alive(&sh.mem, None, slot, inc)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn lock_state(&self, c: &Ctl) -> Result<LockState> {
        let sh = self.sh()?;
        let word = c.writer_lock;
        if word & !LOCK_WAITERS == 0 {
            return Ok(LockState::Free);
        }
        let (slot, incarnation) = lock::owner_of(word);
        Ok(LockState::Held {
            slot,
            incarnation,
            pid: lock::pid_of(&sh.mem, slot)?,
            alive: lock::alive(&sh.mem, None, slot, incarnation)?,
            waiters: word & LOCK_WAITERS != 0,
        })
    }

    /// Attached processes, and slots left by processes that died without detaching.
    fn processes(&self) -> Result<(Vec<Process>, Vec<Process>)> {
        let mem = &self.sh()?.mem;
        let (mut live, mut stale) = (Vec::new(), Vec::new());
        for s in 0..PROC_SLOTS {
            let mut buf = [0u8; std::mem::size_of::<ProcSlot>()];
            mem.w().read(format::proc_off(s, 0), &mut buf)?;
            let p = ProcSlot::read_from_bytes(&buf)
                .map_err(|_| Error::corrupt(format::proc_off(s, 0), "process slot"))?;
            let proc_ = Process {
                slot: s,
                pid: p.pid,
                incarnation: p.incarnation,
            };
            if mem.byte_locked(format::proc_lock_byte(s))? {
                live.push(proc_);
            } else if p.pid != 0 {
                stale.push(proc_);
            }
        }
        Ok((live, stale))
    }

    /// Reads slot `i` and, when live, its record (with the value if `values`), validated like
    /// a lock-free read.
    fn read_slot(&self, g: &Gen, i: u64, values: bool) -> Result<SlotRead> {
        let w = self.sh()?.mem.w();
        let mut s = g.load_slot(w, i)?;
        for _ in 0..SLOT_TRIES {
            if s == slot::EMPTY {
                return Ok(SlotRead::Empty);
            }
            if s == slot::TOMBSTONE {
                return Ok(SlotRead::Tombstone);
            }
            if !slot::is_valid(s) {
                return Ok(SlotRead::Invalid(s));
            }
            let pos = slot::pos(s);
            let hdr = g.header_at(w, pos)?;
            let mut key = Vec::new();
            let mut value = None;
            if let Ok((h, _)) = &hdr {
                g.read_key(w, pos, h, &mut key)?;
                if values {
                    let mut v = vec![0u8; h.value_len.get() as usize];
                    g.read_value(w, pos, h, &mut v)?;
                    value = Some(v);
                }
            }
            let head = g.head(w)?;
            if !unchanged(g, w)? {
                return Ok(SlotRead::Switched);
            }
            let tail = g.tail(w)?;
            if tail <= pos {
                return Ok(SlotRead::Live(Box::new(Rec {
                    slot: s,
                    pos,
                    hdr,
                    key,
                    value,
                    head,
                })));
            }
            // Writers re-point a slot before the tail passes its record: having seen this tail,
            // an unchanged slot really points behind it.
            let again = g.load_slot(w, i)?;
            if again == s {
                return Ok(SlotRead::BehindTail { pos, tail });
            }
            s = again;
        }
        Err(Unreadable::Racing)
    }

    /// Live, unexpired entries (leases excluded) whose key starts with `prefix`, sorted by key,
    /// at most `limit` of them; values too if `values`. Each entry is consistent; the set is not
    /// one instant's snapshot while writers run. Records whose checksum fails are left out and
    /// counted in the second result.
    pub fn items(
        &self,
        prefix: &[u8],
        limit: Option<usize>,
        values: bool,
    ) -> Result<(Vec<Item>, u64)> {
        let sh = self.sh()?;
        let mut all = Vec::new();
        let mut damaged_all = 0;
        for shard in 0..sh.shards() {
            let (items, damaged) = self.shard_items(shard, prefix, values)?;
            all.extend(items);
            damaged_all += damaged;
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(n) = limit {
            all.truncate(n);
        }
        Ok((all, damaged_all))
    }

    /// [`Inspector::items`] of one shard, unsorted.
    fn shard_items(&self, shard: usize, prefix: &[u8], values: bool) -> Result<(Vec<Item>, u64)> {
        let sh = self.sh()?;
        'pass: for _ in 0..PASSES {
            let g = match load_gen(sh, shard)? {
                Ok(g) => g,
                Err(p) => {
                    return Err(Unreadable::Map(Error::Corrupt {
                        offset: p.offset,
                        what: p.what,
                    }));
                }
            };
            let mut out = Vec::new();
            let mut damaged = 0;
            for i in 0..g.slots() {
                let r = match self.read_slot(&g, i, values)? {
                    SlotRead::Switched => continue 'pass,
                    SlotRead::Live(r) => r,
                    SlotRead::Invalid(_) | SlotRead::BehindTail { .. } => {
                        damaged += 1;
                        continue;
                    }
                    _ => continue,
                };
                let Ok((hdr, _)) = r.hdr else {
                    damaged += 1;
                    continue;
                };
                let flags = hdr.flags.get();
                if flags & (FLAG_PAD | FLAG_LEASE) != 0
                    || hdr.expired(self.now_ms)
                    || !r.key.starts_with(prefix)
                {
                    continue;
                }
                if let Some(v) = &r.value
                    && hdr.checksum(&r.key, v) != hdr.crc.get()
                {
                    damaged += 1;
                    continue;
                }
                out.push(Item {
                    key: r.key,
                    value: r.value,
                    value_len: hdr.value_len.get(),
                    flags,
                    expires_ms: hdr.expires_ms.get(),
                });
            }
            if !unchanged(&g, sh.mem.w())? {
                continue 'pass;
            }
            return Ok((out, damaged));
        }
        Err(Unreadable::Racing)
    }

    /// Walks every index slot and every record from the tail to the head and checks them
    /// against each other and the format.
    pub fn verify(&self) -> Result<Verification> {
        let sh = self.sh()?;
        let mut all: Option<Verification> = None;
        for shard in 0..sh.shards() {
            let v = self.verify_shard(shard)?;
            all = Some(match all {
                None => v,
                Some(mut a) => {
                    a.generation = a.generation.max(v.generation);
                    a.index_slots += v.index_slots;
                    a.live_slots += v.live_slots;
                    a.tombstones += v.tombstones;
                    a.records += v.records;
                    a.dead_records += v.dead_records;
                    a.pads += v.pads;
                    a.counters_checked &= v.counters_checked;
                    a.passes = a.passes.max(v.passes);
                    a.problems.extend(v.problems);
                    a.notes.extend(v.notes);
                    a.problems.sort();
                    a.problems.dedup();
                    a.notes.sort();
                    a.notes.dedup();
                    a
                }
            });
        }
        let mut v = all.ok_or(Unreadable::Racing)?;
        if sh.shards() > 1 {
            v.problems.extend(self.shard_overlaps()?);
            v.problems.sort();
            v.problems.dedup();
        }
        Ok(v)
    }

    /// In a map of several shards: no two shards' active regions overlap (the placement step's
    /// invariant). A pair is reported only if neither shard switched while it was read.
    fn shard_overlaps(&self) -> Result<Vec<Problem>> {
        let sh = self.sh()?;
        for _ in 0..PASSES {
            let mut gens = Vec::new();
            for s in 0..sh.shards() {
                if let Ok(g) = load_gen(sh, s)? {
                    gens.push(g);
                }
            }
            let mut problems = Vec::new();
            for (i, a) in gens.iter().enumerate() {
                for b in &gens[i + 1..] {
                    let (da, db) = (a.desc, b.desc);
                    let ra = [(da.index_off, da.index_len()), (da.log_off, da.log_len())];
                    let rb = [(db.index_off, db.index_len()), (db.log_off, db.log_len())];
                    for (ao, al) in ra {
                        for (bo, bl) in rb {
                            if ao < bo.saturating_add(bl) && bo < ao.saturating_add(al) {
                                problems.push(Problem {
                                    offset: format::desc_off(b.shard, b.slot),
                                    what: format!(
                                        "shard {}'s region [{bo}, +{bl}) overlaps shard {}'s \
                                         [{ao}, +{al})",
                                        b.shard, a.shard
                                    ),
                                });
                            }
                        }
                    }
                }
            }
            let w = sh.mem.w();
            let mut still = true;
            for g in &gens {
                still &= unchanged(g, w)?;
            }
            if still {
                return Ok(problems);
            }
        }
        Err(Unreadable::Racing)
    }

    /// The verification walk of one shard (its generation, index and ring).
    fn verify_shard(&self, shard: usize) -> Result<Verification> {
        let sh = self.sh()?;
        let mut notes = self.control_notes(shard)?;
        for pass in 1..=PASSES {
            let before = read_ctl(sh, shard)?;
            let g = match load_gen(sh, shard)? {
                Ok(g) => g,
                Err(p) => {
                    return Ok(Verification {
                        passes: pass,
                        problems: vec![p],
                        notes,
                        ..Verification::default()
                    });
                }
            };
            let Some(mut v) = self.verify_gen(&g, &before)? else {
                continue;
            };
            v.passes = pass;
            v.notes.append(&mut notes);
            v.problems.sort();
            v.problems.dedup();
            v.notes.sort();
            v.notes.dedup();
            return Ok(v);
        }
        Err(Unreadable::Racing)
    }

    /// Findings about the control block and the process table that are not about a generation.
    fn control_notes(&self, shard: usize) -> Result<Vec<Note>> {
        let c = read_ctl(self.sh()?, shard)?;
        let (procs, stale) = self.processes()?;
        let mut notes = Vec::new();
        let lock = self.lock_state(&c)?;
        let global = shard == 0;
        if let LockState::Held {
            slot,
            pid,
            alive: false,
            ..
        } = lock
        {
            notes.push(Note {
                offset: Some(sctl!(shard, writer_lock)),
                what: format!(
                    "the writer lock is held by a dead process (slot {slot}, pid {pid}): a \
                     writer was killed mid-operation; the next writer recovers the map"
                ),
            });
        }
        if global && c.clean == 0 && procs.is_empty() && matches!(lock, LockState::Free) {
            notes.push(Note {
                offset: Some(gctl!(clean)),
                what: "no process is attached but the map was not closed cleanly: the last \
                       process died without detaching; the next open recovers"
                    .into(),
            });
        }
        if global && c.clean > 1 {
            notes.push(Note {
                offset: Some(gctl!(clean)),
                what: format!("the clean flag holds {}, expected 0 or 1", c.clean),
            });
        }
        if c.recovery != 0 {
            notes.push(Note {
                offset: Some(sctl!(shard, recovery)),
                what: "a recovery is pending (a writer died holding the lock, or a recovery \
                       failed): the next writer recovers the map"
                    .into(),
            });
        }
        if global && !stale.is_empty() {
            notes.push(Note {
                offset: Some(format::PROC_OFF),
                what: format!(
                    "{} left behind by processes that died without detaching",
                    count(stale.len(), "process slot", "process slots")
                ),
            });
        }
        if c.build_gen != 0 {
            notes.push(Note {
                offset: Some(sctl!(shard, build_gen)),
                what: format!(
                    "generation {} is being built incrementally behind the writes (cursor at \
                     slot {}); it is invisible until published, and a recovery abandons it \
                     ([{}, +{}) reserved)",
                    c.build_gen, c.build_cursor, c.building_off, c.building_len
                ),
            });
        } else if c.building_off != 0 || c.building_len != 0 {
            let state = if matches!(lock, LockState::Held { alive: true, .. }) {
                "a generation switch is in progress"
            } else {
                "a generation switch was interrupted; its regions are free space"
            };
            notes.push(Note {
                offset: Some(sctl!(shard, building_off)),
                what: format!("{state} ([{}, +{}))", c.building_off, c.building_len),
            });
        }
        if global && c.config_flags & !CONFIG_NO_EVICT != 0 {
            notes.push(Note {
                offset: Some(gctl!(config_flags)),
                what: format!(
                    "config flags {:#x} use bits this version does not know",
                    c.config_flags
                ),
            });
        }
        Ok(notes)
    }

    /// One verification pass over generation `g`; `None` if it switched meanwhile.
    fn verify_gen(&self, g: &Gen, before: &Ctl) -> Result<Option<Verification>> {
        let sh = self.sh()?;
        let w = sh.mem.w();
        let sb = self.superblock()?;
        let d = g.desc;
        let mut v = Verification {
            generation: g.number(),
            index_slots: g.slots(),
            ..Verification::default()
        };
        let mut problems = Vec::new();

        // The descriptor validated (Gen::load); the log header must agree with it.
        let mut lh = [0u8; LOG_HEADER_LEN as usize];
        w.read(d.log_off, &mut lh)?;
        let lh = LogHeader::read_from_bytes(&lh).map_err(|_| Error::corrupt(d.log_off, "log"))?;
        if lh.log_cap != d.log_cap {
            problems.push(Problem {
                offset: d.log_off + offset_of!(LogHeader, log_cap) as u64,
                what: format!(
                    "the log header says capacity {}, the descriptor {}",
                    lh.log_cap, d.log_cap
                ),
            });
        }
        if lh.generation == 0 || lh.generation > g.number() {
            problems.push(Problem {
                offset: d.log_off + offset_of!(LogHeader, generation) as u64,
                what: format!(
                    "the log header names generation {}, but the active one is {}",
                    lh.generation,
                    g.number()
                ),
            });
        }
        if d.created_ms < sb.created_ms.get() {
            v.notes.push(Note {
                offset: Some(
                    format::desc_off(g.shard, g.slot) + offset_of!(Desc, created_ms) as u64,
                ),
                what: "the generation was published before the map was created (a clock \
                       stepped back?)"
                    .into(),
            });
        }
        let (head, tail) = head_tail(g, w)?;
        v.head = head;
        v.tail = tail;
        let ring_sane = ring_bounds(g, head, tail).is_empty();
        problems.extend(ring_bounds(g, head, tail));

        // The index, slot by slot.
        let mask = g.slots() - 1;
        let slot_off = |i: u64| d.index_off + i * SLOT_LEN;
        let rec_off = |pos: u64| d.log_off + LOG_HEADER_LEN + g.phys(pos);
        let mut seen: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
        let mut pointed: Vec<(u64, u64)> = Vec::new();
        let (mut empty, mut used, mut live_bytes) = (0u64, 0u64, 0u64);
        for i in 0..g.slots() {
            let r = match self.read_slot(g, i, true)? {
                SlotRead::Switched => return Ok(None),
                SlotRead::Empty => {
                    empty += 1;
                    continue;
                }
                SlotRead::Tombstone => {
                    used += 1;
                    v.tombstones += 1;
                    continue;
                }
                SlotRead::Invalid(s) => {
                    used += 1;
                    problems.push(Problem {
                        offset: slot_off(i),
                        what: format!(
                            "index slot {i} holds {s:#018x}: neither empty, a tombstone nor a \
                             live entry"
                        ),
                    });
                    continue;
                }
                SlotRead::BehindTail { pos, tail } => {
                    used += 1;
                    v.live_slots += 1;
                    problems.push(Problem {
                        offset: slot_off(i),
                        what: format!(
                            "index slot {i} points at position {pos}, behind the ring's tail \
                             {tail}: its record may already be overwritten"
                        ),
                    });
                    continue;
                }
                SlotRead::Live(r) => r,
            };
            used += 1;
            v.live_slots += 1;
            let pos = r.pos;
            let (hdr, size) = match r.hdr {
                Ok(x) => x,
                Err(what) => {
                    problems.push(Problem {
                        offset: slot_off(i),
                        what: format!(
                            "index slot {i} points at position {pos} (byte {}): {what}",
                            rec_off(pos)
                        ),
                    });
                    continue;
                }
            };
            live_bytes = live_bytes.saturating_add(size);
            if hdr.flags.get() & (FLAG_PAD | FLAG_CHUNK) != 0 {
                problems.push(Problem {
                    offset: slot_off(i),
                    what: format!("index slot {i} points at a pad or chunk (position {pos})"),
                });
                continue;
            }
            if pos.saturating_add(size) > r.head {
                problems.push(Problem {
                    offset: slot_off(i),
                    what: format!(
                        "index slot {i} points at a record at position {pos} that ends past \
                         the head {}",
                        r.head
                    ),
                });
            }
            let key = r.key;
            let value = r.value.unwrap_or_default();
            problems.extend(check_record(&hdr, &key, &value, rec_off(pos), &sb, Some(i)));
            pointed.push((pos, i));
            let h = format::hash(&key, sh.seed);
            if !slot::matches(r.slot, h) {
                problems.push(Problem {
                    offset: slot_off(i),
                    what: format!(
                        "index slot {i}'s tag does not match the hash of the key {} it points at",
                        show_key(&key)
                    ),
                });
            }
            if format::shard_of(h, g.bits) != g.shard {
                problems.push(Problem {
                    offset: slot_off(i),
                    what: format!(
                        "index slot {i} of shard {} holds the key {}, which belongs to shard {}",
                        g.shard,
                        show_key(&key),
                        format::shard_of(h, g.bits)
                    ),
                });
            }
            // Lookups probe from the key's home slot and stop at the first empty slot.
            let mut k = g.home(h);
            while k != i {
                if g.load_slot(w, k)? == slot::EMPTY {
                    problems.push(Problem {
                        offset: slot_off(i),
                        what: format!(
                            "index slot {i} holds the key {} but slot {k}, earlier on its probe \
                             sequence, is empty: lookups stop there and never find it",
                            show_key(&key)
                        ),
                    });
                    break;
                }
                k = (k + 1) & mask;
            }
            match seen.get(&key) {
                // A live slot value never comes back once replaced: unchanged means both were
                // live at once.
                Some(&(j, sj)) if g.load_slot(w, j)? == sj => problems.push(Problem {
                    offset: slot_off(i),
                    what: format!(
                        "the key {} has two live index slots, {j} and {i}",
                        show_key(&key)
                    ),
                }),
                _ => {
                    seen.insert(key, (i, r.slot));
                }
            }
        }
        if empty == 0 {
            problems.push(Problem {
                offset: d.index_off,
                what: "the index has no empty slot: lookups of absent keys never end".into(),
            });
        }

        // The counters, if no writer ran during the walk.
        let after = read_ctl(sh, g.shard)?;
        let quiet = before.writer_lock == 0
            && after.writer_lock == 0
            && (
                before.entries,
                before.live_bytes,
                before.used_slots,
                before.active_gen,
            ) == (
                after.entries,
                after.live_bytes,
                after.used_slots,
                after.active_gen,
            )
            && before.bytes_written == after.bytes_written
            && g.head(w)? == head;
        let dead_writer = (before.writer_lock == after.writer_lock
            && matches!(
                self.lock_state(&after)?,
                LockState::Held { alive: false, .. }
            ))
            || self.dead_fast_writer(g.shard)?;
        if quiet || dead_writer {
            v.counters_checked = true;
            let recount = [
                (
                    "entries",
                    sctl!(g.shard, entries),
                    after.entries,
                    v.live_slots,
                ),
                (
                    "live_bytes",
                    sctl!(g.shard, live_bytes),
                    after.live_bytes,
                    live_bytes,
                ),
                (
                    "used_slots",
                    sctl!(g.shard, used_slots),
                    after.used_slots,
                    used,
                ),
            ];
            for (name, offset, stored, counted) in recount {
                if stored == counted {
                    continue;
                }
                let what = format!(
                    "shard {}'s {name} is {stored}, the index recounts {counted}",
                    g.shard
                );
                if dead_writer {
                    v.notes.push(Note {
                        offset: Some(offset),
                        what: format!("{what} (stale: the writer died before updating it)"),
                    });
                } else {
                    problems.push(Problem { offset, what });
                }
            }
        } else {
            v.notes.push(Note {
                offset: None,
                what: "counters not compared with the recount: writers were active during the \
                       walk"
                    .into(),
            });
        }

        // The ring, record by record, from the tail to the head as they are now (the index
        // walk may have taken a while).
        let (head, tail) = head_tail(g, w)?;
        let fresh = ring_bounds(g, head, tail);
        if ring_sane && fresh.is_empty() {
            v.head = head;
            v.tail = tail;
            let live: HashMap<u64, u64> = pointed.iter().copied().collect();
            let Some(walk) = self.walk(g, tail, head, &sb, &live)? else {
                return Ok(None);
            };
            if walk.overtaken > 0 {
                v.notes.push(Note {
                    offset: None,
                    what: format!(
                        "writers reclaimed ring space ahead of the walk {}; records they \
                         reclaimed meanwhile were not checked",
                        times(walk.overtaken)
                    ),
                });
            }
            v.records = walk.records.len() as u64;
            v.dead_records = walk
                .records
                .iter()
                .filter(|p| !live.contains_key(p))
                .count() as u64;
            v.pads = walk.pads;
            problems.extend(walk.problems);
            // A slot must point at a record's start, not into one.
            for (pos, i) in pointed {
                let covered = walk.covered.iter().any(|&(a, b)| a <= pos && pos < b);
                if pos >= walk.tail_after && covered && walk.records.binary_search(&pos).is_err() {
                    problems.push(Problem {
                        offset: slot_off(i),
                        what: format!(
                            "index slot {i} points at position {pos}, which is not the start \
                             of a record"
                        ),
                    });
                }
            }
        } else {
            problems.extend(fresh);
        }
        if !unchanged(g, w)? {
            return Ok(None);
        }
        v.problems = problems;
        Ok(Some(v))
    }

    /// Walks the ring from `tail` to `head`; `None` if the generation switched meanwhile.
    /// `live` maps the positions live slots point at to those slots.
    fn walk(
        &self,
        g: &Gen,
        tail: u64,
        head: u64,
        sb: &Superblock,
        live: &HashMap<u64, u64>,
    ) -> Result<Option<Walk>> {
        let w = self.sh()?.mem.w();
        let d = g.desc;
        let rec_off = |pos: u64| d.log_off + LOG_HEADER_LEN + g.phys(pos);
        let mut found: Vec<(u64, Problem)> = Vec::new();
        let mut records = Vec::new();
        let mut covered = Vec::new();
        let (mut pads, mut overtaken) = (0, 0);
        let (mut pos, mut start) = (tail, tail);
        let (mut key, mut value) = (Vec::new(), Vec::new());
        // Inside a chunk: where its records end (`fill`) and where the chunk does.
        let mut chunk: Option<(u64, u64)> = None;
        while pos < head {
            if let Some((fill_end, end)) = chunk
                && pos >= fill_end
            {
                chunk = None;
                pos = end;
                continue;
            }
            let phys = g.phys(pos);
            let room = g.cap() - phys;
            if room < RECORD_HEADER_LEN {
                pos = g.next_lap(pos);
                continue;
            }
            let (hdr, size) = match g.header_at(w, pos)? {
                Ok(x) => x,
                Err(what) => {
                    // Garbage behind a moved tail is a race; at or after it, damage.
                    fence(Ordering::Acquire);
                    let t = g.tail(w)?;
                    if t > pos {
                        overtaken += 1;
                        covered.push((start, pos));
                        (pos, start) = (t, t);
                        continue;
                    }
                    found.push((
                        pos,
                        Problem {
                            offset: rec_off(pos),
                            what: format!(
                                "record at position {pos}: {what}; the walk cannot go on, {} \
                                 bytes up to the head are unchecked",
                                head - pos
                            ),
                        },
                    ));
                    break;
                }
            };
            let flags = hdr.flags.get();
            if flags & FLAG_PAD != 0 {
                pads += 1;
                let mut what = Vec::new();
                if size != room {
                    what.push(format!(
                        "spans {size} bytes, not the {room} up to the ring's end"
                    ));
                }
                if hdr.key_len.get() != 0 {
                    what.push(format!("has a key length {}", hdr.key_len.get()));
                }
                if hdr.checksum(&[], &[]) != hdr.crc.get() {
                    what.push("fails its checksum".into());
                }
                if !what.is_empty() {
                    found.push((
                        pos,
                        Problem {
                            offset: rec_off(pos),
                            what: format!("pad at position {pos} {}", what.join(", ")),
                        },
                    ));
                }
                pos = g.next_lap(pos);
                continue;
            }
            if flags & FLAG_CHUNK != 0 {
                // A lane's chunk: its records below `fill`, then past its end.
                let fill = w.load_u64(g.fill_off(pos), Ordering::Acquire)? & !CHUNK_CLOSED;
                let mut what = Vec::new();
                if chunk.is_some() {
                    what.push("lies inside another chunk's records".to_string());
                }
                if hdr.checksum(&[], &[]) != hdr.crc.get() {
                    what.push("fails its checksum".into());
                }
                if !format::valid_fill(fill, size) {
                    what.push(format!("has a fill of {fill} in {size} bytes"));
                }
                if pos.saturating_add(size) > head {
                    what.push(format!("ends past the head {head}"));
                }
                if !what.is_empty() {
                    found.push((
                        pos,
                        Problem {
                            offset: rec_off(pos),
                            what: format!("chunk at position {pos} {}", what.join(", ")),
                        },
                    ));
                    break;
                }
                chunk = Some((pos + fill, pos + size));
                pos += CHUNK_HEAD_LEN;
                continue;
            }
            g.read_key(w, pos, &hdr, &mut key)?;
            value.resize(hdr.value_len.get() as usize, 0);
            g.read_value(w, pos, &hdr, &mut value)?;
            let slot = live.get(&pos).copied();
            for p in check_record(&hdr, &key, &value, rec_off(pos), sb, slot) {
                found.push((pos, p));
            }
            if pos.saturating_add(size) > head {
                found.push((
                    pos,
                    Problem {
                        offset: rec_off(pos),
                        what: format!("record at position {pos} ends past the head {head}"),
                    },
                ));
            }
            if let Some((fill_end, _)) = chunk
                && pos.saturating_add(size) > fill_end
            {
                found.push((
                    pos,
                    Problem {
                        offset: rec_off(pos),
                        what: format!("record at position {pos} ends past its chunk's fill"),
                    },
                ));
            }
            records.push(pos);
            pos = pos.saturating_add(size);
        }
        covered.push((start, pos));
        if !unchanged(g, w)? {
            return Ok(None);
        }
        // Bytes behind the tail seen now may have been overwritten while we copied them.
        let tail_after = g.tail(w)?;
        Ok(Some(Walk {
            problems: found
                .into_iter()
                .filter(|(p, _)| *p >= tail_after)
                .map(|(_, p)| p)
                .collect(),
            records,
            covered,
            pads,
            overtaken,
            tail_after,
        }))
    }
}

/// Loads the active generation; damage to its descriptor (including regions beyond the end of
/// the file) is a [`Problem`] at the descriptor, other failures are errors.
fn load_gen(sh: &Shared, shard: usize) -> Result<std::result::Result<Gen, Problem>> {
    let w = sh.mem.w();
    let len = sh.mem.refresh_len()?;
    let active = w.load_u64(sctl!(shard, active), Ordering::Acquire)?;
    let at = format::desc_off(shard, active & 1);
    let mut buf = [0u8; std::mem::size_of::<Desc>()];
    w.read(at, &mut buf)?;
    let desc = Desc::read_from_bytes(&buf).map_err(|_| Error::corrupt(at, "descriptor"))?;
    // Checked against the file's length before anything maps or touches the regions; a
    // descriptor that a racing switch replaced meanwhile is re-read by Gen::load below.
    if let Err(Error::Corrupt { offset, what }) =
        desc.validate(active >> 1, at, sh.mem.header_len(), len)
        && w.load_u64(sctl!(shard, active), Ordering::Acquire)? == active
    {
        return Ok(Err(Problem { offset, what }));
    }
    match Gen::load(&sh.mem, shard) {
        Ok(g) => Ok(Ok(g)),
        Err(Error::Corrupt { offset, what }) => Ok(Err(Problem { offset, what })),
        Err(e) => Err(e.into()),
    }
}

/// What a ring walk found.
struct Walk {
    problems: Vec<Problem>,
    /// Positions of records (not pads), ascending.
    records: Vec<u64>,
    /// Position ranges walked record by record.
    covered: Vec<(u64, u64)>,
    pads: u64,
    /// How often the tail passed the walk (writers reclaimed what it was about to read).
    overtaken: u64,
    /// The tail after the walk: records before it were not checked reliably.
    tail_after: u64,
}

/// Checks one record's checksum, flags and expiry; `slot` names the index slot pointing at it.
fn check_record(
    hdr: &RecordHeader,
    key: &[u8],
    value: &[u8],
    at: u64,
    sb: &Superblock,
    slot: Option<u64>,
) -> Vec<Problem> {
    let mut what = Vec::new();
    let flags = hdr.flags.get();
    if hdr.checksum(key, value) != hdr.crc.get() {
        what.push(
            "checksum mismatch (the key, value or header changed after it was written)".to_string(),
        );
    }
    let reserved = flags & !(USER_FLAGS | FLAG_INT | FLAG_LEASE | FLAG_PAD);
    if reserved != 0 {
        what.push(format!("flags {flags:#x} use reserved bits {reserved:#x}"));
    }
    if flags & FLAG_INT != 0 && hdr.value_len.get() != 8 {
        what.push(format!(
            "is marked INT but its value is {} bytes, not 8",
            hdr.value_len.get()
        ));
    }
    if flags & FLAG_LEASE != 0 {
        if flags & FLAG_INT != 0 {
            what.push("is marked both INT and LEASE".into());
        }
        if value.len() < 8 {
            what.push(format!("is a lease with a {}-byte value", value.len()));
        } else if u32::from_le_bytes([value[0], value[1], value[2], value[3]]) >= PROC_SLOTS {
            what.push("is a lease naming a process slot out of range".into());
        }
    }
    let e = hdr.expires_ms.get();
    if e != 0 && e < sb.created_ms.get() {
        what.push(format!(
            "expires at {e} ms, before the map was created ({} ms): not a wall-clock time",
            sb.created_ms.get()
        ));
    }
    let whose = match slot {
        Some(i) => format!(" (live: index slot {i})"),
        None => String::new(),
    };
    what.into_iter()
        .map(|w| Problem {
            offset: at,
            what: format!("record for key {}{whose}: {w}", show_key(key)),
        })
        .collect()
}

/// "once", "twice", "N times".
fn times(n: u64) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

/// "1 thing", "2 things".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Problems with the ring's head and tail: `tail <= head <= tail + cap`, both multiples of 8.
fn ring_bounds(g: &Gen, head: u64, tail: u64) -> Vec<Problem> {
    let at = g.desc.log_off;
    let mut out = Vec::new();
    if tail > head || head - tail > g.cap() {
        out.push(Problem {
            offset: at,
            what: format!(
                "the ring's head {head} and tail {tail} break tail <= head <= tail + capacity \
                 ({}); the next writer rebuilds the generation",
                g.cap()
            ),
        });
    }
    if head > format::MAX_POS {
        out.push(Problem {
            offset: at,
            what: format!(
                "the ring's head {head} is beyond the largest position {}; the next writer \
                 rebuilds the generation",
                format::MAX_POS
            ),
        });
    }
    if !head.is_multiple_of(8) || !tail.is_multiple_of(8) {
        out.push(Problem {
            offset: at,
            what: format!("the ring's head {head} or tail {tail} is not a multiple of 8"),
        });
    }
    out
}

/// Whether `g` is still the active generation. It is checked once more at the end of every
/// pass: generation numbers are never reused and a generation's regions are reused only after
/// it is retired, so an unchanged `active` word proves that nothing read during the pass was
/// reused.
fn unchanged(g: &Gen, w: &crate::raw::Window) -> Result<bool> {
    fence(Ordering::Acquire);
    g.is_active(w).map_err(Unreadable::from)
}

/// The ring's head and tail as they were at one moment (the tail re-read unchanged around the
/// head).
fn head_tail(g: &Gen, w: &crate::raw::Window) -> Result<(u64, u64)> {
    for _ in 0..1000 {
        let t = g.tail(w)?;
        let h = g.head(w)?;
        if g.tail(w)? == t {
            return Ok((h, t));
        }
    }
    Err(Unreadable::Racing)
}

fn counters(c: &Ctl) -> Counters {
    Counters {
        entries: c.entries,
        live_bytes: c.live_bytes,
        used_slots: c.used_slots,
        evictions: c.evictions,
        expirations: c.expirations,
        switches: c.switches,
        bytes_written: c.bytes_written,
        bytes_copied: c.bytes_copied,
    }
}

fn last_exit(lock: &LockState, clean: bool, attached: bool) -> LastExit {
    match lock {
        LockState::Held { alive: false, .. } => LastExit::WriterDied,
        _ if attached => LastExit::InUse,
        _ if clean => LastExit::Clean,
        _ => LastExit::Unclean,
    }
}

/// Why the library refused a file, when it is not a map at all (its first bytes) or is cut
/// short; `None` to keep the library's reason.
fn diagnose(path: &Path) -> Option<Unreadable> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut buf = [0u8; 8];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    if n == 0 || buf[..n] != MAGIC[..n] {
        return Some(Unreadable::NotAMap {
            found: buf[..n].to_vec(),
        });
    }
    (len < HEADER_LEN).then_some(Unreadable::Truncated { len })
}

/// A key (or any bytes) for a person: quoted, UTF-8 where valid, other bytes as `\xNN`,
/// control characters escaped, cut after 64 characters.
pub fn show_key(key: &[u8]) -> String {
    let mut s = String::from("\"");
    let mut n = 0;
    for chunk in key.utf8_chunks() {
        for c in chunk.valid().chars() {
            if n == 64 {
                s.push_str("\"...");
                return s;
            }
            n += 1;
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                c if c.is_ascii_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
                c if c.is_control() => s.extend(c.escape_unicode()),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            if n == 64 {
                s.push_str("\"...");
                return s;
            }
            n += 1;
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shown_unambiguously() {
        assert_eq!(show_key(b"plain"), "\"plain\"");
        assert_eq!(show_key(b"a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(show_key(b"\xff\x00z"), "\"\\xff\\x00z\"");
        assert_eq!(show_key(&[b'x'; 70]), format!("\"{}\"...", "x".repeat(64)));
    }

    #[test]
    fn last_exit_prefers_a_dead_writer() {
        let dead = LockState::Held {
            slot: 1,
            incarnation: 1,
            pid: 1,
            alive: false,
            waiters: false,
        };
        assert_eq!(last_exit(&dead, true, true), LastExit::WriterDied);
        assert_eq!(last_exit(&LockState::Free, true, true), LastExit::InUse);
        assert_eq!(last_exit(&LockState::Free, true, false), LastExit::Clean);
        assert_eq!(last_exit(&LockState::Free, false, false), LastExit::Unclean);
    }
}
