//! Named fault-injection points (the `fail` crate, as TiKV uses it), compiled in only with the
//! test-only cargo feature `failpoints`; without it [`fp!`] expands to nothing.
//!
//! Every multi-step update of shared state in `lock`, `write` and `compact` has a point between
//! its steps. `tests/failpoints.rs` aborts a child process at each one in turn and checks that
//! another process then writes promptly and the map verifies; `tests/failpoint_list.rs` checks
//! that [`ALL`] names exactly the points in the sources.

/// A named failpoint: `fp!("name")`, or `fp!("name", |arg| early_return_value)`.
#[cfg(feature = "failpoints")]
macro_rules! fp {
    ($name:literal) => {
        fail::fail_point!($name)
    };
    ($name:literal, $e:expr) => {
        fail::fail_point!($name, $e)
    };
}

/// A named failpoint (compiled out: the `failpoints` feature is off).
#[cfg(not(feature = "failpoints"))]
macro_rules! fp {
    ($name:literal) => {};
    ($name:literal, $e:expr) => {};
}

pub(crate) use fp;

/// What a failpoint returns to stand for an I/O error (a failed `msync` or `fallocate`):
/// tests inject it where a write fails midway, which must leave what a kill there leaves.
#[cfg(feature = "failpoints")]
pub(crate) fn injected_sync_error() -> crate::Error {
    crate::Error::io(
        "msync map file (injected by a failpoint)",
        std::io::Error::other("injected"),
    )
}

/// Every failpoint in the crate, in source order by module.
pub const ALL: &[&str] = &[
    // lock
    "claim::between_incarnation_and_pid",
    "release::between_pid_and_unlock",
    "lock_writer::between_recovery_flag_and_takeover",
    "lock_writer::between_cas_and_since",
    // attach
    "attach::registry_held",
    "recover_alone::between_duty_and_reset",
    "recover_alone::between_reset_and_recovery",
    // shared
    "detach::final_sync",
    // write
    "put::between_append_and_publish",
    "put::between_publish_and_counters",
    "put::between_live_bytes_updates",
    "put::between_entries_and_live_bytes",
    "remove::between_tombstone_and_counters",
    "clean::before_tail_store",
    "reclaim::between_tombstone_and_counters",
    "move::between_append_and_repoint",
    "recount::between_counters",
    "recover::start",
    "recover::between_building_and_recount",
    "housekeep::step",
    "set_if::between_value_and_stamp",
    "set_if::between_remove_and_stamp",
    "set_if::between_stamp_and_floor",
    "clean::before_entering_chunk",
    // lanes
    "fast::between_record_and_fill",
    "fast::between_fill_and_slot",
    "fast::between_slot_and_counters",
    "fast::before_dead",
    "quiesce::after_gate",
    "adopt::after_fold",
    "adopt::before_free",
    "close::after_closed",
    "lane::after_claim",
    "chunk::between_append_and_lane",
    // build
    "after_write::start",
    "build::started",
    "build::allocated_step",
    "build::between_mirror_and_unlock",
    "build::mirror_into",
    "build::between_zero_and_cursor",
    "build::between_copy_and_cursor",
    "build::before_publish",
    "build::between_watermark_and_active",
    "build::between_active_and_counters",
    "build::between_retired_step_and_length",
    // compact
    "switch::between_building_off_and_len",
    "switch::after_reserve",
    "switch::while_filling",
    "switch::retired_written",
    "switch::between_descriptor_and_publish",
    "switch::between_watermark_and_publish",
    "switch::between_publish_and_counters",
    "switch::between_building_clears",
    "maintain::between_punch_and_flag",
    // map
    "compact::between_holds",
    "remove_many::between_removes",
];
