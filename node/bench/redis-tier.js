#!/usr/bin/env node
'use strict';
// shmap/redis benchmark (issue 12), also section 6 of report.js (`--only redis-tier`):
//   1. invalidation latency: host A's set acknowledged -> host B's next get returns the new
//      value (B is another process with its own map; p50, p99);
//   2. an L1 hit (`await tier.get`) against awaiting a bare `map.get` of the same value, same run;
//   3. per host, W workers holding the same hot set (N entries of ~1 KB) through shmap/redis and
//      through bentocache (a memory L1 per process + Redis L2 + its Redis bus, on the same
//      ioredis 5 line): PSS of the workers (plus the map's allocated pages for shmap) and the
//      subscriptions each keeps on Redis (CLIENT LIST sub=, PUBSUB NUMSUB).
// Standalone: node node/bench/redis-tier.js [--quick] [--workers W] [--entries N] [--json FILE]. Needs redis-server (from
// Debian; installed when root) and `npm install` in node/bench/redis-tier (done here if missing).
// Never asserts on speed.
const fs = require('fs');
const path = require('path');
const net = require('net');
const { fork, spawn, spawnSync } = require('child_process');

const HERE = __dirname;
const NODE_DIR = path.resolve(HERE, '..');
const DEPS = path.join(HERE, 'redis-tier', 'node_modules');
const MiB = 1 << 20;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint()); // CLOCK_MONOTONIC: comparable across processes
const pct = (xs, p) => { const a = [...xs].sort((x, y) => x - y); return a[Math.min(a.length - 1, Math.floor(p * a.length))]; };
const median = (xs) => pct(xs, 0.5);
const turn = () => new Promise((r) => setImmediate(r));

function Redis() { return require(path.join(DEPS, 'ioredis')); }
function shmap() { return require(NODE_DIR); }
function tierMod() { return require(path.join(NODE_DIR, 'adapters', 'redis.js')); }
const TIER_OPTS = { prefix: 'bench:' };

function pss(pid) {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => { const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text); return m ? Number(m[1]) * 1024 : 0; };
  return { pss: kb('Pss'), pssShmem: kb('Pss_Shmem') };
}

const value = (i) => ({ id: i, body: `v${i}:`.padEnd(1000, 'x') }); // ~1 KB of JSON

// ---------------------------------------------------------------- worker side
async function worker() {
  const [, , , role, json] = process.argv;
  const cfg = JSON.parse(json);
  const Ioredis = Redis();
  const redis = new Ioredis({ host: '127.0.0.1', port: cfg.port });
  redis.on('error', () => {});
  let cache;
  if (role === 'shmap') {
    const map = new (shmap().Shmap)(cfg.map, { maxSize: 1024 * MiB });
    const tier = tierMod().createRedisTier({ map, redis, ...TIER_OPTS });
    cache = { get: (k) => tier.get(k), set: (k, v) => tier.set(k, v), close: () => tier.close(), tier };
  } else {
    const { BentoCache, bentostore } = await import(path.join(DEPS, 'bentocache', 'build', 'index.js'));
    const { memoryDriver } = await import(path.join(DEPS, 'bentocache', 'build', 'src', 'drivers', 'memory.js'));
    const { redisDriver, redisBusDriver } = await import(path.join(DEPS, 'bentocache', 'build', 'src', 'drivers', 'redis.js'));
    const bento = new BentoCache({
      default: 'c',
      stores: {
        c: bentostore()
          .useL1Layer(memoryDriver({ maxSize: '1gb', maxItems: cfg.entries * 2 }))
          .useL2Layer(redisDriver({ connection: redis }))
          .useBus(redisBusDriver({ connection: { host: '127.0.0.1', port: cfg.port } })),
      },
    });
    cache = { get: (k) => bento.get({ key: k }), set: (k, v) => bento.set({ key: k, value: v, ttl: '1h' }), close: () => bento.disconnect() };
  }
  const ops = {
    async fill({ n }) { for (let i = 0; i < n; i++) await cache.set(`k${i}`, value(i)); return {}; },
    async hold({ n }) {
      for (let pass = 0; pass < 2; pass++) {
        for (let i = 0; i < n; i++) if ((await cache.get(`k${i}`)) === undefined) throw new Error(`k${i} missing`);
      }
      if (global.gc) global.gc();
      return {};
    },
    // Latency: poll until `key` reads `v`; returns the ns since `t` (A's acknowledgement).
    async await({ key, v, t }) {
      for (;;) {
        if ((await cache.get(key)) === v) return { ns: now() - t };
        await new Promise((r) => setImmediate(r));
      }
    },
    async warm({ key }) { await cache.get(key); return {}; },
    stats() { return cache.tier ? cache.tier.stats() : {}; },
    async close() { await cache.close(); redis.disconnect(); return {}; },
  };
  process.on('message', async (m) => {
    try { process.send({ id: m.id, ok: true, r: await ops[m.op](m) }); } catch (e) { process.send({ id: m.id, ok: false, message: e.stack }); }
  });
  process.send({ id: 0, ok: true });
}

// ---------------------------------------------------------------- primary side
function spawnWorker(role, cfg, execArgv = []) {
  const p = fork(__filename, ['--worker', role, JSON.stringify(cfg)], { execArgv });
  let id = 0;
  const pending = new Map();
  const ready = new Promise((resolve) => pending.set(0, { resolve }));
  p.on('message', (m) => { const w = pending.get(m.id); pending.delete(m.id); if (m.ok) w.resolve(m.r); else w.reject(new Error(m.message)); });
  p.call = (op, args = {}) => new Promise((resolve, reject) => { const i = ++id; pending.set(i, { resolve, reject }); p.send({ id: i, op, ...args }); });
  p.ready = ready;
  return p;
}

function ensureDeps(log) {
  if (fs.existsSync(path.join(DEPS, 'bentocache')) && fs.existsSync(path.join(DEPS, 'ioredis'))) return;
  log('note: installing node/bench/redis-tier dependencies (bentocache, ioredis 5) ...');
  spawnSync('npm', ['install', '--prefix', path.join(HERE, 'redis-tier'), '--no-audit', '--no-fund'], { stdio: 'inherit' });
}

async function startRedis(log) {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    if (!process.getuid || process.getuid() !== 0) return { why: 'redis-server is not installed and this is not root' };
    log('note: installing redis-server with apt-get ...');
    spawnSync('sh', ['-c', 'apt-get install -y -qq redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)'], { stdio: 'inherit' });
  }
  const port = await new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const { port: p } = s.address(); s.close(() => resolve(p)); }); });
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  process.on('exit', () => proc.kill());
  const admin = new (Redis())({ host: '127.0.0.1', port, maxRetriesPerRequest: 50 });
  admin.on('error', () => {});
  await admin.ping();
  const version = (/v=(\S+)/.exec(spawnSync('redis-server', ['--version']).stdout.toString()) || [])[1];
  return { port, admin, version, stop: () => { admin.disconnect(); proc.kill(); } };
}

async function latency(cfg, srv, out, log) {
  const { Shmap } = shmap();
  const nameA = `shmap-bench-tierA-${process.pid}`;
  const nameB = `shmap-bench-tierB-${process.pid}`;
  const mapA = new Shmap(nameA, { reset: true });
  const redis = new (Redis())({ host: '127.0.0.1', port: srv.port });
  const A = tierMod().createRedisTier({ map: mapA, redis, ...TIER_OPTS });
  const B = spawnWorker('shmap', { port: srv.port, map: nameB });
  try {
    await B.ready;
    while (!(await B.call('stats')).subscriber || !A.stats().subscriber) await sleep(20);
    const lat = [];
    for (let i = 0; i < cfg.latencyRounds; i++) {
      await B.call('warm', { key: 'lat' });
      await A.set('lat', i);
      const t = now();
      lat.push((await B.call('await', { key: 'lat', v: i, t })).ns);
    }
    out.latency = { rounds: lat.length, p50Ns: median(lat), p99Ns: pct(lat, 0.99), maxNs: Math.max(...lat) };
    log(`  invalidation latency (A's set acknowledged -> B's get sees it), ${lat.length} rounds: p50 ${(out.latency.p50Ns / 1e3).toFixed(0)} µs, p99 ${(out.latency.p99Ns / 1e3).toFixed(0)} µs`);

    // L1 hit against an awaited bare map.get of the same 100-character string.
    const s = 'x'.repeat(100);
    await A.set('hot', s);
    mapA.set('bare', s);
    await A.get('hot');
    const n = cfg.hitOps;
    const tiers = [], bares = [];
    for (let r = 0; r < cfg.hitRounds; r++) {
      let t0 = now();
      // Both loops let the event loop turn every 1024 ops (as a server does): a loop of
      // microtasks alone starves the tier's timers, and its epoch would lapse.
      for (let i = 0; i < n; i++) { await A.get('hot'); if ((i & 1023) === 0) await turn(); }
      tiers.push((now() - t0) / n);
      t0 = now();
      for (let i = 0; i < n; i++) { await mapA.get('bare'); if ((i & 1023) === 0) await turn(); }
      bares.push((now() - t0) / n);
    }
    const st = A.stats();
    out.l1Hit = { ops: n, rounds: cfg.hitRounds, tierNs: median(tiers), bareNs: median(bares), ratio: median(tiers.map((x, i) => x / bares[i])), l1Hits: st.l1Hits };
    log(`  L1 hit: await tier.get ${out.l1Hit.tierNs.toFixed(0)} ns, await map.get ${out.l1Hit.bareNs.toFixed(0)} ns: ${out.l1Hit.ratio.toFixed(2)}x (goal <= 1.5x)`);
  } finally {
    await B.call('close').catch(() => {});
    B.disconnect();
    await A.close();
    redis.disconnect();
    mapA.close();
    for (const n of [nameA, nameB]) fs.rmSync(`/dev/shm/${n}`, { force: true });
  }
}

async function memory(cfg, srv, out, log) {
  out.memory = { workers: cfg.workers, entries: cfg.entries, valueBytes: JSON.stringify(value(0)).length, cells: [] };
  const execArgv = ['--expose-gc', '--max-semi-space-size=1'];
  for (const kind of ['shmap', 'bentocache']) {
    await srv.admin.flushall();
    const name = `shmap-bench-tiermem-${process.pid}`;
    const procs = Array.from({ length: cfg.workers }, () => spawnWorker(kind, { port: srv.port, map: name, entries: cfg.entries }, execArgv));
    try {
      await Promise.all(procs.map((p) => p.ready));
      await sleep(300);
      const idle = procs.reduce((a, p) => a + pss(p.pid).pss, 0);
      await procs[0].call('fill', { n: cfg.entries });
      await Promise.all(procs.map((p) => p.call('hold', { n: cfg.entries })));
      await sleep(300);
      const per = procs.map((p) => pss(p.pid));
      const total = per.reduce((a, x) => a + x.pss, 0);
      let used = total, fileAllocated = null;
      if (kind === 'shmap') {
        const m = new (shmap().Shmap)(name);
        fileAllocated = m.stats().fileAllocatedBytes;
        m.close();
        used = total - per.reduce((a, x) => a + x.pssShmem, 0) + fileAllocated;
      }
      const clients = (await srv.admin.call('CLIENT', 'LIST')).split('\n').filter(Boolean);
      const subscribed = clients.filter((l) => /\bsub=[1-9]/.test(l) || /\bpsub=[1-9]/.test(l)).length;
      const channels = await srv.admin.call('PUBSUB', 'CHANNELS');
      const cell = { kind, workers: cfg.workers, idlePss: idle, pss: total, used, fileAllocatedBytes: fileAllocated, subscriptions: subscribed, connections: clients.length, channels };
      out.memory.cells.push(cell);
      log(`  memory ${kind.padEnd(10)} ${cfg.workers} workers x ${cfg.entries} entries: PSS ${(total / MiB).toFixed(1)} MiB (idle ${(idle / MiB).toFixed(1)}), ` +
        `with the map's unmapped pages ${(used / MiB).toFixed(1)} MiB; subscriptions ${subscribed}, connections ${clients.length}`);
      await Promise.all(procs.map((p) => p.call('close').catch(() => {})));
    } finally {
      for (const p of procs) p.kill();
      fs.rmSync(`/dev/shm/${name}`, { force: true });
    }
  }
  const [s, b] = out.memory.cells;
  if (s && b) {
    out.memory.ratio = (b.used - b.idlePss) / (s.used - s.idlePss);
    log(`  per-host memory of the hot set: bentocache / shmap = ${out.memory.ratio.toFixed(1)}x (goal >= 3x); subscriptions ${s.subscriptions} vs ${b.subscriptions}`);
  }
}

/** Runs the benchmark into `out` (report.js's data.redisTier). */
async function run({ quick = false, log = console.log, ...over } = {}) {
  const base = quick
    ? { latencyRounds: 20, hitOps: 20_000, hitRounds: 3, workers: 2, entries: 2000 }
    : { latencyRounds: 500, hitOps: 500_000, hitRounds: 7, workers: 8, entries: 50_000 };
  const cfg = { ...base, ...over };
  const out = { config: cfg, note: null };
  ensureDeps(log);
  const srv = await startRedis(log);
  if (srv.why) { out.note = srv.why; log(`  skipped: ${srv.why}`); return out; }
  out.redisServer = srv.version;
  out.versions = {
    ioredis: require(path.join(DEPS, 'ioredis', 'package.json')).version,
    bentocache: require(path.join(DEPS, 'bentocache', 'package.json')).version,
  };
  try {
    await latency(cfg, srv, out, log);
    await memory(cfg, srv, out, log);
  } finally {
    srv.stop();
  }
  return out;
}

/** Markdown lines for report.md. */
function markdown(d) {
  const o = ['## 6. Scaling past one host (`shmap/redis`)', ''];
  if (d.note) return [...o, `Not run: ${d.note}`, ''];
  o.push(`\`node node/bench/redis-tier.js\` (or this report's \`--only redis-tier\`): redis-server ${d.redisServer}, ioredis ${d.versions.ioredis}, bentocache ${d.versions.bentocache}; two hosts = two maps on this machine.`, '');
  if (d.latency) o.push(`- Invalidation latency (A's \`set\` acknowledged -> B's next \`get\` returns the new value), ${d.latency.rounds} rounds: p50 ${(d.latency.p50Ns / 1e3).toFixed(0)} µs, p99 ${(d.latency.p99Ns / 1e3).toFixed(0)} µs.`);
  if (d.l1Hit) o.push(`- L1 hit: \`await tier.get\` ${d.l1Hit.tierNs.toFixed(0)} ns against \`await map.get\` ${d.l1Hit.bareNs.toFixed(0)} ns (${d.l1Hit.ratio.toFixed(2)}x; goal 1.5x).`);
  if (d.memory) {
    o.push('', `${d.memory.workers} workers per host holding the same ${d.memory.entries.toLocaleString('en-US')} entries of ~${d.memory.valueBytes} B:`, '',
      '| | total PSS | idle PSS | with the map\'s unmapped pages | subscriptions | connections |', '|---|---:|---:|---:|---:|---:|');
    for (const c of d.memory.cells) o.push(`| ${c.kind} | ${(c.pss / MiB).toFixed(1)} MiB | ${(c.idlePss / MiB).toFixed(1)} MiB | ${(c.used / MiB).toFixed(1)} MiB | ${c.subscriptions} | ${c.connections} |`);
    if (d.memory.ratio) o.push('', `Memory of the hot set (above idle): bentocache / shmap = ${d.memory.ratio.toFixed(1)}x (goal >= 3x at 8 workers).`);
  }
  o.push('');
  return o;
}

module.exports = { run, markdown };

if (process.argv[2] === '--worker') {
  worker().catch((e) => { console.error(e); process.exit(1); });
} else if (require.main === module) {
  const quick = process.argv.includes('--quick');
  const j = process.argv.indexOf('--json');
  const over = {};
  for (const k of ['workers', 'entries']) { const i = process.argv.indexOf(`--${k}`); if (i > 0) over[k] = Number(process.argv[i + 1]); }
  run({ quick, ...over }).then((out) => {
    if (j > 0) fs.writeFileSync(process.argv[j + 1], `${JSON.stringify(out, null, 1)}\n`);
    process.exit(0);
  }, (e) => { console.error(e); process.exit(1); });
}
