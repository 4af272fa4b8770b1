#!/usr/bin/env node
'use strict';
// The performance report (issue 5): one command measures everything and writes docs/perf/.
//   node node/bench/report.js            full run (~10 min on 2 cores): docs/perf/{report.md,data.json,*.svg}
//   node node/bench/report.js --quick    smoke run (seconds): same code paths, tiny sizes, written
//                                        to node/bench/results/report-quick/; asserts nothing
// Options: --out DIR, --only throughput,latency,memory,growth,write-scaling,growth-stall,rust,redis-tier,adapters,
//   --workers 1,2,4,8,
//   --seconds S (throughput run length), --rounds R, --backends shmap,lru,lmdb,redis,ipc,
//   --no-build (use node/shmap.node as it is), --render DATA.json (only redraw md + svg from data).
// Never asserts on speed: the machine is shared and noisy; it quotes medians and their spread.
// See README.md ("report.js") for what each section measures and why.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { fork, spawnSync } = require('child_process');
const { parseArgs } = require('util');

const ROOT = path.resolve(__dirname, '..', '..');
const NODE_DIR = path.join(ROOT, 'node');
const MiB = 1 << 20;
const SIZES = [[100, '100 B'], [10240, '10 KB'], [MiB, '1 MB']]; // target JSON bytes (values.js)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ================================================================= worker side
// One process type for every job: throughput and latency runs (cluster.js's protocol: run ->
// ready, go -> done), and the memory and growth jobs (mem / grow -> done).
function worker() {
  const { loopSync, loopAsync } = require('./cluster');
  let go = null;
  let held = null; // what a memory job keeps alive
  process.on('disconnect', () => process.exit(0));
  process.on('message', async (m) => {
    if (m.t === 'go') { if (go) go(); return; } // (the growth job waits for its own 'go')
    try {
      if (m.t === 'run') {
        const client = await require('./backends').load(m.backend).open(m.opts);
        await new Promise((resolve) => { go = resolve; process.send({ t: 'ready' }); });
        const cpu0 = process.cpuUsage();
        const loop = m.latency ? (client.sync ? latencySync : latencyAsync) : (client.sync ? loopSync : loopAsync);
        const res = await loop(client, m);
        const cpu = process.cpuUsage(cpu0);
        await client.close();
        const cycle = m.reads + m.writes;
        const gets = Math.floor(res.ops / cycle) * m.reads + Math.min(res.ops % cycle, m.reads);
        process.send({ t: 'done', ...res, gets, sets: res.ops - gets, cpuMs: (cpu.user + cpu.system) / 1e3 });
      } else if (m.t === 'mem') {
        const r = await memoryStep(m, held);
        held = r.held;
        delete r.held;
        process.send({ t: 'done', ...r });
      } else if (m.t === 'grow') {
        process.send({ t: 'done', ...(await growthJob(m)) });
      } else if (m.t === 'read') {
        readerJob(m);
      } else if (m.t === 'ws') { // write-scaling (writes.js)
        const waitGo = () => new Promise((resolve) => { go = resolve; process.send({ t: 'ready' }); });
        process.send({ t: 'done', ...(await require('./writes').writeScaleJob(m, waitGo)) });
      } else if (m.t === 'stall') { // growth-stall (writes.js)
        process.send({ t: 'done', ...require('./writes').growthStallJob(m, Hist) });
      }
    } catch (e) {
      process.send({ t: 'error', message: String((e && e.stack) || e) });
    }
  });
}

// ---- latency: every operation timed with process.hrtime.bigint() into a log-linear histogram
// (32 sub-buckets per power of two: <= 3.1 % bucket width, exact below 32 ns; mergeable across
// workers). The exact maximum and sum are kept beside it.
const SUB = 32;
class Hist {
  constructor() { this.c = new Float64Array(1024); this.n = 0; this.max = 0; this.sum = 0; }
  add(ns) {
    this.n++; this.sum += ns;
    if (ns > this.max) this.max = ns;
    const x = ns >= 4294967295 ? 4294967295 : ns;
    if (x < SUB) { this.c[x]++; return; }
    const e = 31 - Math.clz32(x);
    this.c[SUB + (e - 5) * SUB + ((x >>> (e - 5)) - SUB)]++;
  }
  toJSON() {
    const counts = [];
    this.c.forEach((k, i) => { if (k) counts.push([i, k]); });
    return { n: this.n, max: this.max, sum: this.sum, counts };
  }
}
const bucketMid = (i) => {
  if (i < SUB) return i;
  const e = ((i - SUB) / SUB | 0) + 5, sub = (i - SUB) % SUB;
  return (SUB + sub + 0.5) * 2 ** (e - 5);
};
function mergeHists(hs) {
  const c = new Map();
  let n = 0, max = 0, sum = 0;
  for (const h of hs) {
    n += h.n; sum += h.sum; max = Math.max(max, h.max);
    for (const [i, k] of h.counts) c.set(i, (c.get(i) || 0) + k);
  }
  const sorted = [...c.entries()].sort((a, b) => a[0] - b[0]);
  const pct = (p) => {
    const want = p * n;
    let acc = 0;
    for (const [i, k] of sorted) { acc += k; if (acc >= want) return Math.min(bucketMid(i), max); }
    return max;
  };
  return n ? { n, mean: sum / n, p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), max } : null;
}

function latencySync(c, { reads, writes, value, ms, batch = 64 }) {
  const { keyOrder } = require('./cluster');
  const keys = keyOrder(), cycle = reads + writes, hg = new Hist(), hs = new Hist();
  const clock = process.hrtime.bigint;
  let i = 0, misses = 0, now;
  const start = performance.now(), end = start + ms;
  do {
    for (const stop = i + batch; i < stop; i++) {
      const k = keys[i & 1023];
      if (i % cycle < reads) {
        const t0 = clock();
        const v = c.get(k);
        hg.add(Number(clock() - t0));
        if (v == null) misses++;
      } else {
        const t0 = clock();
        c.set(k, value);
        hs.add(Number(clock() - t0));
      }
    }
  } while ((now = performance.now()) < end);
  return { ops: i, misses, ms: now - start, get: hg.toJSON(), set: hs.toJSON() };
}

async function latencyAsync(c, { reads, writes, value, ms }) {
  const { keyOrder } = require('./cluster');
  const keys = keyOrder(), cycle = reads + writes, hg = new Hist(), hs = new Hist();
  const clock = process.hrtime.bigint;
  let i = 0, misses = 0, now;
  const start = performance.now(), end = start + ms;
  do {
    for (const stop = i + 16; i < stop; i++) {
      const k = keys[i & 1023];
      if (i % cycle < reads) {
        const t0 = clock();
        const v = await c.get(k);
        hg.add(Number(clock() - t0));
        if (v == null) misses++;
      } else {
        const t0 = clock();
        await c.set(k, value);
        hs.add(Number(clock() - t0));
      }
    }
  } while ((now = performance.now()) < end);
  return { ops: i, misses, ms: now - start, get: hg.toJSON(), set: hs.toJSON() };
}

// ---- memory: the data set is n distinct JSON strings of ~1 KB (order objects of values.js with
// the entry's id first), made the same way in every process.
function memValues(bytes) {
  const { makeObject } = require('./values');
  const bases = Array.from({ length: 64 }, (_, s) => makeObject(bytes, s + 1));
  return (i) => JSON.stringify({ entry: i, ...bases[i % 64] });
}
const memKey = (i) => `item:${i}`;
const gc = () => { if (global.gc) { global.gc(); global.gc(); } };

async function memoryStep(m, held) {
  const { Shmap } = m.kind === 'shmap' ? require(require('./backends/shmap').PKG) : {};
  switch (m.step) {
    case 'init': { // load the code each side needs, nothing else: the idle baseline
      if (m.kind === 'lru') require('lru-cache');
      memValues(m.bytes);
      gc();
      return { held: null };
    }
    case 'create': { // shmap, primary: create the map and store the data set once
      const map = new Shmap(m.name, { maxSize: m.maxSize, reset: true });
      const make = memValues(m.bytes);
      for (let i = 0; i < m.n; i++) map.set(memKey(i), make(i));
      await sleep(1100); // past the grace period of regions retired by growth ...
      map.flush(); // ... which flush() then returns to the OS
      gc();
      return { held: map, stats: map.stats() };
    }
    case 'open': { // shmap, worker: open the map and read every entry once (maps its pages)
      const map = new Shmap(m.name, {});
      let bytes = 0;
      for (let i = 0; i < m.n; i++) bytes += map.get(memKey(i)).length;
      gc();
      return { held: map, bytes, decodeCacheBytes: map.stats().decodeCacheBytes || 0 };
    }
    case 'fill': { // lru-cache, worker: its own copy of the data set
      const { LRUCache } = require('lru-cache');
      const cache = new LRUCache({ max: m.n * 2 });
      const make = memValues(m.bytes);
      for (let i = 0; i < m.n; i++) cache.set(memKey(i), make(i));
      let bytes = 0;
      for (let i = 0; i < m.n; i++) bytes += cache.get(memKey(i)).length;
      gc();
      return { held: cache, bytes };
    }
    case 'close': {
      if (held && typeof held.close === 'function') held.close();
      return { held: null };
    }
    default: throw new Error(`unknown memory step ${m.step}`);
  }
}

// ---- growth and shrink of one map, in a fresh process.
// With `reader`, it tells the primary when the map exists ({t: 'created'}) and waits for
// {t: 'go'} (a reader process has opened it by then), and says {t: 'grown'} when growth ends.
async function growthJob({ name, until, valueBytes, presized, reader }) {
  const { Shmap } = require(require('./backends/shmap').PKG);
  const clock = process.hrtime.bigint;
  const value = 'x'.repeat(valueBytes);
  const opts = presized
    ? { initialSize: until + 64 * MiB, maxSize: 8 * until, reset: true }
    : { initialSize: MiB, maxSize: 8 * until, reset: true };
  const tc = clock();
  const map = new Shmap(name, opts);
  map.set('grow:0', value); // the first set writes the first page
  const createMs = Number(clock() - tc) / 1e6;
  map.delete('grow:0');
  if (reader) {
    await new Promise((resolve) => {
      const on = (m) => { if (m.t === 'go') { process.off('message', on); resolve(); } };
      process.on('message', on);
      process.send({ t: 'created' });
    });
  }
  const snap = (extra) => {
    const s = map.stats();
    return { entries: s.entries, liveBytes: s.liveBytes, fileBytes: s.fileBytes, fileAllocatedBytes: s.fileAllocatedBytes,
      logCapacity: s.logCapacity, indexSlots: s.indexSlots, switches: s.switches, bytesWritten: s.bytesWritten,
      bytesCopied: s.bytesCopied, evictions: s.evictions, ...extra };
  };
  const first = snap({ ms: 0 });
  const steps = [];
  const t0 = clock();
  let n = 0, maxSetNs = 0, blockMax = 0, switches = first.switches, s = first;
  // Distinct keys until the file reaches `until` bytes (checked every 64 sets) or a presized run
  // has written as many sets as the growing one did (`presized` = that count).
  for (;;) {
    for (let j = 0; j < 64; j++, n++) {
      const a = clock();
      map.set(`grow:${n}`, value);
      const d = Number(clock() - a);
      if (d > blockMax) blockMax = d;
    }
    if (blockMax > maxSetNs) maxSetNs = blockMax;
    const st = map.stats();
    if (st.switches !== switches) {
      switches = st.switches;
      steps.push(snap({ ms: Number(clock() - t0) / 1e6, sets: n, maxSetMs: blockMax / 1e6 }));
    }
    blockMax = 0;
    if (presized ? n >= presized : st.fileBytes >= until) break;
  }
  const growMs = Number(clock() - t0) / 1e6;
  const grown = snap({ ms: growMs, sets: n });
  if (reader) process.send({ t: 'grown' });
  await sleep(1100); // the grace period of retired regions
  map.flush(); // returns them
  const settled = snap({});

  let shrink = null;
  if (!presized) {
    // Delete 19 of every 20 entries; deletes shrink the map as live data falls under 1/8 of the ring.
    const t1 = clock();
    let maxDelNs = 0, deleted = 0;
    const shrinkSteps = [];
    let sw = settled.switches;
    for (let i = 0; i < n; i++) {
      if (i % 20 === 0) continue;
      const a = clock();
      map.delete(`grow:${i}`);
      const d = Number(clock() - a);
      if (d > maxDelNs) maxDelNs = d;
      deleted++;
      if ((deleted & 255) === 0) {
        const st = map.stats();
        if (st.switches !== sw) { sw = st.switches; shrinkSteps.push(snap({ ms: Number(clock() - t1) / 1e6, deleted })); }
      }
    }
    const deleteMs = Number(clock() - t1) / 1e6;
    const afterDelete = snap({ ms: deleteMs, deleted });
    // shmap takes at most one shrink per 1 s grace period (retired pages are punched after it),
    // and a deferred one at the next operation: flush once per grace period until it settles.
    let afterGrace = afterDelete, settleRounds = 0;
    for (; settleRounds < 6; settleRounds++) {
      await sleep(1100);
      map.flush();
      const s2 = snap({});
      const settled2 = s2.fileAllocatedBytes >= afterGrace.fileAllocatedBytes && settleRounds > 0;
      afterGrace = s2;
      if (settled2) break;
    }
    afterGrace.settleSeconds = (settleRounds + 1) * 1.1;
    shrink = { deleted, deleteMs, maxDeleteMs: maxDelNs / 1e6, steps: shrinkSteps, afterDelete, afterGrace };
  }
  map.close();
  require('fs').rmSync(map.path || `/dev/shm/${name}`, { force: true });
  return { valueBytes, until, presized: Boolean(presized), createMs, first, steps, grown, settled, growMs, sets: n, maxSetMs: maxSetNs / 1e6, shrink };
}

// Another process reading the growing map: gets of random present keys (`grow:<i>`, i below the
// map's size), each timed, until {t: 'stop'}; then {t: 'done', get: histogram, hits, misses}.
function readerJob({ name }) {
  const { Shmap } = require(require('./backends/shmap').PKG);
  const map = new Shmap(name, {});
  const clock = process.hrtime.bigint, h = new Hist();
  let stop = false, hits = 0, misses = 0;
  const on = (m) => { if (m.t === 'stop') stop = true; };
  process.on('message', on);
  const chunk = () => {
    if (stop) {
      process.off('message', on);
      map.close();
      process.send({ t: 'done', get: h.toJSON(), hits, misses });
      return;
    }
    const end = performance.now() + 5;
    do {
      const n = map.size;
      for (let j = 0; j < 64; j++) {
        const k = `grow:${Math.floor(Math.random() * n)}`;
        const t0 = clock();
        const v = map.get(k);
        h.add(Number(clock() - t0));
        if (v === undefined) misses++; else hits++;
      }
    } while (performance.now() < end);
    setImmediate(chunk);
  };
  process.send({ t: 'reading' });
  setImmediate(chunk);
}

// ================================================================= primary side
function options() {
  const { values: v } = parseArgs({ options: {
    quick: { type: 'boolean' }, out: { type: 'string' }, only: { type: 'string' }, workers: { type: 'string' },
    seconds: { type: 'string' }, rounds: { type: 'string' }, backends: { type: 'string' },
    'no-build': { type: 'boolean' }, render: { type: 'string' },
  } });
  const quick = Boolean(v.quick);
  const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
  const nums = (s) => list(s).map((x) => { const n = Math.floor(Number(x)); if (!(n > 0)) throw new Error(`bad number ${x}`); return n; });
  const ALL = ['throughput', 'latency', 'memory', 'growth', 'write-scaling', 'growth-stall', 'rust', 'redis-tier', 'adapters'];
  const sections = list(v.only || ALL.join(','));
  for (const s of sections) if (!ALL.includes(s)) throw new Error(`--only: unknown section ${s}`);
  const cfg = {
    quick,
    out: path.resolve(v.out || (quick ? path.join(__dirname, 'results', 'report-quick') : path.join(ROOT, 'docs', 'perf'))),
    sections,
    // Some sections, full size, into the default directory: merged with the full run there.
    partial: Boolean(v.only) && !quick && !v.out && sections.length < ALL.length,
    backends: list(v.backends || 'shmap,shmap-nodc,lru,lmdb,redis,ipc'),
    build: !v['no-build'],
    render: v.render,
    throughput: {
      workers: nums(v.workers || (quick ? '2' : '1,2,4,8')),
      // Seconds per run by value size (1 MB runs do few, long operations: shorter suffices).
      seconds: v.seconds ? SIZES.map(() => Number(v.seconds)) : (quick ? [0.05, 0.05, 0.05] : [0.7, 0.7, 0.5]),
      rounds: v.rounds ? nums(v.rounds)[0] : (quick ? 1 : 3),
      sizes: SIZES,
      batch: [256, 64, 2], // sync loops read the clock every `batch` ops (<~1 ms each)
    },
    latency: { workers: quick ? [2] : [2, 8], sizes: SIZES.slice(0, 2), seconds: quick ? 0.05 : 1.5, rounds: 1 },
    memory: { workers: quick ? [2] : [1, 2, 4, 8], entries: quick ? 5000 : 100000, bytes: 1024 },
    growth: { until: quick ? 16 * MiB : 1024 * MiB, valueBytes: 1000 },
    // The adapters in an express app on cluster (adapters.js): its own options, --quick or full.
    adapters: require('./adapters').options(quick ? ['--quick'] : []),
    // Issue 9's write-scaling and growth-stall sections (writes.js).
    ...require('./writes').options(quick),
  };
  if (cfg.throughput.seconds.some((s) => !(s > 0))) throw new Error('--seconds must be positive');
  return cfg;
}

// A run of some sections (--only, full size) into a directory that holds a full run's
// data.json: the sections not re-run keep that run's data, and the report says which sections
// come from which run (meta.base: the run the rest is from).
function carryOver(out, data, sections) {
  let prev;
  try { prev = JSON.parse(fs.readFileSync(path.join(out, 'data.json'), 'utf8')); } catch { return; }
  if (!prev || !prev.meta || prev.meta.quick) return;
  for (const [k, v] of Object.entries(prev)) {
    if (k !== 'meta' && k !== 'skipped' && data[k] === undefined) data[k] = v;
  }
  const base = prev.meta.base || { date: prev.meta.date, command: prev.meta.command, commit: prev.meta.machine && prev.meta.machine.commit };
  const remeasured = [...(prev.meta.remeasured || []).filter((r) => !r.sections.every((x) => sections.includes(x))),
    { sections, date: data.meta.date, command: data.meta.command, commit: data.meta.machine.commit }];
  data.meta.base = base;
  data.meta.remeasured = remeasured;
  data.skipped = { ...(prev.skipped || {}), ...(data.skipped || {}) };
  log(`note: sections other than ${sections.join(', ')} carried over from the run of ${base.date}`);
}

function log(...a) { console.log(...a); }
const fmtInt = (x) => Math.round(x).toLocaleString('en-US');

function ensureDeps() {
  const need = ['lmdb', 'ioredis', 'lru-cache'];
  if (need.every((p) => fs.existsSync(path.join(__dirname, 'node_modules', p)))) return;
  log('note: installing bench dependencies (npm install in node/bench) ...');
  const r = spawnSync('npm', ['install', '--prefix', __dirname, '--no-audit', '--no-fund'], { stdio: 'inherit' });
  if (r.status !== 0) log('note: npm install failed; backends that need it will be skipped');
}

// Builds the addon (npm --prefix node run build) when node/shmap.node is missing or older than
// any Rust source it is built from. Returns a note for the report.
function ensureAddon(cfg) {
  const addon = path.join(NODE_DIR, 'shmap.node');
  const newest = (dir, re) => {
    let t = 0;
    if (!fs.existsSync(dir)) return 0;
    for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (e.isFile() && re.test(e.name)) t = Math.max(t, fs.statSync(path.join(e.parentPath || e.path, e.name)).mtimeMs);
    }
    return t;
  };
  const sources = Math.max(newest(path.join(ROOT, 'src'), /\.rs$/), newest(path.join(NODE_DIR, 'src'), /\.rs$/),
    ...['Cargo.toml', 'Cargo.lock', 'node/Cargo.toml', 'node/build.rs'].map((f) => {
      try { return fs.statSync(path.join(ROOT, f)).mtimeMs; } catch { return 0; }
    }));
  const have = fs.existsSync(addon) ? fs.statSync(addon).mtimeMs : 0;
  if (have && (have >= sources || !cfg.build)) {
    return have >= sources ? 'node/shmap.node up to date with the sources' : 'node/shmap.node older than the sources (--no-build)';
  }
  if (!cfg.build) return 'node/shmap.node missing (--no-build): shmap skipped';
  log(`note: ${have ? 'node/shmap.node is older than the Rust sources' : 'node/shmap.node is missing'}: npm --prefix node run build ...`);
  const t = Date.now();
  const r = spawnSync('npm', ['--prefix', NODE_DIR, 'run', 'build'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status === 0) return `built with npm --prefix node run build (${((Date.now() - t) / 1e3).toFixed(0)} s)`;
  log('note: the addon build failed; using the existing node/shmap.node if any');
  return `build failed; ${have ? 'used the existing node/shmap.node (older than the sources)' : 'no addon: shmap skipped'}`;
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return r.status === 0 ? r.stdout.trim() : null;
}

function machine() {
  const pkgVersion = (p) => {
    try { return JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', p, 'package.json'), 'utf8')).version; } catch { return null; }
  };
  const osRelease = (() => { try { return /PRETTY_NAME="([^"]+)"/.exec(fs.readFileSync('/etc/os-release', 'utf8'))[1]; } catch { return null; } })();
  const redis = sh('redis-server', ['--version']);
  return {
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0] && os.cpus()[0].model,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    os: osRelease,
    kernel: os.release(),
    node: process.version,
    rustc: sh('rustc', ['--version']),
    versions: { lmdb: pkgVersion('lmdb'), ioredis: pkgVersion('ioredis'), 'lru-cache': pkgVersion('lru-cache'),
      'redis-server': redis && (/v=(\S+)/.exec(redis) || [])[1] },
    commit: sh('git', ['-C', ROOT, 'describe', '--always', '--dirty']),
  };
}
const loadavg = () => os.loadavg().map((x) => +x.toFixed(2));

function summarizeRuns(runs, valueBytes) {
  const { median } = require('./cluster');
  const rounds = runs.map((ws) => {
    const rate = ws.map((w) => (w.ops / w.ms) * 1e3);
    const bytes = ws.map((w) => (((w.gets - w.misses + w.sets) * valueBytes) / w.ms) * 1e3);
    const sum = (xs) => xs.reduce((a, b) => a + b, 0);
    return { perProcess: sum(rate) / rate.length, aggregate: sum(rate), mbPerProcess: sum(bytes) / bytes.length / 1e6,
      cpuPerOpUs: (sum(ws.map((w) => w.cpuMs)) * 1e3) / Math.max(1, sum(ws.map((w) => w.ops))),
      // CPU the workers got, in cores: near min(N, nproc) unless they waited or others ran.
      cores: sum(ws.map((w) => w.cpuMs)) / (sum(ws.map((w) => w.ms)) / ws.length) };
  });
  const med = (k) => median(rounds.map((r) => r[k]));
  const pp = rounds.map((r) => r.perProcess);
  return { perProcess: med('perProcess'), aggregate: med('aggregate'), mbPerProcess: med('mbPerProcess'),
    cpuPerOpUs: med('cpuPerOpUs'), rounds: pp, cores: rounds.map((r) => +r.cores.toFixed(2)), min: Math.min(...pp), max: Math.max(...pp),
    misses: runs.flat().reduce((a, w) => a + w.misses, 0) };
}

async function initBackends(names, cfg) {
  const { load } = require('./backends');
  const active = [], skipped = {};
  for (const name of names) {
    const b = load(name);
    const why = await b.init({ lmdbWrite: 'putSync' });
    if (why) { skipped[name] = why; log(`note: skipping ${name}: ${why}`); } else active.push(b);
  }
  return { active, skipped };
}

// shmap's speed over another backend's: the median over rounds of the two backends' ratio in the
// same round (they ran seconds apart), which cancels slow drifts of the machine's load.
function pairedRatio(a, b) {
  if (a.rounds.length !== b.rounds.length) return a.perProcess / b.perProcess;
  return require('./cluster').median(a.rounds.map((x, i) => x / b.rounds[i]));
}

// CPU time the machine's vCPUs accounted (all states, idle included) per second of wall time, in
// cores: the machine's nproc when the hypervisor runs every vCPU all the time, less when the host
// is busy elsewhere (this guest sees no steal time). Measured around each run.
const USER_HZ = 100;
function cpuTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1, 9).map(Number);
  return { ticks: f.reduce((a, b) => a + b, 0), busy: f.reduce((a, b) => a + b, 0) - f[3] - f[4], t: performance.now() };
}
const vcpus = (a, b) => ({ available: +((b.ticks - a.ticks) / USER_HZ / ((b.t - a.t) / 1e3)).toFixed(2),
  busy: +((b.busy - a.busy) / USER_HZ / ((b.t - a.t) / 1e3)).toFixed(2) });

// Runs `job` for every active backend on `workers`, `rounds` times, in an order rotated per round.
// onRun(backend, round, workers' results, { available, busy } vCPUs during the run).
// A backend whose run fails (an error, or a worker that died in its native code) is left out
// of the rest of this cell only, and the failure is logged; later cells try it again.
async function alternate(workers, active, skipped, opts, rounds, job, onRun) {
  const { runOnce } = require('./cluster');
  const failed = new Set();
  for (let round = 0; round < rounds; round++) {
    const order = active.map((_, i) => active[(i + round) % active.length]);
    for (const b of order) {
      if (skipped[b.name] || failed.has(b.name)) continue;
      try {
        const t0 = cpuTicks();
        const ws = await runOnce(workers(), b, opts[b.name], job);
        onRun(b.name, round, ws, vcpus(t0, cpuTicks()));
      } catch (e) {
        failed.add(b.name);
        log(`note: ${b.name} failed in this cell, left out of its remaining rounds: ${e.message.split('\n')[0]}`);
      }
    }
  }
}

// ---- 1 + 3: throughput grid and latency, on one pool of forked workers.
async function throughputAndLatency(cfg, data) {
  const { MIXES, KEYS, fmt } = require('./cluster');
  const { makeValue } = require('./values');
  const { active, skipped } = await initBackends(cfg.backends, cfg);
  data.skipped = skipped;
  const want = [...(cfg.sections.includes('throughput') ? cfg.throughput.workers : []),
    ...(cfg.sections.includes('latency') ? cfg.latency.workers : [])];
  const spawn = () => {
    const w = fork(__filename, ['--worker']);
    for (const b of active) b.attach(w);
    return w;
  };
  const pool = Array.from({ length: Math.max(...want) }, spawn);
  // Workers of the first n, with any that died (a baseline that crashed) replaced.
  const workersOf = (n) => () => {
    for (let i = 0; i < n; i++) if (pool[i].exitCode !== null || pool[i].signalCode !== null) pool[i] = spawn();
    return pool.slice(0, n);
  };
  const T = cfg.throughput;
  if (cfg.sections.includes('throughput')) data.throughput = { workers: T.workers, rounds: T.rounds, seconds: T.seconds, keys: KEYS.length, cells: [], runs: [] };
  if (cfg.sections.includes('latency')) data.latency = { workers: cfg.latency.workers, seconds: cfg.latency.seconds, mix: 'read+write', cells: [] };
  const names = active.map((b) => b.name);
  try {
    for (const [si, [bytes, sizeName]] of T.sizes.entries()) {
      const doThroughput = cfg.sections.includes('throughput');
      const doLatency = cfg.sections.includes('latency') && cfg.latency.sizes.some(([b]) => b === bytes);
      if (!doThroughput && !doLatency) continue;
      const value = makeValue(bytes);
      const valueBytes = Buffer.byteLength(value);
      const opts = {};
      for (const b of active) {
        if (skipped[b.name]) continue;
        try { opts[b.name] = await b.setup({ keys: KEYS, values: KEYS.map(() => value), make: { bytes } }); } catch (e) {
          skipped[b.name] = `setup failed: ${e.message}`; log(`note: ${b.name} setup failed: ${e.message}`);
        }
      }
      try {
        if (doThroughput) {
          for (const n of T.workers) {
            for (const [mix, reads, writes] of MIXES) {
              const byBackend = {}, cpuBy = {};
              const t = Date.now();
              await alternate(workersOf(n), active, skipped, opts, T.rounds,
                { reads, writes, value, ms: T.seconds[si] * 1e3, batch: T.batch[si] },
                (backend, round, ws, cpu) => {
                  (byBackend[backend] ??= []).push(ws);
                  (cpuBy[backend] ??= []).push(cpu);
                  data.throughput.runs.push({ size: sizeName, valueBytes, workers: n, mix, round, backend, vcpus: cpu, ws });
                });
              const rows = {};
              for (const name of names) if (byBackend[name]) rows[name] = { ...summarizeRuns(byBackend[name], valueBytes), vcpus: cpuBy[name] };
              for (const [backend, s] of Object.entries(rows)) data.throughput.cells.push({ size: sizeName, valueBytes, workers: n, mix, backend, ...s });
              const cell = (name) => (rows[name] ? fmt(rows[name].perProcess) : '-');
              const ratios = rows.shmap ? names.filter((x) => x !== 'shmap' && rows[x]).map((x) => `/${x} ${pairedRatio(rows.shmap, rows[x]).toPrecision(3)}x`).join(' ') : '';
              log(`  ${sizeName.padEnd(5)} ${String(n).padStart(2)} workers ${mix.padEnd(10)} ops/s/proc: ${names.map((x) => `${x} ${cell(x)}`).join(', ')}  shmap${ratios}  (${((Date.now() - t) / 1e3).toFixed(1)} s)`);
            }
          }
        }
        if (doLatency) {
          const L = cfg.latency;
          for (const n of L.workers) {
            const byBackend = {}, cpuBy = {};
            await alternate(workersOf(n), active, skipped, opts, L.rounds,
              { reads: 1, writes: 1, value, ms: L.seconds * 1e3, batch: T.batch[si], latency: true },
              (backend, round, ws, cpu) => {
                (byBackend[backend] ??= []).push(...ws);
                (cpuBy[backend] ??= []).push({ ...cpu, workers: +(ws.reduce((a, w) => a + w.cpuMs / w.ms, 0)).toFixed(2) });
              });
            for (const [backend, ws] of Object.entries(byBackend)) {
              const c = { size: sizeName, valueBytes, workers: n, backend, vcpus: cpuBy[backend], ops: ws.reduce((a, w) => a + w.ops, 0),
                get: mergeHists(ws.map((w) => w.get)), set: mergeHists(ws.map((w) => w.set)) };
              data.latency.cells.push(c);
              const us = (x) => (x / 1e3).toFixed(x < 1e4 ? 2 : 0);
              log(`  latency ${sizeName} ${n} workers ${backend.padEnd(6)} get p50/p99/p99.9/max ${['p50', 'p99', 'p999', 'max'].map((k) => us(c.get[k])).join('/')} us; set ${['p50', 'p99', 'p999', 'max'].map((k) => us(c.set[k])).join('/')} us`);
            }
          }
        }
      } finally {
        for (const b of active) await b.teardown().catch((e) => log(`note: ${b.name} teardown: ${e.message}`));
      }
    }
  } finally {
    for (const w of pool) w.disconnect();
    for (const b of active) await b.shutdown().catch(() => {});
  }
  data.backends = names;
}

// Timer overhead: the cost of the two hrtime.bigint() calls around each timed operation.
function timerOverhead() {
  const clock = process.hrtime.bigint, xs = [];
  for (let r = 0; r < 21; r++) {
    const n = 20000, a = clock();
    let s = 0n;
    for (let i = 0; i < n; i++) { const t0 = clock(); s += clock() - t0; }
    xs.push(Number(s) / n);
    if (a < 0n) log(s);
  }
  return require('./cluster').median(xs);
}

// ---- 2: memory (PSS) of a primary plus N workers holding the same data set.
function pss(pid) {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => { const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text); return m ? Number(m[1]) * 1024 : 0; };
  return { pss: kb('Pss'), rss: kb('Rss'), pssShmem: kb('Pss_Shmem'), pssAnon: kb('Pss_Anon') };
}

// V8's young generation grows with recent allocation (to 32 MiB after reading 100 MB of values)
// and stays committed: fixed small on both sides, so PSS differs by the data held, not by history.
const MEM_NODE_ARGS = ['--expose-gc', '--max-semi-space-size=1'];

async function memory(cfg, data) {
  const M = cfg.memory;
  const { next } = require('./cluster');
  const { PKG } = require('./backends/shmap');
  let shmapOk = true;
  try { require(PKG); } catch { shmapOk = false; }
  data.memory = { entries: M.entries, valueBytes: M.bytes, nodeArgs: MEM_NODE_ARGS, cells: [], note: shmapOk ? null : 'shmap package not loadable' };
  const ask = async (procs, msgs) => {
    const done = next(procs);
    procs.forEach((p, i) => p.send(msgs[i]));
    const r = await done;
    const err = r.find((m) => m.t === 'error');
    if (err) throw new Error(err.message);
    return r;
  };
  const sum = (procs, k) => procs.reduce((a, p) => a + pss(p.pid)[k], 0);
  for (const n of M.workers) {
    for (const kind of ['shmap', 'lru']) {
      if (kind === 'shmap' && !shmapOk) continue;
      const name = `shmap-report-mem-${process.pid}`;
      const procs = Array.from({ length: n + 1 }, () => fork(__filename, ['--worker'], { execArgv: MEM_NODE_ARGS }));
      const [primary, ...workers] = procs;
      try {
        await ask(procs, procs.map(() => ({ t: 'mem', step: 'init', kind, bytes: M.bytes })));
        await sleep(200);
        const idle = { pss: sum(procs, 'pss'), rss: sum(procs, 'rss') };
        let stats = null, decodeCacheBytes = null;
        if (kind === 'shmap') {
          [{ stats }] = await ask([primary], [{ t: 'mem', step: 'create', kind, name, n: M.entries, bytes: M.bytes, maxSize: 1024 * MiB }]);
          const rs = await ask(workers, workers.map(() => ({ t: 'mem', step: 'open', kind, name, n: M.entries })));
          decodeCacheBytes = rs.reduce((a, r) => a + r.decodeCacheBytes, 0);
        } else {
          const [w0] = await ask(workers, workers.map(() => ({ t: 'mem', step: 'fill', kind, n: M.entries, bytes: M.bytes })));
          data.memory.meanValueBytes = Math.round(w0.bytes / M.entries);
        }
        await sleep(200);
        const per = procs.map((p) => pss(p.pid));
        const loaded = { pss: per.reduce((a, x) => a + x.pss, 0), rss: per.reduce((a, x) => a + x.rss, 0) };
        const cell = { workers: n, kind, idlePss: idle.pss, idleRss: idle.rss, pss: loaded.pss, rss: loaded.rss,
          primaryPss: per[0].pss, workerPss: per.slice(1).map((x) => x.pss), pssShmem: per.reduce((a, x) => a + x.pssShmem, 0),
          // PSS counts only pages some process maps; the map's file may hold more (its whole
          // ring is allocated). Memory actually used: PSS without shared memory + the file's pages.
          used: stats ? loaded.pss - per.reduce((a, x) => a + x.pssShmem, 0) + stats.fileAllocatedBytes : loaded.pss,
          fileAllocatedBytes: stats ? stats.fileAllocatedBytes : null, liveBytes: stats ? stats.liveBytes : null, decodeCacheBytes };
        data.memory.cells.push(cell);
        log(`  memory ${n} workers ${kind.padEnd(5)} total PSS ${(cell.pss / MiB).toFixed(1)} MiB (idle ${(cell.idlePss / MiB).toFixed(1)}, data ${((cell.pss - cell.idlePss) / MiB).toFixed(1)}); ` +
          `RSS ${(cell.rss / MiB).toFixed(1)} MiB${stats ? `; with the file's unmapped pages ${(cell.used / MiB).toFixed(1)} MiB (file ${(stats.fileAllocatedBytes / MiB).toFixed(1)} MiB allocated, ${(stats.liveBytes / MiB).toFixed(1)} MiB live)` : ''}`);
        await ask(procs, procs.map(() => ({ t: 'mem', step: 'close' })));
      } finally {
        for (const p of procs) p.disconnect();
        fs.rmSync(`/dev/shm/${name}`, { force: true });
      }
    }
  }
}

// ---- 4: growth from 1 MB to `until` and the shrink after deleting most entries.
async function growth(cfg, data) {
  const G = cfg.growth;
  const { PKG } = require('./backends/shmap');
  try { require(PKG); } catch (e) { data.growth = { note: `shmap package not loadable: ${e.message.split('\n')[0]}` }; return; }
  // The growing map is read all along by a second process (the reader), which times its gets.
  const runJob = (job) => new Promise((resolve, reject) => {
    const p = fork(__filename, ['--worker']);
    const r = job.reader ? fork(__filename, ['--worker']) : null;
    let readerResult = null, result = null;
    const finish = () => { if (result && (!r || readerResult)) { p.disconnect(); if (r) r.disconnect(); resolve({ ...result, reader: readerResult }); } };
    const fail = (e) => { p.kill(); if (r) r.kill(); reject(e); };
    p.on('message', (m) => {
      if (m.t === 'created') {
        r.once('message', (x) => (x.t === 'reading' ? p.send({ t: 'go' }) : fail(new Error(x.message))));
        r.send({ t: 'read', name: job.name });
      } else if (m.t === 'grown') {
        r.once('message', (x) => { if (x.t === 'done') { delete x.t; readerResult = x; finish(); } else fail(new Error(x.message)); });
        r.send({ t: 'stop' });
      } else if (m.t === 'done') { delete m.t; result = m; finish(); } else if (m.t === 'error') fail(new Error(m.message));
    });
    p.on('exit', (code) => { if (!result) fail(new Error(`growth job exited with ${code}`)); });
    p.send({ t: 'grow', ...job });
  });
  const name = `shmap-report-grow-${process.pid}`;
  try {
    const grow = await runJob({ name, until: G.until, valueBytes: G.valueBytes, reader: true });
    const presized = await runJob({ name, until: G.until, valueBytes: G.valueBytes, presized: grow.sets });
    if (grow.reader) grow.reader.get = mergeHists([grow.reader.get]);
    data.growth = { grow, presized };
    const g = grow.grown;
    log(`  growth: ${fmtInt(grow.sets)} sets of ${G.valueBytes} B to a ${(g.fileBytes / MiB).toFixed(0)} MiB file in ${(grow.growMs / 1e3).toFixed(2)} s ` +
      `(${grow.steps.length} switches, copied ${(g.bytesCopied / g.bytesWritten).toFixed(2)} B per B written, longest set ${grow.maxSetMs.toFixed(1)} ms); ` +
      `presized: ${(presized.growMs / 1e3).toFixed(2)} s + ${presized.createMs.toFixed(0)} ms to create`);
    if (grow.reader && grow.reader.get) {
      const h = grow.reader.get;
      log(`  reader meanwhile: ${fmtInt(h.n)} gets, p50 ${(h.p50 / 1e3).toFixed(2)} us, p99 ${(h.p99 / 1e3).toFixed(2)} us, p99.9 ${(h.p999 / 1e3).toFixed(1)} us, max ${(h.max / 1e6).toFixed(2)} ms; ${grow.reader.misses} misses`);
    }
    const s = grow.shrink;
    log(`  shrink: deleted ${fmtInt(s.deleted)} of ${fmtInt(grow.sets)}: allocated ${(grow.settled.fileAllocatedBytes / MiB).toFixed(0)} -> ${(s.afterDelete.fileAllocatedBytes / MiB).toFixed(0)} MiB, ` +
      `${(s.afterGrace.fileAllocatedBytes / MiB).toFixed(0)} MiB after the grace period (${s.steps.length} switches, longest delete ${s.maxDeleteMs.toFixed(1)} ms)`);
  } finally {
    fs.rmSync(`/dev/shm/${name}`, { force: true });
  }
}

// ---- 5: the Rust bench.
function rust(cfg, data) {
  const args = ['bench', '--bench', 'throughput', ...(cfg.quick ? ['--', '--quick'] : [])];
  log(`  cargo ${args.join(' ')} ...`);
  const t = Date.now();
  const r = spawnSync(process.env.CARGO || 'cargo', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Date.now() - t;
  if (r.error || r.status !== 0) {
    data.rust = { command: `cargo ${args.join(' ')}`, ms, note: `failed: ${r.error ? r.error.message : (r.stderr || '').trim().split('\n').slice(-3).join(' / ')}` };
    log(`note: ${data.rust.note}`);
    return;
  }
  const out = r.stdout;
  const i = out.indexOf('shmap benchmarks');
  data.rust = { command: `cargo ${args.join(' ')}`, ms, output: (i >= 0 ? out.slice(i) : out).trimEnd() };
  log(data.rust.output.split('\n').map((l) => `    ${l}`).join('\n'));
}

async function primary() {
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130)); // runs 'exit' cleanups
  const cfg = options();
  const render = require('./report-render');
  if (cfg.render) {
    const data = JSON.parse(fs.readFileSync(cfg.render, 'utf8'));
    render.write(path.resolve(cfg.out), data);
    log(`rendered ${cfg.render} into ${path.relative(process.cwd(), cfg.out) || '.'}`);
    return;
  }
  const t0 = Date.now();
  ensureDeps();
  const addon = ensureAddon(cfg);
  const command = `node node/bench/report.js${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  const data = { meta: { date: new Date().toISOString(), command, quick: cfg.quick, machine: machine(), addon,
    loadavgStart: loadavg(), timerOverheadNs: timerOverhead() } };
  const M = data.meta.machine;
  log(`shmap performance report${cfg.quick ? ' (--quick smoke run: the numbers mean nothing)' : ''}`);
  log(`machine: ${M.nproc} cpus, ${M.cpuModel}, ${M.memGiB} GiB, ${M.os}, node ${M.node}; load average ${data.meta.loadavgStart.join(' ')}; addon: ${addon}`);
  const phases = [];
  const phase = async (name, fn) => {
    if (!cfg.sections.includes(name)) return;
    const t = Date.now();
    log(`\n== ${name} ==`);
    await fn();
    phases.push({ name, seconds: (Date.now() - t) / 1e3, loadavgEnd: loadavg() });
    log(`  (${((Date.now() - t) / 1e3).toFixed(0)} s, load average ${loadavg().join(' ')})`);
  };
  if (cfg.sections.includes('throughput') || cfg.sections.includes('latency')) {
    const t = Date.now();
    log(`\n== throughput${cfg.sections.includes('latency') ? ' and latency' : ''} ==`);
    await throughputAndLatency(cfg, data);
    phases.push({ name: 'throughput+latency', seconds: (Date.now() - t) / 1e3, loadavgEnd: loadavg() });
  }
  await phase('memory', () => memory(cfg, data));
  await phase('growth', () => growth(cfg, data));
  await phase('write-scaling', () => {
    let lmdbOk = true;
    try { require.resolve('lmdb'); } catch { lmdbOk = false; log('note: lmdb is not installed: write-scaling without lmdb-js'); }
    return require('./writes').writeScaling(cfg, data, { log, workerFile: __filename, lmdbOk });
  });
  await phase('growth-stall', () => require('./writes').growthStall(cfg, data, { log, workerFile: __filename }));
  await phase('rust', () => rust(cfg, data));
  // 6: shmap/redis (redis-tier.js: invalidation latency, L1 hit cost, memory against bentocache).
  await phase('redis-tier', async () => { data.redisTier = await require('./redis-tier').run({ quick: cfg.quick, log }); });
  await phase('adapters', async () => { data.adapters = await require('./adapters').run(cfg.adapters, log); });
  data.meta.phases = phases;
  data.meta.loadavgEnd = loadavg();
  data.meta.wallSeconds = (Date.now() - t0) / 1e3;
  if (cfg.partial) carryOver(cfg.out, data, cfg.sections);
  render.write(cfg.out, data);
  log(`\nwrote ${path.relative(process.cwd(), cfg.out) || '.'}/{report.md,data.json,*.svg} in ${data.meta.wallSeconds.toFixed(0)} s; load average at end ${data.meta.loadavgEnd.join(' ')}`);
}

if (process.argv.includes('--worker')) worker();
else primary().catch((e) => { console.error(e); process.exit(1); });
