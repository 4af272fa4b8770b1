//! Attaching a process to a map file: creating it, validating and recovering it when the
//! process is alone with it (exclusive `flock`), claiming a process slot, and detaching. One
//! attachment per process and file is shared by all its handles and threads.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::failpoints::fp;
use crate::format::{self, LOCK_WAITERS, Superblock, gctl, sctl};
use crate::lock::{self};
use crate::options::{DEFAULT_MAX_SIZE, Options};
use crate::raw::{ForkMutex, Mem};
use crate::shared::Shared;
use crate::write::Writer;

/// One process's open maps, so worker threads share a mapping and a process slot.
type Registry = HashMap<(u64, u64), Weak<Shared>>;
/// A [`ForkMutex`]: a child forked while another thread was opening a map can still open maps.
static REGISTRY: ForkMutex<Option<Registry>> = ForkMutex::new(None);

/// Finds or creates this process's attachment to `path`.
pub(crate) fn attach(path: &Path, opts: &Options) -> Result<Arc<Shared>> {
    let mut reg = REGISTRY.lock();
    fp!("attach::registry_held");
    let reg = reg.get_or_insert_with(HashMap::new);
    // The path itself, never a symlink's target; and never an attachment a parent made before
    // fork() (it holds the parent's locks: the child needs its own).
    if let Ok(m) = std::fs::symlink_metadata(path)
        && let Some(sh) = reg.get(&(m.dev(), m.ino())).and_then(Weak::upgrade)
        && !sh.forked()
        && (sh.mem.writable() || opts.read_only)
    {
        return Ok(sh);
    }
    let sh = Arc::new(open_shared(path, opts)?);
    reg.retain(|_, w| w.strong_count() > 0);
    reg.insert(sh.key, Arc::downgrade(&sh));
    Ok(sh)
}

/// Opens the map file the safe way: never through a symbolic link (`O_NOFOLLOW`; std opens
/// with `O_CLOEXEC`), creating it exclusively (`O_CREAT | O_EXCL`, then `fchmod` to the
/// handle's mode so the umask cannot narrow it); of two racing creators, the loser opens the
/// winner's file. Then [`check_owner`].
fn open_file(path: &Path, opts: &Options) -> Result<(File, bool)> {
    let io = |e| Error::io(format!("open {}", path.display()), e);
    for _ in 0..100 {
        let mut o = OpenOptions::new();
        o.read(true).write(true).custom_flags(libc::O_NOFOLLOW);
        let err = match o.open(path) {
            Ok(f) => {
                check_owner(&f, path, opts)?;
                return Ok((f, true));
            }
            Err(e) => e,
        };
        if err.raw_os_error() == Some(libc::ELOOP) {
            return Err(symlink_refused(path));
        }
        match err.kind() {
            ErrorKind::NotFound if opts.create => {
                let mut c = OpenOptions::new();
                c.read(true)
                    .write(true)
                    .create_new(true)
                    .mode(opts.mode)
                    .custom_flags(libc::O_NOFOLLOW);
                match c.open(path) {
                    Ok(f) => {
                        f.set_permissions(std::fs::Permissions::from_mode(opts.mode))
                            .map_err(|e| Error::io("fchmod map file", e))?;
                        check_owner(&f, path, opts)?;
                        return Ok((f, true));
                    }
                    // Another creator won the race (or a symlink appeared): look again.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io(e)),
                }
            }
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem if opts.read_only => {
                // O_NONBLOCK: a FIFO in the map's place is refused by `check_owner`, not
                // waited on in `open` (a read-only open of a FIFO blocks until a writer comes).
                let f = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(path)
                    .map_err(|e| match e.raw_os_error() {
                        Some(libc::ELOOP) => symlink_refused(path),
                        _ => io(e),
                    })?;
                check_owner(&f, path, opts)?;
                return Ok((f, false));
            }
            _ => return Err(io(err)),
        }
    }
    Err(io(std::io::Error::other(
        "the file kept appearing and disappearing",
    )))
}

fn symlink_refused(path: &Path) -> Error {
    let m = std::fs::symlink_metadata(path).ok();
    Error::Permission {
        path: path.to_path_buf(),
        what: "it is a symbolic link (never followed: the map must be a plain file)".into(),
        uid: m.as_ref().map(|m| m.uid()),
        mode: m.as_ref().map(|m| m.mode() & 0o7777),
    }
}

/// Refuses a file that is not this handle's to use: not a regular file, more than one hard
/// link, an owner other than this process's effective uid, root or a trusted owner, or
/// permission bits beyond the handle's `mode`.
pub(crate) fn check_owner(file: &File, path: &Path, opts: &Options) -> Result<()> {
    let m = file.metadata().map_err(|e| Error::io("stat map file", e))?;
    let (uid, mode) = (m.uid(), m.mode() & 0o7777);
    let refuse = |what: String| {
        Err(Error::Permission {
            path: path.to_path_buf(),
            what,
            uid: Some(uid),
            mode: Some(mode),
        })
    };
    if !m.file_type().is_file() {
        return refuse("it is not a regular file".into());
    }
    if m.nlink() > 1 {
        return refuse(format!(
            "it has {} hard links (a map file has exactly one name)",
            m.nlink()
        ));
    }
    let me = crate::raw::euid();
    if uid != me && uid != 0 && !opts.trusted_owners.contains(&uid) {
        return refuse(format!(
            "it is owned by uid {uid}, not by this user ({me}), root or a trusted owner \
             (trusted_owners)"
        ));
    }
    if mode & !opts.mode != 0 {
        return refuse(format!(
            "it grants permissions beyond this handle's mode {:04o}",
            opts.mode
        ));
    }
    Ok(())
}

/// Whether `path` still names `file` (a remover may have unlinked it, and someone created a
/// new one, since we opened it).
pub(crate) fn still_named(file: &File, path: &Path) -> Result<bool> {
    let m = file.metadata().map_err(|e| Error::io("stat map file", e))?;
    match std::fs::symlink_metadata(path) {
        Ok(p) => Ok(p.dev() == m.dev() && p.ino() == m.ino()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("stat {}", path.display()), e)),
    }
}

/// Takes a shared `flock`, waiting at most until `deadline` (a creator or recoverer holds it
/// exclusively for as long as that takes).
fn lock_shared_until(file: &File, deadline: Instant) -> Result<()> {
    let start = Instant::now();
    let mut nap = Duration::from_micros(200);
    loop {
        match file.try_lock_shared() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(Error::io("flock map file", e)),
        }
        if Instant::now() >= deadline {
            return Err(Error::LockTimeout {
                waited_ms: start.elapsed().as_millis() as u64,
                holder_pid: None,
                held_ms: None,
            });
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

fn open_shared(path: &Path, opts: &Options) -> Result<Shared> {
    // An absurd timeout is a long one (`Instant` would overflow): a century.
    let now = Instant::now();
    let deadline = now
        .checked_add(opts.lock_timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
    for _ in 0..100 {
        let (file, writable) = open_file(path, opts)?;
        if !writable {
            // A reader that may only read the file is attached as every process is (a shared
            // `flock`): removal sees it, and no opener that finds itself alone re-creates or
            // trims the file under its mapping.
            lock_shared_until(&file, deadline)?;
            if !still_named(&file, path)? {
                continue;
            }
            return open_read_only(path, file, opts);
        }
        if let Some(sh) = attach_file(path, file, opts, deadline)? {
            return Ok(sh);
        }
        // The path was removed or replaced while we waited for its lock: open it again.
    }
    Err(Error::io(
        format!("open {}", path.display()),
        std::io::Error::other("the file kept being replaced while opening it"),
    ))
}

/// The `flock` protocol on an opened file; `None` when, once locked, the path no longer names
/// it (a remover unlinked it meanwhile: see `remove_map`).
fn attach_file(
    path: &Path,
    file: File,
    opts: &Options,
    deadline: Instant,
) -> Result<Option<Shared>> {
    let mut tries = 0;
    loop {
        tries += 1;
        match file.try_lock() {
            Ok(()) => {
                if !still_named(&file, path)? {
                    return Ok(None);
                }
                let sb = init_alone(path, &file, opts)?;
                // Converting to shared is not atomic, but nobody acts on the map between: a
                // process that takes the exclusive lock in the gap only sees a valid map.
                file.lock_shared()
                    .map_err(|e| Error::io("flock map file", e))?;
                return finish_attach(path, file, opts, sb).map(Some);
            }
            Err(TryLockError::WouldBlock) => {
                lock_shared_until(&file, deadline)?;
                if !still_named(&file, path)? {
                    return Ok(None);
                }
                if !unfinished(&file)? {
                    let sb = read_superblock(&file, path)?;
                    return finish_attach(path, file, opts, sb).map(Some);
                }
                // The creator died before finishing: try to become the creator.
                file.unlock().map_err(|e| Error::io("flock map file", e))?;
                if tries > 50 {
                    return Err(Error::corrupt(0, "map file is shorter than its header"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("flock map file", e)),
        }
    }
}

fn read_superblock(file: &File, path: &Path) -> Result<Superblock> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = file
        .read_at(&mut buf, 0)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    if n < 128 {
        return Err(Error::corrupt(
            n as u64,
            "file is shorter than the superblock",
        ));
    }
    let sb = Superblock::decode(&buf, path)?;
    // Nothing in the header may be touched before we know it is all there (else SIGBUS).
    let len = file.metadata().map_err(|e| Error::io("stat", e))?.len();
    let header_len = format::header_len(sb.shard_bits.get());
    if len < header_len {
        return Err(Error::corrupt(
            len,
            format!("file is {len} bytes, shorter than its {header_len}-byte header"),
        ));
    }
    Ok(sb)
}

/// Whether the file is one a creator left unfinished: empty, or a first page whose magic is
/// zero and whose bytes past the global control block are zero. A creator writes in page 0
/// only the control block and then the superblock, last (a reader may see it half written:
/// its magic zero, other bytes not), so any other file whose first bytes are zero is not a
/// map, and is left as it is. An unfinished file is (re-)created.
pub(crate) fn unfinished(file: &File) -> Result<bool> {
    let page = first_page(file)?;
    Ok(unfinished_page(&page))
}

/// The file's first page, or as much of it as there is.
pub(crate) fn first_page(file: &File) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut page = vec![0u8; format::PAGE as usize];
    let mut n = 0;
    while n < page.len() {
        match file.read_at(&mut page[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read map file", e)),
        }
    }
    page.truncate(n);
    Ok(page)
}

/// [`unfinished`] of a first page read once (a creator may be writing it meanwhile).
pub(crate) fn unfinished_page(page: &[u8]) -> bool {
    let after_control = format::CONTROL_OFF as usize + std::mem::size_of::<format::Control>();
    let zero = |r: std::ops::Range<usize>| page[r].iter().all(|&b| b == 0);
    page.is_empty()
        || (page.len() == format::PAGE as usize && zero(0..8) && zero(after_control..page.len()))
}

/// Alone with the file (exclusive flock): create, re-create, or validate and recover it.
fn init_alone(path: &Path, file: &File, opts: &Options) -> Result<Superblock> {
    if !unfinished(file)? {
        match read_superblock(file, path) {
            Ok(sb) => match recover_alone(path, file, opts, &sb) {
                Ok(()) => return Ok(sb),
                // Damage found while recovering (a shard's descriptor, say) is re-created on
                // request too.
                Err(Error::Corrupt { .. }) if opts.reset => {}
                Err(e) => return Err(e),
            },
            // A map of another version, or a damaged header, may be re-created on request; a
            // file that is not a map never is.
            Err(Error::UnsupportedVersion { .. })
            | Err(Error::UnsupportedShards { .. })
            | Err(Error::Corrupt { .. })
                if opts.reset => {}
            Err(e) => return Err(e),
        }
    }
    crate::create::create(file, opts)
}

fn recover_alone(path: &Path, file: &File, opts: &Options, sb: &Superblock) -> Result<()> {
    let mem = Mem::new(file.try_clone().map_err(|e| Error::io("dup", e))?, true, 0)?;
    let w = mem.w();
    let shards = 1usize << sb.shard_bits.get();
    // A writer that died holding a shard's lock, or a recovery that failed, leaves the duty
    // to recover that shard even when the last process out marked the map clean.
    // A dead holder's duty is recorded in the shard's `recovery` word before `reset_all`
    // clears its lock word, the duty's only record until then: a recovery below that fails,
    // or a kill, must leave it owed (to a later process alone, or to a writer of an opener
    // that attaches meanwhile).
    let mut duty = Vec::with_capacity(shards);
    for s in 0..shards {
        let held = w.load_u32(sctl!(s, writer_lock), Ordering::Acquire)? & !LOCK_WAITERS != 0;
        if held {
            lock::owe_recovery(&mem, &lock::shard(s));
        }
        duty.push(held || w.load_u32(sctl!(s, recovery), Ordering::Acquire)? != 0);
    }
    fp!("recover_alone::between_duty_and_reset");
    lock::reset_all(&mem, shards)?;
    fp!("recover_alone::between_reset_and_recovery");
    let clean = w.load_u32(gctl!(clean), Ordering::Acquire)? == 1;
    let stored_boot = [
        w.load_u64(gctl!(boot_id), Ordering::Acquire)?,
        w.load_u64(gctl!(boot_id) + 8, Ordering::Acquire)?,
    ];
    let os_crashed = !clean && stored_boot != boot_id();
    let sh = Shared::new(mem, None, sb, path, opts, (0, 0))?;
    for (s, duty) in duty.into_iter().enumerate() {
        let mut wr = Writer::new(&sh, s, crate::lock::Patience::new(sh.lock_timeout))?;
        if os_crashed {
            wr.rebuild_verified()?;
        } else if !clean || duty {
            wr.recover()?;
        }
        lock::recovered(&sh.mem, &lock::shard(s))?;
        wr.trim_alone()?;
    }
    let w = sh.mem.w();
    let b = boot_id();
    w.store_u64(gctl!(boot_id), b[0], Ordering::Release)?;
    w.store_u64(gctl!(boot_id) + 8, b[1], Ordering::Release)?;
    w.store_u32(gctl!(clean), 0, Ordering::Release)?;
    Ok(())
}

fn finish_attach(path: &Path, file: File, opts: &Options, sb: Superblock) -> Result<Shared> {
    let meta = file.metadata().map_err(|e| Error::io("stat", e))?;
    let key = (meta.dev(), meta.ino());
    let mem = Mem::new(file, true, window_for(&meta))?;
    let me = lock::claim(&mem)?;
    // Mark the map in use even if we did not initialise it (a clean detach sets it back).
    mem.w().store_u32(gctl!(clean), 0, Ordering::Release)?;
    Shared::new(mem, Some(me), &sb, path, opts, key)
}

pub(crate) fn open_read_only(path: &Path, file: File, opts: &Options) -> Result<Shared> {
    let sb = read_superblock(&file, path)?;
    let meta = file.metadata().map_err(|e| Error::io("stat", e))?;
    let key = (meta.dev(), meta.ino());
    let mem = Mem::new(file, false, window_for(&meta))?;
    Shared::new(mem, None, &sb, path, opts, key)
}

fn window_for(meta: &std::fs::Metadata) -> u64 {
    meta.len().max(2 * DEFAULT_MAX_SIZE)
}

/// The Linux boot id as two words (zero where unavailable).
fn boot_id() -> [u64; 2] {
    let s = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let hex: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let a = u64::from_str_radix(hex.get(..16).unwrap_or("0"), 16).unwrap_or(0);
    let b = u64::from_str_radix(hex.get(16..32).unwrap_or("0"), 16).unwrap_or(0);
    [a, b]
}
