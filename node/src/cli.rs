//! What the `shmap` command (`bin/shmap.js`) needs from the addon besides the map itself: the
//! inspection tool (`tools/inspect`, the library behind `shmap-inspect`) run in-process.
//! (`shmap rm` calls `removeMap`, the core's `remove_map`, in `lib.rs`.)

use std::ffi::OsString;
use std::io::{self, Write};

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
