//! What the `shmap` command (`bin/shmap.js`) needs from the addon besides the map itself: the
//! inspection tool (`tools/inspect`, the library behind `shmap-inspect`) run in-process, and
//! its `load` of a dump. (`shmap rm` calls `removeMap`, the core's `remove_map`, in `lib.rs`.)

use std::ffi::OsString;
use std::io::{self, Write};

use napi::bindgen_prelude::{Buffer, FnArgs, Function};
use napi_derive::napi;
use shmap::{Options, Shmap};

use crate::error::{Result, guard, invalid};

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

/// What `shmap load` did.
#[napi(object)]
pub struct LoadOutcome {
    /// Entries stored.
    pub entries: f64,
    /// Entries left out because they expired since the dump.
    pub expired: f64,
    /// Why it stopped early: the line (from 1), the error's code (`ERR_SHMAP_*` when storing
    /// failed, `ERR_SHMAP_BAD_DUMP` when the line is not an entry) and its message.
    pub failed_line: Option<f64>,
    /// See `failed_line`.
    pub error_code: Option<String>,
    /// See `failed_line`.
    pub error: Option<String>,
}

/// Runs `shmap load`: opens (creates, or with `reset` re-creates) the map `name` with
/// `max_size` (bytes, if given) and stores every entry of the dump in `file` (stdin if
/// absent). A bad line or a failed store stops it and is reported with its line; the entries
/// before it are stored. Opening the map or the file fails as an error.
#[napi]
pub fn load_cli(
    name: String,
    file: Option<String>,
    reset: bool,
    max_size: Option<f64>,
) -> Result<LoadOutcome> {
    guard(|| {
        let mut opts = Options::new().reset(reset);
        if let Some(n) = max_size {
            opts = opts.max_size(n as u64);
        }
        let mut input: Box<dyn io::BufRead> = match &file {
            Some(f) => Box::new(io::BufReader::new(
                std::fs::File::open(f).map_err(|e| invalid(&format!("cannot open {f}: {e}")))?,
            )),
            None => Box::new(io::stdin().lock()),
        };
        let map = Shmap::open(&name, &opts)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok(match shmap_inspect::load::load(&map, &mut input, now) {
            Ok(l) => LoadOutcome {
                entries: l.entries as f64,
                expired: l.expired as f64,
                failed_line: None,
                error_code: None,
                error: None,
            },
            Err(e) => LoadOutcome {
                entries: e.loaded.entries as f64,
                expired: e.loaded.expired as f64,
                failed_line: Some(e.line as f64),
                error_code: Some(
                    e.map
                        .as_ref()
                        .map_or("ERR_SHMAP_BAD_DUMP", |m| m.code())
                        .to_string(),
                ),
                error: Some(e.what),
            },
        })
    })
}
