//! Guards behaviour on a full file system (Docker's /dev/shm is 64 MB): a small tmpfs is
//! mounted; `set` fails with `NoSpace` (eviction off) or evicts (eviction on), never SIGBUS,
//! and earlier keys stay intact. Skipped, with the reason printed, where mounting is not allowed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use shmap::{Error, Options, Shmap};

/// A small tmpfs mounted for the test, unmounted on drop.
struct SmallTmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallTmpfs {
    fn mount(size: &str) -> Option<SmallTmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().to_path_buf();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallTmpfs { _dir: dir, path }),
            Ok(o) => {
                println!(
                    "SKIPPED: cannot mount a tmpfs here ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn map(&self, name: &str) -> String {
        self.path.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn val(i: u32) -> Vec<u8> {
    let mut v = format!("{i:08}").into_bytes();
    v.resize(1000, b'x');
    v
}

fn fill(map: &Shmap) -> (u32, Option<Error>) {
    for i in 0..100_000u32 {
        if let Err(e) = map.set(format!("k{i}").as_bytes(), &val(i)) {
            return (i, Some(e));
        }
    }
    (100_000, None)
}

#[test]
fn full_tmpfs_gives_no_space_and_keeps_earlier_keys() {
    let Some(fs) = SmallTmpfs::mount("4m") else {
        return;
    };
    let path = fs.map("full");
    let opts = Options::new()
        .initial_size(64 << 10)
        .evict(false)
        .retire_grace(std::time::Duration::ZERO);
    let map = Shmap::open(&path, &opts).unwrap();
    let (stored, err) = fill(&map);
    let err = err.expect("a 4 MiB file system fills up");
    assert!(
        matches!(err, Error::NoSpace { .. }),
        "expected NoSpace, got {err}"
    );
    assert!(stored > 100, "only {stored} values fit");
    for i in 0..stored {
        assert_eq!(
            map.get(format!("k{i}").as_bytes()).unwrap(),
            Some(val(i)),
            "k{i}"
        );
    }
    // Still usable: removing makes room for new writes.
    for i in 0..stored / 2 {
        assert!(map.remove(format!("k{i}").as_bytes()).unwrap());
    }
    map.set(b"after", b"removal").unwrap();
    assert_eq!(map.get(b"after").unwrap().unwrap(), b"removal");
    // A second process opens the map on the full file system and reads.
    drop(map);
    let m2 = Shmap::open(&path, &opts).unwrap();
    assert_eq!(
        m2.get(format!("k{}", stored - 1).as_bytes()).unwrap(),
        Some(val(stored - 1))
    );
}

#[test]
fn full_tmpfs_with_eviction_keeps_accepting_writes() {
    let Some(fs) = SmallTmpfs::mount("4m") else {
        return;
    };
    let path = fs.map("evicting");
    let map = Shmap::open(
        &path,
        &Options::new()
            .initial_size(64 << 10)
            .retire_grace(std::time::Duration::ZERO),
    )
    .unwrap();
    let (stored, err) = fill(&map);
    assert!(err.is_none(), "eviction should keep writes going: {err:?}");
    assert_eq!(stored, 100_000);
    let s = map.stats().unwrap();
    assert!(s.evictions > 0, "{s:?}");
    assert_eq!(map.get(b"k99999").unwrap(), Some(val(99_999)));
    assert!(s.file_allocated_bytes <= 4 << 20);
}

#[test]
fn creating_a_map_larger_than_the_file_system_is_no_space() {
    let Some(fs) = SmallTmpfs::mount("1m") else {
        return;
    };
    let err = Shmap::open(fs.map("huge"), &Options::new().initial_size(8 << 20)).unwrap_err();
    assert!(matches!(err, Error::NoSpace { .. }), "{err}");
    let _ = Path::new(&fs.map("huge")).exists();
}
