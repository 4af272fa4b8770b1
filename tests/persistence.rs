//! Guards persistence: a map written by one process is read back by a new process after
//! every process detached (cleanly, or killed), in /dev/shm and on disk; after an OS crash
//! (simulated by a changed boot id) torn records are dropped, never returned.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use shmap::format::{self, Control};
use shmap::{Options, Shmap};

fn val(i: u32) -> Vec<u8> {
    format!("value-{i}-")
        .repeat(1 + (i % 13) as usize)
        .into_bytes()
}

#[test]
fn child() {
    let Some(role) = child_role() else { return };
    let path = std::env::var("SHMAP_PATH").unwrap();
    let map = Shmap::open(&path, &Options::new().initial_size(64 << 10)).unwrap();
    match role.as_str() {
        "write" => {
            for i in 0..5000 {
                map.set(format!("k{i}").as_bytes(), &val(i)).unwrap();
            }
            map.flush().unwrap();
        }
        "write-and-die" => {
            for i in 0..5000 {
                map.set(format!("k{i}").as_bytes(), &val(i)).unwrap();
            }
            // No flush, no close: the process dies as if killed.
            std::process::abort();
        }
        "read" => {
            for i in 0..5000 {
                assert_eq!(
                    map.get(format!("k{i}").as_bytes()).unwrap(),
                    Some(val(i)),
                    "k{i}"
                );
            }
            assert_eq!(map.len().unwrap(), 5000);
        }
        _ => unreachable!(),
    }
}

fn roundtrip(dir: &std::path::Path, writer: &str) {
    let path = map_path(dir, "persist");
    let env = [("SHMAP_PATH", path.as_str())];
    let out = run_child("child", writer, &env);
    if writer == "write" {
        assert_ok(&out);
    } else {
        assert!(!out.status.success(), "the writer was meant to die");
    }
    assert_ok(&run_child("child", "read", &env));
}

#[test]
fn survives_restart_in_dev_shm() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    roundtrip(dir.path(), "write");
}

#[test]
fn survives_restart_on_disk() {
    if child_role().is_some() {
        return;
    }
    let dir = disk_dir();
    roundtrip(dir.path(), "write");
}

#[test]
fn survives_writer_death_without_flush() {
    if child_role().is_some() {
        return;
    }
    for dir in [shm_dir(), disk_dir()] {
        roundtrip(dir.path(), "write-and-die");
    }
}

/// Simulates an OS crash on disk: the boot id differs and the map was not detached cleanly,
/// and one record was torn. Reopening rebuilds from verified records: the torn one is gone,
/// the rest are intact.
#[test]
fn os_crash_drops_torn_records() {
    if child_role().is_some() {
        return;
    }
    let dir = disk_dir();
    let path = map_path(dir.path(), "torn");
    assert_ok(&run_child(
        "child",
        "write",
        &[("SHMAP_PATH", path.as_str())],
    ));
    let desc = {
        let m = Shmap::open(&path, &Options::new()).unwrap();
        m.flush().unwrap();
        inspect_desc(&path)
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // Tear the first record of the ring ("k0" = "value-0-"): flip a byte of its value.
    let first = desc.log_off + format::LOG_HEADER_LEN + format::RECORD_HEADER_LEN + 5;
    let mut b = [0u8; 1];
    file.read_at(&mut b, first).unwrap();

    file.write_at(&[b[0] ^ 0xFF], first).unwrap();
    // Not detached cleanly, on another boot.
    file.write_at(
        &0u32.to_le_bytes(),
        ctl_off(std::mem::offset_of!(Control, clean)),
    )
    .unwrap();
    file.write_at(&[0xAB; 16], ctl_off(std::mem::offset_of!(Control, boot_id)))
        .unwrap();
    drop(file);

    let m = Shmap::open(&path, &Options::new()).unwrap();
    let mut lost = 0;
    for i in 0..5000 {
        match m.get(format!("k{i}").as_bytes()).unwrap() {
            Some(v) => assert_eq!(v, val(i), "k{i}"),
            None => lost += 1,
        }
    }
    assert_eq!(lost, 1, "exactly the torn record is dropped");
    assert_eq!(m.len().unwrap(), 4999);
}

fn ctl_off(field: usize) -> u64 {
    format::CONTROL_OFF + field as u64
}

fn inspect_desc(path: &str) -> format::Desc {
    let file = std::fs::File::open(path).unwrap();
    let mut buf = [0u8; 8];
    // Shard 0's `active` word names the descriptor slot.
    file.read_at(&mut buf, format::shard_off(0)).unwrap();
    let active = u64::from_le_bytes(buf);
    let mut d = [0u8; 64];
    file.read_at(&mut d, format::desc_off(0, active & 1))
        .unwrap();
    zerocopy::FromBytes::read_from_bytes(&d[..]).unwrap()
}
