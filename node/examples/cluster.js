#!/usr/bin/env node
'use strict';
// A primary and 5 workers sharing one shmap. Each worker serves "requests" in a loop: it reads
// products and the shared high score, writes its own entries now and then, and counts requests
// with an atomic incr. Every second each worker reports its ops/s and what it last read. Half
// way through, the primary kills every worker (SIGKILL, as a crash would) and forks new ones:
// they find the map as the old ones left it. After ~8 s the primary prints a summary and exits.
//   node examples/cluster.js [--seconds 8] [--workers 5]
const cluster = require('node:cluster');
const fs = require('fs');
const { parseArgs } = require('util');
const { Shmap } = require('..');

const { values: opts } = parseArgs({
  options: { seconds: { type: 'string', default: '8' }, workers: { type: 'string', default: '5' } },
});
const SECONDS = Number(opts.seconds);
const WORKERS = Number(opts.workers);
const NAME = process.env.SHMAP_DEMO_NAME || `shmap-demo-${cluster.isPrimary ? process.pid : process.ppid}`;
const PRODUCTS = 100;

if (cluster.isPrimary) primary();
else worker();

function primary() {
  const map = new Shmap(NAME, { reset: true, maxSize: 64 << 20 });
  process.on('exit', () => fs.rmSync(map.path, { force: true }));
  for (let i = 0; i < PRODUCTS; i++) {
    map.set(`product:${i}`, { id: i, name: `Product ${i}`, price: 10 + (i % 17), stock: 100, tags: ['demo', `cat-${i % 5}`] });
  }
  map.set('highscore', { name: 'primary', score: 0 });
  console.log(`primary ${process.pid}: map ${map.path} with ${map.size} entries; forking ${WORKERS} workers for ${SECONDS} s\n`);

  const start = Date.now();
  const elapsed = () => ((Date.now() - start) / 1000).toFixed(1).padStart(4);
  const totals = new Map(); // worker label -> {ops, seconds}
  let generation = 1;
  let stopping = false;

  cluster.on('message', (w, m) => {
    if (m.t !== 'report') return;
    const label = `gen${m.gen}/w${m.slot}`;
    const t = totals.get(label) || { ops: 0, seconds: 0 };
    t.ops += m.ops;
    t.seconds += m.seconds;
    totals.set(label, t);
    const hs = m.highscore ? `${m.highscore.name} ${m.highscore.score}` : '-';
    console.log(`[${elapsed()} s] ${label} pid ${String(w.process.pid).padEnd(7)} ` +
      `${Math.round(m.ops / m.seconds).toLocaleString('en-US').padStart(10)} ops/s   ` +
      `reads product:${m.product.id} "${m.product.name}" stock ${m.product.stock}, high score ${hs}, requests ${m.requests.toLocaleString('en-US')}`);
  });

  const fork = () => {
    for (let slot = 0; slot < WORKERS; slot++) cluster.fork({ DEMO_GEN: String(generation), DEMO_SLOT: String(slot) });
  };
  fork();

  setTimeout(() => {
    const before = map.get('requests');
    console.log(`\n[${elapsed()} s] primary: killing all ${WORKERS} workers with SIGKILL (requests so far: ${before.toLocaleString('en-US')})`);
    let left = WORKERS;
    for (const w of Object.values(cluster.workers)) {
      w.process.once('exit', () => {
        if (--left > 0) return;
        const after = map.get('requests');
        console.log(`[${elapsed()} s] primary: all dead; the map still holds ${map.size} entries, requests = ${after.toLocaleString('en-US')}, high score ${JSON.stringify(map.get('highscore'))}`);
        generation = 2;
        console.log(`[${elapsed()} s] primary: forking ${WORKERS} new workers\n`);
        fork();
      });
      w.process.kill('SIGKILL');
    }
  }, (SECONDS * 1000) / 2);

  setTimeout(() => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.send({ t: 'stop' });
  }, SECONDS * 1000);

  cluster.on('exit', () => {
    if (!stopping || Object.keys(cluster.workers).length > 0) return;
    summary(map, totals);
  });
}

function summary(map, totals) {
  const s = map.stats();
  const rows = [...totals.entries()].sort(([a], [b]) => a.localeCompare(b));
  const all = rows.reduce((acc, [, t]) => acc + t.ops, 0);
  console.log('\nsummary');
  for (const [label, t] of rows) {
    console.log(`  ${label.padEnd(9)} ${t.ops.toLocaleString('en-US').padStart(12)} ops in ${t.seconds.toFixed(1)} s = ${Math.round(t.ops / t.seconds).toLocaleString('en-US').padStart(10)} ops/s`);
  }
  console.log(`  all workers: ${all.toLocaleString('en-US')} ops; requests counted by incr: ${map.get('requests').toLocaleString('en-US')}`);
  console.log(`  high score: ${JSON.stringify(map.get('highscore'))}`);
  console.log(`  map: ${s.entries} entries, ${(s.liveBytes / 1024).toFixed(0)} KiB live, file ${(s.fileBytes / 1048576).toFixed(1)} MiB, ` +
    `generation ${s.generation}, ${s.evictions} evicted`);
  map.close();
}

function worker() {
  const gen = Number(process.env.DEMO_GEN);
  const slot = Number(process.env.DEMO_SLOT);
  const map = new Shmap(NAME);
  const me = `gen${gen}/w${slot}`;
  let stop = false;
  process.on('message', (m) => { if (m.t === 'stop') stop = true; });

  let ops = 0;
  let product = null;
  let i = slot * 7919;
  let last = performance.now();
  const serve = () => {
    const until = performance.now() + 20;
    while (performance.now() < until) {
      for (let k = 0; k < 64; k++, i++) {
        // A "request": read a product and the high score, count it; now and then write.
        product = map.get(`product:${i % PRODUCTS}`);
        const hs = map.get('highscore');
        map.incr('requests');
        ops += 3;
        if (i % 10 === 0) {
          map.set(`session:${me}:${i % 50}`, { worker: me, at: Date.now(), cart: [i % PRODUCTS] }, 60_000);
          ops++;
        }
        if (i % 97 === 0) {
          // A sale: the product's stock goes down (last writer wins: it is a demo).
          map.set(`product:${i % PRODUCTS}`, { ...product, stock: product.stock > 0 ? product.stock - 1 : 100 });
          ops++;
        }
        if (i % 1000 === 0) {
          map.set('highscore', { name: me, score: hs.score + 1 });
          ops++;
        }
      }
    }
    const now = performance.now();
    if (now - last >= 1000 || stop) {
      process.send({ t: 'report', gen, slot, ops, seconds: (now - last) / 1000, product, highscore: map.get('highscore'), requests: map.get('requests') });
      ops = 0;
      last = now;
    }
    if (stop) {
      map.close();
      process.disconnect();
      return;
    }
    setImmediate(serve);
  };
  serve();
}
