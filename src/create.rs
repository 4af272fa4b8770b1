//! Creating a new map file: the header, the control block's settings and a first, empty
//! generation sized by [`crate::plan::initial`]. Called by `attach` when a process alone with
//! the file (exclusive `flock`) finds it empty, unfinished, or to be reset.

use std::fs::File;
use std::sync::atomic::Ordering;

use zerocopy::IntoBytes;

use crate::arena;
use crate::error::{Error, Result};
use crate::format::{
    self, CONFIG_NO_EVICT, Desc, PAGE, Superblock, gctl, index_region_len, log_region_len,
    round_up, sctl,
};
use crate::options::{DEFAULT_MAX_SIZE, Options};
use crate::place;
use crate::plan;
use crate::raw::Mem;

/// Creates a new, empty map in `file` (the caller is alone with it). The superblock is
/// written last, so a creator killed midway leaves a file that is re-created.
pub(crate) fn create(file: &File, opts: &Options) -> Result<Superblock> {
    file.set_len(0)
        .map_err(|e| Error::io("truncate map file", e))?;
    let now = (opts.clock)();
    let seed = opts.seed.unwrap_or_else(random_seed);
    let size = round_up(opts.initial_size, PAGE).unwrap_or(u64::MAX);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let requested = (opts.shards != 0).then_some(opts.shards);
    let shards = place::shard_count(cores, size, requested).map_err(Error::InvalidArgument)?;
    let shard_bits = shards.trailing_zeros();
    let header_len = format::header_len(shard_bits);
    // The shards' first generations split what the header leaves of the initial size.
    let per_shard = (size.saturating_sub(header_len) / u64::from(shards)) & !(PAGE - 1);
    let max_size = opts.max_size.unwrap_or(DEFAULT_MAX_SIZE).max(size);
    let plan = plan::initial_under(
        per_shard,
        max_size.saturating_sub(header_len) / u64::from(shards),
    );
    let cap = plan.log_cap.unwrap_or(PAGE);
    let gen_len = index_region_len(plan.slots) + log_region_len(cap);
    let end = header_len + gen_len * u64::from(shards);
    let mem = Mem::new(
        file.try_clone().map_err(|e| Error::io("dup", e))?,
        true,
        end,
    )?;
    mem.allocate(0, end)?;
    let w = mem.w();
    for shard in 0..shards as usize {
        let index_off = header_len + gen_len * shard as u64;
        let log_off = index_off + index_region_len(plan.slots);
        // Generation numbers are unique map-wide: shard i's first is i + 1.
        let generation = shard as u64 + 1;
        let mut desc = Desc {
            generation,
            index_off,
            index_slots: plan.slots,
            log_off,
            log_cap: cap,
            created_ms: now,
            ..Desc::default()
        };
        desc.crc = desc.compute_crc();
        arena::write_desc(w, shard, 0, desc)?;
        arena::init_log(w, &desc, 0)?;
        w.store_u32(sctl!(shard, depth), shard_bits, Ordering::Release)?;
        w.store_u64(sctl!(shard, switched_ms), now, Ordering::Release)?;
        w.store_u64(
            sctl!(shard, active),
            format::active_word(generation, 0),
            Ordering::Release,
        )?;
    }
    w.store_u64(gctl!(next_gen), u64::from(shards) + 1, Ordering::Release)?;
    w.store_u64(gctl!(max_size), max_size, Ordering::Release)?;
    w.store_u64(
        gctl!(default_ttl_ms),
        opts.max_age_ms.unwrap_or(0),
        Ordering::Release,
    )?;
    let flags = if opts.evict == Some(false) {
        CONFIG_NO_EVICT
    } else {
        0
    };
    w.store_u32(gctl!(config_flags), flags, Ordering::Release)?;
    w.store_u32(gctl!(min_pages), (size / PAGE) as u32, Ordering::Release)?;
    let sb = Superblock::new(seed, now, shard_bits);
    mem.sync(0, end)?;
    w.write(0, sb.as_bytes())?;
    mem.sync(0, PAGE)?;
    Ok(sb)
}

/// A per-map random seed, from std's randomly keyed hasher (no extra dependency).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}
