#!/usr/bin/env node
'use strict';
// Cluster benchmark: N forked workers hammer 10 keys through each backend (shmap, ipc, lmdb, redis).
//   node node/bench/cluster.js [--quick] [--workers N] [--seconds S] [--rounds R] [--json out.json]
//                              [--backends shmap,ipc,lmdb,redis] [--lmdb-write putSync|put]
// Reports medians over rounds; never asserts on speed. See README.md.
const fs = require('fs');
const path = require('path');
const { fork, spawnSync } = require('child_process');
const { parseArgs } = require('util');

const MIXES = [['read-only', 1, 0], ['read+write', 1, 1], ['read-first', 10, 1]]; // [name, gets, sets] per cycle
const SIZES = [[10240, '10 KB'], [100, '100 B']];
const KEYS = Array.from({ length: 10 }, (_, i) => `key:${i}`);

// ---------------------------------------------------------------- worker
function worker() {
  let go = null;
  process.on('disconnect', () => process.exit(0));
  process.on('message', async (m) => {
    if (m.t === 'go') return go();
    if (m.t !== 'run') return;
    try {
      const client = await require('./backends').load(m.backend).open(m.opts);
      await new Promise((resolve) => { go = resolve; process.send({ t: 'ready' }); });
      const res = await (client.sync ? loopSync : loopAsync)(client, m);
      await client.close();
      const { reads, writes } = m;
      const cycle = reads + writes;
      const gets = Math.floor(res.ops / cycle) * reads + Math.min(res.ops % cycle, reads);
      process.send({ t: 'done', ...res, gets, sets: res.ops - gets });
    } catch (e) {
      process.send({ t: 'error', message: String((e && e.stack) || e) });
    }
  });
}

// Keys are visited in a random order (per worker), reads and writes interleaved per the mix.
function keyOrder() {
  return Array.from({ length: 1024 }, () => KEYS[Math.floor(Math.random() * KEYS.length)]);
}

// Synchronous backends: no await in the loop; the clock is read every `batch` (256) ops.
function loopSync(c, { reads, writes, value, ms, batch = 256 }) {
  const keys = keyOrder(), cycle = reads + writes;
  let i = 0, misses = 0, now;
  const start = performance.now(), end = start + ms;
  do {
    for (const stop = i + batch; i < stop; i++) {
      if (i % cycle < reads) { if (c.get(keys[i & 1023]) == null) misses++; } else c.set(keys[i & 1023], value);
    }
  } while ((now = performance.now()) < end);
  return { ops: i, misses, ms: now - start };
}

// Asynchronous backends: one request outstanding; the clock is read every 16 ops.
async function loopAsync(c, { reads, writes, value, ms }) {
  const keys = keyOrder(), cycle = reads + writes;
  let i = 0, misses = 0, now;
  const start = performance.now(), end = start + ms;
  do {
    for (const stop = i + 16; i < stop; i++) {
      if (i % cycle < reads) { if ((await c.get(keys[i & 1023])) == null) misses++; } else await c.set(keys[i & 1023], value);
    }
  } while ((now = performance.now()) < end);
  return { ops: i, misses, ms: now - start };
}

// ---------------------------------------------------------------- primary
function options() {
  const { values: v } = parseArgs({ options: {
    quick: { type: 'boolean' }, workers: { type: 'string' }, seconds: { type: 'string' },
    rounds: { type: 'string' }, json: { type: 'string' }, backends: { type: 'string' },
    'lmdb-write': { type: 'string' },
  } });
  const positive = (name, x) => { if (!(x > 0)) throw new Error(`--${name} must be a positive number`); return x; };
  return {
    workers: positive('workers', Math.floor(Number(v.workers || 5))),
    seconds: positive('seconds', Number(v.seconds || (v.quick ? 0.5 : 3))),
    rounds: positive('rounds', Math.floor(Number(v.rounds || (v.quick ? 1 : 3)))),
    json: v.json,
    backends: (v.backends || 'shmap,ipc,lmdb,redis').split(','),
    lmdbWrite: v['lmdb-write'] || 'putSync',
  };
}

function ensureDeps() {
  if (['lmdb', 'ioredis'].every((p) => fs.existsSync(path.join(__dirname, 'node_modules', p)))) return;
  console.log(`note: installing bench dependencies into ${path.relative(process.cwd(), __dirname)}/node_modules ...`);
  const r = spawnSync('npm', ['install', '--prefix', __dirname, '--no-audit', '--no-fund'], { stdio: 'inherit' });
  if (r.status !== 0) console.log('note: npm install failed; backends that need it will be skipped');
}

// Next message of type ready|done|error from each worker (ipc traffic is ignored).
// The next ready/done/error message of each worker; a worker that dies (a baseline's native
// code can crash its process) answers with an error instead of hanging the run.
const next = (workers) => Promise.all(workers.map((w) => new Promise((resolve) => {
  const died = (code, signal) => done({ t: 'error', message: `worker ${w.pid} exited (${signal || code})` });
  const on = (m) => { if (['ready', 'done', 'error'].includes(m.t)) done(m); };
  const done = (m) => { w.off('message', on); w.off('exit', died); resolve(m); };
  if (w.exitCode !== null || w.signalCode !== null) return died(w.exitCode, w.signalCode);
  w.on('message', on);
  w.on('exit', died);
})));

async function runOnce(workers, backend, opts, job) {
  const ready = next(workers);
  for (const w of workers) if (w.connected) w.send({ t: 'run', backend: backend.name, opts, ...job });
  const r = await ready;
  const going = workers.filter((_, i) => r[i].t === 'ready');
  const done = next(going);
  for (const w of going) if (w.connected) w.send({ t: 'go' });
  const d = await done;
  const err = [...r, ...d].find((m) => m.t === 'error');
  if (err) throw new Error(err.message);
  return d.map(({ t, ...rest }) => rest);
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b), h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2; };
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

// Per round: mean per worker and sum of ops/s; MB/s (10^6 B) of values read (hits) or written.
function summarize(runs, valueBytes) {
  const rounds = runs.map((ws) => {
    const rate = ws.map((w) => (w.ops / w.ms) * 1e3);
    const bytes = ws.map((w) => (((w.gets - w.misses + w.sets) * valueBytes) / w.ms) * 1e3);
    return { perProcess: mean(rate), aggregate: rate.reduce((a, b) => a + b, 0), mbPerProcess: mean(bytes) / 1e6 };
  });
  const med = (k) => median(rounds.map((r) => r[k]));
  return { perProcess: med('perProcess'), aggregate: med('aggregate'), mbPerProcess: med('mbPerProcess'),
    roundsPerProcess: rounds.map((r) => r.perProcess), misses: runs.flat().reduce((a, w) => a + w.misses, 0) };
}

function printScenario(title, rows) {
  console.log(`\n${title}`);
  console.log(`  ${'backend'.padEnd(8)}${'ops/s/proc'.padStart(13)}${'aggregate'.padStart(13)}${'MB/s/proc'.padStart(11)}   rounds (ops/s/proc)`);
  for (const [name, s] of Object.entries(rows)) {
    const note = s.misses ? `  (${s.misses} misses!)` : '';
    console.log(`  ${name.padEnd(8)}${fmt(s.perProcess).padStart(13)}${fmt(s.aggregate).padStart(13)}${fmt(s.mbPerProcess, 1).padStart(11)}   ${s.roundsPerProcess.map((x) => fmt(x)).join(' ')}${note}`);
  }
  const others = Object.keys(rows).filter((n) => n !== 'shmap');
  console.log(rows.shmap
    ? `  ratios: ${others.map((n) => `shmap/${n} ${fmt(rows.shmap.perProcess / rows[n].perProcess, 1)}x`).join(', ')}`
    : '  ratios: n/a (shmap skipped)');
}

// One data set (value size) at a time: set up every backend, run the mixes, tear down.
async function runAll(cfg, workers, active, skipped) {
  const runs = [], summary = [];
  for (const [size, sizeName] of SIZES) {
    const value = require('./values').makeValue(size);
    const valueBytes = Buffer.byteLength(value);
    const opts = {};
    try {
      for (const b of active) opts[b.name] = await b.setup({ keys: KEYS, values: KEYS.map(() => value) });
      for (const [mix, reads, writes] of MIXES) {
        const scenario = `${mix} ${sizeName}`;
        const byBackend = {};
        for (let round = 0; round < cfg.rounds; round++) {
          // Alternate backends within each round; rotate the order between rounds.
          const order = active.map((_, i) => active[(i + round) % active.length]);
          for (const b of order.filter((x) => !skipped[x.name])) {
            try {
              const ws = await runOnce(workers, b, opts[b.name], { reads, writes, value, ms: cfg.seconds * 1e3 });
              (byBackend[b.name] ??= []).push(ws);
              runs.push({ scenario, mix, reads, writes, valueBytes, round, backend: b.name, workers: ws });
            } catch (e) {
              skipped[b.name] = `failed: ${e.message.split('\n')[0]}`;
              console.log(`note: ${b.name} failed in ${scenario}, skipped from now on:\n${e.message}`);
            }
          }
        }
        const rows = {};
        for (const b of active) if (byBackend[b.name]) rows[b.name] = summarize(byBackend[b.name], valueBytes);
        for (const [backend, s] of Object.entries(rows)) summary.push({ scenario, backend, valueBytes, ...s });
        printScenario(`== ${scenario} (${KEYS.length} keys x ${fmt(valueBytes)} B, gets:sets ${reads}:${writes}) ==`, rows);
      }
    } finally {
      for (const b of active) await b.teardown().catch((e) => console.log(`note: ${b.name} teardown: ${e.message}`));
    }
  }
  return { runs, summary };
}

// Markdown table of ops/s per process, for copying into README.md.
function printTable(cfg, names, summary) {
  console.log(`\nops/s per process (median of ${cfg.rounds} round(s)):\n| scenario | ${names.join(' | ')} |\n|---|${names.map(() => '---:|').join('')}`);
  for (const scenario of [...new Set(summary.map((s) => s.scenario))]) {
    const cell = (n) => { const s = summary.find((x) => x.scenario === scenario && x.backend === n); return s ? fmt(s.perProcess) : '—'; };
    console.log(`| ${scenario} | ${names.map(cell).join(' | ')} |`);
  }
}

async function primary() {
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130)); // runs 'exit' cleanups
  const cfg = options();
  ensureDeps();
  const { load } = require('./backends');
  const active = [], skipped = {};
  for (const name of cfg.backends) {
    const b = load(name);
    const why = await b.init(cfg);
    if (why) { skipped[name] = why; console.log(`note: skipping ${name}: ${why}`); } else active.push(b);
  }
  const workers = Array.from({ length: cfg.workers }, () => fork(__filename, ['--worker']));
  for (const w of workers) for (const b of active) b.attach(w);

  const os = require('os');
  const meta = { date: new Date().toISOString(), node: process.version, cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model, ...cfg, skipped, keys: KEYS.length };
  console.log(`${cfg.workers} workers, ${cfg.seconds} s x ${cfg.rounds} round(s), ${meta.cpus} cpus, node ${process.version}; backends: ${active.map((b) => b.name).join(', ')}`);
  let result;
  try {
    result = await runAll(cfg, workers, active, skipped);
  } finally {
    for (const w of workers) w.disconnect();
    for (const b of active) await b.shutdown().catch(() => {});
  }
  printTable(cfg, active.map((b) => b.name), result.summary);
  if (cfg.json) {
    fs.mkdirSync(path.dirname(path.resolve(cfg.json)), { recursive: true });
    fs.writeFileSync(cfg.json, JSON.stringify({ meta, ...result }, null, 1));
    console.log(`\nraw numbers written to ${cfg.json}`);
  }
}

// Reused by report.js (the full performance report).
module.exports = { MIXES, KEYS, keyOrder, loopSync, loopAsync, next, runOnce, summarize, median, mean, fmt };

if (require.main === module) {
  if (process.argv.includes('--worker')) worker();
  else primary().catch((e) => { console.error(e); process.exit(1); });
}
