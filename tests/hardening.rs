//! Guards against trusting numbers read from the file: counters set to absurd values (as a
//! damaged or hostile file could hold) never make a write panic or abort; the write succeeds or
//! fails with a typed error, and the next recovery recounts.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use shmap::format::{CONTROL_OFF, Control};
use shmap::{Options, Shmap};

fn poke_u64(path: &str, field_off: usize, v: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_le_bytes(), CONTROL_OFF + field_off as u64)
        .unwrap();
}

#[test]
fn absurd_counters_never_panic() {
    let dir = shm_dir();
    let path = map_path(dir.path(), "counters");
    let m = Shmap::open(&path, &Options::new().initial_size(64 << 10)).unwrap();
    for i in 0..100u32 {
        m.set(format!("k{i}").as_bytes(), &[0u8; 64]).unwrap();
    }
    for v in [u64::MAX, u64::MAX - 1, 1 << 63] {
        poke_u64(&path, std::mem::offset_of!(Control, entries), v);
        poke_u64(&path, std::mem::offset_of!(Control, live_bytes), v);
        poke_u64(&path, std::mem::offset_of!(Control, used_slots), v);
        for i in 0..300u32 {
            // Ok or a typed error; a panic fails the test.
            let _ = m.set(format!("n{i}").as_bytes(), &[1u8; 200]);
            let _ = m.remove(format!("k{}", i % 100).as_bytes());
        }
        let _ = m.compact();
        let _ = m.stats().unwrap();
    }
}
