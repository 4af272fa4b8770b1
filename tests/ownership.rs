//! Guards "the map file is its owner's": symbolic links are refused and never followed, a file
//! with a second hard link, wider permissions than the handle's mode, or an untrusted owner is
//! refused with `Permission` and nothing is written into it; the mode is applied despite the
//! umask; and removal (`remove_map`) never leaves an opener on an unlinked file.
#![allow(unsafe_code)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use common::*;
use shmap::{Error, Options, RemoveOutcome, Shmap};

fn refused(r: shmap::Result<Shmap>, what: &str) -> String {
    match r {
        Err(e @ Error::Permission { .. }) => {
            assert_eq!(e.code(), "ERR_SHMAP_PERMISSION");
            e.to_string()
        }
        other => panic!("{what}: expected a permission refusal, got {other:?}"),
    }
}

fn a_map(path: &str) -> Vec<u8> {
    let m = Shmap::open(path, &Options::new()).unwrap();
    m.set(b"k", b"v").unwrap();
    drop(m);
    std::fs::read(path).unwrap()
}

#[test]
fn symlinks_are_refused_never_followed() {
    let dir = shm_dir();
    let target = map_path(dir.path(), "real");
    let bytes = a_map(&target);
    let link = map_path(dir.path(), "link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let msg = refused(Shmap::open(&link, &Options::new()), "symlink to a map");
    assert!(msg.contains("symbolic link"), "{msg}");
    assert_eq!(std::fs::read(&target).unwrap(), bytes);

    // A symlink to an empty file the victim owns: never overwritten with a map.
    let empty = map_path(dir.path(), "victim");
    write_private(&empty, b"");
    let link2 = map_path(dir.path(), "link2");
    std::os::unix::fs::symlink(&empty, &link2).unwrap();
    refused(
        Shmap::open(&link2, &Options::new()),
        "symlink to an empty file",
    );
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);

    // A dangling symlink is not created through either.
    let dangling = map_path(dir.path(), "dangling");
    let nowhere = map_path(dir.path(), "nowhere");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    refused(Shmap::open(&dangling, &Options::new()), "dangling symlink");
    assert!(!std::path::Path::new(&nowhere).exists());

    // Removal refuses a symlink too.
    assert_eq!(
        shmap::remove_map(&link, false).unwrap_err().code(),
        "ERR_SHMAP_PERMISSION"
    );
    assert!(std::path::Path::new(&target).exists());
}

#[test]
fn a_second_hard_link_is_refused() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "linked");
    let bytes = a_map(&path);
    let other = map_path(dir.path(), "other-name");
    std::fs::hard_link(&path, &other).unwrap();
    let msg = refused(Shmap::open(&path, &Options::new()), "hard link");
    assert!(msg.contains("hard links"), "{msg}");
    refused(Shmap::open(&other, &Options::new()), "hard link");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn permissions_beyond_the_mode_are_refused() {
    let dir = shm_dir();
    for mode in [0o666, 0o660, 0o602, 0o640, 0o4600] {
        let path = map_path(dir.path(), &format!("m{mode:o}"));
        let bytes = a_map(&path);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let msg = refused(Shmap::open(&path, &Options::new()), "wide mode");
        assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        // A handle that means to share that widely may.
        if mode & 0o7000 == 0 {
            let m = Shmap::open(&path, &Options::new().mode(mode)).unwrap();
            assert_eq!(m.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        }
    }
}

#[test]
fn the_mode_is_applied_despite_the_umask() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "shared");
    // SAFETY: umask only swaps an integer in the process; restored below.
    let old = unsafe { libc::umask(0o077) };
    let m = Shmap::open(&path, &Options::new().mode(0o660));
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    m.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o660);
    let default = map_path(dir.path(), "private");
    Shmap::open(&default, &Options::new()).unwrap();
    assert_eq!(std::fs::metadata(&default).unwrap().mode() & 0o7777, 0o600);
}

#[test]
fn untrusted_owners_are_refused() {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: changing a file's owner needs root");
        return;
    }
    let dir = shm_dir();
    let path = map_path(dir.path(), "planted");
    let bytes = a_map(&path);
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let msg = refused(Shmap::open(&path, &Options::new()), "owned by nobody");
    assert!(msg.contains("uid 65534"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // Trusting that uid explicitly lets it in.
    let m = Shmap::open(&path, &Options::new().trusted_owners([65534])).unwrap();
    assert_eq!(m.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn remove_refuses_while_attached_unless_forced() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "rm");
    assert_eq!(
        shmap::remove_map(&path, false).unwrap(),
        RemoveOutcome::Absent
    );
    let m = Shmap::open(&path, &Options::new()).unwrap();
    match shmap::remove_map(&path, false).unwrap() {
        RemoveOutcome::InUse { pids } => assert!(pids.contains(&std::process::id()), "{pids:?}"),
        other => panic!("{other:?}"),
    }
    assert!(std::path::Path::new(&path).exists());
    match shmap::remove_map(&path, true).unwrap() {
        RemoveOutcome::Removed { still_attached } => {
            assert!(still_attached.contains(&std::process::id()))
        }
        other => panic!("{other:?}"),
    }
    assert!(!std::path::Path::new(&path).exists());
    drop(m);
    Shmap::open(&path, &Options::new()).unwrap();
    // Nobody attached any more: removed.
    assert_eq!(
        shmap::remove_map(&path, false).unwrap(),
        RemoveOutcome::Removed {
            still_attached: vec![]
        }
    );
    // A file that is not a map is not removed.
    let other = map_path(dir.path(), "notes.txt");
    write_private(&other, b"not a map at all");
    assert_eq!(
        shmap::remove_map(&other, false).unwrap_err().code(),
        "ERR_SHMAP_NOT_A_MAP"
    );
}

/// Child: opens and closes the map in a loop; while attached, the path must name its file.
#[test]
fn child_opener() {
    let Some(_) = child_role() else { return };
    let path = std::env::var("SHMAP_PATH").unwrap();
    let until = Instant::now() + Duration::from_millis(1500);
    let mut n = 0u64;
    while Instant::now() < until {
        let m = Shmap::open(&path, &Options::new()).unwrap();
        m.set(format!("n{}", n % 50).as_bytes(), b"x").unwrap();
        let p = std::fs::symlink_metadata(&path).expect("the path vanished under an attached map");
        assert_eq!(
            m.file_identity(),
            (p.dev(), p.ino()),
            "an opener ended on a file the path no longer names"
        );
        drop(m);
        n += 1;
    }
    println!("opened {n} times");
}

#[test]
fn openers_racing_removal_never_end_on_an_unlinked_file() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let path = map_path(dir.path(), "race");
    let kids: Vec<_> = (0..3)
        .map(|i| {
            child_command(
                "child_opener",
                &format!("opener{i}"),
                &[("SHMAP_PATH", path.as_str())],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    let (mut removed, mut in_use) = (0, 0);
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        match shmap::remove_map(&path, false).unwrap() {
            RemoveOutcome::Removed { still_attached } => {
                assert!(still_attached.is_empty());
                removed += 1;
            }
            RemoveOutcome::InUse { .. } => in_use += 1,
            RemoveOutcome::Absent => {}
            other => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    for k in kids {
        assert_ok(&k.wait_with_output().unwrap());
    }
    println!("removed {removed} times, refused {in_use} times");
    assert!(removed > 0, "the race was never exercised");
}

/// Runs `f` in a forked child as uid/gid 65534 (`nobody`), giving it a `report` that writes a
/// line into a pipe; returns the child's pid and a reader of the lines. The child `_exit`s
/// when `f` returns.
fn as_nobody(f: impl FnOnce(&dyn Fn(&str))) -> (libc::pid_t, std::io::BufReader<std::fs::File>) {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: a pipe into two fresh descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only drops its privileges, runs `f` and leaves by `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let report = |line: &str| {
            let line = format!("{line}\n");
            // SAFETY: writes to the pipe's write end, open in this child.
            unsafe { libc::write(fds[1], line.as_ptr().cast(), line.len()) };
        };
        // SAFETY: plain syscalls in the child.
        if unsafe { libc::setgid(65534) == 0 && libc::setuid(65534) == 0 } {
            f(&report);
        } else {
            report("setuid failed");
        }
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: closes the parent's copy of the write end, which nothing else uses.
    unsafe { libc::close(fds[1]) };
    // SAFETY: the read end is a fresh descriptor owned by nothing else: the File owns it now.
    let out = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    (pid, std::io::BufReader::new(out))
}

/// Waits at most `bound` for `pid`, then kills it. True if it exited by itself.
fn exits_within(pid: libc::pid_t, bound: Duration) -> bool {
    let until = Instant::now() + bound;
    loop {
        let mut status = 0;
        // SAFETY: polls a child of this process.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            return true;
        }
        if Instant::now() >= until {
            // SAFETY: kills and reaps the child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A reader that may only read the file (`read_only`, another user's map of mode 0644) is
/// attached like any other process: removal sees it and refuses, and no opener that finds
/// itself alone re-creates or truncates the file under its mapping. Before the fix the
/// read-only fallback took no `flock`, and `remove_map` removed the file under the live
/// reader (`Removed { still_attached: [] }`), which went on reading the unlinked map.
#[test]
fn a_read_only_reader_of_another_users_map_is_attached() {
    use std::io::BufRead;
    let path = format!("/dev/shm/shmap-test-ro-{}", std::process::id());
    let _ = std::fs::remove_file(&path);
    let m = Shmap::open(&path, &Options::new().mode(0o644)).unwrap();
    m.set(b"k", b"v1").unwrap();
    drop(m);
    let p = path.clone();
    let (pid, mut out) = as_nobody(move |report| {
        match Shmap::open(&p, &Options::new().read_only(true).mode(0o644)) {
            Ok(r) => {
                let found = r.get(b"k").ok().flatten().is_some();
                report(&format!("attached {found}"));
                std::thread::sleep(Duration::from_secs(30)); // attached until killed
            }
            Err(e) => report(&format!("refused {}", e.code())),
        }
    });
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let outcome = shmap::remove_map(&path, false);
    exits_within(pid, Duration::ZERO);
    let _ = std::fs::remove_file(&path);
    assert_eq!(line.trim(), "attached true");
    match outcome.unwrap() {
        // A read-only reader claims no process slot: refused, with no pid to name.
        RemoveOutcome::InUse { .. } => {}
        other => panic!("removed under a read-only reader: {other:?}"),
    }
}

/// A FIFO where a map should be is refused within the lock timeout, also by a reader that may
/// only read it (the read-only fallback open blocked in `open` until a writer came, before the
/// file type was checked: an unbounded wait on a name anyone can create in /dev/shm).
#[test]
fn a_fifo_is_refused_without_waiting() {
    use std::io::BufRead;
    let path = format!("/dev/shm/shmap-test-fifo-{}", std::process::id());
    let _ = std::fs::remove_file(&path);
    let c = std::ffi::CString::new(path.clone()).unwrap();
    // SAFETY: creates a FIFO at a fresh path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o444) }, 0);
    let p = path.clone();
    let (pid, mut out) = as_nobody(move |report| {
        let o = Options::new()
            .read_only(true)
            .lock_timeout(Duration::from_millis(500));
        match Shmap::open(&p, &o) {
            Ok(_) => report("opened"),
            Err(e) => report(&format!("refused {}", e.code())),
        }
    });
    let exited = exits_within(pid, Duration::from_secs(10));
    let _ = std::fs::remove_file(&path);
    assert!(
        exited,
        "a read-only open of a FIFO was still waiting after 10 s"
    );
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("refused ERR_SHMAP_"), "{line}");
}

/// An absurd lock timeout is a long one, not a panic inside `open` (`Instant` overflow).
#[test]
fn a_lock_timeout_of_duration_max_does_not_panic() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "max-timeout");
    let m = Shmap::open(&path, &Options::new().lock_timeout(Duration::MAX)).unwrap();
    m.set(b"k", b"v").unwrap();
    assert_eq!(m.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// A file that is not a map is never wiped, even when its first bytes are zero (a sparse or
/// preallocated file, a disk image): only an empty file or what a creator killed midway leaves
/// (page 0 zero but for the global control block) is re-created. Before the fix any file whose
/// first 8 bytes were zero counted as a creation killed midway: opened (even with
/// `create(false)`), its data was replaced by a new map, and `remove_map` deleted it.
#[test]
fn a_file_with_zero_first_bytes_is_not_a_map() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "zero-prefixed");
    let mut data = vec![0u8; 8192];
    data[1024..1040].copy_from_slice(b"PRECIOUS-DATA-01");
    write_private(&path, &data);
    for o in [Options::new().create(false), Options::new()] {
        let e = Shmap::open(&path, &o).map(|_| ()).unwrap_err();
        assert_eq!(e.code(), "ERR_SHMAP_NOT_A_MAP", "{e}");
    }
    assert_eq!(
        shmap::remove_map(&path, false).unwrap_err().code(),
        "ERR_SHMAP_NOT_A_MAP"
    );
    assert_eq!(std::fs::read(&path).unwrap(), data, "the file was changed");
    // An unfinished creation (here: an empty file) is still re-created.
    std::fs::write(&path, b"").unwrap();
    let m = Shmap::open(&path, &Options::new()).unwrap();
    m.set(b"k", b"v").unwrap();
}
