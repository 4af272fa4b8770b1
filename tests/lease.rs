//! Guards loader leases (`getOrSet` underneath): one caller across processes gets the lease,
//! the others wait; a lease whose owner died, or that expired, is taken over; the value set by
//! the owner ends it.

mod common;

use common::*;
use shmap::{LeaseState, Options, Shmap};

#[test]
fn child() {
    let Some(role) = child_role() else { return };
    let path = std::env::var("SHMAP_PATH").unwrap();
    let map = Shmap::open(&path, &Options::new()).unwrap();
    match role.as_str() {
        // Takes the lease and dies holding it.
        "take-and-die" => {
            assert!(matches!(
                map.lease(b"k", 60_000).unwrap(),
                LeaseState::Acquired(_)
            ));
            std::process::abort();
        }
        // Asks while the parent holds the lease.
        "ask" => {
            assert_eq!(map.lease(b"k", 60_000).unwrap(), LeaseState::Wait);
            assert_eq!(map.get(b"k").unwrap(), None, "a lease is not a value");
        }
        _ => unreachable!(),
    }
}

#[test]
fn one_loader_others_wait_and_dead_owners_are_replaced() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let path = map_path(dir.path(), "lease");
    let env = [("SHMAP_PATH", path.as_str())];
    let map = Shmap::open(&path, &Options::new()).unwrap();

    // Our lease: another process must wait; another thread of ours too (different token).
    let LeaseState::Acquired(token) = map.lease(b"k", 60_000).unwrap() else {
        panic!("first caller gets the lease")
    };
    assert_ok(&run_child("child", "ask", &env));
    assert_eq!(map.lease(b"k", 60_000).unwrap(), LeaseState::Wait);
    // The owner's value ends the lease.
    map.set(b"k", b"loaded").unwrap();
    match map.lease(b"k", 60_000).unwrap() {
        LeaseState::Value(e) => assert_eq!(e.value, b"loaded"),
        other => panic!("expected the value, got {other:?}"),
    }
    assert!(
        !map.release_lease(b"k", token).unwrap(),
        "no lease left to release"
    );

    // A lease whose owner died is taken over.
    map.remove(b"k").unwrap();
    let out = run_child("child", "take-and-die", &env);
    assert!(!out.status.success());
    assert!(matches!(
        map.lease(b"k", 60_000).unwrap(),
        LeaseState::Acquired(_)
    ));

    // A failed loader releases its lease; then the next caller gets it.
    map.remove(b"j").unwrap();
    let LeaseState::Acquired(t) = map.lease(b"j", 60_000).unwrap() else {
        panic!()
    };
    assert!(map.release_lease(b"j", t).unwrap());
    assert!(matches!(
        map.lease(b"j", 60_000).unwrap(),
        LeaseState::Acquired(_)
    ));
}

#[test]
fn expired_leases_are_taken_over() {
    if child_role().is_some() {
        return;
    }
    let dir = shm_dir();
    let map = Shmap::open(map_path(dir.path(), "expiry"), &Options::new()).unwrap();
    assert!(matches!(
        map.lease(b"k", 1).unwrap(),
        LeaseState::Acquired(_)
    ));
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert!(matches!(
        map.lease(b"k", 1000).unwrap(),
        LeaseState::Acquired(_)
    ));
}
