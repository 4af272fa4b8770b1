//! The inspection tool's logic, shared by its two front ends: the `shmap-inspect` binary
//! (`main.rs`) and the Node package's `shmap inspect` command (the addon links this crate and
//! calls [`run`]). It parses arguments, renders the core's reports ([`shmap::inspect`]) as text
//! or JSON and turns them into exit codes: 0 healthy, 1 problems found, 2 unreadable, not a map
//! file, or a bad command line. The verification walk itself stays in the core.

pub mod json;
pub mod load;
pub mod text;

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use shmap::inspect::{Inspector, Unreadable};

/// The usage text of a front end called `prog` (`shmap-inspect`, `shmap inspect`).
pub fn usage(prog: &str) -> String {
    let pad = " ".repeat(prog.len());
    format!(
        "\
usage: {prog} [--json] FILE{s1}summary of the map
       {prog} [--json] --verify FILE{s2}check every index slot and record
       {prog} [--json] --keys [--prefix P] [--limit N] FILE
       {pad}{s3}live keys, sorted
       {prog} --dump [--prefix P] [--limit N] FILE
       {pad}{s3}live entries as JSON lines
{USAGE_OPTIONS}",
        s1 = " ".repeat(17),
        s2 = " ".repeat(8),
        s3 = " ".repeat(31),
    )
}

const USAGE_OPTIONS: &str = "\
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

/// Runs the tool as `prog` with `args` (without the program name), writing its report to
/// `out` and diagnostics to `err`; returns the exit status (0, 1 or 2).
pub fn run(
    prog: &str,
    args: impl IntoIterator<Item = OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut ctx = Ctx { prog, err };
    let args = match parse(args) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            return ctx.print(out, &usage(prog));
        }
        Ok(Parsed::Version) => {
            let v = format!(
                "{prog} {} (format version {})",
                env!("CARGO_PKG_VERSION"),
                shmap::format::VERSION
            );
            return ctx.print(out, &v);
        }
        Err(e) => {
            let _ = writeln!(ctx.err, "{prog}: {e}\n\n{}", usage(prog));
            return 2;
        }
    };
    let Some(name) = args.file.to_str() else {
        return ctx.fail(
            &args.file.to_string_lossy(),
            "the file name is not valid UTF-8",
        );
    };
    let path: PathBuf = match shmap::resolve(name) {
        Ok(p) => p,
        Err(e) => return ctx.fail(name, &e.to_string()),
    };
    let now_ms = args.now_ms.unwrap_or_else(|| (shmap::system_clock())());
    let shown = path.display().to_string();
    let insp = match Inspector::open(&path, now_ms) {
        Ok(i) => i,
        Err(e) => return ctx.unreadable(out, &shown, &e, args.json),
    };
    let mut buffered = BufWriter::new(&mut *out);
    let result = report(&insp, &args, &mut buffered, ctx.err, prog).and_then(|code| {
        buffered.flush()?;
        Ok(code)
    });
    drop(buffered);
    match result {
        Ok(code) => code,
        Err(Failure::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(Failure::Io(e)) => ctx.fail(&shown, &format!("cannot write the output: {e}")),
        Err(Failure::Map(e)) => ctx.unreadable(out, &shown, &e, args.json),
    }
}

/// The program name and the diagnostics stream of one run.
struct Ctx<'a> {
    prog: &'a str,
    err: &'a mut dyn Write,
}

impl Ctx<'_> {
    /// Prints `text` (help, version) on `out`: exit status 0, or 2 if it cannot be written.
    fn print(&mut self, out: &mut dyn Write, text: &str) -> u8 {
        match writeln!(out, "{text}").and_then(|()| out.flush()) {
            Ok(()) => 0,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
            Err(e) => self.fail("stdout", &format!("cannot write the output: {e}")),
        }
    }

    /// Exit status 2 for a file that cannot be inspected: the reason on `err`, and with
    /// `--json` also as a JSON object on `out`.
    fn unreadable(&mut self, out: &mut dyn Write, path: &str, e: &Unreadable, json: bool) -> u8 {
        if json {
            let _ = writeln!(
                out,
                "{:#}",
                serde_json::json!({"path": path, "error": e.to_string(), "error_kind": e.kind()})
            );
            let _ = out.flush();
        }
        self.fail(path, &e.to_string())
    }

    fn fail(&mut self, what: &str, why: &str) -> u8 {
        let _ = writeln!(self.err, "{}: {what}: {why}", self.prog);
        let _ = self.err.flush();
        2
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

fn report(
    insp: &Inspector,
    args: &Args,
    out: &mut impl Write,
    err: &mut dyn Write,
    prog: &str,
) -> Result<u8, Failure> {
    let code = |bad: bool| u8::from(bad);
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
                writeln!(
                    err,
                    "{prog}: {damaged} entries were left out because they are damaged; \
                     run {prog} --verify for details"
                )?;
            }
            Ok(code(damaged > 0))
        }
    }
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

    fn run_to_vecs(args: &[&str]) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            "shmap inspect",
            args.iter().map(OsString::from),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn run_names_its_front_end_and_returns_exit_codes() {
        let (code, out, err) = run_to_vecs(&["--help"]);
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(
            out.starts_with("usage: shmap inspect [--json] FILE "),
            "{out}"
        );
        let (code, out, err) = run_to_vecs(&["--frobnicate", "m"]);
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(
            err.starts_with("shmap inspect: unknown option --frobnicate"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("shmap-inspect-run-{}", std::process::id()));
        let missing = dir.join("missing").display().to_string();
        let (code, out, err) = run_to_vecs(&["--json", &missing]);
        assert_eq!(code, 2);
        assert!(out.contains("\"error_kind\""), "{out}");
        assert!(
            err.starts_with(&format!("shmap inspect: {missing}: ")),
            "{err}"
        );
    }
}
