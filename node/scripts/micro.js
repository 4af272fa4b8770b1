#!/usr/bin/env node
'use strict';
// Single-process micro-benchmark of the package's hot paths. Prints ns/op and ops/s; asserts
// nothing. lmdb-js (from node/bench/node_modules, if installed there) is measured the same way
// for comparison: encoding 'string', noSync, on /dev/shm, as node/bench/backends/lmdb.js uses it.
//   node node/scripts/micro.js [--ms 400] [--no-lmdb]
// Each line: ns/op of the best 5 ms batch (the cost without interference) and the median.
// Lines without "decodeCache: 0" use the default handle, whose decode cache keeps strings of
// 64 B or more: re-reading an unchanged one copies and decodes nothing. "changed" lines rewrite
// the value through a second handle before every read (the set is part of the time).
const fs = require('fs');
const path = require('path');
const { parseArgs } = require('util');
const { Shmap } = require('..');
const { makeObject, makeValue } = require('../bench/values');

const { values: args } = parseArgs({
  options: { ms: { type: 'string', default: '400' }, 'no-lmdb': { type: 'boolean', default: false } },
});
const MS = Number(args.ms);
const KEYS = Array.from({ length: 10 }, (_, i) => `key:${i}`);
const NAME = `shmap-micro-${process.pid}`;
const LMDB_DIR = `/dev/shm/shmap-micro-lmdb-${process.pid}`;
process.on('exit', () => {
  fs.rmSync(`/dev/shm/${NAME}`, { force: true });
  fs.rmSync(LMDB_DIR, { recursive: true, force: true });
});

// Runs fn(i) in batches of ~5 ms until MS ms have passed (after a warm-up). Returns the median
// and the best batch's ns per call: on a shared machine the best batch is the cost without
// interference, the median what a loaded process sees.
function measure(fn) {
  const run = (n) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    return Number(process.hrtime.bigint() - t0);
  };
  let n = 64;
  while (run(n) < 5e6) n *= 2; // warm up and calibrate to >= 5 ms a batch
  const samples = [];
  let total = 0;
  while (total < MS * 1e6) {
    const ns = run(n);
    total += ns;
    samples.push(ns / n);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[samples.length >> 1], best: samples[0] };
}

const rows = [];
function report(what, backend, { median, best }) {
  rows.push({ what, backend, median, best });
  const ops = (1e9 / best).toLocaleString('en-US', { maximumFractionDigits: 0 });
  console.log(`${what.padEnd(42)} ${backend.padEnd(6)} ${best.toFixed(0).padStart(6)} ns/op ${ops.padStart(10)} ops/s` +
    `   (median ${median.toFixed(0)} ns)`);
}

const v100 = makeValue(100);
const v10k = makeValue(10240);
const obj100 = makeObject(100);
const buf100 = Buffer.from(v100);
const nonAscii = 'Grüße aus Köln, 東京の天気は晴れ. '.repeat(3);

console.log(`node ${process.version}, ${require('os').cpus()[0].model}, ~${MS} ms a line in 5 ms batches; ns/op of the best batch`);
console.log(`values: 100 B = ${v100.length} B ASCII JSON text, 10 KB = ${v10k.length} B, keys key:0..key:9\n`);

let sink = 0;
const noop = require('../shmap.node').fastApi().noop;
report('N-API call that does nothing', 'addon', measure((i) => { sink += noop(i); }));
const m = new Shmap(NAME, { reset: true, maxSize: 256 << 20 });
const m0 = new Shmap(NAME, { decodeCache: 0 }); // decodes every read, as before the cache
const other = new Shmap(NAME, { decodeCache: 0 }); // writes for the "changed" lines
const bench = (what, value, fn) => {
  KEYS.forEach((k) => other.set(k, value));
  report(what, 'shmap', measure(fn));
};
// Strings that stay in m's decode cache from here on (each bench rewrites KEYS, dropping
// theirs), so that the reads of other values and misses pay the cache lookup, as in an
// application that keeps some.
const HELD = Array.from({ length: 10 }, (_, i) => `held:${i}`);
HELD.forEach((k) => { m.set(k, v10k); m.get(k); });
bench('get string 100 B', v100, (i) => { sink += m.get(KEYS[i % 10]).length; });
bench('get string 100 B, decodeCache: 0', v100, (i) => { sink += m0.get(KEYS[i % 10]).length; });
bench('get string 10 KB', v10k, (i) => { sink += m.get(KEYS[i % 10]).length; });
bench('get string 10 KB, decodeCache: 0', v10k, (i) => { sink += m0.get(KEYS[i % 10]).length; });
bench('set + get string 10 KB, changed', v10k, (i) => {
  other.set(KEYS[i % 10], v10k); // a rewrite, even of the same bytes, is a new version
  sink += m.get(KEYS[i % 10]).length;
});
bench('set + get string 10 KB, decodeCache: 0', v10k, (i) => {
  other.set(KEYS[i % 10], v10k);
  sink += m0.get(KEYS[i % 10]).length;
});
bench('get object ~100 B (JSON)', obj100, (i) => { sink += m.get(KEYS[i % 10]).exp; });
bench('get Buffer 100 B', buf100, (i) => { sink += m.get(KEYS[i % 10]).length; });
bench('get non-ASCII string 100 chars', nonAscii, (i) => { sink += m.get(KEYS[i % 10]).length; });
bench('get number', 12345, (i) => { sink += m.get(KEYS[i % 10]); });
bench('get number, decodeCache: 0', 12345, (i) => { sink += m0.get(KEYS[i % 10]); });
report('get miss', 'shmap', measure((i) => { sink += m.get(`nokey:${i & 7}`) === undefined ? 1 : 0; }));
report('get miss, decodeCache: 0', 'shmap', measure((i) => { sink += m0.get(`nokey:${i & 7}`) === undefined ? 1 : 0; }));
if (m.stats().decodeCacheEntries < HELD.length) throw new Error('micro.js: the held strings left the cache');
report('has', 'shmap', measure((i) => { sink += m.has(KEYS[i % 10]) ? 1 : 0; }));
report('set string 100 B', 'shmap', measure((i) => { m.set(KEYS[i % 10], v100); }));
report('set string 10 KB', 'shmap', measure((i) => { m.set(KEYS[i % 10], v10k); }));
report('set object ~100 B (JSON)', 'shmap', measure((i) => { m.set(KEYS[i % 10], obj100); }));
report('incr', 'shmap', measure(() => { sink += m.incr('counter'); }));
m.close();
m0.close();
other.close();

if (!args['no-lmdb']) {
  let lmdb = null;
  try {
    lmdb = require(require.resolve('lmdb', { paths: [path.join(__dirname, '..', 'bench')] }));
  } catch {
    console.log('\n(lmdb-js not installed in node/bench: `npm --prefix node/bench install` to compare)');
  }
  if (lmdb) {
    const db = lmdb.open({ path: LMDB_DIR, noSync: true, useWritemap: true, encoding: 'string' });
    const lbench = (what, value, fn) => {
      KEYS.forEach((k) => db.putSync(k, value));
      report(what, 'lmdb', measure(fn));
    };
    console.log('');
    lbench('get string 100 B', v100, (i) => { sink += db.get(KEYS[i % 10]).length; });
    lbench('get string 10 KB', v10k, (i) => { sink += db.get(KEYS[i % 10]).length; });
    report('set string 100 B', 'lmdb', measure((i) => { db.putSync(KEYS[i % 10], v100); }));
    report('set string 10 KB', 'lmdb', measure((i) => { db.putSync(KEYS[i % 10], v10k); }));
    db.close();
    console.log('\nshmap speed / lmdb speed (best batches; medians):');
    for (const r of rows.filter((x) => x.backend === 'lmdb')) {
      for (const s of rows.filter((x) => x.backend === 'shmap' &&
        (x.what === r.what || x.what === `${r.what}, decodeCache: 0`))) {
        console.log(`  ${s.what.padEnd(42)} ${(r.best / s.best).toFixed(1)}x; ${(r.median / s.median).toFixed(1)}x`);
      }
    }
  }
}
if (sink === 0.5) console.log(sink); // keep results alive
