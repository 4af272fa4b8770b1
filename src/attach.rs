//! Attaching a process to a map file: creating it, validating and recovering it when the
//! process is alone with it (exclusive `flock`), claiming a process slot, and detaching. One
//! attachment per process and file is shared by all its handles and threads.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{HEADER_LEN, PAGE, Superblock, ctl};
use crate::lock::{self, Proc};
use crate::options::{Clock, DEFAULT_MAX_SIZE, Options};
use crate::raw::Mem;
use crate::write::Writer;

/// Per-process state of one attached file, shared by every handle (and thread) of the process.
pub(crate) struct Shared {
    pub mem: Mem,
    pub me: Option<Proc>,
    pub seed: u64,
    pub path: PathBuf,
    pub clock: Clock,
    pub grace: Duration,
    /// After growth failed for lack of file-system space, no new attempt before this time
    /// (wall-clock ms): each attempt scans the index, and a full disk stays full for a while.
    pub no_grow_until: AtomicU64,
    pub on_tmpfs: bool,
    pub created_ms: u64,
    /// Serialises this process's writers before they touch the map's writer lock.
    pub local: Mutex<()>,
    key: (u64, u64),
}

/// One process's open maps, so worker threads share a mapping and a process slot.
type Registry = HashMap<(u64, u64), Weak<Shared>>;
static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Finds or creates this process's attachment to `path`.
pub(crate) fn attach(path: &Path, opts: &Options) -> Result<Arc<Shared>> {
    let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let reg = reg.get_or_insert_with(HashMap::new);
    if let Ok(m) = std::fs::metadata(path)
        && let Some(sh) = reg.get(&(m.dev(), m.ino())).and_then(Weak::upgrade)
        && (sh.mem.writable() || opts.read_only)
    {
        return Ok(sh);
    }
    let sh = Arc::new(open_shared(path, opts)?);
    reg.retain(|_, w| w.strong_count() > 0);
    reg.insert(sh.key, Arc::downgrade(&sh));
    Ok(sh)
}

fn open_file(path: &Path, opts: &Options) -> Result<(File, bool)> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(opts.create).mode(0o600);
    match o.open(path) {
        Ok(f) => Ok((f, true)),
        Err(e)
            if opts.read_only
                && matches!(
                    e.kind(),
                    ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
                ) =>
        {
            File::open(path)
                .map(|f| (f, false))
                .map_err(|e| Error::io(format!("open {}", path.display()), e))
        }
        Err(e) => Err(Error::io(format!("open {}", path.display()), e)),
    }
}

fn open_shared(path: &Path, opts: &Options) -> Result<Shared> {
    let (file, writable) = open_file(path, opts)?;
    if !writable {
        return open_read_only(path, file, opts);
    }
    let mut tries = 0;
    loop {
        tries += 1;
        match file.try_lock() {
            Ok(()) => {
                let sh = init_alone(path, &file, opts)?;
                // Converting to shared is not atomic, but nobody acts on the map between: a
                // process that takes the exclusive lock in the gap only sees a valid map.
                file.lock_shared()
                    .map_err(|e| Error::io("flock map file", e))?;
                return finish_attach(path, file, opts, sh);
            }
            Err(TryLockError::WouldBlock) => {
                file.lock_shared()
                    .map_err(|e| Error::io("flock map file", e))?;
                if !unfinished(&file)? {
                    let sb = read_superblock(&file, path)?;
                    return finish_attach(path, file, opts, sb);
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
    if len < HEADER_LEN {
        return Err(Error::corrupt(
            len,
            format!("file is {len} bytes, shorter than its {HEADER_LEN}-byte header"),
        ));
    }
    Ok(sb)
}

/// Whether the file is one a creator left unfinished: empty, or no magic written yet (the
/// creator writes the superblock last). Such a file is (re-)created, never refused.
fn unfinished(file: &File) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 8];
    let n = file
        .read_at(&mut magic, 0)
        .map_err(|e| Error::io("read map file", e))?;
    Ok(n == 0 || (n == magic.len() && magic == [0; 8]))
}

/// Alone with the file (exclusive flock): create, re-create, or validate and recover it.
fn init_alone(path: &Path, file: &File, opts: &Options) -> Result<Superblock> {
    if !unfinished(file)? {
        match read_superblock(file, path) {
            Ok(sb) => {
                recover_alone(path, file, opts, &sb)?;
                return Ok(sb);
            }
            // A map of another version, or a damaged header, may be re-created on request; a
            // file that is not a map never is.
            Err(Error::UnsupportedVersion { .. }) | Err(Error::Corrupt { .. }) if opts.reset => {}
            Err(e) => return Err(e),
        }
    }
    crate::compact::create(file, opts)
}

fn recover_alone(path: &Path, file: &File, opts: &Options, sb: &Superblock) -> Result<()> {
    let mem = Mem::new(file.try_clone().map_err(|e| Error::io("dup", e))?, true, 0)?;
    lock::reset_all(&mem)?;
    let w = mem.w();
    let clean = w.load_u32(ctl!(clean), Ordering::Acquire)? == 1;
    let stored_boot = [
        w.load_u64(ctl!(boot_id), Ordering::Acquire)?,
        w.load_u64(ctl!(boot_id) + 8, Ordering::Acquire)?,
    ];
    let os_crashed = !clean && stored_boot != boot_id();
    let sh = Shared::new(mem, None, sb, path, opts, (0, 0))?;
    {
        let mut wr = Writer::new(&sh)?;
        if os_crashed {
            wr.rebuild_verified()?;
        } else if !clean {
            wr.recover()?;
        }
        wr.trim_alone()?;
    }
    let w = sh.mem.w();
    let b = boot_id();
    w.store_u64(ctl!(boot_id), b[0], Ordering::Release)?;
    w.store_u64(ctl!(boot_id) + 8, b[1], Ordering::Release)?;
    w.store_u32(ctl!(clean), 0, Ordering::Release)?;
    Ok(())
}

fn finish_attach(path: &Path, file: File, opts: &Options, sb: Superblock) -> Result<Shared> {
    let meta = file.metadata().map_err(|e| Error::io("stat", e))?;
    let key = (meta.dev(), meta.ino());
    let mem = Mem::new(file, true, window_for(&meta))?;
    let me = lock::claim(&mem)?;
    // Mark the map in use even if we did not initialise it (a clean detach sets it back).
    mem.w().store_u32(ctl!(clean), 0, Ordering::Release)?;
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

impl Shared {
    fn new(
        mem: Mem,
        me: Option<Proc>,
        sb: &Superblock,
        path: &Path,
        opts: &Options,
        key: (u64, u64),
    ) -> Result<Shared> {
        let on_tmpfs = mem.is_tmpfs();
        Ok(Shared {
            mem,
            me,
            seed: sb.seed.get(),
            path: path.to_path_buf(),
            clock: opts.clock.clone(),
            grace: opts.grace,
            no_grow_until: AtomicU64::new(0),
            on_tmpfs,
            created_ms: sb.created_ms.get(),
            local: Mutex::new(()),
            key,
        })
    }

    /// Whether writes must be `msync`ed to be durable (false on tmpfs).
    pub fn durable(&self) -> bool {
        !self.on_tmpfs
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(me) = self.me else { return };
        lock::release(&self.mem, me);
        // The last process out (we get the exclusive lock without waiting) marks a clean detach.
        if self.mem.file().try_lock().is_ok() {
            let _ = self.mem.sync(0, self.mem.file_len());
            let w = self.mem.w();
            let _ = w.store_u32(ctl!(clean), 1, Ordering::Release);
            let _ = self.mem.sync(0, PAGE);
        }
        let _ = self.mem.file().unlock();
    }
}
