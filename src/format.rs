//! The on-disk format (see `format.md`): constants, `zerocopy` structs, encoding and validation.
//!
//! This is the only module that knows byte offsets. It is pure: it turns bytes into values and
//! back and checks them, and never touches the mapping. Struct fields are documented by the
//! tables in format.md, field for field.
#![allow(missing_docs)]

use std::mem::{offset_of, size_of};

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{Error, Result};

#[cfg(target_endian = "big")]
compile_error!(
    "shmap's format is little-endian and its atomics are native: big-endian targets are not supported"
);

/// Format version written by and readable by this build.
pub const VERSION: u32 = 5;
/// File magic: `"SHMAP\0\r\n"` (the CR/LF catch text-mode mangling).
pub const MAGIC: [u8; 8] = *b"SHMAP\0\r\n";
/// Alignment of every region offset and length.
pub const PAGE: u64 = 4096;
/// Bytes before the first region of a map of up to 8 shards (see [`header_len`]).
pub const HEADER_LEN: u64 = 20480;
/// Offset of the global control block.
pub const CONTROL_OFF: u64 = 256;
/// Offset of descriptor slot 0 inside a shard table entry (slot 1 follows).
pub const DESC_OFF: u64 = 256;
/// Offset of the process table.
pub const PROC_OFF: u64 = 4096;
/// Number of process slots.
pub const PROC_SLOTS: u32 = 1024;
/// Bytes per process slot.
pub const PROC_SLOT_LEN: u64 = 8;
/// Offset of the shard table (after page 0 and the process table).
pub const SHARD_OFF: u64 = 12288;
/// Bytes of one shard table entry.
pub const SHARD_ENTRY_LEN: u64 = 1024;
/// At most `2^MAX_SHARD_BITS` shards.
pub const MAX_SHARD_BITS: u32 = 7;
/// The shard counts this build creates and operates (`shard_bits` up to this): a file with
/// more shards is refused with [`Error::UnsupportedShards`].
pub const SUPPORTED_SHARD_BITS: u32 = MAX_SHARD_BITS;
/// Bytes of a record header.
pub const RECORD_HEADER_LEN: u64 = 24;
/// Bytes of the log region's header, before the ring.
pub const LOG_HEADER_LEN: u64 = 64;
/// Bytes per index slot.
pub const SLOT_LEN: u64 = 8;
/// Hash function id: XXH3-64 keyed by the superblock's seed.
pub const HASH_XXH3_64: u32 = 1;
/// Endianness marker.
pub const ENDIAN_MARK: u32 = 0x0102_0304;

/// Fewest index slots.
pub const MIN_SLOTS: u64 = 64;
/// Most index slots (2^36: 512 GiB of index).
pub const MAX_SLOTS: u64 = 1 << 36;
/// Longest key in bytes.
pub const MAX_KEY_LEN: usize = 65535;
/// Ring positions (virtual, ever increasing) stay at or below this: an index slot holds
/// `pos / 8` in 56 bits (up to 2^59), and 2^56 bytes (64 PiB) are never written through one
/// map. A head beyond it is damage (writers leave the duty to recover, which rebuilds the
/// generation), and arithmetic on positions below it cannot overflow.
pub const MAX_POS: u64 = 1 << 56;

/// Record flag: the record is padding up to the end of the ring.
pub const FLAG_PAD: u32 = 1 << 31;
/// Record flag: the value is an 8-byte little-endian i64 counter (written by `incr`).
pub const FLAG_INT: u32 = 1 << 30;
/// Record flag: the record is a loader's lease, not a value.
pub const FLAG_LEASE: u32 = 1 << 29;
/// A chunk of the ring claimed by one lane (format.md, "Lanes and chunks").
pub const FLAG_CHUNK: u32 = 1 << 28;
/// Lanes per shard.
pub const LANES: usize = 8;
/// A chunk's bytes before its first record: its header, `fill`, `owner` and `dead`.
pub const CHUNK_HEAD_LEN: u64 = 48;
/// `fill`'s bit set once a cleaner closed the chunk.
pub const CHUNK_CLOSED: u64 = 1 << 63;
/// Flags a caller may set (the rest are the format's).
pub const USER_FLAGS: u32 = 0xFFFF;

/// Control flag: eviction disabled.
pub const CONFIG_NO_EVICT: u32 = 1;

/// Writer-lock word: a waiter is sleeping.
pub const LOCK_WAITERS: u32 = 1 << 31;
/// Writer-lock word: incarnation bits.
pub const LOCK_INC_MASK: u32 = (1 << 20) - 1;

/// The superblock: immutable after creation, alignment 1, little-endian.
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Superblock {
    pub magic: [u8; 8],
    pub version: U32,
    pub header_len: U32,
    pub page_size: U32,
    pub control_off: U32,
    pub control_len: U32,
    pub desc_off: U32,
    pub desc_len: U32,
    pub proc_off: U32,
    pub proc_slots: U32,
    pub proc_slot_len: U32,
    pub record_header_len: U32,
    pub log_header_len: U32,
    pub slot_len: U32,
    pub hash_id: U32,
    pub endian: U32,
    pub flags: U32,
    pub seed: U64,
    pub created_ms: U64,
    pub shard_bits: U32,
    pub shard_off: U32,
    pub shard_entry_len: U32,
    pub reserved: [u8; 24],
    pub crc: U32,
}

/// The global control block: native-endian words at natural alignment, reached only as
/// atomics. The struct exists for its layout (`offset_of!`) and to decode a copy for inspection.
/// No word here is written by an ordinary `set`, and none is a count.
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Control {
    pub max_size: u64,
    pub default_ttl_ms: u64,
    pub config_flags: u32,
    pub clean: u32,
    pub boot_id: [u64; 2],
    pub min_pages: u32,
    pub place_lock: u32,
    pub place_recovery: u32,
    pub reserved52: u32,
    pub place_since_ms: u64,
    pub place_starving_until_ms: u64,
    pub place_quiet_until_ms: u64,
    pub next_gen: u64,
    pub blob_table_off: u64,
    pub blob_table_len: u64,
    pub shrink_target: u64,
    pub shrink_until_ms: u64,
    pub reserved: [u64; 17],
}

/// One shard table entry: eight 64-byte lines (format.md, "Shard table").
#[derive(Debug, Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ShardEntry {
    // Line 0, read-mostly.
    pub active: u64,
    pub switched_ms: u64,
    pub depth: u32,
    pub reserved20: u32,
    pub reserved0: [u64; 5],
    // Line 1, the writer's.
    pub writer_lock: u32,
    pub recovery: u32,
    pub lock_since_ms: u64,
    pub starving_until_ms: u64,
    pub quiet_until_ms: u64,
    pub entries: u64,
    pub live_bytes: u64,
    pub used_slots: u64,
    pub reserved1: u64,
    // Line 2, statistics.
    pub evictions: u64,
    pub expirations: u64,
    pub bytes_written: u64,
    pub bytes_copied: u64,
    pub switches: u64,
    pub builds: u64,
    pub builds_forced: u64,
    pub reserved2: u64,
    // Line 3, the incremental build (format.md, "Incremental build").
    pub build_gen: u64,
    pub build_cursor: u64,
    pub active_alloc: u64,
    pub build_started_ms: u64,
    pub build_alloc: u64,
    pub build_entries: u64,
    pub build_live: u64,
    pub build_used: u64,
    // Lines 4 and 5.
    pub desc: [Desc; 2],
    // Line 6, space (placement-owned).
    pub building_off: u64,
    pub building_len: u64,
    pub retired_index_off: u64,
    pub retired_index_len: u64,
    pub retired_log_off: u64,
    pub retired_log_len: u64,
    pub retired_ms: u64,
    pub footprint_hint: u64,
    // Line 7, the fast path's gate.
    pub fast_gate: u64,
    pub reserved7: [u64; 7],
    // Lines 8 to 15.
    pub lanes: [Lane; LANES],
}

impl ShardEntry {
    /// The shard's live bytes: `live_bytes` plus its lanes' `live_delta`, all two's-complement
    /// (a sum below zero, a count a kill left short until the recount, reads as 0).
    pub fn live(&self) -> u64 {
        live_of(self.live_bytes, self.lanes.iter().map(|l| l.live_delta))
    }

    /// The shard's `bytes_written` and its lanes' `written`.
    pub fn written(&self) -> u64 {
        self.lanes
            .iter()
            .fold(self.bytes_written, |a, l| a.saturating_add(l.written))
    }
}

/// A shard's live bytes from line 1's `live_bytes` and its lanes' `live_delta`, summed in two's
/// complement; a sum below zero (a count a kill left short, until the recount) reads as 0.
pub fn live_of(line1: u64, deltas: impl IntoIterator<Item = u64>) -> u64 {
    let sum = deltas.into_iter().fold(line1, u64::wrapping_add);
    if sum > u64::MAX / 2 { 0 } else { sum }
}

/// One lane of a shard (format.md, "Lanes and chunks"): written by its owner's fast writes.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Lane {
    pub owner: u64,
    pub busy: u64,
    pub chunk: u64,
    pub chunk_gen: u64,
    pub live_delta: u64,
    pub written: u64,
    pub closed: u64,
    pub reserved: u64,
}

/// A generation descriptor (two slots per shard; the shard's `active` word names the slot).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct Desc {
    pub generation: u64,
    pub index_off: u64,
    pub index_slots: u64,
    pub log_off: u64,
    pub log_cap: u64,
    pub created_ms: u64,
    pub reserved: u64,
    pub crc: u32,
    pub reserved2: u32,
}

/// One process-table slot.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ProcSlot {
    pub pid: u32,
    pub incarnation: u32,
}

/// The log region's header.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct LogHeader {
    pub head: u64,
    pub tail: u64,
    pub log_cap: u64,
    pub generation: u64,
    pub reserved: [u64; 4],
}

/// A record header, little-endian, alignment 1.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RecordHeader {
    pub crc: U32,
    pub key_len: U32,
    pub value_len: U32,
    pub flags: U32,
    pub expires_ms: U64,
}

// The layout is the contract: a change here fails the build before it corrupts a file.
const _: () = {
    assert!(size_of::<Superblock>() == 128);
    assert!(offset_of!(Superblock, seed) == 72);
    assert!(offset_of!(Superblock, shard_bits) == 88);
    assert!(offset_of!(Superblock, shard_off) == 92);
    assert!(offset_of!(Superblock, shard_entry_len) == 96);
    assert!(offset_of!(Superblock, crc) == 124);
    assert!(size_of::<Control>() == 256);
    assert!(offset_of!(Control, max_size) == 0);
    assert!(offset_of!(Control, default_ttl_ms) == 8);
    assert!(offset_of!(Control, config_flags) == 16);
    assert!(offset_of!(Control, clean) == 20);
    assert!(offset_of!(Control, boot_id) == 24);
    assert!(offset_of!(Control, min_pages) == 40);
    assert!(offset_of!(Control, place_lock) == 44);
    assert!(offset_of!(Control, place_recovery) == 48);
    assert!(offset_of!(Control, place_since_ms) == 56);
    assert!(offset_of!(Control, place_starving_until_ms) == 64);
    assert!(offset_of!(Control, place_quiet_until_ms) == 72);
    assert!(offset_of!(Control, next_gen) == 80);
    assert!(offset_of!(Control, blob_table_off) == 88);
    assert!(offset_of!(Control, shrink_target) == 104);
    assert!(offset_of!(Control, shrink_until_ms) == 112);
    assert!(size_of::<ShardEntry>() as u64 == SHARD_ENTRY_LEN);
    assert!(offset_of!(ShardEntry, active) == 0);
    assert!(offset_of!(ShardEntry, switched_ms) == 8);
    assert!(offset_of!(ShardEntry, depth) == 16);
    assert!(offset_of!(ShardEntry, writer_lock) == 64);
    assert!(offset_of!(ShardEntry, recovery) == 68);
    assert!(offset_of!(ShardEntry, lock_since_ms) == 72);
    assert!(offset_of!(ShardEntry, starving_until_ms) == 80);
    assert!(offset_of!(ShardEntry, quiet_until_ms) == 88);
    assert!(offset_of!(ShardEntry, entries) == 96);
    assert!(offset_of!(ShardEntry, live_bytes) == 104);
    assert!(offset_of!(ShardEntry, used_slots) == 112);
    assert!(offset_of!(ShardEntry, evictions) == 128);
    assert!(offset_of!(ShardEntry, switches) == 160);
    assert!(offset_of!(ShardEntry, builds) == 168);
    assert!(offset_of!(ShardEntry, builds_forced) == 176);
    assert!(offset_of!(ShardEntry, build_gen) == 192);
    assert!(offset_of!(ShardEntry, build_cursor) == 200);
    assert!(offset_of!(ShardEntry, active_alloc) == 208);
    assert!(offset_of!(ShardEntry, build_started_ms) == 216);
    assert!(offset_of!(ShardEntry, build_alloc) == 224);
    assert!(offset_of!(ShardEntry, build_entries) == 232);
    assert!(offset_of!(ShardEntry, build_live) == 240);
    assert!(offset_of!(ShardEntry, build_used) == 248);
    assert!(offset_of!(ShardEntry, desc) as u64 == DESC_OFF);
    assert!(offset_of!(ShardEntry, building_off) == 384);
    assert!(offset_of!(ShardEntry, retired_index_off) == 400);
    assert!(offset_of!(ShardEntry, retired_log_off) == 416);
    assert!(offset_of!(ShardEntry, retired_ms) == 432);
    assert!(offset_of!(ShardEntry, footprint_hint) == 440);
    assert!(offset_of!(ShardEntry, fast_gate) == 448);
    assert!(offset_of!(ShardEntry, lanes) == 512);
    assert!(size_of::<Lane>() == 64);
    assert!(size_of::<Desc>() == 64);
    assert!(offset_of!(Desc, crc) == 56);
    assert!(size_of::<ProcSlot>() as u64 == PROC_SLOT_LEN);
    assert!(size_of::<LogHeader>() as u64 == LOG_HEADER_LEN);
    assert!(size_of::<RecordHeader>() as u64 == RECORD_HEADER_LEN);
    assert!(CONTROL_OFF + 256 <= PROC_OFF);
    assert!(PROC_OFF + PROC_SLOTS as u64 * PROC_SLOT_LEN == SHARD_OFF);
    assert!(SHARD_OFF + 8 * SHARD_ENTRY_LEN == HEADER_LEN);
};

/// File offset of a global control-block field.
macro_rules! gctl {
    ($field:ident) => {
        $crate::format::CONTROL_OFF + ::std::mem::offset_of!($crate::format::Control, $field) as u64
    };
}
pub(crate) use gctl;

/// File offset of shard `shard`'s field (a `ShardEntry` field).
macro_rules! sctl {
    ($shard:expr, $field:ident) => {
        $crate::format::shard_off($shard)
            + ::std::mem::offset_of!($crate::format::ShardEntry, $field) as u64
    };
}
pub(crate) use sctl;

/// File offset of field `field` of lane `lane` of shard `shard`.
macro_rules! lane {
    ($shard:expr, $lane:expr, $field:ident) => {
        $crate::format::shard_off($shard)
            + ::std::mem::offset_of!($crate::format::ShardEntry, lanes) as u64
            + ($lane as u64) * ::std::mem::size_of::<$crate::format::Lane>() as u64
            + ::std::mem::offset_of!($crate::format::Lane, $field) as u64
    };
}
pub(crate) use lane;

/// Bytes before the first region for a map of `2^shard_bits` shards: 20480 up to 8 shards,
/// then 1024 bytes more per shard, rounded up to a page.
pub const fn header_len(shard_bits: u32) -> u64 {
    let table = (SHARD_ENTRY_LEN << shard_bits).next_multiple_of(PAGE);
    let len = SHARD_OFF + table;
    if len < HEADER_LEN { HEADER_LEN } else { len }
}

/// File offset of shard `shard`'s table entry.
#[inline]
pub const fn shard_off(shard: usize) -> u64 {
    SHARD_OFF + shard as u64 * SHARD_ENTRY_LEN
}

/// File offset of shard `shard`'s descriptor slot `slot` (0 or 1).
#[inline]
pub const fn desc_off(shard: usize, slot: u64) -> u64 {
    shard_off(shard) + DESC_OFF + (slot & 1) * size_of::<Desc>() as u64
}

/// A shard's `active` word: generation `generation` described by descriptor slot `slot`.
#[inline]
pub const fn active_word(generation: u64, slot: u64) -> u64 {
    generation << 1 | (slot & 1)
}

/// File offset of process slot `slot`'s field at `field_off`.
pub fn proc_off(slot: u32, field_off: usize) -> u64 {
    PROC_OFF + slot as u64 * PROC_SLOT_LEN + field_off as u64
}

/// The byte a process OFD-locks to hold process slot `slot`.
pub fn proc_lock_byte(slot: u32) -> u64 {
    proc_off(slot, 0)
}

/// The format's hash of a key.
#[inline]
pub fn hash(key: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, seed)
}

/// The home slot of a key with hash `h` in an index of `slots` slots (a power of two): the
/// hash's top bits, so that slot order is hash order at every index size (scans resume by hash).
/// In a map of `2^b` shards pass `h << b` (the bits after the shard's).
#[inline]
pub fn home(h: u64, slots: u64) -> u64 {
    debug_assert!(slots.is_power_of_two() && slots >= 2);
    h >> (64 - slots.trailing_zeros())
}

/// The shard of a key with hash `h` in a map of `2^bits` shards: the hash's top bits.
#[inline]
pub fn shard_of(h: u64, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (h >> (64 - bits)) as usize
    }
}

/// The hash bits a shard's index uses for home slots: those after the shard's.
#[inline]
pub fn in_shard(h: u64, bits: u32) -> u64 {
    if bits == 0 { h } else { h << bits }
}

/// Rounds `n` up to a multiple of `to` (a power of two); `None` on overflow.
#[inline]
pub fn round_up(n: u64, to: u64) -> Option<u64> {
    Some(n.checked_add(to - 1)? & !(to - 1))
}

impl Superblock {
    /// A fresh superblock for a new map.
    pub fn new(seed: u64, created_ms: u64, shard_bits: u32) -> Superblock {
        let mut sb = Superblock {
            magic: MAGIC,
            version: VERSION.into(),
            header_len: (header_len(shard_bits) as u32).into(),
            page_size: (PAGE as u32).into(),
            control_off: (CONTROL_OFF as u32).into(),
            control_len: (size_of::<Control>() as u32).into(),
            desc_off: (DESC_OFF as u32).into(),
            desc_len: (size_of::<Desc>() as u32).into(),
            proc_off: (PROC_OFF as u32).into(),
            proc_slots: PROC_SLOTS.into(),
            proc_slot_len: (PROC_SLOT_LEN as u32).into(),
            record_header_len: (RECORD_HEADER_LEN as u32).into(),
            log_header_len: (LOG_HEADER_LEN as u32).into(),
            slot_len: (SLOT_LEN as u32).into(),
            hash_id: HASH_XXH3_64.into(),
            endian: ENDIAN_MARK.into(),
            flags: 0.into(),
            seed: seed.into(),
            created_ms: created_ms.into(),
            shard_bits: shard_bits.into(),
            shard_off: (SHARD_OFF as u32).into(),
            shard_entry_len: (SHARD_ENTRY_LEN as u32).into(),
            reserved: [0; 24],
            crc: 0.into(),
        };
        sb.crc = crc32fast::hash(&sb.as_bytes()[..124]).into();
        sb
    }

    /// Decodes and checks a superblock read from the first 128 bytes of a file.
    pub fn decode(bytes: &[u8], path: &std::path::Path) -> Result<Superblock> {
        let Ok((sb, _)) = Superblock::read_from_prefix(bytes) else {
            return Err(Error::corrupt(0, "file is shorter than the superblock"));
        };
        if sb.magic != MAGIC {
            return Err(Error::NotAMap {
                path: path.to_path_buf(),
            });
        }
        if sb.version.get() != VERSION {
            return Err(Error::UnsupportedVersion {
                found: sb.version.get(),
                supported: VERSION,
            });
        }
        if crc32fast::hash(&sb.as_bytes()[..124]) != sb.crc.get() {
            return Err(Error::corrupt(124, "superblock checksum mismatch"));
        }
        let bits = sb.shard_bits.get();
        if bits > MAX_SHARD_BITS {
            return Err(Error::corrupt(
                88,
                format!("superblock field shard_bits is {bits}, at most {MAX_SHARD_BITS}"),
            ));
        }
        let expect: [(&str, u32, u32); 16] = [
            ("header_len", sb.header_len.get(), header_len(bits) as u32),
            ("page_size", sb.page_size.get(), PAGE as u32),
            ("control_off", sb.control_off.get(), CONTROL_OFF as u32),
            (
                "control_len",
                sb.control_len.get(),
                size_of::<Control>() as u32,
            ),
            ("desc_off", sb.desc_off.get(), DESC_OFF as u32),
            ("desc_len", sb.desc_len.get(), size_of::<Desc>() as u32),
            ("proc_off", sb.proc_off.get(), PROC_OFF as u32),
            ("proc_slots", sb.proc_slots.get(), PROC_SLOTS),
            (
                "proc_slot_len",
                sb.proc_slot_len.get(),
                PROC_SLOT_LEN as u32,
            ),
            (
                "record_header_len",
                sb.record_header_len.get(),
                RECORD_HEADER_LEN as u32,
            ),
            (
                "log_header_len",
                sb.log_header_len.get(),
                LOG_HEADER_LEN as u32,
            ),
            ("slot_len", sb.slot_len.get(), SLOT_LEN as u32),
            ("hash_id", sb.hash_id.get(), HASH_XXH3_64),
            ("endian", sb.endian.get(), ENDIAN_MARK),
            ("shard_off", sb.shard_off.get(), SHARD_OFF as u32),
            (
                "shard_entry_len",
                sb.shard_entry_len.get(),
                SHARD_ENTRY_LEN as u32,
            ),
        ];
        for (name, found, want) in expect {
            if found != want {
                return Err(Error::corrupt(
                    0,
                    format!("superblock field {name} is {found}, expected {want}"),
                ));
            }
        }
        if bits > SUPPORTED_SHARD_BITS {
            return Err(Error::UnsupportedShards {
                found: 1 << bits,
                supported: 1 << SUPPORTED_SHARD_BITS,
            });
        }
        Ok(sb)
    }
}

impl Desc {
    /// Computes the checksum over the first 56 bytes.
    pub fn compute_crc(&self) -> u32 {
        crc32fast::hash(&self.as_bytes()[..56])
    }

    /// Bytes of the index region.
    pub fn index_len(&self) -> u64 {
        index_region_len(self.index_slots)
    }

    /// Bytes of the log region.
    pub fn log_len(&self) -> u64 {
        log_region_len(self.log_cap)
    }

    /// Checks a descriptor read at file offset `at` for generation `generation` against a file
    /// of `file_len` bytes whose header is `header_len` bytes.
    pub fn validate(&self, generation: u64, at: u64, header_len: u64, file_len: u64) -> Result<()> {
        let bad = |what: String| Err(Error::corrupt(at, what));
        if self.generation != generation {
            return bad(format!(
                "descriptor holds generation {}, header says {generation}",
                self.generation
            ));
        }
        if self.compute_crc() != self.crc {
            return bad("descriptor checksum mismatch".into());
        }
        let slots = self.index_slots;
        if !slots.is_power_of_two() || !(MIN_SLOTS..=MAX_SLOTS).contains(&slots) {
            return bad(format!(
                "index slot count {slots} is not a power of two in range"
            ));
        }
        if self.log_cap < PAGE || !self.log_cap.is_multiple_of(PAGE) || self.log_cap > 1 << 48 {
            return bad(format!("log capacity {} is invalid", self.log_cap));
        }
        let regions = [
            ("index", self.index_off, self.index_len()),
            ("log", self.log_off, self.log_len()),
        ];
        for (name, off, len) in regions {
            if off < header_len || off % PAGE != 0 {
                return bad(format!("{name} region offset {off} is misplaced"));
            }
            match off.checked_add(len) {
                Some(end) if end <= file_len => {}
                _ => {
                    return bad(format!(
                        "{name} region [{off}, +{len}) ends beyond the file ({file_len} bytes)"
                    ));
                }
            }
        }
        let (i, l) = (self.index_off, self.log_off);
        if i < l + self.log_len() && l < i + self.index_len() {
            return bad("index and log regions overlap".into());
        }
        Ok(())
    }
}

/// Bytes of an index region with `slots` slots.
pub fn index_region_len(slots: u64) -> u64 {
    round_up(slots.saturating_mul(SLOT_LEN), PAGE).unwrap_or(u64::MAX)
}

/// Bytes of a log region with a ring of `log_cap` bytes.
pub fn log_region_len(log_cap: u64) -> u64 {
    round_up(LOG_HEADER_LEN.saturating_add(log_cap), PAGE).unwrap_or(u64::MAX)
}

/// Bytes a record with this key and value occupies in the ring.
#[inline]
pub fn record_size(key_len: usize, value_len: usize) -> u64 {
    (RECORD_HEADER_LEN + key_len as u64 + value_len as u64 + 7) & !7
}

impl RecordHeader {
    /// A header for a record; its CRC is filled by [`RecordHeader::seal`].
    pub fn new(key_len: usize, value_len: usize, flags: u32, expires_ms: u64) -> RecordHeader {
        RecordHeader {
            crc: 0.into(),
            key_len: (key_len as u32).into(),
            value_len: (value_len as u32).into(),
            flags: flags.into(),
            expires_ms: expires_ms.into(),
        }
    }

    /// Computes the record checksum over the header (after `crc`), key and value.
    pub fn checksum(&self, key: &[u8], value: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.as_bytes()[4..]);
        h.update(key);
        h.update(value);
        h.finalize()
    }

    /// Sets the checksum.
    pub fn seal(mut self, key: &[u8], value: &[u8]) -> RecordHeader {
        self.crc = self.checksum(key, value).into();
        self
    }

    /// Bytes this record occupies in the ring.
    pub fn size(&self) -> u64 {
        record_size(self.key_len.get() as usize, self.value_len.get() as usize)
    }

    /// Whether it is expired at `now_ms`.
    #[inline]
    pub fn expired(&self, now_ms: u64) -> bool {
        let e = self.expires_ms.get();
        e != 0 && e <= now_ms
    }

    /// Checks the lengths of a header found at ring offset `phys` against the bytes up to the
    /// ring's end; returns the record size.
    pub fn check_bounds(&self, phys: u64, log_cap: u64) -> Option<u64> {
        let room = log_cap.checked_sub(phys)?;
        let key_len = self.key_len.get() as u64;
        let flags = self.flags.get();
        if flags & (FLAG_PAD | FLAG_CHUNK) == 0 && (key_len == 0 || key_len > MAX_KEY_LEN as u64) {
            return None;
        }
        if flags & FLAG_CHUNK != 0 && (key_len != 0 || self.size() < CHUNK_HEAD_LEN) {
            return None;
        }
        let size = self.size();
        (size <= room).then_some(size)
    }
}

/// Whether `rest`, the chunk bytes a record would leave after it, can close the chunk: none,
/// or room for a closed empty chunk.
pub fn leaves_closable(rest: u64) -> bool {
    rest == 0 || rest >= CHUNK_HEAD_LEN
}

/// Whether `fill` (without `CLOSED`) is one a chunk of `size` bytes can have: past its head, a
/// multiple of 8, and leaving nothing or room for a closed empty chunk, unless the chunk is
/// empty (a closed empty chunk's own end may be shorter).
pub fn valid_fill(fill: u64, size: u64) -> bool {
    fill >= CHUNK_HEAD_LEN
        && fill <= size
        && fill.is_multiple_of(8)
        && (fill == CHUNK_HEAD_LEN || leaves_closable(size - fill))
}

/// Index slot encoding (see format.md, Index region).
pub mod slot {
    /// An empty slot: probing stops.
    pub const EMPTY: u64 = 0;
    /// A tombstone: probing continues.
    pub const TOMBSTONE: u64 = 1;
    /// The CLOCK reference bit.
    pub const REF: u64 = 1 << 63;
    const LIVE: u64 = 1 << 62;
    const POS_MASK: u64 = (1 << 56) - 1;
    const TAG_SHIFT: u32 = 56;

    /// The six-bit tag of a hash (its low bits: the top bits choose the home slot).
    #[inline]
    pub fn tag(hash: u64) -> u64 {
        hash & 0x3F
    }

    /// A live slot for a record at `pos` (a multiple of 8) with hash `hash`.
    #[inline]
    pub fn live(pos: u64, hash: u64) -> u64 {
        LIVE | (tag(hash) << TAG_SHIFT) | (pos >> 3)
    }

    /// Whether the slot is live.
    #[inline]
    pub fn is_live(s: u64) -> bool {
        s & LIVE != 0
    }

    /// Whether the slot is live, and its tag matches `hash`.
    #[inline]
    pub fn matches(s: u64, hash: u64) -> bool {
        s & (LIVE | (0x3F << TAG_SHIFT)) == LIVE | (tag(hash) << TAG_SHIFT)
    }

    /// Record position of a live slot.
    #[inline]
    pub fn pos(s: u64) -> u64 {
        (s & POS_MASK) << 3
    }

    /// Whether a slot value is one the format allows.
    #[inline]
    pub fn is_valid(s: u64) -> bool {
        s == EMPTY || s == TOMBSTONE || is_live(s)
    }

    /// The same slot pointing at a new position, `REF` as given.
    #[inline]
    pub fn moved(s: u64, pos: u64, referenced: bool) -> u64 {
        let base = (s & !(POS_MASK | REF)) | (pos >> 3);
        if referenced { base | REF } else { base }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trips_and_rejects() {
        let sb = Superblock::new(42, 1000, 0);
        let bytes = sb.as_bytes().to_vec();
        let p = std::path::Path::new("x");
        assert_eq!(Superblock::decode(&bytes, p).unwrap().seed.get(), 42);

        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(
            Superblock::decode(&bad, p),
            Err(Error::NotAMap { .. })
        ));

        for old in [1, 2, 3, 4] {
            let mut v = Superblock::new(42, 1000, 0);
            v.version = old.into();
            v.crc = crc32fast::hash(&v.as_bytes()[..124]).into();
            assert!(matches!(
                Superblock::decode(v.as_bytes(), p),
                Err(Error::UnsupportedVersion { found, supported: 5 }) if found == old
            ));
        }
        // Every shard count up to 128 reads; a header length that does not go with it is
        // damage.
        for bits in 0..=MAX_SHARD_BITS {
            let sb = Superblock::new(42, 1000, bits);
            assert_eq!(
                Superblock::decode(sb.as_bytes(), p)
                    .unwrap()
                    .shard_bits
                    .get(),
                bits
            );
        }
        let mut wrong = Superblock::new(42, 1000, 6);
        wrong.header_len = (HEADER_LEN as u32).into();
        wrong.crc = crc32fast::hash(&wrong.as_bytes()[..124]).into();
        assert!(matches!(
            Superblock::decode(wrong.as_bytes(), p),
            Err(Error::Corrupt { .. })
        ));
        let mut absurd = Superblock::new(42, 1000, 0);
        absurd.shard_bits = 9.into();
        absurd.crc = crc32fast::hash(&absurd.as_bytes()[..124]).into();
        assert!(matches!(
            Superblock::decode(absurd.as_bytes(), p),
            Err(Error::Corrupt { .. })
        ));
        assert_eq!(header_len(0), HEADER_LEN);
        assert_eq!(header_len(3), HEADER_LEN);
        assert_eq!(header_len(4), SHARD_OFF + 16384);
        assert_eq!(header_len(7), SHARD_OFF + 131072);

        let mut flipped = bytes.clone();
        flipped[75] ^= 1;
        assert!(matches!(
            Superblock::decode(&flipped, p),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            Superblock::decode(&bytes[..50], p),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn slot_encoding() {
        let h = 0xDEAD_BEEF_1234_5678;
        let s = slot::live(4096, h);
        assert!(slot::is_live(s) && slot::matches(s, h) && slot::is_valid(s));
        assert!(!slot::matches(s, h ^ 1));
        assert_eq!(slot::pos(s), 4096);
        let m = slot::moved(s | slot::REF, 8192, false);
        assert_eq!(slot::pos(m), 8192);
        assert!(slot::matches(m, h) && m & slot::REF == 0);
        assert_ne!(slot::live(0, 0), slot::EMPTY);
        assert_ne!(slot::live(0, 0), slot::TOMBSTONE);
        assert!(!slot::is_valid(2));
    }

    #[test]
    fn home_slots_are_hash_order_at_every_size() {
        let hashes = [0u64, 1, 1 << 40, u64::MAX / 3, 1 << 63, u64::MAX];
        for slots in [64u64, 128, 1 << 20] {
            let mut last = 0;
            for &h in &hashes {
                let home = home(h, slots);
                assert!(home < slots && home >= last);
                last = home;
            }
            // Doubling the index splits each home slot in two, keeping the order.
            for &h in &hashes {
                assert_eq!(home(h, slots * 2) / 2, home(h, slots));
            }
        }
    }

    #[test]
    fn descriptor_validation() {
        let mut d = Desc {
            generation: 3,
            index_off: HEADER_LEN,
            index_slots: 512,
            log_off: HEADER_LEN + PAGE,
            log_cap: 4 * PAGE,
            ..Desc::default()
        };
        d.crc = d.compute_crc();
        let end = d.log_off + d.log_len();
        let at = desc_off(0, 1);
        d.validate(3, at, HEADER_LEN, end).unwrap();
        assert!(d.validate(3, at, HEADER_LEN, end - 1).is_err());
        assert!(d.validate(5, at, HEADER_LEN, end).is_err());
        assert!(d.validate(3, at, HEADER_LEN + PAGE, end).is_err());
        let mut overlap = d;
        overlap.log_off = HEADER_LEN;
        overlap.crc = overlap.compute_crc();
        assert!(overlap.validate(3, at, HEADER_LEN, end).is_err());
    }

    #[test]
    fn record_bounds() {
        let h = RecordHeader::new(3, 10, 0, 0);
        assert_eq!(h.size(), 40);
        assert_eq!(h.check_bounds(0, 4096), Some(40));
        assert_eq!(h.check_bounds(4096 - 32, 4096), None);
        assert_eq!(RecordHeader::new(0, 10, 0, 0).check_bounds(0, 4096), None);
        let sealed = h.seal(b"abc", b"0123456789");
        assert_eq!(sealed.checksum(b"abc", b"0123456789"), sealed.crc.get());
        assert_ne!(sealed.checksum(b"abd", b"0123456789"), sealed.crc.get());
    }
}
