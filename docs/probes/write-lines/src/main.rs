//! What a 100 B `set` costs when two or four processes write at once, by which cache lines the
//! writers share: a probe for the design in docs/shards.md, not shmap's code.
//!
//! Each writer process sets 100 B values on 1,000 keys of its own in one `MAP_SHARED` file in
//! `/dev/shm`: it hashes the key (XXH3), probes an open-addressing index of 8-byte slots
//! (position and a 16-bit tag), compares the key in the record the slot points to, writes a
//! record (24-byte header, key, value, CRC-32) at its ring's head and publishes it in the slot.
//! Variants:
//! - `locked`: today's shard: one lock word, with the ring's head and the counters on its line,
//!   one ring for all writers, the slot stored under the lock.
//! - `lanes`: ring, head and counters on lines of the writer's own; the index shared, its slot
//!   published by compare-and-swap.
//! - `lanes+protocol`: `lanes` plus what the design adds to a set: an announcement on the
//!   writer's own line (an atomic swap, a full fence), a load of the shard's state line (which
//!   nobody writes in the steady state), and a compare-and-swap of the chunk's fill word.
//! - `separate`: the index private too (separate maps): the ceiling.
//!
//! `WORK=n` adds `n` rounds of private arithmetic after each set, standing for the rest of a
//! real set (shmap's Rust `set` is ~310 ns, a Node `set` ~475 ns). Prints, per variant and
//! index size, one writer's sets/s and the aggregate of 2 and 4 writers against it, median of
//! three rounds. `SECS` sets a cell's length (default 1).

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

use mem::Mem;

/// The only code that touches the mapping.
mod mem {
    #![allow(unsafe_code)]
    use std::os::fd::AsRawFd;
    use std::sync::atomic::AtomicU64;

    /// A `MAP_SHARED` mapping of a fresh file in `/dev/shm`, prefaulted.
    pub struct Mem {
        base: *mut u8,
        len: usize,
        path: String,
    }

    impl Mem {
        pub fn new(len: u64) -> Mem {
            let path = format!("/dev/shm/write-lines-probe-{}", std::process::id());
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .expect("create the probe's file");
            f.set_len(len).expect("size the probe's file");
            let len = len as usize;
            // SAFETY: a new shared mapping of a file this process just sized to `len`; nothing
            // else maps it but the children forked below, which use it only through `Mem`.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    f.as_raw_fd(),
                    0,
                )
            };
            assert!(base != libc::MAP_FAILED, "mmap failed");
            let m = Mem {
                base: base.cast(),
                len,
                path,
            };
            for off in (0..len).step_by(4096) {
                m.write(off as u64, &[0]);
            }
            m
        }

        /// The 8-aligned word at `off`.
        pub fn word(&self, off: u64) -> &AtomicU64 {
            assert!(off.is_multiple_of(8) && off as usize + 8 <= self.len);
            // SAFETY: in bounds and 8-aligned (checked); the mapping lives as long as `self`,
            // and every access to shared words goes through atomics.
            unsafe { &*self.base.add(off as usize).cast::<AtomicU64>() }
        }

        pub fn write(&self, off: u64, bytes: &[u8]) {
            assert!(off as usize + bytes.len() <= self.len);
            // SAFETY: in bounds (checked); a writer writes only its own records, which no other
            // process writes, and the probe never reads a record that is being written.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.base.add(off as usize),
                    bytes.len(),
                )
            }
        }

        pub fn eq(&self, off: u64, bytes: &[u8]) -> bool {
            assert!(off as usize + bytes.len() <= self.len);
            // SAFETY: in bounds (checked); see `write` for why these bytes are not racing.
            unsafe { std::slice::from_raw_parts(self.base.add(off as usize), bytes.len()) == bytes }
        }

        pub fn u32_at(&self, off: u64) -> u32 {
            let mut b = [0u8; 4];
            assert!(off as usize + 4 <= self.len);
            // SAFETY: in bounds (checked); see `write`.
            unsafe {
                std::ptr::copy_nonoverlapping(self.base.add(off as usize), b.as_mut_ptr(), 4)
            };
            u32::from_le_bytes(b)
        }

        /// Forks `n` children running `f(i)`, then waits for them.
        pub fn fork_each(&self, n: usize, f: impl Fn(usize)) {
            let mut kids = vec![];
            for i in 0..n {
                // SAFETY: the parent is single-threaded; the child runs `f` and leaves by
                // `_exit`, never returning into the parent's code.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork failed");
                if pid == 0 {
                    f(i);
                    // SAFETY: ends the child without running the parent's destructors.
                    unsafe { libc::_exit(0) }
                }
                kids.push(pid);
            }
            for pid in kids {
                // SAFETY: waits for a child of this process.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            }
        }
    }

    impl Drop for Mem {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`, no longer used.
            unsafe { libc::munmap(self.base.cast(), self.len) };
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Bytes of ring per writer, and of the shared ring: large enough that no record a slot points
/// to is overwritten within a run.
const RING: u64 = 32 << 20;
const KEY: u64 = 16;
const VALUE: usize = 100;
const RECORD: u64 = (24 + KEY + VALUE as u64 + 7) & !7;
/// File layout: the shard's line (lock, head, entries, live bytes), the shard's state line, the
/// start flag, results; then a 256-byte block per writer (its head and counters, its
/// announcement line, its chunk's fill line); the index at 1 MiB; then the rings.
const SHARD: u64 = 0;
const STATE: u64 = 192;
const GO: u64 = 512;
const RESULTS: u64 = 2048;
const OWN: u64 = 4096;
const INDEX: u64 = 1 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Locked,
    Lanes,
    LanesProtocol,
    Separate,
}

struct Writer<'a> {
    m: &'a Mem,
    v: Variant,
    /// The line of the lock, head and counters: the shard's, or the writer's own.
    line: u64,
    index: u64,
    slots: u64,
    ring: u64,
}

impl Writer<'_> {
    #[inline(never)]
    fn set(&self, key: &[u8], value: &[u8]) {
        let m = self.m;
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(key, 7);
        let locked = self.v == Variant::Locked;
        let protocol = self.v == Variant::LanesProtocol;
        if locked {
            while m
                .word(self.line)
                .compare_exchange(0, 1, Acquire, Relaxed)
                .is_err()
            {
                std::hint::spin_loop();
            }
        }
        if protocol {
            m.word(self.line + 64).swap(1, SeqCst);
            assert!(m.word(STATE).load(Acquire) == 0);
        }
        let tag = h >> 48;
        let mask = self.slots - 1;
        let mut i = h & mask;
        let (slot, old) = loop {
            let at = self.index + 8 * i;
            let s = m.word(at).load(Acquire);
            if s == 0 {
                break (at, 0);
            }
            if s & 0xffff == tag {
                let rec = self.ring + (s >> 16) - 1;
                if m.u32_at(rec + 4) as usize == key.len() && m.eq(rec + 24, key) {
                    break (at, s);
                }
            }
            i = (i + 1) & mask;
        };
        let head_word = m.word(self.line + 8);
        let mut head = head_word.load(Relaxed);
        if head + RECORD > RING {
            head = 0;
        }
        let at = self.ring + head;
        let mut c = crc32fast::Hasher::new();
        c.update(key);
        c.update(value);
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&c.finalize().to_le_bytes());
        hdr[4..8].copy_from_slice(&(key.len() as u32).to_le_bytes());
        hdr[8..12].copy_from_slice(&(value.len() as u32).to_le_bytes());
        m.write(at, &hdr);
        m.write(at + 24, key);
        m.write(at + 24 + key.len() as u64, value);
        if protocol {
            let fill = m.word(self.line + 128);
            let f = fill.load(Relaxed);
            let _ = fill.compare_exchange(f, f + RECORD, AcqRel, Relaxed);
        }
        head_word.store(head + RECORD, Release);
        let new = ((head + 1) << 16) | tag;
        if locked {
            m.word(slot).store(new, Release);
            m.word(self.line + 16).fetch_add((old == 0) as u64, Relaxed);
            m.word(self.line + 24).fetch_add(RECORD, Relaxed);
            m.word(self.line).store(0, Release);
        } else {
            // Own keys: no other writer races for this slot here.
            let _ = m.word(slot).compare_exchange(old, new, AcqRel, Acquire);
            let e = m.word(self.line + 16);
            e.store(e.load(Relaxed) + (old == 0) as u64, Relaxed);
            let l = m.word(self.line + 24);
            l.store(l.load(Relaxed) + RECORD, Relaxed);
            if protocol {
                m.word(self.line + 64).store(0, Release);
            }
        }
    }
}

/// Aggregate sets/s of `writers` processes.
fn run(v: Variant, writers: usize, slots: u64, secs: f64, work: u64) -> f64 {
    let index_len = slots
        * 8
        * if v == Variant::Separate {
            writers as u64
        } else {
            1
        };
    let rings = INDEX + index_len.next_multiple_of(4096);
    let m = Mem::new(rings + RING * (writers as u64 + 1));
    let go = m.word(GO);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            go.store(1, Release);
        });
        m.fork_each(writers, |p| {
            let keys: Vec<Vec<u8>> = (0..1000)
                .map(|i| format!("w{p:02}-key-{i:08}").into_bytes())
                .collect();
            let value = [b'v'; VALUE];
            let own = OWN + 256 * p as u64;
            let w = Writer {
                m: &m,
                v,
                line: if v == Variant::Locked { SHARD } else { own },
                index: if v == Variant::Separate {
                    INDEX + slots * 8 * p as u64
                } else {
                    INDEX
                },
                slots,
                ring: rings
                    + RING
                        * if v == Variant::Locked {
                            writers as u64
                        } else {
                            p as u64
                        },
            };
            while go.load(Acquire) == 0 {
                std::hint::spin_loop();
            }
            let t0 = Instant::now();
            let until = t0 + Duration::from_secs_f64(secs);
            let mut n = 0u64;
            'run: loop {
                for k in &keys {
                    w.set(k, &value);
                    n += 1;
                    let mut x = n;
                    for _ in 0..work {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                    if n.is_multiple_of(256) && Instant::now() >= until {
                        break 'run;
                    }
                }
            }
            m.word(RESULTS + 8 * p as u64)
                .store((n as f64 / t0.elapsed().as_secs_f64()) as u64, Release);
        });
    });
    (0..writers)
        .map(|p| m.word(RESULTS + 8 * p as u64).load(Acquire) as f64)
        .sum()
}

fn main() {
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<f64>().ok());
    let secs = env("SECS").unwrap_or(1.0);
    let work = env("WORK").unwrap_or(0.0) as u64;
    println!(
        "100 B sets on 1,000 keys per writer, {secs} s a cell, WORK={work}; median of 3 rounds"
    );
    let cells = [
        (Variant::Locked, "locked", &[16384u64][..]),
        (Variant::Lanes, "lanes", &[4096, 16384, 65536, 262144][..]),
        (
            Variant::LanesProtocol,
            "lanes+protocol",
            &[4096, 16384, 65536, 262144][..],
        ),
        (Variant::Separate, "separate", &[16384][..]),
    ];
    for (v, name, sizes) in cells {
        for &slots in sizes {
            let mut rounds: Vec<(f64, f64, f64)> = (0..3)
                .map(|_| {
                    let one = run(v, 1, slots, secs, work);
                    let two = run(v, 2, slots, secs, work);
                    // Four writers on one spinning lock and two cores starve: not measured.
                    let four = if v == Variant::Locked {
                        f64::NAN
                    } else {
                        run(v, 4, slots, secs, work)
                    };
                    (one, two / one, four / one)
                })
                .collect();
            rounds.sort_by(|a, b| a.1.total_cmp(&b.1));
            let (one, x2, x4) = rounds[1];
            let (ns1, ns2) = (1e9 / one, 2e9 / (x2 * one));
            println!(
                "{name:>15} {slots:>7} slots: 1 writer {:.2}M/s ({ns1:.0} ns a set); 2 writers {x2:.2}x (+{:.0} ns a set); 4 writers {x4:.2}x",
                one / 1e6,
                ns2 - ns1
            );
        }
    }
}
