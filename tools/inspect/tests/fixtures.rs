//! Snapshots of shmap-inspect's summary, `--json`, `--verify`, `--keys` and `--dump` output for
//! fixture maps made with a fixed seed and clock: healthy, with expired and deleted entries,
//! with a damaged record, truncated, left by a dead writer, of another version, and foreign.

mod common;

use common::*;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Runs `args` then the file, and checks the exit code.
fn run(path: &std::path::Path, args: &[&str], code: i32) -> Run {
    let mut all = args.to_vec();
    all.push(path.to_str().unwrap());
    let r = inspect(&all);
    assert_eq!(
        r.code, code,
        "exit code of {all:?}\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    r
}

#[test]
fn healthy_map() {
    let d = dir();
    let p = healthy(d.path());
    let r = run(&p, &[], 0);
    assert_eq!(r.stderr, "");
    insta::assert_snapshot!("healthy_summary", redact(&r.stdout, d.path()));
    let r = run(&p, &["--json"], 0);
    insta::assert_snapshot!("healthy_json", redact_json(&r.stdout, d.path()));
    let r = run(&p, &["--verify"], 0);
    insta::assert_snapshot!("healthy_verify", r.stdout);
    let r = run(&p, &["--verify", "--json"], 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["counters_checked"], true);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn expired_and_deleted_entries() {
    let d = dir();
    let p = expired_and_deleted(d.path());
    let r = run(&p, &[], 0);
    insta::assert_snapshot!("expired_summary", redact(&r.stdout, d.path()));
    let r = run(&p, &["--json"], 0);
    let json = redact_json(&r.stdout, d.path());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["entries"]["expired"], 5);
    assert_eq!(v["entries"]["tombstones"], 5);
    insta::assert_snapshot!("expired_json", json);
    let r = run(&p, &["--verify"], 0);
    insta::assert_snapshot!("expired_verify", r.stdout);
    let r = run(&p, &["--keys"], 0);
    insta::assert_snapshot!("expired_keys", r.stdout);
    let r = run(&p, &["--keys", "--prefix", "user:1", "--limit", "3"], 0);
    assert_eq!(r.stdout, "user:10\nuser:11\nuser:12\n");
    let r = run(&p, &["--dump"], 0);
    insta::assert_snapshot!("expired_dump", r.stdout);
    // Judged at the fixtures' own clock, the short-lived entries are still there.
    let mut args = vec!["--now".to_string(), T0.to_string(), "--keys".into()];
    args.extend(["--prefix", "user:0"].map(String::from));
    args.push(p.to_str().unwrap().into());
    let r = inspect_raw(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.stdout, "user:05\nuser:06\nuser:07\nuser:08\nuser:09\n");
}

#[test]
fn damaged_record() {
    let d = dir();
    let p = damaged(d.path());
    let r = run(&p, &["--verify"], 1);
    assert!(r.stdout.contains("checksum mismatch"), "{}", r.stdout);
    insta::assert_snapshot!("damaged_verify", r.stdout);
    let r = run(&p, &["--verify", "--json"], 1);
    insta::assert_snapshot!("damaged_verify_json", r.stdout);
    // The summary reads headers only: it finds nothing wrong.
    run(&p, &[], 0);
    // The dump leaves the damaged entry out, says so and fails.
    let r = run(&p, &["--dump"], 1);
    assert!(!r.stdout.contains("DAMAGE"), "{}", r.stdout);
    assert!(r.stderr.contains("1 entries were left out"), "{}", r.stderr);
}

#[test]
fn truncated_map() {
    let d = dir();
    let p = truncated(d.path());
    let r = run(&p, &[], 1);
    insta::assert_snapshot!("truncated_summary", redact(&r.stdout, d.path()));
    let r = run(&p, &["--json"], 1);
    insta::assert_snapshot!("truncated_json", redact_json(&r.stdout, d.path()));
    let r = run(&p, &["--verify"], 1);
    insta::assert_snapshot!("truncated_verify", r.stdout);
    let r = run(&p, &["--keys"], 2);
    assert!(r.stderr.contains("ends beyond the file"), "{}", r.stderr);

    let p = truncated_header(d.path());
    let r = run(&p, &["--verify"], 2);
    assert_eq!(r.stdout, "");
    insta::assert_snapshot!("truncated_header", redact(&r.stderr, d.path()));
}

#[test]
fn dead_writer_left_stale_counters() {
    let d = dir();
    let p = dead_writer(d.path());
    let r = run(&p, &[], 0);
    insta::assert_snapshot!("dead_writer_summary", redact(&r.stdout, d.path()));
    // Stale counters under a dead writer's lock are expected: notes, not problems.
    let r = run(&p, &["--verify"], 0);
    insta::assert_snapshot!("dead_writer_verify", r.stdout);
}

#[test]
fn not_a_map() {
    let d = dir();
    for (name, path) in [
        ("foreign", foreign(d.path())),
        ("future_version", future_version(d.path())),
    ] {
        let stderr: Vec<String> = [&[][..], &["--verify"], &["--keys"]]
            .into_iter()
            .map(|mode| {
                let r = run(&path, mode, 2);
                assert_eq!(r.stdout, "");
                redact(&r.stderr, d.path())
            })
            .collect();
        assert!(stderr.iter().all(|e| *e == stderr[0]), "{stderr:?}");
        insta::assert_snapshot!(name, stderr[0]);
        let r = run(&path, &["--json"], 2);
        insta::assert_snapshot!(format!("{name}_json"), redact_json(&r.stdout, d.path()));
    }
    let empty = d.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let r = run(&empty, &[], 2);
    assert!(r.stderr.contains("it is empty"), "{}", r.stderr);
    let r = run(&d.path().join("missing"), &[], 2);
    assert!(r.stderr.contains("No such file"), "{}", r.stderr);
}

#[test]
fn bad_command_lines_exit_2_with_usage() {
    for args in [
        &["--verify", "--dump", "x"][..],
        &[],
        &["--limit", "3", "x"],
    ] {
        let r = inspect_raw(args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains("usage:"), "{}", r.stderr);
    }
    let r = inspect_raw(&["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Exit status"));
}
