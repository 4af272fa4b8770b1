//! Guards the failpoint list: `shmap::failpoints::ALL` (what tests/failpoints.rs aborts at)
//! names exactly the `fp!` points in the sources, each once, so a new point cannot escape the
//! crash test and a removed one cannot linger in the list.

use std::collections::BTreeSet;

fn points_in_sources() -> Vec<String> {
    let mut found = Vec::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    // src/*.rs and child modules one level down (src/write/switch.rs).
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            paths.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            paths.push(path);
        }
    }
    for path in paths {
        // failpoints.rs defines the macro and the list; its docs show `fp!` examples.
        if path.extension().and_then(|e| e.to_str()) != Some("rs")
            || path.file_name().and_then(|n| n.to_str()) == Some("failpoints.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("fp!(\"") {
            rest = &rest[at + 5..];
            let end = rest.find('"').unwrap();
            found.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    found
}

#[test]
fn every_failpoint_is_listed_once() {
    let found = points_in_sources();
    let unique: BTreeSet<&String> = found.iter().collect();
    assert_eq!(
        unique.len(),
        found.len(),
        "a failpoint name is used twice: {found:?}"
    );
    let listed: BTreeSet<String> = shmap::failpoints::ALL
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        listed.len(),
        shmap::failpoints::ALL.len(),
        "ALL has duplicates"
    );
    let found: BTreeSet<String> = found.into_iter().collect();
    assert_eq!(
        found, listed,
        "src/failpoints.rs ALL differs from the fp!(...) points in src/"
    );
    assert!(found.len() >= 20, "the failpoints went missing: {found:?}");
}
