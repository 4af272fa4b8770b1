//! Guards against hostile files: truncated, damaged, foreign or wrong-version files give typed
//! errors, never a panic; random damage never makes a read return a value that was not written.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use proptest::prelude::*;
use shmap::format::{self, Desc};
use shmap::{Error, Options, Shmap};

fn fixture(dir: &Path) -> (String, HashMap<Vec<u8>, Vec<u8>>) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = map_path(dir, &format!("damaged{n}"));
    let map = Shmap::open(&path, &Options::new().initial_size(64 << 10).seed(7)).unwrap();
    let mut want = HashMap::new();
    for i in 0..200u32 {
        let (k, v) = (
            format!("key{i}").into_bytes(),
            format!("val{i}").repeat(i as usize % 9 + 1),
        );
        map.set(&k, v.as_bytes()).unwrap();
        want.insert(k, v.into_bytes());
    }
    (path, want)
}

fn desc_of(path: &str) -> Desc {
    let f = std::fs::File::open(path).unwrap();
    let mut a = [0u8; 8];
    f.read_at(&mut a, format::shard_off(0)).unwrap();
    let mut d = [0u8; 64];
    f.read_at(&mut d, format::desc_off(0, u64::from_le_bytes(a) & 1))
        .unwrap();
    zerocopy::FromBytes::read_from_bytes(&d[..]).unwrap()
}

/// File offset of shard 0's active descriptor.
fn desc_at(path: &str) -> u64 {
    let f = std::fs::File::open(path).unwrap();
    let mut a = [0u8; 8];
    f.read_at(&mut a, format::shard_off(0)).unwrap();
    format::desc_off(0, u64::from_le_bytes(a) & 1)
}

fn poke(path: &str, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_at(bytes, off).unwrap();
}

fn open(path: &str) -> shmap::Result<Shmap> {
    Shmap::open(path, &Options::new().create(false))
}

/// Every read either returns exactly what was written, nothing, or an error.
fn reads_are_honest(map: &Shmap, want: &HashMap<Vec<u8>, Vec<u8>>) {
    for (k, v) in want {
        if let Ok(Some(got)) = map.get(k) {
            assert_eq!(
                &got, v,
                "key {:?} returned a value that was never written",
                k
            );
        }
    }
}

#[test]
fn truncated_files_are_corrupt() {
    let dir = shm_dir();
    let (path, _) = fixture(dir.path());
    let d = desc_of(&path);
    let end = (d.index_off + d.index_len()).max(d.log_off + d.log_len());
    for len in [
        10,
        127,
        128,
        4000,
        format::HEADER_LEN - 1,
        format::HEADER_LEN + 10,
        end - 4096,
    ] {
        let (p2, _) = fixture(dir.path());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p2)
            .unwrap()
            .set_len(len)
            .unwrap();
        let err = open(&p2)
            .err()
            .unwrap_or_else(|| panic!("truncated to {len} opened"));
        assert_eq!(err.code(), "ERR_SHMAP_CORRUPT", "len {len}: {err}");
        let _ = std::fs::remove_file(&p2);
    }
    let _ = path;
}

#[test]
fn header_damage_is_typed() {
    let dir = shm_dir();
    let (path, _) = fixture(dir.path());
    poke(&path, 0, b"NOTAMAP!");
    assert!(matches!(open(&path), Err(Error::NotAMap { .. })));
    // Even reset refuses to overwrite a file that is not a map.
    assert!(matches!(
        Shmap::open(&path, &Options::new().reset(true)),
        Err(Error::NotAMap { .. })
    ));

    let (path, _) = fixture(dir.path());
    poke(&path, 8, &1u32.to_le_bytes());
    match open(&path) {
        Err(Error::UnsupportedVersion {
            found: 1,
            supported: 5,
        }) => {}
        other => panic!("expected version error, got {other:?}"),
    }
    // reset re-creates a map of another version when nobody is attached.
    let m = Shmap::open(&path, &Options::new().reset(true)).unwrap();
    m.set(b"a", b"b").unwrap();
    drop(m);

    // A superblock that claims shards the shard table does not hold (their entries are
    // zero): typed, and re-created on request.
    let (path, _) = fixture(dir.path());
    let mut sb = std::fs::read(&path).unwrap()[..128].to_vec();
    sb[88..92].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&sb[..124]);
    sb[124..128].copy_from_slice(&crc.to_le_bytes());
    poke(&path, 0, &sb);
    assert_eq!(open(&path).unwrap_err().code(), "ERR_SHMAP_CORRUPT");
    let m = Shmap::open(&path, &Options::new().reset(true)).unwrap();
    m.set(b"a", b"b").unwrap();
    drop(m);

    let (path, _) = fixture(dir.path());
    poke(&path, 75, &[0xEE]);
    assert_eq!(open(&path).unwrap_err().code(), "ERR_SHMAP_CORRUPT");

    // A descriptor pointing outside the file.
    let (path, _) = fixture(dir.path());
    let at = desc_at(&path) + 24;
    poke(&path, at, &(1u64 << 40).to_le_bytes());
    assert_eq!(open(&path).unwrap_err().code(), "ERR_SHMAP_CORRUPT");
}

#[test]
fn empty_file_becomes_a_map_but_inspection_refuses_it() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "empty");
    write_private(&path, b"");
    assert_eq!(
        shmap::open_for_inspection(Path::new(&path))
            .unwrap_err()
            .code(),
        "ERR_SHMAP_CORRUPT"
    );
    let m = open(&path).unwrap();
    m.set(b"k", b"v").unwrap();
    assert_eq!(m.get(b"k").unwrap().unwrap(), b"v");
}

#[test]
fn damaged_record_is_an_error_not_a_value() {
    let dir = shm_dir();
    let (path, want) = fixture(dir.path());
    let d = desc_of(&path);
    // Flip a byte in the value of the first record ("key0" = "val0").
    poke(
        &path,
        d.log_off + format::LOG_HEADER_LEN + format::RECORD_HEADER_LEN + 5,
        b"X",
    );
    let m = open(&path).unwrap();
    let err = m.get(b"key0").unwrap_err();
    assert_eq!(err.code(), "ERR_SHMAP_CORRUPT", "{err}");
    reads_are_honest(&m, &want);
    // A writer drops the damaged entry and carries on.
    m.set(b"key0", b"fresh").unwrap();
    assert_eq!(m.get(b"key0").unwrap().unwrap(), b"fresh");
}

#[test]
fn damaged_index_slots_never_return_wrong_values() {
    let dir = shm_dir();
    let (path, want) = fixture(dir.path());
    let d = desc_of(&path);
    for i in (0..d.index_slots).step_by(3) {
        poke(
            &path,
            d.index_off + i * 8,
            &(0x4000_0000_0000_0000u64 | (i * 24)).to_le_bytes(),
        );
    }
    let m = open(&path).unwrap();
    reads_are_honest(&m, &want);
    m.set(b"new", b"value").unwrap();
    assert_eq!(m.get(b"new").unwrap().unwrap(), b"value");
    reads_are_honest(&m, &want);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random byte damage anywhere in the file: open, read, write and iterate never panic, and
    /// no read returns a value other than the one written.
    #[test]
    fn random_damage_is_harmless(edits in proptest::collection::vec((0u64..1 << 17, any::<u8>()), 1..40)) {
        let dir = shm_dir();
        let (path, want) = fixture(dir.path());
        let len = std::fs::metadata(&path).unwrap().len();
        for (off, b) in &edits {
            poke(&path, off % len, &[*b]);
        }
        if let Ok(m) = open(&path) {
            reads_are_honest(&m, &want);
            let _ = m.set(b"after", b"damage");
            let _ = m.remove(b"key3");
            let _ = m.entries();
            let _ = m.stats();
            let _ = m.compact();
            if let Ok(Some(v)) = m.get(b"after") {
                prop_assert_eq!(v, b"damage".to_vec());
            }
            let mut w2 = want.clone();
            w2.remove(&b"key3"[..]);
            reads_are_honest(&m, &w2);
        }

    }
}

/// A creator killed before it wrote the superblock (written last) leaves zeros: the next
/// opener re-creates the map instead of refusing a "foreign" file.
#[test]
fn unfinished_creation_is_recreated() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "unfinished");
    write_private(&path, &vec![0u8; 64 << 10]);
    let m = open(&path).unwrap();
    m.set(b"k", b"v").unwrap();
    assert_eq!(m.get(b"k").unwrap().unwrap(), b"v");
}

/// A ring tail moved past live records with no writer in the map (damage, not a race): reads
/// and scans report `Corrupt` instead of retrying for seconds and answering `Busy` (they did
/// before: a damaged map looked merely busy, and the damage proptest took minutes).
#[test]
fn slots_behind_the_tail_are_corrupt_not_busy() {
    let dir = shm_dir();
    let (path, _) = fixture(dir.path());
    let m = open(&path).unwrap();
    let d = desc_of(&path);
    let f = std::fs::File::open(&path).unwrap();
    let mut head = [0u8; 8];
    f.read_at(&mut head, d.log_off).unwrap();
    // LogHeader: head at +0, tail at +8.
    poke(&path, d.log_off + 8, &head);
    let err = m.get(b"key5").unwrap_err();
    assert_eq!(err.code(), "ERR_SHMAP_CORRUPT", "{err}");
    let err = m.keys().unwrap_err();
    assert_eq!(err.code(), "ERR_SHMAP_CORRUPT", "{err}");
}

/// A zeroed shard entry (`active` naming generation 0, which no map has, and a zero
/// descriptor) is damage, never taken for a generation this process validated: typed.
#[test]
fn a_zeroed_shard_entry_is_corrupt() {
    let dir = shm_dir();
    let (path, _) = fixture(dir.path());
    poke(&path, format::shard_off(0), &0u64.to_le_bytes());
    poke(&path, format::desc_off(0, 0), &[0u8; 64]);
    poke(&path, format::desc_off(0, 1), &[0u8; 64]);
    assert_eq!(open(&path).unwrap_err().code(), "ERR_SHMAP_CORRUPT");
}
