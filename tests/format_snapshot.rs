//! Guards the on-disk format: the bytes of a small map built with a fixed seed and clock, and
//! its decoded header, are pinned by `insta` snapshots (a layout change shows as a diff and must
//! bump the version), and the committed fixture of each released version still reads.

mod common;

use std::fmt::Write;
use std::sync::Arc;

use common::*;
use shmap::format::{self, Control, Desc, ShardEntry, Superblock};
use shmap::{Options, SetOptions, Shmap};
use zerocopy::FromBytes;

const NOW: u64 = 1_700_000_000_000;

/// A small map with a fixed seed and clock: a few values, a counter, a TTL, a removal.
fn build(path: &str) {
    let map = Shmap::open(
        path,
        &Options::new()
            .initial_size(64 << 10)
            .seed(0x5EED)
            .clock(Arc::new(|| NOW)),
    )
    .unwrap();
    map.set(b"alpha", b"first value").unwrap();
    map.set(b"beta", b"second").unwrap();
    map.set_with(
        b"gamma",
        b"expires",
        SetOptions {
            ttl_ms: Some(60_000),
            flags: 3,
        },
    )
    .unwrap();
    map.incr(b"counter", 41, 1, None).unwrap();
    map.remove(b"beta").unwrap();
    map.set(b"alpha", b"overwritten").unwrap();
}

/// The file's bytes with what differs between machines and runs zeroed: the boot id, the lock's
/// acquisition time and the process table (slot choice depends on the pid).
fn normalized(path: &str) -> Vec<u8> {
    let mut b = std::fs::read(path).unwrap();
    let boot = format::CONTROL_OFF as usize + std::mem::offset_of!(Control, boot_id);
    b[boot..boot + 16].fill(0);
    // The monotonic time shard 0's writer lock was last taken.
    let since = format::shard_off(0) as usize + std::mem::offset_of!(ShardEntry, lock_since_ms);
    b[since..since + 8].fill(0);
    b[format::PROC_OFF as usize..format::SHARD_OFF as usize].fill(0);
    b
}

/// Hex dump of the non-zero 16-byte rows.
fn hexdump(b: &[u8]) -> String {
    let mut out = format!("{} bytes; zero rows omitted\n", b.len());
    for (i, row) in b.chunks(16).enumerate() {
        if row.iter().all(|&x| x == 0) {
            continue;
        }
        let hex: Vec<String> = row.iter().map(|x| format!("{x:02x}")).collect();
        let txt: String = row
            .iter()
            .map(|&c| if c.is_ascii_graphic() { c as char } else { '.' })
            .collect();
        writeln!(out, "{:08x}  {}  {txt}", i * 16, hex.join(" ")).unwrap();
    }
    out
}

fn decoded(b: &[u8]) -> String {
    let sb = Superblock::read_from_bytes(&b[..128]).unwrap();
    let c0 = format::CONTROL_OFF as usize;
    let c = Control::read_from_bytes(&b[c0..c0 + 256]).unwrap();
    let s0 = format::shard_off(0) as usize;
    let e = ShardEntry::read_from_bytes(&b[s0..s0 + format::SHARD_ENTRY_LEN as usize]).unwrap();
    let d0 = format::desc_off(0, e.active & 1) as usize;
    let d = Desc::read_from_bytes(&b[d0..d0 + 64]).unwrap();
    let mut out = String::new();
    let mut line = |name: &str, v: String| writeln!(out, "{name:<20} {v}").unwrap();
    line("magic", format!("{:?}", String::from_utf8_lossy(&sb.magic)));
    for (name, v) in [
        ("version", sb.version.get()),
        ("header_len", sb.header_len.get()),
        ("page_size", sb.page_size.get()),
        ("control_off", sb.control_off.get()),
        ("control_len", sb.control_len.get()),
        ("desc_off", sb.desc_off.get()),
        ("desc_len", sb.desc_len.get()),
        ("proc_off", sb.proc_off.get()),
        ("proc_slots", sb.proc_slots.get()),
        ("proc_slot_len", sb.proc_slot_len.get()),
        ("record_header_len", sb.record_header_len.get()),
        ("log_header_len", sb.log_header_len.get()),
        ("slot_len", sb.slot_len.get()),
        ("hash_id", sb.hash_id.get()),
        ("endian", sb.endian.get()),
        ("flags", sb.flags.get()),
        ("shard_bits", sb.shard_bits.get()),
        ("shard_off", sb.shard_off.get()),
        ("shard_entry_len", sb.shard_entry_len.get()),
        ("crc", sb.crc.get()),
    ] {
        line(name, format!("{v:#x}"));
    }
    line("seed", format!("{:#x}", sb.seed.get()));
    line("created_ms", sb.created_ms.get().to_string());
    writeln!(out, "--- control").unwrap();
    let mut c2 = c.clone();
    c2.boot_id = [0; 2];
    writeln!(out, "{c2:?}").unwrap();
    writeln!(out, "--- shard 0").unwrap();
    let mut e2 = e.clone();
    e2.lock_since_ms = 0;
    e2.desc = Default::default();
    writeln!(out, "{e2:?}").unwrap();
    writeln!(
        out,
        "--- shard 0's active descriptor (slot {})",
        e.active & 1
    )
    .unwrap();
    writeln!(out, "{d:?}").unwrap();
    out
}

#[test]
fn layout_is_pinned() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "snap");
    build(&path);
    let bytes = normalized(&path);
    insta::assert_snapshot!("decoded_header", decoded(&bytes));
    insta::assert_snapshot!("file_bytes", hexdump(&bytes));
}

/// Regenerates the fixture for the current version: `SHMAP_WRITE_FIXTURE=1 cargo test ...`.
/// The current version's fixture reads; every older one is refused with `UnsupportedVersion`
/// naming both versions (a process of an old version must never run its protocol beside ours,
/// nor ours beside its).
#[test]
fn fixture_of_each_version_reads_or_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = format!(
        "{}/tests/fixtures/v{}.shmap",
        env!("CARGO_MANIFEST_DIR"),
        format::VERSION
    );
    if std::env::var("SHMAP_WRITE_FIXTURE").is_ok() {
        let dir = shm_dir();
        let path = map_path(dir.path(), "fixture");
        build(&path);
        std::fs::write(&fixture, normalized(&path)).unwrap();
    }
    let (mut current, mut older) = (0, 0);
    for entry in
        std::fs::read_dir(format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"))).unwrap()
    {
        let src = entry.unwrap().path();
        let version: u32 = src
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix('v'))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("fixture {src:?} is not named v<N>.shmap"));
        let dir = shm_dir();
        let path = map_path(dir.path(), "copy");
        std::fs::copy(&src, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let opened = Shmap::open(&path, &Options::new().clock(Arc::new(|| NOW)));
        if version < format::VERSION {
            let before = std::fs::read(&path).unwrap();
            match opened {
                Err(e @ shmap::Error::UnsupportedVersion { .. }) => {
                    assert_eq!(e.code(), "ERR_SHMAP_VERSION");
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&format!("version {version}"))
                            && msg.contains(&format!("version {}", format::VERSION))
                            && msg.contains("reset: true"),
                        "{msg}"
                    );
                }
                other => panic!("{src:?}: expected a version refusal, got {other:?}"),
            }
            assert_eq!(
                std::fs::read(&path).unwrap(),
                before,
                "refusal wrote to {src:?}"
            );
            // `reset: true` re-creates it in the current version.
            let map = Shmap::open(&path, &Options::new().reset(true)).unwrap();
            assert_eq!(map.get(b"alpha").unwrap(), None, "{src:?}");
            map.set(b"alpha", b"new").unwrap();
            drop(map);
            let sb = Superblock::read_from_bytes(&std::fs::read(&path).unwrap()[..128]).unwrap();
            assert_eq!(sb.version.get(), format::VERSION, "{src:?} after reset");
            let map = Shmap::open(&path, &Options::new()).unwrap();
            assert_eq!(map.get(b"alpha").unwrap().unwrap(), b"new");
            older += 1;
            continue;
        }
        let map = opened.unwrap();
        assert_eq!(
            map.get(b"alpha").unwrap().unwrap(),
            b"overwritten",
            "{src:?}"
        );
        assert_eq!(map.get(b"beta").unwrap(), None);
        assert_eq!(map.get(b"gamma").unwrap().unwrap(), b"expires");
        assert_eq!(map.incr(b"counter", 0, 0, None).unwrap(), 42);
        current += 1;
    }
    assert_eq!(current, 1, "one fixture of the current version");
    assert!(older >= 3, "the v1, v2 and v3 fixtures are kept");
}
