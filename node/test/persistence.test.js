'use strict';
// Persistence: entries outlive every process that wrote them, in /dev/shm and on disk.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { Shmap } = require('..');
const { uniqueName, tempDir, forkWorker } = require('./helpers');

async function restartEveryProcess(t, name) {
  const primary = new Shmap(name, { reset: true });
  primary.close(); // this process lets go too: from here on, nobody has the map open
  const writers = 3;
  const n = 300;
  for (const w of Array.from({ length: writers }, (_, id) => forkWorker(t, 'persistWrite', { name, id, n }))) {
    await w.message('done');
    assert.equal((await w.exited).code, 0);
  }
  // Every writer is gone; fresh processes read everything back.
  const readers = Array.from({ length: 2 }, () => forkWorker(t, 'persistRead', { name, writers, n }));
  for (const r of readers) {
    const out = await r.message('read');
    assert.equal(out.ok, writers * n);
    assert.equal(out.writers, writers);
    assert.equal((await r.exited).code, 0);
  }
  const again = new Shmap(name);
  assert.deepEqual(again.get('p2:299'), { id: 2, k: 299, s: 'v299' });
  again.close();
}

test('a map in /dev/shm survives a restart of every process', { timeout: 60_000 }, async (t) => {
  await restartEveryProcess(t, uniqueName(t, 'persist'));
});

test('a map on disk survives a restart of every process', { timeout: 60_000 }, async (t) => {
  const file = path.join(tempDir(t), 'cache.shmap');
  await restartEveryProcess(t, file);
  assert.ok(fs.statSync(file).size > 0);
});
