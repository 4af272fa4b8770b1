//! `load`: writes the JSON lines of `--dump` into a map. A dump is how a map's contents move
//! to a new format version (a release refuses files of an older version): dump with the release
//! that wrote the map, load with the new one. Keys, value bytes, flags (the Node package's type
//! tags among them) and expiries come back exactly; entries that expired since the dump are
//! left out. This module writes (everything else in this crate only reads).

use std::io::BufRead;

use serde_json::Value;
use shmap::{SetOptions, Shmap};

/// What a load stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Entries stored.
    pub entries: u64,
    /// Entries left out because they expired since the dump.
    pub expired: u64,
}

/// Why a load stopped: the line (from 1) and what was wrong with it, or the map's error. The
/// entries of the lines before it are stored.
#[derive(Debug)]
pub struct LoadError {
    /// The line of the input (from 1); 0 if the input could not be read at all.
    pub line: u64,
    /// What was wrong.
    pub what: String,
    /// The map's error, when storing the entry failed (not the input).
    pub map: Option<shmap::Error>,
    /// What was stored before it.
    pub loaded: Loaded,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Stores every entry of `input` (JSON lines as `--dump` writes them) in `map`, judging expiry
/// at `now_ms`. Blank lines are skipped.
pub fn load(map: &Shmap, input: &mut dyn BufRead, now_ms: u64) -> Result<Loaded, LoadError> {
    let mut done = Loaded::default();
    let mut buf = String::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        line += 1;
        let fail = |what: String, map: Option<shmap::Error>, loaded: Loaded| LoadError {
            line,
            what,
            map,
            loaded,
        };
        match input.read_line(&mut buf) {
            Ok(0) => return Ok(done),
            Ok(_) => {}
            Err(e) => return Err(fail(format!("cannot read the input: {e}"), None, done)),
        }
        if buf.trim().is_empty() {
            continue;
        }
        let e = entry(&buf).map_err(|what| fail(what, None, done))?;
        if e.expires_ms != 0 && e.expires_ms <= now_ms {
            done.expired += 1;
            continue;
        }
        let o = SetOptions {
            ttl_ms: Some(if e.expires_ms == 0 {
                0
            } else {
                e.expires_ms - now_ms
            }),
            flags: e.flags,
        };
        map.set_with(&e.key, &e.value, o)
            .map_err(|err| fail(err.to_string(), Some(err), done))?;
        done.entries += 1;
    }
}

/// One dumped entry, decoded.
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
    flags: u32,
    expires_ms: u64,
}

fn entry(text: &str) -> Result<Entry, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| v.get(name).ok_or_else(|| format!("no \"{name}\""));
    let string = |name: &str| {
        field(name)?
            .as_str()
            .ok_or_else(|| format!("\"{name}\" is not a string"))
    };
    let number = |name: &str| {
        field(name)?
            .as_u64()
            .ok_or_else(|| format!("\"{name}\" is not a non-negative integer"))
    };
    let bytes = |name: &str, encoding: &str| match string(encoding)? {
        "utf8" => Ok(string(name)?.as_bytes().to_vec()),
        "base64" => unbase64(string(name)?).ok_or_else(|| format!("\"{name}\" is not base64")),
        other => Err(format!("unknown {encoding} {other:?}")),
    };
    let key = bytes("key", "key_encoding")?;
    let flags =
        u32::try_from(number("flags")?).map_err(|_| "\"flags\" is too large".to_string())?;
    let value = if string("value_encoding")? == "i64" {
        let n = field("value")?
            .as_i64()
            .ok_or("\"value\" is not a 64-bit integer")?;
        if flags & Shmap::FLAG_INT == 0 {
            return Err("an i64 value without the INT flag".into());
        }
        n.to_le_bytes().to_vec()
    } else {
        bytes("value", "value_encoding")?
    };
    Ok(Entry {
        key,
        value,
        flags,
        expires_ms: number("expires_ms")?,
    })
}

/// Decodes standard base64 (RFC 4648, padded, as [`crate::json::base64`] writes it).
fn unbase64(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, q) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pad as u32;
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::base64;

    #[test]
    fn base64_round_trips() {
        for n in 0..64usize {
            let b: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(unbase64(&base64(&b)).as_deref(), Some(&b[..]));
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*", "===="] {
            assert_eq!(unbase64(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_that_are_not_entries_are_refused() {
        let cases = [
            ("{", "not JSON"),
            (
                r#"{"key":"k","key_encoding":"utf8","flags":0,"expires_ms":0}"#,
                "no \"value_encoding\"",
            ),
            (
                r#"{"key":"k","key_encoding":"hex","value":"v","value_encoding":"utf8","flags":0,"expires_ms":0}"#,
                "unknown key_encoding",
            ),
            (
                r#"{"key":"k","key_encoding":"utf8","value":1,"value_encoding":"i64","flags":0,"expires_ms":0}"#,
                "without the INT flag",
            ),
            (
                r#"{"key":"k","key_encoding":"utf8","value":"v","value_encoding":"utf8","flags":-1,"expires_ms":0}"#,
                "\"flags\"",
            ),
        ];
        for (line, why) in cases {
            let e = entry(line).err().unwrap_or_default();
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
