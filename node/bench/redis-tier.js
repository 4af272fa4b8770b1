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
const { ensureRedisServer, freePort } = require('../../scripts/redis-server');
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
  return { pss: kb('Pss'), pssAnon: kb('Pss_Anon'), pssFile: kb('Pss_File'), pssShmem: kb('Pss_Shmem'), rss: kb('Rss') };
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
  } else if (role === 'cacheable') {
    // cacheable: an in-memory primary (CacheableMemory, unbounded) per process, Redis as the
    // secondary (@keyv/redis) and CacheableSync over Redis pub/sub (@qified/redis). Its Redis
    // packages use node-redis (@redis/client), not ioredis: there is no ioredis store for it.
    redis.disconnect();
    const { Cacheable } = require(path.join(DEPS, 'cacheable'));
    const KeyvRedis = require(path.join(DEPS, '@keyv', 'redis')).default;
    const { RedisMessageProvider } = require(path.join(DEPS, '@qified', 'redis'));
    const uri = `redis://127.0.0.1:${cfg.port}`;
    const c = new Cacheable({ secondary: new KeyvRedis(uri), sync: { qified: new RedisMessageProvider({ uri }) } });
    c.on('error', () => {});
    cache = { get: (k) => c.get(k), set: (k, v) => c.set(k, v, '1h'), close: () => c.disconnect() };
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
    async warm({ key, n = 1 }) { for (let i = 0; i < n; i++) await cache.get(n === 1 ? key : `${key}${i}`); return {}; },
    stats() { return cache.tier ? cache.tier.stats() : {}; },
    heap() { if (global.gc) global.gc(); const m = process.memoryUsage(); return { heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, rss: m.rss, arrayBuffers: m.arrayBuffers }; },
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

const hasCacheable = () => ['cacheable', '@keyv/redis', '@qified/redis'].every((d) => fs.existsSync(path.join(DEPS, d, 'package.json')));

function ensureDeps(log) {
  if (fs.existsSync(path.join(DEPS, 'bentocache')) && fs.existsSync(path.join(DEPS, 'ioredis')) && hasCacheable()) return;
  log('note: installing node/bench/redis-tier dependencies (bentocache, ioredis 5, cacheable) ...');
  spawnSync('npm', ['install', '--prefix', path.join(HERE, 'redis-tier'), '--no-audit', '--no-fund'], { stdio: 'inherit' });
}

async function startRedis(log) {
  const why = ensureRedisServer(log);
  if (why) return { why };
  const port = await freePort();
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

    // L1 hit against an awaited bare map.get of the same 100-character string (an entry
    // without a TTL), and against awaiting map.get of the tier's own L1 entry (its key, and its
    // TTL: l1Ttl caps every L1 entry, and the core reads the clock for an entry with a TTL).
    const s = 'x'.repeat(100);
    await A.set('hot', s);
    mapA.set('bare', s);
    await A.get('hot');
    const l1Key = `${TIER_OPTS.prefix}\0d${A.stats().epoch}\0hot`;
    const n = cfg.hitOps;
    // Every loop lets the event loop turn every 1024 ops (as a server does): a loop of
    // microtasks alone starves the tier's timers, and its epoch would lapse.
    const loops = {
      tier: async () => { for (let i = 0; i < n; i++) { await A.get('hot'); if ((i & 1023) === 0) await turn(); } },
      bare: async () => { for (let i = 0; i < n; i++) { await mapA.get('bare'); if ((i & 1023) === 0) await turn(); } },
      entry: async () => { for (let i = 0; i < n; i++) { await mapA.get(l1Key); if ((i & 1023) === 0) await turn(); } },
    };
    const names = Object.keys(loops);
    const ns = { tier: [], bare: [], entry: [] };
    for (let r = 0; r < cfg.hitRounds; r++) {
      for (let j = 0; j < names.length; j++) { // rotated order: no loop always runs first
        const k = names[(r + j) % names.length];
        const t0 = now();
        await loops[k]();
        ns[k].push((now() - t0) / n);
      }
    }
    const st = A.stats();
    const ratio = (k) => median(ns.tier.map((x, i) => x / ns[k][i]));
    out.l1Hit = { ops: n, rounds: cfg.hitRounds, tierNs: median(ns.tier), bareNs: median(ns.bare), entryNs: median(ns.entry), ratio: ratio('bare'), entryRatio: ratio('entry'), l1Hits: st.l1Hits };
    log(`  L1 hit: await tier.get ${out.l1Hit.tierNs.toFixed(0)} ns, await map.get ${out.l1Hit.bareNs.toFixed(0)} ns: ${out.l1Hit.ratio.toFixed(2)}x (goal <= 1.5x); ` +
      `await map.get of the tier's L1 entry (its key, its TTL) ${out.l1Hit.entryNs.toFixed(0)} ns: ${out.l1Hit.entryRatio.toFixed(2)}x`);
  } finally {
    await B.call('close').catch(() => {});
    B.disconnect();
    await A.close();
    redis.disconnect();
    mapA.close();
    for (const n of [nameA, nameB]) fs.rmSync(`/dev/shm/${n}`, { force: true });
  }
}

// What one host's W workers cost, counted once (README of the bench, "redis-tier.js"):
//   host = sum over the workers of (Pss - Pss_Shmem)  +  the map file's allocated bytes.
// PSS already splits shared pages between the processes mapping them; the map's pages are
// shmem (tmpfs), so a worker's Pss_Shmem is its share of the pages of the map it touched. We
// drop those shares and count the map once, by its file's allocated blocks (every page the map
// holds, touched or not: its whole ring is reserved with fallocate), so nothing is counted
// twice and untouched reserved pages are not missed. Pss_File (node's binary and libraries)
// is split with every other process mapping them, also outside this bench, so it drifts a
// little with the machine: it is in the totals, and cancels in the hot set's cost, which is
// host (holding the hot set) - host (the same workers idle: started, connected, nothing
// cached), both measured in the same run.
function snapshot(procs, heaps, mapName) {
  const per = procs.map((p) => pss(p.pid));
  const sum = (k) => per.reduce((a, x) => a + x[k], 0);
  const s = { perAnon: per.map((x) => x.pssAnon), pss: sum('pss'), anon: sum('pssAnon'), file: sum('pssFile'), shmem: sum('pssShmem'), heapUsed: heaps.reduce((a, h) => a + h.heapUsed, 0), map: null };
  if (mapName) {
    const m = new (shmap().Shmap)(mapName);
    const st = m.stats();
    m.close();
    s.map = { allocated: st.fileAllocatedBytes, live: st.liveBytes, dead: st.deadBytes, ring: st.logCapacity, indexSlots: st.indexSlots, entries: st.entries };
  }
  s.host = s.pss - s.shmem + (s.map ? s.map.allocated : 0);
  return s;
}

const mib = (b) => `${(b / MiB).toFixed(1)} MiB`;

async function memory(cfg, srv, out, log) {
  out.memory = { workers: cfg.workers, entries: cfg.entries, valueBytes: JSON.stringify(value(0)).length, cells: [] };
  const execArgv = ['--expose-gc', '--max-semi-space-size=1'];
  const kinds = ['shmap', 'bentocache', ...(hasCacheable() ? ['cacheable'] : [])];
  if (!kinds.includes('cacheable')) log('  note: cacheable is not installed in node/bench/redis-tier; skipped');
  for (const kind of kinds) {
    await srv.admin.flushall();
    const name = `shmap-bench-tiermem-${process.pid}`;
    const mapName = kind === 'shmap' ? name : null;
    const procs = Array.from({ length: cfg.workers }, () => spawnWorker(kind, { port: srv.port, map: name, entries: cfg.entries }, execArgv));
    try {
      await Promise.all(procs.map((p) => p.ready));
      // Idle: every worker has served 1,000 reads that cache nothing (misses, through to
      // Redis: each library connects what it connects lazily, its code is compiled, its heap has
      // grown to what serving takes), then its PSS has settled (two snapshots 300 ms apart
      // within 1 MiB, at most 10).
      await Promise.all(procs.map((p) => p.call('warm', { key: 'idle-miss:', n: 1000 })));
      let idle = null;
      for (let i = 0; i < 10; i++) {
        await sleep(300);
        const s1 = snapshot(procs, await Promise.all(procs.map((p) => p.call('heap'))), mapName);
        const settled = idle && Math.abs(s1.host - idle.host) < MiB;
        idle = s1;
        if (settled) break;
      }
      await procs[0].call('fill', { n: cfg.entries });
      await Promise.all(procs.map((p) => p.call('hold', { n: cfg.entries })));
      // The steady state: after a growth the map returns the retired generation's pages a
      // grace period (1 s) after the switch, at its next write (the tier renews its lease
      // every checkInterval); measured sooner, both generations would count.
      await sleep(kind === 'shmap' ? 1600 : 300);
      const hot = snapshot(procs, await Promise.all(procs.map((p) => p.call('heap'))), mapName);
      const clients = (await srv.admin.call('CLIENT', 'LIST')).split('\n').filter(Boolean);
      const subscribed = clients.filter((l) => /\bsub=[1-9]/.test(l) || /\bpsub=[1-9]/.test(l)).length;
      const channels = await srv.admin.call('PUBSUB', 'CHANNELS');
      const stats = kind === 'shmap' ? await Promise.all(procs.map((p) => p.call('stats'))) : null;
      const grew = hot.perAnon.map((a, i) => a - idle.perAnon[i]);
      const cell = {
        kind, workers: cfg.workers, idle, hot, hotSet: hot.host - idle.host,
        anonWriter: grew[0], anonReaders: grew.length > 1 ? median(grew.slice(1)) : 0,
        subscriptions: subscribed, connections: clients.length, channels,
        flushes: stats ? stats.reduce((a, x) => a + x.flushes, 0) : undefined,
      };
      out.memory.cells.push(cell);
      log(`  memory ${kind.padEnd(10)} ${cfg.workers} workers x ${cfg.entries} entries: host ${mib(hot.host)} (idle ${mib(idle.host)}, ${mib(idle.host / cfg.workers)} a worker), ` +
        `hot set ${mib(cell.hotSet)} = anon ${mib(hot.anon - idle.anon)} (the writing worker ${mib(cell.anonWriter)}, the others ${mib(cell.anonReaders)} each) + file ${mib(hot.file - idle.file)}` +
        (hot.map ? ` + map ${mib(hot.map.allocated - idle.map.allocated)} (live ${mib(hot.map.live)}, ring ${mib(hot.map.ring)}, ${hot.map.entries} entries, flushes ${cell.flushes})` : '') +
        `; subscriptions ${subscribed}, connections ${clients.length}`);
      await Promise.all(procs.map((p) => p.call('close').catch(() => {})));
    } finally {
      for (const p of procs) p.kill();
      fs.rmSync(`/dev/shm/${name}`, { force: true });
    }
  }
  const s = out.memory.cells.find((c) => c.kind === 'shmap');
  out.memory.ratios = {};
  for (const c of out.memory.cells) {
    if (c === s) continue;
    const r = { hotSet: c.hotSet / s.hotSet, host: c.hot.host / s.hot.host };
    out.memory.ratios[c.kind] = r;
    log(`  per host, ${c.kind} / shmap: hot set ${r.hotSet.toFixed(1)}x (goal >= 3x at 8 workers x 50,000), totals ${r.host.toFixed(1)}x; subscriptions ${c.subscriptions} vs ${s.subscriptions}`);
  }
}

/** Runs the benchmark into `out` (report.js's data.redisTier). */
async function run({ quick = false, log = console.log, ...over } = {}) {
  const base = quick
    ? { latencyRounds: 20, hitOps: 20_000, hitRounds: 3, workers: 2, entries: 2000 }
    : { latencyRounds: 500, hitOps: 200_000, hitRounds: 15, workers: 8, entries: 50_000 };
  const cfg = { ...base, ...over };
  const out = { config: { quick, ...cfg }, note: null };
  ensureDeps(log);
  const srv = await startRedis(log);
  if (srv.why) { out.note = srv.why; log(`  skipped: ${srv.why}`); return out; }
  out.redisServer = srv.version;
  out.versions = {
    ioredis: require(path.join(DEPS, 'ioredis', 'package.json')).version,
    bentocache: require(path.join(DEPS, 'bentocache', 'package.json')).version,
    ...(hasCacheable() ? {
      cacheable: require(path.join(DEPS, 'cacheable', 'package.json')).version,
      keyvRedis: require(path.join(DEPS, '@keyv', 'redis', 'package.json')).version,
      qifiedRedis: require(path.join(DEPS, '@qified', 'redis', 'package.json')).version,
      nodeRedis: require(path.join(DEPS, '@redis', 'client', 'package.json')).version,
    } : {}),
  };
  try {
    const only = cfg.only ? String(cfg.only).split(',') : ['latency', 'memory'];
    if (only.includes('latency')) await latency(cfg, srv, out, log);
    if (only.includes('memory')) await memory(cfg, srv, out, log);
  } finally {
    srv.stop();
  }
  return out;
}

/** Markdown lines for report.md. */
function markdown(d) {
  const o = ['## 6. Scaling past one host (`shmap/redis`)', ''];
  if (d.note) return [...o, `Not run: ${d.note}`, ''];
  const v = d.versions;
  o.push(`\`node node/bench/redis-tier.js\` (or this report's \`--only redis-tier\`): redis-server ${d.redisServer}, ioredis ${v.ioredis}, bentocache ${v.bentocache}` +
    (v.cacheable ? `, cacheable ${v.cacheable} (@keyv/redis ${v.keyvRedis}, @qified/redis ${v.qifiedRedis}: node-redis ${v.nodeRedis}; it has no ioredis store)` : '') + '; two hosts = two maps on this machine.', '');
  if (d.latency) o.push(`- Invalidation latency (A's \`set\` acknowledged -> B's next \`get\` returns the new value), ${d.latency.rounds} rounds: p50 ${(d.latency.p50Ns / 1e3).toFixed(0)} µs, p99 ${(d.latency.p99Ns / 1e3).toFixed(0)} µs.`);
  if (d.l1Hit) {
    o.push(`- L1 hit: \`await tier.get\` ${d.l1Hit.tierNs.toFixed(0)} ns against \`await map.get\` ${d.l1Hit.bareNs.toFixed(0)} ns (**${d.l1Hit.ratio.toFixed(2)}x**; goal 1.5x), median of ${d.l1Hit.rounds} rotated rounds of ${d.l1Hit.ops.toLocaleString('en-US')} ops.`);
    if (d.l1Hit.entryNs) o.push(`  Against \`await map.get\` of the tier's own L1 entry (its longer key, and a TTL, for which the core reads the clock): ${d.l1Hit.entryNs.toFixed(0)} ns (${d.l1Hit.entryRatio.toFixed(2)}x). The rest is the epoch check's \`Date.now()\`.`);
  }
  if (d.memory) {
    const m = d.memory;
    o.push('', `Per host, ${m.workers} workers holding the same ${m.entries.toLocaleString('en-US')} entries of ~${m.valueBytes} B (${(m.workers * m.entries * m.valueBytes / MiB).toFixed(0)} MiB if every worker kept a copy). ` +
      'host = the workers\' PSS without their shares of the map (Pss_Shmem) + the map file\'s allocated bytes, once; hot set = host holding it - the same workers idle, same run:', '',
      '| | host (holding) | host (idle) | idle per worker | **hot set** | of it: anon (writer; each other worker) | file | map (allocated; live / ring) | subscriptions | connections |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of m.cells) {
      const map = c.hot.map ? `${mib(c.hot.map.allocated - c.idle.map.allocated)} (${mib(c.hot.map.live)} / ${mib(c.hot.map.ring)})` : '-';
      o.push(`| ${c.kind} | ${mib(c.hot.host)} | ${mib(c.idle.host)} | ${mib(c.idle.host / c.workers)} | **${mib(c.hotSet)}** | ${mib(c.hot.anon - c.idle.anon)} (${mib(c.anonWriter)}; ${mib(c.anonReaders)}) | ${mib(c.hot.file - c.idle.file)} | ${map} | ${c.subscriptions} | ${c.connections} |`);
    }
    if (d.config && d.config.quick) o.push('', 'A quick (smoke) run: at this size the noise of idle workers (several MiB) is as large as the data, so the ratios mean nothing.');
    for (const [k, r] of Object.entries(m.ratios || {})) o.push('', `${k} / shmap: hot set **${r.hotSet.toFixed(1)}x**, host totals ${r.host.toFixed(1)}x (goal: >= 3x less memory at 8 workers x 50,000).`);
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
  const o = process.argv.indexOf('--only');
  if (o > 0) over.only = process.argv[o + 1];
  run({ quick, ...over }).then((out) => {
    if (j > 0) fs.writeFileSync(process.argv[j + 1], `${JSON.stringify(out, null, 1)}\n`);
    process.exit(0);
  }, (e) => { console.error(e); process.exit(1); });
}
