//! JSON rendering. Field names are stable and documented in README.md; add fields, never
//! rename or remove them.

use serde_json::{Value, json};
use shmap::inspect::{Item, LockState, Note, Problem, Process, Summary, Verification};

use crate::text::date;

/// The summary as one object.
pub fn summary(s: &Summary) -> Value {
    let layout = s.layout.as_ref();
    let census = s.census.as_ref();
    let lock = match &s.lock {
        LockState::Free => json!({
            "state": "free",
            "owner_slot": null,
            "owner_incarnation": null,
            "owner_pid": null,
            "owner_alive": null,
            "waiters": false,
        }),
        LockState::Held {
            slot,
            incarnation,
            pid,
            alive,
            waiters,
        } => json!({
            "state": "held",
            "owner_slot": slot,
            "owner_incarnation": incarnation,
            "owner_pid": pid,
            "owner_alive": alive,
            "waiters": waiters,
        }),
    };
    json!({
        "path": s.path.display().to_string(),
        "format_version": s.format_version,
        "created_ms": s.created_ms,
        "created": date(s.created_ms),
        "hash_seed": format!("{:#018x}", s.hash_seed),
        "file": {
            "apparent_bytes": s.apparent_bytes,
            "allocated_bytes": s.allocated_bytes,
        },
        "shard_bits": s.shard_bits,
        "shards": s.shards.iter().map(|sh| json!({
            "shard": sh.shard,
            "generation": sh.generation,
            "index_slots": sh.index_slots,
            "log_capacity": sh.log_capacity,
            "ring_used": sh.ring_used,
            "entries": sh.entries,
            "live_bytes": sh.live_bytes,
            "footprint": sh.footprint,
            "fair_share": sh.fair_share,
            "lock": match &sh.lock {
                LockState::Free => json!({"state": "free"}),
                LockState::Held { slot, pid, alive, .. } => json!({
                    "state": "held", "owner_slot": slot, "owner_pid": pid, "owner_alive": alive,
                }),
            },
            "recovery_pending": sh.recovery_pending,
        })).collect::<Vec<_>>(),
        "generation": s.generation,
        "generation_created_ms": layout.map(|l| l.created_ms),
        "index": layout.zip(census).map(|(l, c)| json!({
            "offset": l.index_offset,
            "slots": l.index_slots,
            "bytes": l.index_bytes,
            "used_slots": c.used_slots(),
            "load_factor": s.load_factor(),
        })),
        "log": layout.map(|l| json!({
            "offset": l.log_offset,
            "capacity": l.log_capacity,
            "bytes": l.log_bytes,
            "head": l.head,
            "tail": l.tail,
            "used_bytes": l.head.saturating_sub(l.tail),
            "generation": l.log_generation,
        })),
        "entries": census.map(|c| json!({
            "live": c.live,
            "expired": c.expired,
            "leases": c.leases,
            "tombstones": c.tombstones,
            "damaged": c.damaged,
        })),
        "live_bytes": census.map(|c| c.live_bytes),
        "dead_bytes": s.dead_bytes(),
        "settings": {
            "max_size": s.settings.max_size,
            "default_ttl_ms": s.settings.default_ttl_ms,
            "evict": s.settings.evict,
            "min_size": s.settings.min_size,
        },
        "counters": {
            "entries": s.counters.entries,
            "live_bytes": s.counters.live_bytes,
            "used_slots": s.counters.used_slots,
            "evictions": s.counters.evictions,
            "expirations": s.counters.expirations,
            "switches": s.counters.switches,
            "bytes_written": s.counters.bytes_written,
            "bytes_copied": s.counters.bytes_copied,
        },
        "switched_ms": s.switched_ms,
        "lock": lock,
        "recovery_pending": s.recovery_pending,
        "owner_uid": s.owner_uid,
        "mode": s.mode,
        "processes": processes(&s.processes),
        "stale_processes": processes(&s.stale_processes),
        "clean_flag": s.clean_flag,
        "last_exit": s.last_exit.name(),
        "building": s.building.map(|(offset, bytes)| json!({"offset": offset, "bytes": bytes})),
        "free_dirty": s.free_dirty,
        "problems": problems(&s.problems),
    })
}

/// The verification report as one object.
pub fn verification(v: &Verification) -> Value {
    json!({
        "ok": v.problems.is_empty(),
        "generation": v.generation,
        "index_slots": v.index_slots,
        "live_slots": v.live_slots,
        "tombstones": v.tombstones,
        "records": v.records,
        "dead_records": v.dead_records,
        "pads": v.pads,
        "tail": v.tail,
        "head": v.head,
        "counters_checked": v.counters_checked,
        "passes": v.passes,
        "problems": problems(&v.problems),
        "notes": notes(&v.notes),
    })
}

/// One entry as a JSON line: for `--keys` without the value, for `--dump` with it.
pub fn item(it: &Item) -> Value {
    let (key, key_encoding) = bytes(&it.key);
    let mut o = json!({
        "key": key,
        "key_encoding": key_encoding,
        "value_len": it.value_len,
        "flags": it.flags,
        "expires_ms": it.expires_ms,
    });
    if let Some(v) = &it.value {
        let (value, encoding) = match it.int_value() {
            Some(n) => (json!(n), "i64"),
            None => {
                let (s, e) = bytes(v);
                (json!(s), e)
            }
        };
        o["value"] = value;
        o["value_encoding"] = json!(encoding);
    }
    o
}

/// Bytes as a JSON string: UTF-8 when valid, else base64.
fn bytes(b: &[u8]) -> (String, &'static str) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_string(), "utf8"),
        Err(_) => (base64(b), "base64"),
    }
}

fn problems(ps: &[Problem]) -> Value {
    ps.iter()
        .map(|p| json!({"offset": p.offset, "what": p.what}))
        .collect()
}

fn notes(ns: &[Note]) -> Value {
    ns.iter()
        .map(|n| json!({"offset": n.offset, "what": n.what}))
        .collect()
}

fn processes(ps: &[Process]) -> Value {
    ps.iter()
        .map(|p| {
            json!({
                "slot": p.slot,
                "pid": p.pid,
                "incarnation": p.incarnation,
            })
        })
        .collect()
}

/// Standard base64 (RFC 4648, with padding): twenty lines instead of a dependency.
pub fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (c.get(1).copied().unwrap_or(0) as u32) << 8
            | c.get(2).copied().unwrap_or(0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn items_choose_an_encoding() {
        let it = Item {
            key: b"\xffk".to_vec(),
            value: Some(7i64.to_le_bytes().to_vec()),
            value_len: 8,
            flags: shmap::Shmap::FLAG_INT,
            expires_ms: 0,
        };
        let j = item(&it);
        assert_eq!(j["key_encoding"], "base64");
        assert_eq!(j["value"], 7);
        assert_eq!(j["value_encoding"], "i64");
        let it = Item {
            key: b"k".to_vec(),
            value: Some(b"v".to_vec()),
            value_len: 1,
            flags: 0,
            expires_ms: 5,
        };
        let j = item(&it);
        assert_eq!(
            (j["key"].as_str(), j["value"].as_str()),
            (Some("k"), Some("v"))
        );
        assert_eq!(j["value_encoding"], "utf8");
    }
}
