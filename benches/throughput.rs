//! shmap's benchmarks (issue 2 "Benchmarks", issue 5 item 5), printed beside a baseline from
//! the same run and never asserted: single-process get/set per second against LMDB (heed),
//! read scaling from 1 to 2 processes, and the bytes compaction copies per byte written.
//!
//! `cargo bench --bench throughput` (about a minute); `-- --quick`, `SHMAP_BENCH_QUICK=1` or
//! running it without `--bench` (as `cargo test --benches` does) gives a few-second smoke run.
//! See benches/README.md for a real run's output.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{CommitOrAbort, Env, EnvFlags, EnvOpenOptions};
use shmap::{Options, Shmap, Stats};

type Db<'e> = heed::Database<'e, Bytes, Bytes>;

/// Environment variable that turns this binary into a reader child (value: `shmap` or `lmdb`).
const ROLE: &str = "SHMAP_BENCH_READER";
/// Operations between two clock reads; also LMDB's transaction size in the batched variants.
const BATCH: usize = 1024;
const KEY_LEN: usize = 16;

/// How long and how big: the full run, or a smoke run of a few seconds.
struct Plan {
    /// Rounds and the time each variant runs per round in the single-process table.
    rounds: usize,
    slice: Duration,
    /// Rounds and the time the reader processes run per round.
    read_rounds: usize,
    read_ms: u64,
    grow_keys: u64,
    churn_ops: u64,
    evict_max: u64,
    evict_ops: u64,
}

const FULL: Plan = Plan {
    rounds: 15,
    slice: Duration::from_millis(100),
    read_rounds: 5,
    read_ms: 500,
    grow_keys: 500_000,
    churn_ops: 1_000_000,
    evict_max: 32 << 20,
    evict_ops: 1_000_000,
};

const QUICK: Plan = Plan {
    rounds: 2,
    slice: Duration::from_millis(15),
    read_rounds: 1,
    read_ms: 100,
    grow_keys: 20_000,
    churn_ops: 50_000,
    evict_max: 4 << 20,
    evict_ops: 60_000,
};

fn main() {
    if let Ok(store) = std::env::var(ROLE) {
        return reader_child(&store);
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and gets the smoke run.
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick")
        || !args.iter().any(|a| a == "--bench")
        || std::env::var("SHMAP_BENCH_QUICK").is_ok_and(|v| v == "1");
    let plan = if quick { &QUICK } else { &FULL };
    print_machine(quick);
    let scratch = Scratch::new();
    single_process(plan, &scratch);
    read_scaling(plan, &scratch);
    compaction(plan, &scratch);
    println!("load average at end {}", load_average());
}

/// The 1, 5 and 15 minute load averages: how busy the shared machine was.
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_machine(quick: bool) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown", |m| m.trim_start_matches([' ', '\t', ':']));
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "shmap benchmarks{}",
        if quick { " (--quick smoke run)" } else { "" }
    );
    println!(
        "machine: {nproc} cpus, {model}; load average at start {}",
        load_average()
    );
    println!(
        "caveat: a shared, noisy virtual machine; medians of alternating rounds, ± is half the \
         range (max - min) over the median. Compare ratios, not absolute numbers.\n"
    );
}

/// splitmix64: a fixed-seed PRNG, so every run issues the same key sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
    /// Zipf-ish with exponent 1 (log-uniform ranks): rank r has probability ~ 1/r.
    fn zipf(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as u64).clamp(1, n) - 1
    }
}

/// A 16-byte key.
fn key(i: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(format!("key:{i:012}").as_bytes());
    k
}

/// Keys, a random access order over them, and a value.
struct Workload {
    keys: Vec<[u8; KEY_LEN]>,
    order: Vec<usize>,
    value: Vec<u8>,
}

impl Workload {
    fn new(n_keys: usize, value_len: usize, seed: u64) -> Workload {
        let mut rng = Rng(seed);
        Workload {
            keys: (0..n_keys as u64).map(key).collect(),
            order: (0..64 * BATCH)
                .map(|_| rng.below(n_keys as u64) as usize)
                .collect(),
            value: (0..value_len).map(|_| rng.next() as u8).collect(),
        }
    }

    /// Ops per second of `op` run over batches of the access order for `time`.
    fn rate(&self, time: Duration, op: &mut dyn FnMut(&[usize])) -> f64 {
        let start = Instant::now();
        let mut n = 0;
        for chunk in self.order.chunks(BATCH).cycle() {
            op(chunk);
            n += chunk.len();
            if start.elapsed() >= time {
                break;
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    }

    fn fill_shmap(&self, map: &Shmap) {
        for k in &self.keys {
            map.set(k, &self.value).expect("shmap set");
        }
    }

    fn fill_lmdb(&self, env: &Env, db: Db) {
        let mut txn = env.write_txn().expect("LMDB write txn");
        for k in &self.keys {
            db.put(&mut txn, k, &self.value).expect("LMDB put");
        }
        txn.commit().expect("LMDB commit");
    }
}

/// A directory in /dev/shm (the OS temp dir without it) for this run's files, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("shmap-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open_shmap(path: &Path, opts: &Options) -> Shmap {
    Shmap::open_path(path, opts).expect("open shmap")
}

/// An LMDB environment in `dir` with the flags closest to shmap's durability: nothing is synced.
fn lmdb_env(dir: &Path) -> Env {
    std::fs::create_dir_all(dir).expect("create LMDB dir");
    let mut o = EnvOpenOptions::new();
    o.map_size(1 << 30);
    #[allow(unsafe_code)]
    // SAFETY: the environment is private to this benchmark (and its reader children, which
    // open it with the same flags); no file is modified behind LMDB's back and no transaction
    // outlives a process. NO_SYNC/NO_META_SYNC only give up durability on an OS crash.
    let env = unsafe {
        o.flags(EnvFlags::NO_SYNC | EnvFlags::WRITE_MAP | EnvFlags::NO_META_SYNC)
            .open(dir)
    };
    env.expect("open LMDB env")
}

fn lmdb_db(env: &Env) -> Db<'_> {
    let txn = env.write_txn().expect("LMDB write txn");
    env.create_databases_and_commit(txn, |o, txn| {
        o.create_database(txn, None)
            .map(CommitOrAbort::<_, ()>::Commit)
    })
    .expect("LMDB database")
    .unwrap_commit()
}

/// Reads the keys `ks` with `get_into`: the hot path of a cache user.
fn shmap_reads(map: &Shmap, w: &Workload, ks: &[usize], buf: &mut Vec<u8>) {
    for &k in ks {
        map.get_into(&w.keys[k], buf).unwrap().expect("hit");
        std::hint::black_box(&buf);
    }
}

/// Reads the keys `ks` from LMDB, `per_txn` gets a read transaction. LMDB's slices live only
/// as long as the transaction, so each value is copied into `buf`, as shmap's `get_into` does.
fn lmdb_reads(env: &Env, db: Db, w: &Workload, ks: &[usize], per_txn: usize, buf: &mut Vec<u8>) {
    for txn_keys in ks.chunks(per_txn) {
        let txn = env.read_txn().unwrap();
        for &k in txn_keys {
            buf.clear();
            buf.extend_from_slice(db.get(&txn, &w.keys[k]).unwrap().expect("hit"));
            std::hint::black_box(&buf);
        }
    }
}

/// Median and spread ((max - min) / median) of samples.
fn median(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s[s.len() / 2];
    (m, (s[s.len() - 1] - s[0]) / m)
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else {
        format!("{:.0}k", r / 1e3)
    }
}

/// "median/s ±half-range%": the spread is half of (max - min), over the median.
fn rate_cell(samples: &[f64]) -> String {
    let (m, spread) = median(samples);
    format!("{}/s ±{:.0}%", fmt_rate(m), spread * 50.0)
}

/// Runs every variant for `rounds` rounds, alternating the order (forward, then backward) to
/// cancel drift; returns each variant's samples.
fn alternate<T>(rounds: usize, variants: &mut [&mut dyn FnMut() -> T]) -> Vec<Vec<T>> {
    let mut samples: Vec<Vec<T>> = variants.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for i in 0..variants.len() {
            let i = if r % 2 == 0 {
                i
            } else {
                variants.len() - 1 - i
            };
            samples[i].push(variants[i]());
        }
    }
    samples
}

fn line(case: &str, shmap: &str, baseline: &str, base: &str, ratio: &str) {
    println!("{case:<30} {shmap:>15} | {baseline:<30} {base:>15} | {ratio:>7}");
}

/// One table line: shmap's result, the baseline's, and their ratio of medians.
fn row(case: &str, shmap: &[f64], baseline: &str, base: &[f64]) {
    let ratio = format!("{:.2}x", median(shmap).0 / median(base).0);
    line(case, &rate_cell(shmap), baseline, &rate_cell(base), &ratio);
}

fn single_process(plan: &Plan, scratch: &Scratch) {
    let (start, cpu) = (Instant::now(), cpu_seconds());
    println!("## single process: 16-byte keys in random order, operations per second");
    line(
        "shmap",
        "median",
        "lmdb (copies into a reused buf)",
        "median",
        "shmap/lmdb",
    );
    for (n_keys, value_len, label) in [(10_000, 100, "100 B"), (1_000, 10_000, "10 KB")] {
        let w = Workload::new(n_keys, value_len, 42);
        let map = open_shmap(
            &scratch.path(&format!("single-{value_len}")),
            &Options::new(),
        );
        // Batched puts get their own environment: a 1024-put transaction leaves LMDB a large
        // free list that makes every later commit slower, which would tax the per-put run.
        let env = lmdb_env(&scratch.path(&format!("single-{value_len}.lmdb")));
        let batched = lmdb_env(&scratch.path(&format!("single-{value_len}-batched.lmdb")));
        let (db, batched_db) = (lmdb_db(&env), lmdb_db(&batched));
        w.fill_shmap(&map);
        w.fill_lmdb(&env, db);
        w.fill_lmdb(&batched, batched_db);
        let mut buf = Vec::new();
        let t = plan.slice;
        let mut shmap_get = || {
            w.rate(t, &mut |ks| {
                for &k in ks {
                    std::hint::black_box(map.get(&w.keys[k]).unwrap().expect("hit"));
                }
            })
        };
        let mut shmap_get_into = || w.rate(t, &mut |ks| shmap_reads(&map, &w, ks, &mut buf));
        let mut shmap_set = || {
            w.rate(t, &mut |ks| {
                for &k in ks {
                    map.set(&w.keys[k], &w.value).unwrap();
                }
            })
        };
        let lmdb_get = |per_txn: usize| {
            let mut buf = Vec::new();
            w.rate(t, &mut |ks| lmdb_reads(&env, db, &w, ks, per_txn, &mut buf))
        };
        let lmdb_put = |env: &Env, db: Db, per_txn: usize| {
            w.rate(t, &mut |ks| {
                for txn_keys in ks.chunks(per_txn) {
                    let mut txn = env.write_txn().unwrap();
                    for &k in txn_keys {
                        db.put(&mut txn, &w.keys[k], &w.value).unwrap();
                    }
                    txn.commit().unwrap();
                }
            })
        };
        let s = alternate(
            plan.rounds,
            &mut [
                &mut shmap_get,
                &mut shmap_get_into,
                &mut shmap_set,
                &mut || lmdb_get(1),
                &mut || lmdb_get(BATCH),
                &mut || lmdb_put(&env, db, 1),
                &mut || lmdb_put(&batched, batched_db, BATCH),
            ],
        );
        let (get, get_into, set) = ("get (new Vec)", "get_into (reused buf)", "set");
        for (case, i, baseline, j) in [
            (get, 0, "get, 1 read txn per get", 3),
            (get_into, 1, "get, 1 read txn per get", 3),
            (get_into, 1, "get, 1 read txn / 1024 gets", 4),
            (set, 2, "put, 1 write txn per put", 5),
            (set, 2, "put, 1 write txn / 1024 puts", 6),
        ] {
            row(&format!("{label} {case}"), &s[i], baseline, &s[j]);
        }
    }
    let share = (cpu_seconds() - cpu) / start.elapsed().as_secs_f64();
    println!(
        "(this process was on a CPU {:.0}% of the time)\n",
        share * 100.0
    );
}

/// CPU time this process has used, from /proc/self/stat (utime + stime, 100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// What reader children measured together: summed gets per second of wall time, and summed
/// gets per second each child actually spent on a CPU (what they would do with a core each).
struct Reads {
    wall: f64,
    on_cpu: f64,
}

/// Starts `n` reader children on `store` at `path`, lets them read together for `ms`, and
/// sums what they report.
fn readers(store: &str, path: &Path, n: usize, ms: u64) -> Reads {
    let mut kids: Vec<Child> = (0..n)
        .map(|_| {
            Command::new(std::env::current_exe().expect("current exe"))
                .env(ROLE, store)
                .env("SHMAP_BENCH_PATH", path)
                .env("SHMAP_BENCH_MS", ms.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn reader")
        })
        .collect();
    let mut outs: Vec<_> = kids
        .iter_mut()
        .map(|k| BufReader::new(k.stdout.take().expect("child stdout")).lines())
        .collect();
    let mut next_line = |i: usize| {
        outs[i]
            .next()
            .expect("reader exited")
            .expect("reader output")
    };
    for i in 0..n {
        assert_eq!(next_line(i), "ready", "reader failed to start");
    }
    for k in &mut kids {
        writeln!(k.stdin.as_mut().expect("child stdin"), "go").expect("start reader");
    }
    let mut sum = Reads {
        wall: 0.0,
        on_cpu: 0.0,
    };
    for i in 0..n {
        let report = next_line(i);
        let (rate, share) = report.split_once(' ').expect("reader report");
        let (rate, share): (f64, f64) = (rate.parse().unwrap(), share.parse().unwrap());
        sum.wall += rate;
        sum.on_cpu += rate / share.max(0.01);
    }
    for mut k in kids {
        k.wait().expect("reader exit");
    }
    sum
}

/// A reader child: opens the store, reports ready, waits for "go", reads for the given time
/// and prints its gets per second and the share of that time it spent on a CPU.
fn reader_child(store: &str) {
    let path = PathBuf::from(std::env::var_os("SHMAP_BENCH_PATH").expect("SHMAP_BENCH_PATH"));
    let ms = std::env::var("SHMAP_BENCH_MS").expect("SHMAP_BENCH_MS");
    let time = Duration::from_millis(ms.parse().expect("SHMAP_BENCH_MS"));
    let w = Workload::new(SCALING_KEYS, SCALING_VALUE, std::process::id() as u64);
    let serve = |op: &mut dyn FnMut(&[usize])| {
        println!("ready");
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).expect("wait for go");
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let rate = w.rate(time, op);
        let share = (cpu_seconds() - cpu) / start.elapsed().as_secs_f64();
        println!("{rate} {share}");
    };
    let mut buf = Vec::new();
    if store == "shmap" {
        let map = open_shmap(&path, &Options::new().create(false));
        serve(&mut |ks| shmap_reads(&map, &w, ks, &mut buf));
    } else {
        let env = lmdb_env(&path);
        let db = lmdb_db(&env);
        serve(&mut |ks| lmdb_reads(&env, db, &w, ks, 1, &mut buf));
    }
}

const SCALING_KEYS: usize = 10_000;
const SCALING_VALUE: usize = 100;

fn read_scaling(plan: &Plan, scratch: &Scratch) {
    println!("## read scaling: processes reading one map at once, 100 B values, summed gets/s");
    line(
        "shmap get_into",
        "median",
        "lmdb, 1 read txn per get",
        "median",
        "shmap/lmdb",
    );
    let w = Workload::new(SCALING_KEYS, SCALING_VALUE, 7);
    let (map_path, env_path) = (scratch.path("scaling"), scratch.path("scaling.lmdb"));
    let map = open_shmap(&map_path, &Options::new());
    let env = lmdb_env(&env_path);
    w.fill_shmap(&map);
    w.fill_lmdb(&env, lmdb_db(&env));
    let ms = plan.read_ms;
    let s = alternate(
        plan.read_rounds,
        &mut [
            &mut || readers("shmap", &map_path, 1, ms),
            &mut || readers("shmap", &map_path, 2, ms),
            &mut || readers("lmdb", &env_path, 1, ms),
            &mut || readers("lmdb", &env_path, 2, ms),
        ],
    );
    for (what, pick) in [
        ("", (|r: &Reads| r.wall) as fn(&Reads) -> f64),
        (" per CPU-s", |r: &Reads| r.on_cpu),
    ] {
        let s: Vec<Vec<f64>> = s.iter().map(|v| v.iter().map(pick).collect()).collect();
        let (one, two) = (format!("1 process{what}"), format!("2 processes{what}"));
        row(&one, &s[0], &one, &s[2]);
        row(&two, &s[1], &two, &s[3]);
        // The factor per round (2 processes over 1 process), then its median.
        let factor = |two: &[f64], one: &[f64]| {
            let f: Vec<f64> = two.iter().zip(one).map(|(t, o)| t / o).collect();
            let (m, spread) = median(&f);
            format!("{m:.2}x ±{:.0}%", spread * 50.0)
        };
        let case = format!("scaling 2 over 1{what}");
        line(
            &case,
            &factor(&s[1], &s[0]),
            &case,
            &factor(&s[3], &s[2]),
            "",
        );
    }
    println!(
        "(per CPU-s: gets per second each reader spent on a CPU, summed: the aggregate if the \
         machine gave every reader its own core)\n"
    );
}

/// The hit ratio over `trace[from..]` of an exact LRU cache of `cap` entries replaying `trace`:
/// the baseline for eviction.
fn lru_hit_ratio(trace: &[u64], from: usize, cap: usize) -> f64 {
    use std::collections::{BTreeMap, HashMap};
    let (mut at, mut by_time) = (HashMap::new(), BTreeMap::new());
    let mut hits = 0;
    for (t, &k) in trace.iter().enumerate() {
        if let Some(old) = at.insert(k, t) {
            by_time.remove(&old);
            hits += usize::from(t >= from);
        } else if at.len() > cap {
            let (_, victim) = by_time.pop_first().expect("non-empty");
            at.remove(&victim);
        }
        by_time.insert(t, k);
    }
    hits as f64 / (trace.len() - from) as f64
}

/// Copy cost of cleaning a ring whose records are live with probability `u` (the map's live
/// fraction) by moving them: u/(1-u) bytes copied per byte freed.
fn cleaning_model(s: &Stats) -> String {
    let u = s.live_bytes as f64 / s.log_capacity as f64;
    format!("move-all cleaning at u={u:.2}: {:.3}", u / (1.0 - u))
}

/// One compaction scenario's counters, kept with its map until the grace period has passed.
struct Run {
    case: String,
    model: String,
    before: Stats,
    after: Stats,
    /// Largest `file_allocated_bytes` seen, sampled every 1024 operations.
    peak: u64,
    time: Duration,
    map: Shmap,
}

impl Run {
    fn new(case: String, map: Shmap, ops: u64, step: &mut dyn FnMut(&Shmap, u64)) -> Run {
        let before = map.stats().expect("stats");
        let (start, mut peak) = (Instant::now(), 0);
        for i in 0..ops {
            step(&map, i);
            if i % 1024 == 0 {
                peak = peak.max(map.stats().expect("stats").file_allocated_bytes);
            }
        }
        let (time, after) = (start.elapsed(), map.stats().expect("stats"));
        let model = cleaning_model(&after);
        Run {
            case,
            model,
            before,
            peak: peak.max(after.file_allocated_bytes),
            after,
            time,
            map,
        }
    }

    /// Prints the row once the grace period passed and one more write returned retired space.
    fn print(&self) {
        self.map.set(&key(0), b"x").expect("set");
        let settled = self.map.stats().expect("stats").file_allocated_bytes;
        let (a, b) = (&self.after, &self.before);
        let written = a.bytes_written - b.bytes_written;
        let mib = |v: u64| v as f64 / (1 << 20) as f64;
        println!(
            "{:<34} {:>7.1} MB {:>6.3} | {:<38} | {:>8} {:>9} {:>9.1} {:>9.1} MiB {:>6.2} s",
            self.case,
            written as f64 / 1e6,
            (a.bytes_copied - b.bytes_copied) as f64 / written as f64,
            self.model,
            a.switches - b.switches,
            a.evictions - b.evictions,
            mib(self.peak),
            mib(settled),
            self.time.as_secs_f64(),
        );
    }
}

fn compaction(plan: &Plan, scratch: &Scratch) {
    println!("## compaction: record bytes copied by cleaning and switches per byte written");
    println!(
        "{:<34} {:>10} {:>6} | {:<38} | {:>8} {:>9} {:>9} {:>13} {:>8}",
        "shmap (16 B keys)",
        "written",
        "copied",
        "reference (a model)",
        "switches",
        "evictions",
        "peak",
        "alloc at end",
        "time"
    );
    let mut rng = Rng(1);
    let small = vec![0x5a; 100];
    let open = |name: &str, opts: Options| open_shmap(&scratch.path(name), &opts);

    let map = open("grow", Options::new().initial_size(64 << 10));
    let case = format!("(a) grow: {}k new keys, 100 B", plan.grow_keys / 1000);
    let mut grow = Run::new(case, map, plan.grow_keys, &mut |m, i| {
        m.set(&key(i), &small).expect("set")
    });
    grow.model = "doubling: 1 to 2, by where N falls".into();

    let map = open("churn", Options::new());
    let n = 10_000;
    (0..n).for_each(|i| map.set(&key(i), &small).expect("set"));
    let case = format!("(b) churn: {}k sets over 10k keys", plan.churn_ops / 1000);
    let churn = Run::new(case, map, plan.churn_ops, &mut |m, _| {
        m.set(&key(rng.below(n)), &small).expect("set")
    });

    // At the cap: cache-aside (look up, set on a miss) over Zipf-ish keys, 10x what fits.
    let large = vec![0xa5; 1000];
    let map = open("evict", Options::new().max_size(plan.evict_max));
    let n = 10 * plan.evict_max / (24 + 16 + 1000); // 10x the records (header, key, value) that fit
    let trace: Vec<u64> = (0..2 * plan.evict_ops).map(|_| rng.zipf(n)).collect();
    let mut hits = 0;
    let mut lookaside = |m: &Shmap, i: u64| {
        let k = key(trace[i as usize]);
        if m.contains(&k).expect("contains") {
            hits += u64::from(i >= plan.evict_ops);
        } else {
            m.set(&k, &large).expect("set");
        }
    };
    (0..plan.evict_ops).for_each(|i| lookaside(&map, i));
    let case = format!("(c) at max {} MiB, 1 KB values", plan.evict_max >> 20);
    let evict = Run::new(case, map, plan.evict_ops, &mut |m, i| {
        lookaside(m, plan.evict_ops + i)
    });

    // Retired regions keep their pages for a 1 s grace period; the next write returns them.
    std::thread::sleep(Duration::from_millis(1100));
    for run in [&grow, &churn, &evict] {
        run.print();
    }
    let cap = evict.after.entries as usize;
    println!(
        "(c) hit ratio {:.3} (cache-aside, Zipf-ish over {}k keys) | exact LRU of {cap} entries \
         on the same trace: {:.3}",
        hits as f64 / plan.evict_ops as f64,
        n / 1000,
        lru_hit_ratio(&trace, plan.evict_ops as usize, cap),
    );
    println!(
        "(peak: the largest file_allocated_bytes sampled every 1024 operations; alloc at end: \
         after the 1 s grace and one more write)"
    );
}
