'use strict';
// worker_threads: the threads of one process share one mapping of the file, and see each
// other's writes.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const { Worker } = require('worker_threads');
const { Shmap } = require('..');
const { uniqueName } = require('./helpers');

// The number of mappings of `file` in this process.
function mappings(file) {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(file)).length;
}

const THREAD = `
  const { parentPort, workerData: { name, id, n, threads } } = require('worker_threads');
  const { Shmap } = require(${JSON.stringify(require.resolve('..'))});
  const m = new Shmap(name);
  parentPort.postMessage({ t: 'opened' });
  parentPort.once('message', () => {
    for (let k = 0; k < n; k++) {
      m.set('t' + id + ':' + k, { id, k });
      m.incr('count');
      const other = m.get('t' + ((id + 1) % threads) + ':' + k);
      if (other !== undefined && (other.id !== (id + 1) % threads || other.k !== k)) throw new Error('bad value');
    }
    let ok = 0;
    parentPort.postMessage({ t: 'done' });
    parentPort.once('message', () => {
      for (let j = 0; j < threads; j++) for (let k = 0; k < n; k++) if (m.get('t' + j + ':' + k).k === k) ok++;
      m.close();
      parentPort.postMessage({ t: 'checked', ok });
    });
  });
`;

test('worker threads share one mapping and one map', { timeout: 60_000 }, async (t) => {
  const name = uniqueName(t, 'threads');
  const m = new Shmap(name, { reset: true });
  t.after(() => m.close());
  const file = m.path;
  const before = mappings(file);
  assert.ok(before >= 1);

  const threads = 4;
  const n = 500;
  const workers = Array.from({ length: threads }, (_, id) =>
    new Worker(THREAD, { eval: true, workerData: { name, id, n, threads } }));
  const exited = workers.map((w) => new Promise((resolve) => w.once('exit', resolve)));
  const next = (w) => new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await Promise.all(workers.map(next));
  assert.equal(mappings(file), before, 'threads reuse the process mapping');
  const done = workers.map(next);
  workers.forEach((w) => w.postMessage('go'));
  await Promise.all(done);
  assert.equal(m.get('count'), threads * n);
  const checked = workers.map(next);
  workers.forEach((w) => w.postMessage('check'));
  for (const r of await Promise.all(checked)) assert.equal(r.ok, threads * n);
  assert.deepEqual(await Promise.all(exited), Array(threads).fill(0));
  // A thread that exits without closing its handles leaves the map usable.
  const w = new Worker(`
    const { Shmap } = require(${JSON.stringify(require.resolve('..'))});
    new Shmap(${JSON.stringify(name)}).set('from-exited-thread', 1);`, { eval: true });
  await new Promise((resolve, reject) => { w.once('exit', resolve); w.once('error', reject); });
  assert.equal(m.get('from-exited-thread'), 1);
  m.set('still', 'ok');
  assert.equal(m.get('still'), 'ok');
});
