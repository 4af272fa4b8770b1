//! `shmap-inspect`: look inside a shmap map file without changing it. The tool is the library
//! in `lib.rs` (the Node package's `shmap inspect` runs the same code); this is its binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = shmap_inspect::run(
        "shmap-inspect",
        std::env::args_os().skip(1),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(code)
}
