//! `shmap-inspect`: look inside a shmap map file without changing it.
//!
//! The inspection itself lives in `shmap::inspect`; this binary parses arguments, renders the
//! reports as text or JSON and turns them into exit codes: 0 healthy, 1 problems found,
//! 2 unreadable, not a map file, or a bad command line.

mod json;
mod text;

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use shmap::inspect::{Inspector, Unreadable};

const USAGE: &str = "\
usage: shmap-inspect [--json] FILE                 summary of the map
       shmap-inspect [--json] --verify FILE        check every index slot and record
       shmap-inspect [--json] --keys [--prefix P] [--limit N] FILE
                                                   live keys, sorted
       shmap-inspect --dump [--prefix P] [--limit N] FILE
                                                   live entries as JSON lines
options:
  --now MS     judge expiry at MS milliseconds since the epoch (default: now)
  -h, --help   this text
  -V, --version
FILE is a path, or a bare map name as the library resolves it (/dev/shm/NAME).
Exit status: 0 healthy, 1 problems found, 2 unreadable, not a map, or bad usage.
Read-only: the file is opened and mapped read-only, no lock is waited for, nothing changes.";

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Summary,
    Verify,
    Keys,
    Dump,
}

/// The parsed command line.
#[derive(Debug)]
struct Args {
    mode: Mode,
    json: bool,
    prefix: Vec<u8>,
    limit: Option<usize>,
    now_ms: Option<u64>,
    file: OsString,
}

enum Parsed {
    Run(Args),
    Help,
    Version,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
    let mut mode = None;
    let (mut json, mut prefix, mut limit, mut now_ms, mut file) = (false, None, None, None, None);
    let mut it = args.into_iter();
    let mut only_files = false;
    while let Some(arg) = it.next() {
        let bytes = arg.as_bytes();
        if only_files || !bytes.starts_with(b"-") || bytes == b"-" {
            if file.replace(arg.clone()).is_some() {
                return Err(format!(
                    "more than one FILE given ({})",
                    arg.to_string_lossy()
                ));
            }
            continue;
        }
        // `--opt=value` and `--opt value` both work.
        let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(i) => (
                &bytes[..i],
                Some(OsString::from(std::ffi::OsStr::from_bytes(&bytes[i + 1..]))),
            ),
            None => (bytes, None),
        };
        let mut value = |what: &str| -> Result<OsString, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{what} needs a value"))
        };
        let mut set_mode = |m: Mode| match mode.replace(m) {
            Some(old) if old != m => Err("choose one of --verify, --keys and --dump".to_string()),
            _ => Ok(()),
        };
        match name {
            b"--" => only_files = true,
            b"-h" | b"--help" => return Ok(Parsed::Help),
            b"-V" | b"--version" => return Ok(Parsed::Version),
            b"--json" => json = true,
            b"--verify" => set_mode(Mode::Verify)?,
            b"--keys" => set_mode(Mode::Keys)?,
            b"--dump" => set_mode(Mode::Dump)?,
            b"--prefix" => prefix = Some(value("--prefix")?.as_bytes().to_vec()),
            b"--limit" => {
                let v = value("--limit")?;
                limit = Some(v.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                    format!("--limit needs a count, not {:?}", v.to_string_lossy())
                })?);
            }
            b"--now" => {
                let v = value("--now")?;
                now_ms = Some(v.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                    format!(
                        "--now needs milliseconds since the epoch, not {:?}",
                        v.to_string_lossy()
                    )
                })?);
            }
            _ => return Err(format!("unknown option {}", arg.to_string_lossy())),
        }
    }
    let mode = mode.unwrap_or(Mode::Summary);
    if (prefix.is_some() || limit.is_some()) && !matches!(mode, Mode::Keys | Mode::Dump) {
        return Err("--prefix and --limit go with --keys or --dump".into());
    }
    let file = file.ok_or("no FILE given")?;
    Ok(Parsed::Run(Args {
        mode,
        json: json || mode == Mode::Dump,
        prefix: prefix.unwrap_or_default(),
        limit,
        now_ms,
        file,
    }))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!(
                "shmap-inspect {} (format version {})",
                env!("CARGO_PKG_VERSION"),
                shmap::format::VERSION
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("shmap-inspect: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(name) = args.file.to_str() else {
        return fail(
            &args.file.to_string_lossy(),
            "the file name is not valid UTF-8",
        );
    };
    let path: PathBuf = match shmap::resolve(name) {
        Ok(p) => p,
        Err(e) => return fail(name, &e.to_string()),
    };
    let now_ms = args.now_ms.unwrap_or_else(|| (shmap::system_clock())());
    let shown = path.display().to_string();
    let insp = match Inspector::open(&path, now_ms) {
        Ok(i) => i,
        Err(e) => return unreadable(&shown, &e, args.json),
    };
    let out = io::stdout().lock();
    let mut out = BufWriter::new(out);
    let result = run(&insp, &args, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        Err(Failure::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Io(e)) => fail(&shown, &format!("cannot write the output: {e}")),
        Err(Failure::Map(e)) => unreadable(&shown, &e, args.json),
    }
}

/// Why a run stopped early.
enum Failure {
    Io(io::Error),
    Map(Unreadable),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<Unreadable> for Failure {
    fn from(e: Unreadable) -> Self {
        Failure::Map(e)
    }
}

fn run(insp: &Inspector, args: &Args, out: &mut impl Write) -> Result<ExitCode, Failure> {
    let code = |bad: bool| {
        if bad {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    };
    match args.mode {
        Mode::Summary => {
            let s = insp.summary()?;
            if args.json {
                writeln!(out, "{:#}", json::summary(&s))?;
            } else {
                text::summary(out, &s)?;
            }
            Ok(code(!s.problems.is_empty()))
        }
        Mode::Verify => {
            let v = insp.verify()?;
            if args.json {
                writeln!(out, "{:#}", json::verification(&v))?;
            } else {
                text::verification(out, &v)?;
            }
            Ok(code(!v.problems.is_empty()))
        }
        Mode::Keys | Mode::Dump => {
            let values = args.mode == Mode::Dump;
            let (items, damaged) = insp.items(&args.prefix, args.limit, values)?;
            for item in &items {
                if args.json {
                    writeln!(out, "{}", json::item(item))?;
                } else {
                    writeln!(out, "{}", text::key(&item.key))?;
                }
            }
            if damaged > 0 {
                out.flush()?;
                eprintln!(
                    "shmap-inspect: {damaged} entries were left out because they are damaged; \
                     run shmap-inspect --verify for details"
                );
            }
            Ok(code(damaged > 0))
        }
    }
}

/// Exit status 2 for a file that cannot be inspected: the reason on stderr, and with `--json`
/// also as a JSON object on stdout.
fn unreadable(path: &str, e: &Unreadable, json: bool) -> ExitCode {
    if json {
        println!(
            "{:#}",
            serde_json::json!({"path": path, "error": e.to_string(), "error_kind": e.kind()})
        );
    }
    fail(path, &e.to_string())
}

fn fail(what: &str, why: &str) -> ExitCode {
    eprintln!("shmap-inspect: {what}: {why}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<Parsed, String> {
        parse(s.iter().map(OsString::from))
    }

    #[test]
    fn parses_modes_and_values() {
        let Ok(Parsed::Run(a)) = args(&["--keys", "--prefix=user:", "--limit", "3", "m"]) else {
            panic!("not parsed");
        };
        assert_eq!(a.mode, Mode::Keys);
        assert_eq!(a.prefix, b"user:");
        assert_eq!(a.limit, Some(3));
        assert_eq!(a.file, "m");
        let Ok(Parsed::Run(a)) = args(&["--dump", "--", "--odd-name"]) else {
            panic!("not parsed");
        };
        assert!(a.json && a.mode == Mode::Dump && a.file == "--odd-name");
    }

    #[test]
    fn refuses_bad_command_lines() {
        for bad in [
            &["--verify", "--keys", "m"][..],
            &["--limit", "x", "--keys", "m"],
            &["--prefix", "a", "m"],
            &["a", "b"],
            &[],
            &["--frobnicate", "m"],
            &["--keys", "--limit"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
    }
}
