'use strict';
// The adapters in a real app: an express app on `cluster` (N workers sharing one port) with
// sessions (express-session), a rate limit (express-rate-limit) and a cache-aside endpoint
// (Keyv), driven by autocannon, with three stacks of stores:
//
//   shmap   ShmapSessionStore + ShmapStore + KeyvShmap, one map shared by the workers
//   redis   connect-redis 9 + rate-limit-redis + @keyv/redis on a local redis-server
//           (what users run across workers today)
//   memory  express-session's MemoryStore + express-rate-limit's MemoryStore + Keyv's Map:
//           a per-process ceiling, wrong across workers (each worker has its own counters and
//           cache). So that it does the same work per request as the shared stores, each login's
//           session is copied to every worker's MemoryStore before the load starts: without
//           that, 3 requests in 4 would find no session on a 4-worker app (and make a new one
//           instead of parsing and touching it).
//
// `copiesSessions` is the bench's own plumbing (worker -> primary -> workers, at login only),
// outside every measured request.
//
// Each request: the rate limiter counts it (one increment), express-session loads the session
// named by the request's cookie and touches it (the session is unmodified), and the handler
// reads a ~1 KB item through Keyv, loading and storing it on a miss (1,000 items, 60 s TTL).
// Requests pick one of SESSIONS session cookies and CLIENTS rate-limit keys at random.
//
//   node node/bench/adapters.js --quick          smoke run (seconds): asserts nothing
//   node node/bench/adapters.js                  4 workers, 12 rounds of 3 s per stack (~2.5 min)
//   node node/bench/adapters.js --workers 2 --seconds 5 --rounds 5 --connections 64 --stacks shmap,redis
// report.js runs it as its 'adapters' section (`node node/bench/report.js --only adapters`).
//
// autocannon runs in the driver process on the same machine, so it takes CPU from the
// workers: compare stacks with each other, within one run. The three apps run side by side
// and the load moves between them every few seconds, so rounds compared ran seconds apart;
// each round also records the stack's CPU time per request (its cluster, and redis-server
// for the Redis stack), which the machine's noise disturbs far less than requests/s.
const fs = require('fs');
const http = require('http');
const path = require('path');
const { fork, spawnSync } = require('child_process');
const { parseArgs } = require('util');

const NODE_DIR = path.resolve(__dirname, '..');
const STACKS = ['shmap', 'redis', 'memory'];
const SESSIONS = 200;
const CLIENTS = 500;
const ITEMS = 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const a = [...xs].sort((x, y) => x - y), h = a.length >> 1; return a.length % 2 ? a[h] : (a[h - 1] + a[h]) / 2; };

// ------------------------------------------------------------------ the app (cluster primary + workers)
function item(id) {
  return { id, name: `item ${id}`, price: (id * 7919) % 10000 / 100, tags: ['a', 'b', 'c'], description: 'x'.repeat(900) };
}

async function stores(stack, opts) {
  if (stack === 'shmap') {
    const { ShmapSessionStore } = require(path.join(NODE_DIR, 'adapters', 'express-session'));
    const { ShmapStore } = require(path.join(NODE_DIR, 'adapters', 'express-rate-limit'));
    const { KeyvShmap } = require(path.join(NODE_DIR, 'adapters', 'keyv'));
    const { Shmap } = require(NODE_DIR);
    // Sessions and counters in a map that never evicts; the cache in one that may.
    const state = new Shmap(opts.map, { evict: false });
    const cache = new Shmap(`${opts.map}-cache`);
    return { session: new ShmapSessionStore(state), rateLimit: new ShmapStore(state), keyv: new KeyvShmap(cache) };
  }
  if (stack === 'redis') {
    const { createClient } = require('redis');
    const { RedisStore: SessionRedis } = require('connect-redis');
    const { RedisStore: LimitRedis } = require('rate-limit-redis');
    const { default: KeyvRedis } = require('@keyv/redis');
    const url = `redis://127.0.0.1:${opts.redisPort}`;
    const client = createClient({ url });
    await client.connect();
    return {
      session: new SessionRedis({ client }),
      rateLimit: new LimitRedis({ sendCommand: (...args) => client.sendCommand(args) }),
      keyv: new KeyvRedis(url),
    };
  }
  // The libraries' memory stores (Keyv's Map and express-rate-limit's MemoryStore by default).
  const session = require('express-session');
  return { session: new session.MemoryStore(), rateLimit: undefined, keyv: undefined, copiesSessions: true };
}

async function appWorker(stack, opts) {
  const express = require('express');
  const session = require('express-session');
  const { rateLimit } = require('express-rate-limit');
  const { Keyv } = require('keyv');
  const s = await stores(stack, opts);
  const keyv = new Keyv(s.keyv ? { store: s.keyv, namespace: 'items' } : { namespace: 'items' });
  const app = express();
  app.set('etag', false);
  app.use(rateLimit({
    windowMs: 60_000, limit: 1e9, standardHeaders: 'draft-8', legacyHeaders: false,
    keyGenerator: (req) => req.get('x-client') || 'none', store: s.rateLimit,
  }));
  app.use(session({
    store: s.session, secret: 'bench', resave: false, saveUninitialized: false,
    cookie: { maxAge: 3_600_000 }, name: 'sid',
  }));
  app.post('/login', (req, res) => {
    req.session.user = req.get('x-user');
    if (!s.copiesSessions) return res.json({ ok: true });
    // Per-process stores: the session goes to the other workers' stores too (through the
    // primary), so that every request finds its session as it does with a shared store.
    return req.session.save((err) => {
      if (err) return res.status(500).end();
      process.send({ t: 'session', sid: req.sessionID, sess: JSON.parse(JSON.stringify(req.session)) }, () => res.json({ ok: true }));
    });
  });
  app.get('/item/:id', async (req, res) => {
    const id = Number(req.params.id);
    let v = await keyv.get(String(id));
    if (v === undefined) {
      v = item(id);
      await keyv.set(String(id), v, 60_000);
    }
    res.json({ user: req.session.user || null, item: v });
  });
  const server = app.listen(opts.port, '127.0.0.1', () => process.send({ t: 'listening' }));
  process.on('message', (m) => {
    if (m === 'stop') server.close(() => process.exit(0));
    else if (m && m.t === 'session') s.session.set(m.sid, m.sess, (err) => process.send({ t: 'copied', err: err && String(err) }));
  });
}

function appPrimary(stack, opts) {
  const cluster = require('cluster');
  if (!cluster.isPrimary) return appWorker(stack, opts).catch((e) => { console.error(e); process.exit(1); });
  if (stack === 'shmap') {
    // The primary creates the maps empty; the workers attach.
    const { Shmap } = require(NODE_DIR);
    // Created at a size that holds the run's sessions, counters and items, so that the map's
    // growth (a one-off) is not what the first seconds measure.
    new Shmap(opts.map, { reset: true, evict: false, maxSize: 256 << 20, initialSize: 8 << 20 }).close();
    new Shmap(`${opts.map}-cache`, { reset: true, maxSize: 256 << 20, initialSize: 8 << 20 }).close();
  }
  let up = 0;
  for (let i = 0; i < opts.workers; i++) {
    const w = cluster.fork();
    w.on('message', (m) => {
      if (m.t === 'listening' && ++up === opts.workers) process.send({ t: 'ready' });
      else if (m.t === 'session') {
        // A login on a per-process stack: copy the session to every other worker.
        for (const o of Object.values(cluster.workers)) if (o !== w) o.send(m);
      } else if (m.t === 'copied') process.send(m);
    });
  }
  cluster.on('exit', (w, code) => { if (code) { console.error(`worker exited ${code}`); process.exit(1); } });
  process.on('message', (m) => {
    if (m !== 'stop') return;
    for (const w of Object.values(cluster.workers)) w.send('stop');
    setTimeout(() => process.exit(0), 2000).unref();
    cluster.on('exit', () => { if (Object.keys(cluster.workers).length === 0) process.exit(0); });
  });
}

// ------------------------------------------------------------------ the driver
function options(argv) {
  const { values: v } = parseArgs({ args: argv, strict: false, options: {
    quick: { type: 'boolean' }, workers: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' },
    connections: { type: 'string' }, stacks: { type: 'string' }, json: { type: 'string' },
  } });
  const quick = Boolean(v.quick);
  const stacks = (v.stacks || STACKS.join(',')).split(',').filter(Boolean);
  for (const s of stacks) if (!STACKS.includes(s)) throw new Error(`--stacks: unknown stack ${s}`);
  return {
    quick,
    stacks,
    workers: Number(v.workers || (quick ? 2 : 4)),
    seconds: Number(v.seconds || (quick ? 0.5 : 3)),
    warmup: quick ? 0.3 : 2,
    rounds: Number(v.rounds || (quick ? 1 : 12)),
    connections: Number(v.connections || (quick ? 16 : 64)),
    json: v.json,
  };
}

const { freePort } = require('../../scripts/redis-server');

function post(port, p, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.headers['set-cookie']));
    });
    req.on('error', reject);
    req.end();
  });
}

function ensureDeps() {
  const bench = ['autocannon', 'connect-redis', 'rate-limit-redis', '@keyv/redis', 'redis', 'express', 'express-session', 'express-rate-limit', 'keyv'];
  if (!bench.every((p) => fs.existsSync(path.join(__dirname, 'node_modules', p)))) {
    console.log('note: installing bench dependencies (npm install in node/bench) ...');
    spawnSync('npm', ['install', '--prefix', __dirname, '--no-audit', '--no-fund'], { stdio: 'inherit' });
  }
  // The adapters resolve their host libraries from node/ (its devDependencies).
  if (!['express-session', 'express-rate-limit', 'keyv'].every((p) => fs.existsSync(path.join(NODE_DIR, 'node_modules', p)))) {
    console.log('note: installing the package\'s dev dependencies (npm install --ignore-scripts in node/) ...');
    spawnSync('npm', ['install', '--prefix', NODE_DIR, '--no-audit', '--no-fund', '--ignore-scripts'], { stdio: 'inherit' });
  }
}

async function startStack(stack, cfg, redisPort) {
  const port = await freePort();
  const map = `shmap-bench-adapters-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const args = ['--app', stack, '--port', String(port), '--workers', String(cfg.workers), '--map', map, '--redis-port', String(redisPort || 0)];
  const child = fork(__filename, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`${stack} app exited (${code}) before it was ready`)));
  });
  // Sessions copied between a per-process stack's workers (see /login).
  let copied = 0;
  child.on('message', (m) => {
    if (!m || m.t !== 'copied') return;
    if (m.err) console.error(`copying a session: ${m.err}`);
    copied++;
  });
  const copiedAll = async (n) => {
    for (const t0 = Date.now(); copied < n; await sleep(10)) {
      if (Date.now() - t0 > 10_000) throw new Error(`${stack}: ${copied} of ${n} sessions copied in 10 s`);
    }
  };
  const stop = async () => {
    child.send('stop');
    await new Promise((resolve) => { if (child.exitCode !== null) resolve(); else child.once('exit', resolve); });
    for (const f of [map, `${map}-cache`]) fs.rmSync(`/dev/shm/${f}`, { force: true });
  };
  return { port, stop, pid: child.pid, copiedAll };
}

// CPU time (ms) of `pids` and all their descendants, from /proc (utime + stime).
function treeCpuMs(pids) {
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  const procs = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
      procs.push({ pid: Number(e), ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) * tick });
    } catch { /* exited meanwhile */ }
  }
  const tree = new Set(pids.filter(Boolean));
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs) if (!tree.has(p.pid) && tree.has(p.ppid)) { tree.add(p.pid); grew = true; }
  }
  return procs.reduce((a, p) => a + (tree.has(p.pid) ? p.cpu : 0), 0);
}

// Starts a stack's app, logs its users in and warms it up; returns a slice runner.
async function prepare(stack, cfg, redis) {
  const autocannon = require('autocannon');
  const app = await startStack(stack, cfg, redis && redis.port);
  try {
    // Log SESSIONS users in (through the cluster: each login lands on some worker).
    const cookies = [];
    for (let i = 0; i < SESSIONS; i++) {
      const c = await post(app.port, '/login', { 'x-user': `user${i}`, 'x-client': `c${i % CLIENTS}` });
      cookies.push(c ? c[0].split(';')[0] : '');
    }
    if (stack === 'memory') await app.copiedAll(SESSIONS * (cfg.workers - 1));
    const drive = (seconds) => autocannon({
      url: `http://127.0.0.1:${app.port}`,
      connections: cfg.connections,
      duration: seconds,
      requests: [{
        method: 'GET',
        setupRequest: (req) => ({
          ...req,
          path: `/item/${(Math.random() * ITEMS) | 0}`,
          headers: { cookie: cookies[(Math.random() * SESSIONS) | 0], 'x-client': `c${(Math.random() * CLIENTS) | 0}` },
        }),
      }],
    });
    await drive(cfg.warmup);
    // The stack's CPU: its cluster, and for Redis the server too (autocannon's is nobody's).
    const cpu = () => treeCpuMs([app.pid, stack === 'redis' ? redis.pid : 0]);
    const slice = async (seconds) => {
      const c0 = cpu();
      const r = await drive(seconds);
      const cpuMs = cpu() - c0;
      return {
        requestsPerSec: r.requests.average,
        latencyP50: r.latency.p50,
        latencyP99: r.latency.p99,
        non2xx: r.non2xx,
        errors: r.errors + r.timeouts,
        requests: r.requests.total,
        cpuMs,
        cpuUsPerRequest: r.requests.total ? (cpuMs * 1000) / r.requests.total : null,
      };
    };
    return { slice, stop: app.stop };
  } catch (e) {
    await app.stop();
    throw e;
  }
}

// Starts redis-server through the bench's redis backend (installs it with apt-get when root).
async function startRedis() {
  const backend = require('./backends/redis');
  const why = await backend.init();
  if (why) return { why };
  const { createClient } = require('redis');
  const port = backend.port();
  const admin = createClient({ url: `redis://127.0.0.1:${port}` });
  await admin.connect();
  return { port, pid: backend.pid(), flush: () => admin.flushAll(), stop: async () => { await admin.quit(); await backend.shutdown(); } };
}

/** Runs the benchmark; returns its data (report.js's `data.adapters`). */
async function run(cfg, log = console.log) {
  ensureDeps();
  let redis = null;
  const skipped = {};
  if (cfg.stacks.includes('redis')) {
    redis = await startRedis();
    if (redis.why) { skipped.redis = redis.why; log(`note: skipping redis: ${redis.why}`); redis = null; }
  }
  const stacks = cfg.stacks.filter((s) => !skipped[s]);
  const runs = Object.fromEntries(stacks.map((s) => [s, []]));
  const apps = {};
  try {
    // Every stack's app runs at once (an idle one costs nothing); the load moves from one to
    // the next every `seconds`, the order rotating round by round, so that the rounds compared
    // ran seconds apart and the machine's drifts fall on every stack alike.
    if (redis) await redis.flush();
    for (const stack of stacks) apps[stack] = await prepare(stack, cfg, stack === 'redis' ? redis : null);
    for (const stack of stacks) await apps[stack].slice(cfg.warmup); // warm again, all started: not recorded
    for (let round = 0; round < cfg.rounds; round++) {
      for (let j = 0; j < stacks.length; j++) {
        const stack = stacks[(round + j) % stacks.length];
        const r = await apps[stack].slice(cfg.seconds);
        runs[stack].push(r);
        log(`  round ${String(round + 1).padStart(2)} ${stack.padEnd(6)} ${Math.round(r.requestsPerSec).toLocaleString('en-US').padStart(8)} req/s  ` +
          `${r.cpuUsPerRequest === null ? '-' : r.cpuUsPerRequest.toFixed(0)} µs CPU/request  p50 ${r.latencyP50} ms  p99 ${r.latencyP99} ms  non-2xx ${r.non2xx}  errors ${r.errors}`);
      }
    }
  } finally {
    for (const a of Object.values(apps)) await a.stop();
    if (redis) await redis.stop();
  }
  const summary = {};
  for (const s of stacks) {
    const rs = runs[s];
    summary[s] = { requestsPerSec: median(rs.map((r) => r.requestsPerSec)), cpuUsPerRequest: median(rs.map((r) => r.cpuUsPerRequest)),
      latencyP50: median(rs.map((r) => r.latencyP50)),
      latencyP99: median(rs.map((r) => r.latencyP99)), non2xx: rs.reduce((a, r) => a + r.non2xx, 0), errors: rs.reduce((a, r) => a + r.errors, 0) };
  }
  // shmap over another stack: the median of the per-round ratios (they ran seconds apart);
  // for CPU, the other stack's CPU per request over shmap's (above 1: shmap costs less).
  const ratio = (other, of = 'shmap') => (runs[of] && runs[other] ? median(runs[of].map((r, i) => r.requestsPerSec / runs[other][i].requestsPerSec)) : null);
  const cpuRatio = (other) => (runs.shmap && runs[other] ? median(runs.shmap.map((r, i) => runs[other][i].cpuUsPerRequest / r.cpuUsPerRequest)) : null);
  const data = {
    workers: cfg.workers, seconds: cfg.seconds, rounds: cfg.rounds, connections: cfg.connections,
    sessions: SESSIONS, clients: CLIENTS, items: ITEMS, memorySessionsCopied: true, skipped, runs, summary,
    ratios: { vsRedis: ratio('redis'), vsMemory: ratio('memory'), memoryVsRedis: ratio('redis', 'memory') },
    cpuRatios: { vsRedis: cpuRatio('redis'), vsMemory: cpuRatio('memory') },
    goals: { vsRedis: 1.3, vsMemory: 0.95 },
    versions: versions(),
  };
  if (data.ratios.vsRedis) log(`  shmap / redis  ${data.ratios.vsRedis.toFixed(2)}x (goal >= 1.3x)`);
  if (data.ratios.vsMemory) log(`  shmap / memory ${data.ratios.vsMemory.toFixed(2)}x (goal >= 0.95x)`);
  if (data.ratios.memoryVsRedis) log(`  memory / redis ${data.ratios.memoryVsRedis.toFixed(2)}x (the most a store reaches here)`);
  for (const [k, v] of Object.entries(data.cpuRatios)) if (v) log(`  CPU per request, ${k.slice(2).toLowerCase()} / shmap: ${v.toFixed(2)}x`);
  return data;
}

function versions() {
  const v = (dir, p) => { try { return JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', p, 'package.json'), 'utf8')).version; } catch { return null; } };
  const out = {};
  for (const p of ['express', 'express-session', 'express-rate-limit', 'keyv', 'connect-redis', 'rate-limit-redis', '@keyv/redis', 'redis', 'autocannon']) out[p] = v(__dirname, p);
  return out;
}

module.exports = { run, options };

if (require.main === module) {
  const i = process.argv.indexOf('--app');
  if (i >= 0) {
    const { values: v } = parseArgs({ args: process.argv.slice(2), strict: false, options: {
      app: { type: 'string' }, port: { type: 'string' }, workers: { type: 'string' }, map: { type: 'string' }, 'redis-port': { type: 'string' },
    } });
    appPrimary(v.app, { port: Number(v.port), workers: Number(v.workers), map: v.map, redisPort: Number(v['redis-port']) });
  } else {
    const cfg = options(process.argv.slice(2));
    run(cfg).then((data) => {
      if (cfg.json) fs.writeFileSync(cfg.json, `${JSON.stringify(data, null, 1)}\n`);
      // The servers' handles are gone; autocannon may keep timers: exit explicitly.
      process.exit(0);
    }).catch((e) => { console.error(e); process.exit(1); });
  }
}
