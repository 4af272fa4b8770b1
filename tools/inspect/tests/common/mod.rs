//! Fixture maps made with a fixed seed and clock, and a runner for the binary.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use shmap::{Options, SetOptions, Shmap};

/// The fixtures' clock: 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000_000;
/// When the fixtures are inspected (`--now`): an hour later.
pub const NOW: u64 = T0 + 3_600_000;
/// Bytes before the first region (format.md).
pub const HEADER_LEN: u64 = 20480;

/// What a run of the binary printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `shmap-inspect` with `args`, judging expiry at [`NOW`].
pub fn inspect(args: &[&str]) -> Run {
    let now = NOW.to_string();
    let mut all = vec!["--now", now.as_str()];
    all.extend_from_slice(args);
    inspect_raw(&all)
}

/// Runs `shmap-inspect` with exactly `args`.
pub fn inspect_raw(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_shmap-inspect"))
        .args(args)
        .output()
        .expect("run shmap-inspect");
    Run {
        code: out.status.code().expect("exit code, not a signal"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

/// Options with the fixed seed and clock.
pub fn options() -> Options {
    Options::new()
        .seed(42)
        .clock(Arc::new(|| T0))
        .initial_size(256 << 10)
}

/// A healthy map: text, binary, counter, flagged and not-yet-expired entries.
pub fn healthy(dir: &Path) -> PathBuf {
    healthy_named(dir, "healthy")
}

fn healthy_named(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    {
        let m = Shmap::open_path(&path, &options()).unwrap();
        fill(&m);
    }
    path
}

fn fill(m: &Shmap) {
    for i in 0..20 {
        m.set(
            format!("user:{i:02}").as_bytes(),
            format!("value {i}").as_bytes(),
        )
        .unwrap();
    }
    m.incr(b"hits", 41, 1, None).unwrap();
    m.set(b"bin\xff\x00key", &[0, 159, 146, 150, 255]).unwrap();
    m.set_with(
        b"flagged",
        b"{\"json\":true}",
        SetOptions {
            ttl_ms: Some(0),
            flags: 7,
        },
    )
    .unwrap();
    m.set_with(
        b"session:tomorrow",
        b"still valid",
        SetOptions {
            ttl_ms: Some(86_400_000),
            flags: 0,
        },
    )
    .unwrap();
    m.set(b"DAMAGE", b"DAMAGE-ME-PLEASE").unwrap();
}

/// A map with expired, deleted and overwritten entries (dead records in the ring).
pub fn expired_and_deleted(dir: &Path) -> PathBuf {
    let path = dir.join("expired");
    {
        let m = Shmap::open_path(&path, &options()).unwrap();
        fill(&m);
        for i in 0..5 {
            assert!(m.remove(format!("user:{i:02}").as_bytes()).unwrap());
        }
        for i in 5..10 {
            m.set_with(
                format!("user:{i:02}").as_bytes(),
                b"short-lived",
                SetOptions {
                    ttl_ms: Some(60_000),
                    flags: 0,
                },
            )
            .unwrap();
        }
        m.set(b"user:19", b"overwritten").unwrap();
        m.incr(b"hits", 1, 0, None).unwrap();
    }
    path
}

/// The healthy map with one byte flipped inside a record's value.
pub fn damaged(dir: &Path) -> PathBuf {
    let path = healthy_named(dir, "damaged");
    let bytes = std::fs::read(&path).unwrap();
    let at = find(&bytes, b"DAMAGE-ME-PLEASE").expect("the value is in the file") + 3;
    poke(&path, at as u64, &[bytes[at] ^ 0x20]);
    path
}

/// The healthy map cut inside its log region.
pub fn truncated(dir: &Path) -> PathBuf {
    let path = healthy_named(dir, "truncated");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(HEADER_LEN + (64 << 10)).unwrap();
    path
}

/// The healthy map cut inside its header.
pub fn truncated_header(dir: &Path) -> PathBuf {
    let path = healthy_named(dir, "truncated-header");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(10_000).unwrap();
    path
}

/// A file that is not a map.
pub fn foreign(dir: &Path) -> PathBuf {
    let path = dir.join("foreign");
    std::fs::write(&path, "#!/bin/sh\necho 'not a map'\n".repeat(1000)).unwrap();
    path
}

/// The healthy map with its version field set to the next version, a future one (and the
/// superblock checksum fixed up).
pub fn future_version(dir: &Path) -> PathBuf {
    let path = healthy_named(dir, "future-version");
    let mut sb = std::fs::read(&path).unwrap()[..128].to_vec();
    sb[8..12].copy_from_slice(&(shmap::format::VERSION + 1).to_le_bytes());
    let crc = crc32(&sb[..124]);
    sb[124..128].copy_from_slice(&crc.to_le_bytes());
    poke(&path, 0, &sb);
    path
}

/// The healthy map as a writer killed mid-operation leaves it: the writer lock names a process
/// slot nobody holds, and the `entries` counter is one ahead of the index.
pub fn dead_writer(dir: &Path) -> PathBuf {
    let path = healthy_named(dir, "dead-writer");
    let word: u32 = (5 << 20) | 3;
    // Shard 0's entry is at 12288: its writer lock at +64, its entries counter at +96.
    poke(&path, 12352, &word.to_le_bytes());
    let entries = u64::from_le_bytes(
        std::fs::read(&path).unwrap()[12384..12392]
            .try_into()
            .unwrap(),
    );
    poke(&path, 12384, &(entries + 1).to_le_bytes());
    path
}

/// Writes `bytes` at `offset` of the file.
pub fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// CRC-32 (IEEE), bit by bit: fixtures need it once, not a dependency.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Output with the nondeterministic parts replaced: the temporary directory and the allocated
/// bytes (which depend on the file system).
pub fn redact(text: &str, dir: &Path) -> String {
    let text = text.replace(dir.to_str().unwrap(), "[DIR]");
    text.lines()
        .map(|l| match l.strip_prefix("file") {
            Some(rest) if rest.contains(" allocated") => {
                let apparent = rest.split(',').next().unwrap_or("");
                format!("file{apparent}, [ALLOCATED] allocated")
            }
            None if l.starts_with("owner") && l.contains(", mode ") => {
                let mode = l.rsplit(", ").next().unwrap_or("");
                format!("owner      uid [UID], {mode}")
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `--json` summary with the nondeterministic fields replaced.
pub fn redact_json(text: &str, dir: &Path) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).expect("JSON output");
    v["path"] = v["path"]
        .as_str()
        .unwrap()
        .replace(dir.to_str().unwrap(), "[DIR]")
        .into();
    if v.get("file").is_some() {
        v["file"]["allocated_bytes"] = "[ALLOCATED]".into();
    }
    if v.get("owner_uid").is_some() {
        v["owner_uid"] = "[UID]".into();
    }
    serde_json::to_string_pretty(&v).unwrap()
}
