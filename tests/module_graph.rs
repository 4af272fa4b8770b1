//! Guards the core's structure: the modules of `src/` depend on each other in one direction
//! (format -> raw -> lock -> arena -> plan -> write -> attach -> map, see STYLE.md), so an
//! import cycle among them fails this test, naming the cycle.
//!
//! A dependency is any `crate::NAME` path outside comments in `src/NAME.rs` or its child
//! modules (`src/NAME/*.rs`, which belong to `NAME`: `write/switch.rs` is part of `write`),
//! up to its unit tests (`mod tests`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name -> the modules it refers to.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            for c in std::fs::read_dir(&p).unwrap() {
                let c = c.unwrap().path();
                if c.extension().is_some_and(|x| x == "rs") {
                    files.push((stem.clone(), c));
                }
            }
        } else if p.extension().is_some_and(|x| x == "rs") && stem != "lib" {
            files.push((stem, p));
        }
    }
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, path) in &files {
        let deps = g.entry(m.clone()).or_default();
        for line in std::fs::read_to_string(path).unwrap().lines() {
            // Unit tests at the end of a file may use anything.
            if line.trim_start().starts_with("mod tests") {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&name) && name != *m {
                    deps.insert(name);
                }
            }
        }
    }
    g
}

/// A cycle, if any (depth-first search with colours).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == d).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(d.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(d, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, g, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn core_modules_have_no_import_cycle() {
    let g = graph();
    for (m, deps) in &g {
        eprintln!(
            "{m} -> {}",
            deps.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(c) = find_cycle(&g) {
        panic!("import cycle among src/ modules: {}", c.join(" -> "));
    }
}

#[test]
fn the_layers_read_in_one_direction() {
    let g = graph();
    // The leaves import nothing of the crate but each other's error type.
    for leaf in ["types", "error", "failpoints"] {
        assert!(g[leaf].is_empty(), "{leaf} imports {:?}", g[leaf]);
    }
    // The plans are pure: no file, no lock, no writer.
    let plan: Vec<&String> = g["plan"].iter().collect();
    assert_eq!(plan, ["format"], "plan imports {plan:?}");
    for (low, high) in [
        ("format", "raw"),
        ("raw", "lock"),
        ("lock", "arena"),
        ("arena", "plan"),
        ("plan", "write"),
        ("write", "attach"),
        ("attach", "map"),
    ] {
        assert!(
            !g[low].contains(high),
            "{low} imports {high}: the core must read format -> raw -> lock -> arena -> plan -> \
             write -> attach -> map"
        );
    }
}

#[test]
fn a_cycle_is_found() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}
