//! Text rendering for people.

use std::io::{self, Write};

use shmap::inspect::{LastExit, LockState, Process, ShardSummary, Summary, Verification, show_key};

/// The summary, one aligned line per topic.
pub fn summary(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    let line = |out: &mut dyn Write, label: &str, text: String| writeln!(out, "{label:<11}{text}");
    line(out, "map", s.path.display().to_string())?;
    line(
        out,
        "format",
        format!(
            "version {}, created {}, hash seed {:#018x}",
            s.format_version,
            date(s.created_ms),
            s.hash_seed
        ),
    )?;
    line(
        out,
        "file",
        format!(
            "{} apparent, {} allocated",
            bytes(s.apparent_bytes),
            bytes(s.allocated_bytes)
        ),
    )?;
    line(
        out,
        "owner",
        format!("uid {}, mode {:04o}", s.owner_uid, s.mode),
    )?;
    match (&s.layout, &s.census) {
        (Some(l), Some(c)) => {
            line(
                out,
                "generation",
                format!(
                    "{}, published {}; log written by generation {}",
                    s.generation,
                    date(l.created_ms),
                    l.log_generation
                ),
            )?;
            line(
                out,
                "index",
                format!(
                    "{} slots ({}) at byte {}; {} used, load factor {:.2}",
                    l.index_slots,
                    bytes(l.index_bytes),
                    l.index_offset,
                    c.used_slots(),
                    s.load_factor().unwrap_or(0.0)
                ),
            )?;
            let used = l.head.saturating_sub(l.tail);
            line(
                out,
                "log",
                format!(
                    "ring of {} at byte {}; tail {}, head {}: {} in use ({:.1}%)",
                    bytes(l.log_capacity),
                    l.log_offset,
                    l.tail,
                    l.head,
                    bytes(used),
                    100.0 * used as f64 / l.log_capacity as f64
                ),
            )?;
            let damaged = if c.damaged > 0 {
                format!(", {} damaged (run --verify)", c.damaged)
            } else {
                String::new()
            };
            line(
                out,
                "entries",
                format!(
                    "{} live, {} expired, {} leases, {} tombstones{damaged}",
                    c.live, c.expired, c.leases, c.tombstones
                ),
            )?;
            line(
                out,
                "bytes",
                format!(
                    "{} live, {} dead",
                    bytes(c.live_bytes),
                    bytes(s.dead_bytes().unwrap_or(0))
                ),
            )?;
        }
        _ => line(
            out,
            "generation",
            format!("{}: unusable, see the problem below", s.generation),
        )?,
    }
    line(
        out,
        "limits",
        format!(
            "max size {}, default TTL {}, eviction {}",
            bytes(s.settings.max_size),
            ttl(s.settings.default_ttl_ms),
            if s.settings.evict { "on" } else { "off" }
        ),
    )?;
    let holds = if s.recovery_pending {
        "recovery pending"
    } else {
        "no recovery pending"
    };
    let lock = match &s.lock {
        LockState::Free => format!("free; {holds}"),
        LockState::Held {
            slot,
            pid,
            alive,
            waiters,
            ..
        } => format!(
            "held by process slot {slot} ({}, {}){}; {holds}",
            match pid {
                0 => "no pid recorded".to_string(),
                p => format!("pid {p}"),
            },
            if *alive { "alive" } else { "dead" },
            if *waiters { ", with waiters" } else { "" }
        ),
    };
    line(out, "lock", lock)?;
    line(
        out,
        "shards",
        format!("{} (shard_bits {})", s.shards.len(), s.shard_bits),
    )?;
    for sh in &s.shards {
        line(out, &format!("shard {}", sh.shard), shard_line(sh))?;
    }
    let mut procs = if s.processes.is_empty() {
        "none attached".to_string()
    } else {
        format!("{} attached: {}", s.processes.len(), list(&s.processes))
    };
    if !s.stale_processes.is_empty() {
        procs += &format!(
            "; {} left by dead processes: {}",
            s.stale_processes.len(),
            list(&s.stale_processes)
        );
    }
    line(out, "processes", procs)?;
    let exit = match s.last_exit {
        LastExit::Clean => "clean: the last process detached after a flush",
        LastExit::InUse => "in use: processes are attached",
        LastExit::Unclean => {
            "unclean: the last process died without detaching; the next open recovers"
        }
        LastExit::WriterDied => {
            "a writer was killed mid-operation and still holds the lock; the next writer recovers"
        }
    };
    line(out, "last exit", exit.to_string())?;
    let c = &s.counters;
    line(
        out,
        "counters",
        format!(
            "{} entries, {} live, {} used slots (as writers counted)",
            c.entries,
            bytes(c.live_bytes),
            c.used_slots
        ),
    )?;
    line(
        out,
        "",
        format!(
            "{}, {}, {}; {} written, {} copied",
            plural(c.evictions, "eviction", "evictions"),
            plural(c.expirations, "expiration", "expirations"),
            plural(c.switches, "switch", "switches"),
            bytes(c.bytes_written),
            bytes(c.bytes_copied)
        ),
    )?;
    if let Some((off, len)) = s.building {
        line(
            out,
            "building",
            format!(
                "a generation switch is in progress or was interrupted: {len} bytes at byte {off}"
            ),
        )?;
    }
    for p in &s.problems {
        line(out, "problem", format!("at byte {}: {}", p.offset, p.what))?;
    }
    Ok(())
}

/// One shard's summary line.
fn shard_line(s: &ShardSummary) -> String {
    let lock = match &s.lock {
        LockState::Free => "free".to_string(),
        LockState::Held { slot, alive, .. } => format!(
            "held by slot {slot} ({})",
            if *alive { "alive" } else { "dead" }
        ),
    };
    let pct = if s.log_capacity == 0 {
        0.0
    } else {
        100.0 * s.ring_used as f64 / s.log_capacity as f64
    };
    format!(
        "gen {}, {} slots, ring {} ({pct:.1}% used), {} entries ({} live), {} of a fair share \
         of {}, lock {lock}{}",
        s.generation,
        s.index_slots,
        bytes(s.log_capacity),
        s.entries,
        bytes(s.live_bytes),
        bytes(s.footprint),
        bytes(s.fair_share),
        if s.recovery_pending {
            ", recovery pending"
        } else {
            ""
        }
    )
}

/// The verification report: what was walked, each problem and note, and a verdict.
pub fn verification(out: &mut impl Write, v: &Verification) -> io::Result<()> {
    if v.generation > 0 {
        writeln!(
            out,
            "generation {}: {} index slots ({} live, {} tombstones); {} records ({} dead) and \
             {} pads from tail {} to head {}{}",
            v.generation,
            v.index_slots,
            v.live_slots,
            v.tombstones,
            v.records,
            v.dead_records,
            v.pads,
            v.tail,
            v.head,
            if v.passes > 1 {
                format!(" ({} passes: writers switched generations)", v.passes)
            } else {
                String::new()
            }
        )?;
    }
    for p in &v.problems {
        writeln!(out, "problem at byte {}: {}", p.offset, p.what)?;
    }
    for n in &v.notes {
        match n.offset {
            Some(o) => writeln!(out, "note at byte {o}: {}", n.what)?,
            None => writeln!(out, "note: {}", n.what)?,
        }
    }
    match v.problems.len() {
        0 => writeln!(out, "ok: no problems found"),
        n => writeln!(out, "{} found", plural(n as u64, "problem", "problems")),
    }
}

/// A key on one line: printed as is when it is plain UTF-8, else quoted and escaped.
pub fn key(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) if !s.starts_with('"') && !s.chars().any(char::is_control) => s.to_string(),
        _ => show_key(k),
    }
}

fn list(ps: &[Process]) -> String {
    let mut v: Vec<String> = ps
        .iter()
        .take(8)
        .map(|p| format!("pid {} (slot {})", p.pid, p.slot))
        .collect();
    if ps.len() > 8 {
        v.push(format!("and {} more", ps.len() - 8));
    }
    v.join(", ")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A size for a person: exact below 10 KiB, else in binary units (exact values are in --json).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 10 * 1024 {
        return plural(n, "byte", "bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A time to live.
fn ttl(ms: u64) -> String {
    if ms == 0 {
        return "none".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms} ms");
    }
    let mut s = ms / 1000;
    let mut parts = Vec::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            parts.push(format!("{}{unit}", s / len));
            s %= len;
        }
    }
    parts.join(" ")
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
pub fn date(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(date(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(date(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(date(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn sizes_and_ttls_read_well() {
        assert_eq!(bytes(1), "1 byte");
        assert_eq!(bytes(5400), "5400 bytes");
        assert_eq!(bytes(1_048_576), "1 MiB");
        assert_eq!(bytes(958_464 + 512), "936.5 KiB");
        assert_eq!(ttl(0), "none");
        assert_eq!(ttl(1500), "1500 ms");
        assert_eq!(ttl(90_061_000), "1d 1h 1m 1s");
    }

    #[test]
    fn keys_print_plainly_unless_ambiguous() {
        assert_eq!(key(b"user:1"), "user:1");
        assert_eq!(key(b"two\nlines"), "\"two\\nlines\"");
        assert_eq!(key(b"\"quoted\""), "\"\\\"quoted\\\"\"");
        assert_eq!(key(b"\xff"), "\"\\xff\"");
    }
}
