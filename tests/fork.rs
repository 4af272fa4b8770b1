//! Guards use after `fork()` without exec: a handle opened before the fork fails in the child
//! with `Forked`, dropping it there releases nothing of the parent's (the parent's process slot,
//! flock and writer lock stay its own), and a new open in the child gets its own attachment.
#![allow(unsafe_code)]

mod common;

use common::*;
use shmap::{Error, Options, Shmap};

/// In the child: check, then `_exit` with a code saying which check failed (0 = all passed).
fn in_child(map: Shmap, path: &str) -> i32 {
    match map.get(b"k") {
        Err(Error::Forked) => {}
        _ => return 10,
    }
    match map.set(b"k", b"child") {
        Err(e @ Error::Forked) if e.code() == "ERR_SHMAP_FORKED" => {}
        _ => return 11,
    }
    if !matches!(map.keys(), Err(Error::Forked)) {
        return 12;
    }
    let clone = map.clone();
    drop(map);
    drop(clone);
    // A fresh open in the child is a new attachment (not the parent's), and works.
    let Ok(mine) = Shmap::open(path, &Options::new()) else {
        return 13;
    };
    if mine.get(b"k").ok().flatten().as_deref() != Some(&b"parent"[..]) {
        return 14;
    }
    if mine.set(b"from-child", b"1").is_err() {
        return 15;
    }
    drop(mine);
    0
}

#[test]
fn a_handle_used_after_fork_is_refused_and_releases_nothing() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "fork");
    let map = Shmap::open(&path, &Options::new()).unwrap();
    map.set(b"k", b"parent").unwrap();
    let before = map.file_identity();

    // SAFETY: the child only runs shmap code and `_exit`s; the test harness's other threads are
    // not touched in the child (no allocation lock is held across fork by this test's thread).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = in_child(map, &path);
        // SAFETY: `_exit` ends the child at once, without running the parent's atexit handlers
        // or destructors twice.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    assert!(libc::WIFEXITED(status), "child died: {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "check {} failed in the child",
        libc::WEXITSTATUS(status)
    );

    // The parent still holds its slot and flock: another process sees it attached (a remover
    // refuses), and it keeps writing.
    assert_eq!(map.get(b"from-child").unwrap().as_deref(), Some(&b"1"[..]));
    map.set(b"k", b"parent again").unwrap();
    assert_eq!(map.file_identity(), before);
    match shmap::remove_map(&path, false).unwrap() {
        shmap::RemoveOutcome::InUse { pids } => {
            assert!(pids.contains(&std::process::id()), "{pids:?}")
        }
        other => panic!("the parent's flock or slot was released by the child: {other:?}"),
    }
}
