//! Guards versioned writes (`Shmap::set_if`): the check and the write are one step across
//! processes, so a fill that read its source before an invalidation (which stamped a newer
//! version) never puts the older value back, and the floor stands in for a lost version entry.

mod common;

use common::*;
use shmap::{Compare, Condition, Error, Options, SetOptions, Shmap};

const KEY: &[u8] = b"k";
const VER: &[u8] = b"v:k";
const FLOOR: &[u8] = b"floor";

fn cond(version: i64, compare: Compare, stamp: bool) -> Condition<'static> {
    Condition {
        version_key: VER,
        floor_key: Some(FLOOR),
        version,
        compare,
        stamp: stamp.then_some(Some(0)),
    }
}

fn val(map: &Shmap) -> Option<i64> {
    map.get(KEY)
        .unwrap()
        .map(|v| i64::from_le_bytes(v.try_into().unwrap()))
}

#[test]
fn compares_stamps_and_falls_back_to_the_floor() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let map = Shmap::open(map_path(dir.path(), "setif"), &Options::new()).unwrap();
    let o = SetOptions::default();
    let put = |v: i64, c: &Condition| map.set_if(KEY, Some(&v.to_le_bytes()), o, c).unwrap();

    // A floor is given but absent: nothing is known, so nothing is stored.
    assert!(!put(1, &cond(1, Compare::Le, false)));
    map.set_int(FLOOR, 5, None).unwrap();
    // No version entry: the floor (5) decides.
    assert!(!put(4, &cond(4, Compare::Le, false)));
    assert!(put(5, &cond(5, Compare::Le, false)));
    assert_eq!(map.get(VER).unwrap(), None, "no stamp asked for");
    // A stamp writes the version entry and raises the floor.
    assert!(put(7, &cond(7, Compare::Le, true)));
    assert_eq!(map.incr(VER, 0, 0, None).unwrap(), 7);
    assert_eq!(map.incr(FLOOR, 0, 0, None).unwrap(), 7);
    // An older fill is refused, an equal one accepted; Lt refuses the equal one.
    assert!(!put(6, &cond(6, Compare::Le, false)));
    assert!(put(7, &cond(7, Compare::Le, false)));
    assert!(
        !map.set_if(KEY, None, o, &cond(7, Compare::Lt, true))
            .unwrap()
    );
    assert_eq!(val(&map), Some(7));
    // A newer invalidation deletes and stamps; the floor does not go down.
    assert!(
        map.set_if(KEY, None, o, &cond(9, Compare::Lt, true))
            .unwrap()
    );
    assert_eq!(val(&map), None);
    assert!(
        !put(8, &cond(8, Compare::Le, false)),
        "a fill older than the delete"
    );
    map.set_int(FLOOR, 20, None).unwrap();
    assert!(
        put(10, &cond(10, Compare::Le, true)),
        "the version entry wins over the floor"
    );
    assert_eq!(map.incr(FLOOR, 0, 0, None).unwrap(), 20, "floors only rise");

    // Eq: renew-if-still-mine, with the written key as its own version entry.
    let lease = Condition {
        version_key: b"lease",
        floor_key: None,
        version: 42,
        compare: Compare::Eq,
        stamp: None,
    };
    let renew = || {
        map.set_if(
            b"lease",
            Some(&42i64.to_le_bytes()),
            SetOptions {
                ttl_ms: Some(60_000),
                flags: Shmap::FLAG_INT,
            },
            &lease,
        )
        .unwrap()
    };
    assert!(!renew(), "absent: not mine");
    map.set_int(b"lease", 41, None).unwrap();
    assert!(!renew(), "someone else's");
    // The first TTL is short but not so short that a busy CI core lets it lapse before the
    // renewal (a 1 ms TTL did, once); the sleep then outlives it.
    map.set_int(b"lease", 42, Some(300)).unwrap();
    assert!(renew());
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(
        map.incr(b"lease", 0, 0, None).unwrap(),
        42,
        "renewed past its first 300 ms"
    );

    // Without a floor, an absent version entry lets Le/Lt through.
    let free = Condition {
        floor_key: None,
        version_key: b"v:none",
        ..cond(1, Compare::Lt, false)
    };
    assert!(map.set_if(b"x", Some(b"1"), o, &free).unwrap());
    // A version entry that is not an integer is an error, not a silent pass.
    map.set(b"v:bad", b"text").unwrap();
    let bad = Condition {
        version_key: b"v:bad",
        ..free
    };
    assert!(matches!(
        map.set_if(b"x", Some(b"2"), o, &bad),
        Err(Error::NotAnInteger)
    ));
    assert!(matches!(
        map.set_if(b"", Some(b"2"), o, &free),
        Err(Error::TooLarge { .. })
    ));
}

/// Child: writers stamp increasing versions (set or delete), fillers write the version they
/// read a while ago without stamping. After its own stamp of `v`, a writer must never see a
/// value below `v` again.
#[test]
fn child() {
    let Some(role) = child_role() else { return };
    let path = std::env::var("SHMAP_PATH").unwrap();
    let seed: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    let map = Shmap::open(&path, &Options::new()).unwrap();
    let mut rng = Rng(seed);
    let o = SetOptions::default();
    let mut stamped = 0;
    for _ in 0..3000 {
        if role == "writer" && rng.below(2) == 0 {
            let v = map.incr(b"clock", 1, 0, None).unwrap();
            let ok = if rng.below(4) == 0 {
                map.set_if(KEY, None, o, &cond(v, Compare::Lt, true))
                    .unwrap()
            } else {
                map.set_if(KEY, Some(&v.to_le_bytes()), o, &cond(v, Compare::Le, true))
                    .unwrap()
            };
            if ok {
                stamped = stamped.max(v);
            }
            if let Some(now) = val(&map) {
                assert!(
                    now >= stamped,
                    "value {now} went back below stamped version {stamped}"
                );
            }
        } else {
            // A fill: read the source's version, take a while, then write what was read.
            let s = map.incr(b"clock", 0, 0, None).unwrap();
            if rng.below(3) == 0 {
                std::thread::sleep(std::time::Duration::from_micros(rng.below(300)));
            }
            map.set_if(KEY, Some(&s.to_le_bytes()), o, &cond(s, Compare::Le, false))
                .unwrap();
        }
    }
}

#[test]
fn racing_fills_never_undo_a_stamp_across_processes() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let path = map_path(dir.path(), "race");
    let map = Shmap::open(&path, &Options::new()).unwrap();
    map.set_int(FLOOR, 0, Some(0)).unwrap();
    let kids: Vec<_> = (0..4u64)
        .map(|i| {
            let seed = (i + 1).to_string();
            let role = if i % 2 == 0 { "writer" } else { "filler" };
            child_command(
                "child",
                role,
                &[("SHMAP_PATH", path.as_str()), ("SEED", seed.as_str())],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for k in kids {
        assert_ok(&k.wait_with_output().unwrap());
    }
    let ver = map.incr(VER, 0, 0, None).unwrap();
    if let Some(v) = val(&map) {
        assert!(v >= ver, "final value {v} below the stamped version {ver}");
    }
    assert!(ver > 0, "writers stamped something");
}

/// A versioned write whose stamp does not fit in a full `evict: false` map fails and leaves a
/// miss: a fill's value is taken back out, never left behind without its stamp, where an older
/// fill could overwrite it; an invalidation's removal stands. Before the fix the fill's value
/// stayed (and the caller got `Full`).
#[test]
fn a_versioned_write_whose_stamp_does_not_fit_leaves_a_miss() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let o = Options::new()
        .initial_size(256 << 10)
        .max_size(256 << 10)
        .evict(false);
    let map = Shmap::open(map_path(dir.path(), "setif-full"), &o).unwrap();
    let mut n = 0;
    while map.set(format!("fill{n}").as_bytes(), &[7u8; 1024]).is_ok() {
        n += 1;
    }
    // One record's worth of dead bytes: room for a 600-byte value, not for a 4 KB stamp.
    map.remove(b"fill0").unwrap();
    let long_version_key = vec![b'v'; 4000];
    let c = Condition {
        version_key: &long_version_key,
        floor_key: None,
        version: 1,
        compare: Compare::Le,
        stamp: Some(Some(0)),
    };
    let r = map.set_if(b"filled", Some(&[1u8; 600]), SetOptions::default(), &c);
    assert!(
        matches!(r, Err(Error::Full { .. })),
        "the stamp should not fit: {r:?}"
    );
    assert_eq!(
        map.get(b"filled").unwrap(),
        None,
        "a failed fill left its value without its version stamp"
    );
    assert_eq!(map.get(&long_version_key).unwrap(), None);
    // An invalidation whose stamp does not fit still removes: a miss is always safe.
    let r = map.set_if(b"fill5", None, SetOptions::default(), &c);
    assert!(
        matches!(r, Err(Error::Full { .. })),
        "the stamp should not fit: {r:?}"
    );
    assert_eq!(map.get(b"fill5").unwrap(), None);
    // Nothing else was lost: every other fill is still there.
    for i in (1..n).filter(|&i| i != 5) {
        assert!(map.get(format!("fill{i}").as_bytes()).unwrap().is_some());
    }
}
