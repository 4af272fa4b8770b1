'use strict';
// getOrSet across processes: called at once from five processes, the loader runs once and
// every caller gets its value; with sync and with async loaders.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Shmap } = require('..');
const { uniqueName, forkWorker } = require('./helpers');

for (const mode of ['sync', 'async']) {
  test(`getOrSet from 5 processes at once runs a ${mode} loader once`, { timeout: 60_000 }, async (t) => {
    const name = uniqueName(t, `gos-${mode}`);
    const m = new Shmap(name, { reset: true });
    t.after(() => m.close());
    const workers = Array.from({ length: 5 }, () => forkWorker(t, 'getOrSet', { name, key: 'report', mode }));
    await Promise.all(workers.map((w) => w.message('ready')));
    workers.forEach((w) => w.send({ t: 'go' }));
    const results = await Promise.all(workers.map((w) => w.message('result')));
    assert.equal(m.get('loads'), 1, 'the loader ran once');
    const by = results[0].v.by;
    assert.ok(workers.some((w) => w.pid === by), 'a worker loaded it');
    for (const r of results) assert.deepEqual(r.v, { by });
    assert.deepEqual(m.get('report'), { by });
  });
}

test('a dead loader does not block the others', { timeout: 60_000 }, async (t) => {
  const name = uniqueName(t, 'gos-dead');
  const m = new Shmap(name, { reset: true });
  t.after(() => m.close());
  // A worker takes the lease and is killed while loading (its loader would take a minute).
  const w = forkWorker(t, 'getOrSet', { name, key: 'k', mode: 'sync', loadMs: 60_000 });
  await w.message('ready');
  w.send({ t: 'go' });
  while (m.get('loads') !== 1) await new Promise((resolve) => setTimeout(resolve, 5));
  w.kill('SIGKILL');
  await w.exited;
  // The lease died with it: this process loads the value itself.
  assert.equal(m.getOrSet('k', () => 'mine'), 'mine');
});
