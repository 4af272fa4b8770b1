//! What the `shmap` command (`bin/shmap.js`) needs from the addon: the inspection tool
//! (`tools/inspect`, the library behind `shmap-inspect`) run in-process, and removal of a map
//! file that no process has open.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

use napi::bindgen_prelude::{Buffer, FnArgs, Function};
use napi_derive::napi;

use crate::error::{Result, guard};

/// Output is handed to JS in pieces of at most this many bytes, so a `--dump` of a large map
/// is never held in memory whole.
const CHUNK: usize = 64 << 10;

/// A stream of the tool (1 stdout, 2 stderr) that hands its bytes to a JS `write(fd, chunk)`.
struct ToJs<'a, 'f> {
    fd: u32,
    buf: Vec<u8>,
    write: &'a Function<'f, FnArgs<(u32, Buffer)>, ()>,
}

impl Write for ToJs<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        self.write
            .call((self.fd, Buffer::from(chunk)).into())
            .map_err(|e| io::Error::other(e.reason))
    }
}

/// Runs `shmap inspect ARGS...` (the options and exit codes of `shmap-inspect`), passing its
/// output to `write(fd, chunk)` (fd 1 for the report, 2 for diagnostics); returns the exit
/// status: 0 healthy, 1 problems found, 2 unreadable, not a map, or bad usage.
#[napi]
pub fn inspect_cli(args: Vec<String>, write: Function<FnArgs<(u32, Buffer)>, ()>) -> Result<u32> {
    guard(|| {
        let mut out = ToJs {
            fd: 1,
            buf: Vec::new(),
            write: &write,
        };
        let mut err = ToJs {
            fd: 2,
            buf: Vec::new(),
            write: &write,
        };
        let args = args.into_iter().map(OsString::from);
        let code = shmap_inspect::run("shmap inspect", args, &mut out, &mut err);
        // The tool flushes what it writes; these only matter if it did not.
        let _ = out.flush();
        let _ = err.flush();
        Ok(u32::from(code))
    })
}

/// What [`remove_unused`] did.
#[napi(string_enum = "lowercase")]
pub enum Removal {
    /// The file was unlinked while this process held its exclusive lock.
    Removed,
    /// Another process holds a lock on the file (it has the map open): nothing was done.
    Busy,
    /// The file does not start with shmap's magic: nothing was done.
    NotAMap,
}

/// Unlinks the map file `name` (a path, or a bare name in /dev/shm) only if no process has it
/// open: every attached process holds a shared `flock` on the file, so this *tries* the
/// exclusive lock (never waits), checks that the path still names the file it locked, and
/// unlinks it while holding the lock. The symlink at the end of a path is never followed, and a
/// file that does not start with shmap's magic is never removed.
///
/// Until the core has its own removal (with the openers' re-check of the path after they lock),
/// this is the `shmap rm` of the command line.
#[napi]
pub fn remove_unused(name: String) -> Result<Removal> {
    guard(|| {
        let path = shmap::resolve(&name)?;
        let io_err = |what: &str, source| shmap::Error::Io {
            op: format!("{what} {}", path.display()),
            source,
        };
        let file: File = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io_err("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Removal::Busy),
            Err(TryLockError::Error(e)) => return Err(io_err("flock", e)),
        }
        let locked = file.metadata().map_err(|e| io_err("stat", e))?;
        let named = std::fs::symlink_metadata(&path).map_err(|e| io_err("stat", e))?;
        if (locked.dev(), locked.ino()) != (named.dev(), named.ino()) {
            // Someone replaced the file between our open and our lock: it is not the one we
            // checked, so leave it to them.
            return Ok(Removal::Busy);
        }
        // Checked on the file we hold, so it cannot be swapped for another after the check.
        let mut magic = [0u8; 8];
        match file.read_exact_at(&mut magic, 0) {
            Ok(()) if magic == shmap::format::MAGIC => {}
            Ok(()) => return Ok(Removal::NotAMap),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Removal::NotAMap),
            Err(e) => return Err(io_err("read", e)),
        }
        std::fs::remove_file(&path).map_err(|e| io_err("unlink", e))?;
        drop(file);
        Ok(Removal::Removed)
    })
}
