//! The read-only contract: no mode of shmap-inspect changes a byte or the modification time of
//! the file, and a map held exclusively (being created or recovered) is reported busy rather
//! than waited for.

mod common;

use common::*;

fn every_mode(path: &str) -> Vec<Run> {
    [
        &[][..],
        &["--json"],
        &["--verify"],
        &["--verify", "--json"],
        &["--keys"],
        &["--keys", "--json", "--prefix", "user:", "--limit", "2"],
        &["--dump"],
    ]
    .iter()
    .map(|mode| {
        let mut args = mode.to_vec();
        args.push(path);
        inspect(&args)
    })
    .collect()
}

#[test]
fn no_mode_changes_the_file() {
    let d = tempfile::tempdir().unwrap();
    for path in [
        healthy(d.path()),
        expired_and_deleted(d.path()),
        damaged(d.path()),
        truncated(d.path()),
        dead_writer(d.path()),
    ] {
        let before = std::fs::read(&path).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let runs = every_mode(path.to_str().unwrap());
        assert!(runs.iter().all(|r| r.code != 101), "a panic");
        assert!(runs.iter().all(|r| !r.stderr.contains("panicked")));
        assert_eq!(std::fs::read(&path).unwrap(), before, "{}", path.display());
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            mtime,
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_map_held_exclusively_is_reported_busy() {
    let d = tempfile::tempdir().unwrap();
    let path = healthy(d.path());
    // What a process that creates or recovers the map holds.
    let f = std::fs::File::open(&path).unwrap();
    f.lock().unwrap();
    let r = inspect(&[path.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("busy: the map is being created or recovered"),
        "{}",
        r.stderr
    );
    f.unlock().unwrap();
    assert_eq!(inspect(&[path.to_str().unwrap()]).code, 0);
}

#[test]
fn a_bare_name_resolves_like_the_library() {
    // A bare name lives in /dev/shm itself: unique per run (pid and random bits), removed
    // on drop whatever happens.
    let random = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let name = format!("shmap-inspect-test-{}-{random:016x}", std::process::id());
    let _cleanup = tempfile::TempPath::try_from_path(shmap::resolve(&name).unwrap()).unwrap();
    let m = shmap::Shmap::open(&name, &options()).unwrap();
    m.set(b"k", b"v").unwrap();
    let r = inspect(&["--keys", &name]);
    drop(m);
    assert_eq!((r.code, r.stdout.as_str()), (0, "k\n"), "{}", r.stderr);
}
