//! Removing a map file safely while other processes may be opening it (`npx shmap rm`).
//!
//! The protocol, with the `flock` every attached process holds (format.md, "Attaching"):
//! the remover opens the file, takes its exclusive `flock` without waiting, and unlinks the path
//! while holding it. An opener takes its own `flock` and then re-checks that the path still
//! names the file it opened (`fstat` of the descriptor against `lstat` of the path, device and
//! inode); on a mismatch it opens again. So no opener ends up attached to an unlinked file while
//! others use a new one at the same path: either it got its lock first (the remover sees the map
//! in use and refuses), or after the unlink (it sees the mismatch and starts over).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::attach::still_named;
use crate::error::{Error, Result};
use crate::format::{HEADER_LEN, MAGIC};
use crate::options::resolve;
use crate::raw::Mem;

/// What [`remove_map`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoveOutcome {
    /// The file was removed. `still_attached` lists the pids that had it open when `force`
    /// removed it anyway (they keep using the unlinked file until they close it); empty when
    /// nobody had it open.
    Removed {
        /// Pids attached at removal (only with `force`).
        still_attached: Vec<u32>,
    },
    /// No file at that path.
    Absent,
    /// Processes have the map open (their pids, from the process table; a pid may be 0 when a
    /// process is still attaching); nothing was removed.
    InUse {
        /// Pids of the attached processes.
        pids: Vec<u32>,
    },
}

/// Removes the map `name_or_path` (a bare name is `/dev/shm/<name>`, as for
/// [`crate::Shmap::open`]) unless processes have it open; with `force`, removes it anyway.
///
/// Never follows a symbolic link (refused with [`Error::Permission`]), and refuses a file that
/// is not a map ([`Error::NotAMap`]; an empty or unfinished one is removed). Takes the map's
/// exclusive `flock` without waiting: it never blocks, and never removes a file between an
/// opener's lock and its attach.
pub fn remove_map(name_or_path: &str, force: bool) -> Result<RemoveOutcome> {
    remove_map_path(&resolve(name_or_path)?, force)
}

/// [`remove_map`] at exactly `path`.
pub fn remove_map_path(path: &Path, force: bool) -> Result<RemoveOutcome> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(RemoveOutcome::Absent),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::Permission {
                path: path.to_path_buf(),
                what: "it is a symbolic link; not removing what it points to".into(),
                uid: None,
                mode: None,
            });
        }
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    let m = file.metadata().map_err(|e| Error::io("stat map file", e))?;
    if !m.file_type().is_file() {
        return Err(Error::Permission {
            path: path.to_path_buf(),
            what: "it is not a regular file".into(),
            uid: Some(m.uid()),
            mode: Some(m.mode() & 0o7777),
        });
    }
    if !is_map_or_unfinished(&file)? {
        return Err(Error::NotAMap {
            path: path.to_path_buf(),
        });
    }
    let pids = match file.try_lock() {
        Ok(()) => Vec::new(),
        Err(TryLockError::WouldBlock) => {
            let pids = attached_pids(&file, m.len())?;
            if !force {
                return Ok(RemoveOutcome::InUse { pids });
            }
            pids
        }
        Err(TryLockError::Error(e)) => return Err(Error::io("flock map file", e)),
    };
    // Unlink only the file we hold (someone may have replaced the path since we opened it).
    if !still_named(&file, path)? {
        return Ok(RemoveOutcome::Absent);
    }
    std::fs::remove_file(path).map_err(|e| Error::io(format!("unlink {}", path.display()), e))?;
    drop(file);
    Ok(RemoveOutcome::Removed {
        still_attached: pids,
    })
}

fn is_map_or_unfinished(file: &File) -> Result<bool> {
    // One read: a creator may be writing the page meanwhile.
    let page = crate::attach::first_page(file)?;
    Ok(page.get(..8) == Some(&MAGIC[..]) || crate::attach::unfinished_page(&page))
}

fn attached_pids(file: &File, len: u64) -> Result<Vec<u32>> {
    if len < HEADER_LEN {
        return Ok(Vec::new());
    }
    let dup = file.try_clone().map_err(|e| Error::io("dup", e))?;
    let mem = Mem::new(dup, false, HEADER_LEN)?;
    crate::lock::attached_pids(&mem)
}
