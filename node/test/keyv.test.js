'use strict';
// shmap/keyv: @keyv/test-suite under vitest (test/vitest/), then cache-manager 7 over
// KeyvShmap, namespaces, nested Buffers, TTLs owned by the map, and several processes sharing
// one store.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { Shmap } = require('..');
const { KeyvShmap } = require('../adapters/keyv');
const { uniqueName, runNode, sleep } = require('./helpers');

const root = path.join(__dirname, '..');

test('@keyv/test-suite (API, values, namespaces, iterator) passes under vitest', { timeout: 180_000 }, async () => {
  const vitest = path.join(path.dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
  const r = await runNode([vitest, 'run', '--config', path.join(root, 'vitest.config.mjs')], { cwd: root });
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.code, 0, `vitest failed:\n${out}`);
  const m = /Tests\s+(\d+) passed/.exec(out.replace(/\x1b\[[0-9;]*m/g, ''));
  assert.ok(m && Number(m[1]) >= 40, `expected the suite's tests to run:\n${out}`);
});

function openStore(t, options = {}) {
  const map = new Shmap(uniqueName(t, 'keyv'), { reset: true, evict: false });
  t.after(() => map.close());
  return new KeyvShmap(map, options);
}

test('values round-trip through Keyv\'s serializer, nested Buffers included', async (t) => {
  const { default: Keyv } = await import('keyv');
  const keyv = new Keyv({ store: openStore(t) });
  const value = { buf: Buffer.from([0, 1, 255]), list: [Buffer.from('x'), 1, 'two', null], s: ':colon' };
  await keyv.set('k', value);
  assert.deepEqual(await keyv.get('k'), value);
  assert.ok(Buffer.isBuffer((await keyv.get('k')).buf));
});

test('the TTL is the map\'s own: an expired entry is gone from the map, not only by Keyv\'s expires', async (t) => {
  const { default: Keyv } = await import('keyv');
  const store = openStore(t);
  const keyv = new Keyv({ store, namespace: 'ns' });
  // Long enough to be read back at once on a busy CI core.
  await keyv.set('short', 'v', 300);
  await keyv.set('forever', 'v');
  const left = store.map.getRemainingTTL('ns:short');
  assert.ok(left > 0 && left <= 300, `remaining ${left}`);
  assert.equal(store.map.getRemainingTTL('ns:forever'), Infinity, 'no Keyv TTL: never expires, whatever maxAge says');
  await sleep(350);
  assert.equal(store.map.has('ns:short'), false);
  assert.equal(await keyv.get('short'), undefined);
});

test('a namespace clears only its own keys', async (t) => {
  const { default: Keyv } = await import('keyv');
  const map = new Shmap(uniqueName(t, 'keyv'), { reset: true, maxAge: 1000 });
  t.after(() => map.close());
  const a = new Keyv({ store: new KeyvShmap(map), namespace: 'a' });
  const b = new Keyv({ store: new KeyvShmap(map), namespace: 'b' });
  for (let i = 0; i < 300; i++) { await a.set(`k${i}`, i); await b.set(`k${i}`, i); }
  map.set('other', 'not keyv\'s');
  await a.clear();
  assert.equal(await a.get('k1'), undefined);
  assert.equal(await b.get('k1'), 1);
  assert.equal(map.get('other'), 'not keyv\'s');
  assert.equal(map.keys({ prefix: 'b:' }).length, 300);
});

test('cache-manager 7 over KeyvShmap: wrap, ttl, mget, mset, del, mdel, refreshThreshold', async (t) => {
  const { createCache } = await import('cache-manager');
  const { default: Keyv } = await import('keyv');
  const store = openStore(t);
  const cache = createCache({ stores: [new Keyv({ store })] });
  await cache.set('a', { n: 1 }, 60_000);
  assert.deepEqual(await cache.get('a'), { n: 1 });
  const ttl = await cache.ttl('a');
  assert.ok(ttl > Date.now() && ttl <= Date.now() + 60_000, `ttl ${ttl}`);
  await cache.mset([{ key: 'b', value: 2 }, { key: 'c', value: 3, ttl: 1000 }]);
  assert.deepEqual(await cache.mget(['a', 'b', 'c', 'd']), [{ n: 1 }, 2, 3, undefined]);
  await cache.del('a');
  assert.equal(await cache.get('a'), undefined);
  await cache.mdel(['b', 'c']);
  assert.deepEqual(await cache.mget(['b', 'c']), [undefined, undefined]);
  let calls = 0;
  const load = async () => { calls++; return { loaded: calls }; };
  assert.deepEqual(await cache.wrap('w', load, 60_000), { loaded: 1 });
  assert.deepEqual(await cache.wrap('w', load, 60_000), { loaded: 1 });
  assert.equal(calls, 1);
  // refreshThreshold: a value within the threshold of expiry is served, then refreshed.
  await cache.wrap('r', load, 200, 150);
  await sleep(100);
  assert.deepEqual(await cache.wrap('r', load, 200, 150), { loaded: 2 });
  await sleep(30);
  assert.deepEqual(await cache.get('r'), { loaded: 3 }, 'refreshed in the background');
  assert.ok(store.map.has('keyv:r'));
});

test('4 processes share one Keyv store; getOrSet loads once across them', { timeout: 60_000 }, async (t) => {
  const { default: Keyv } = await import('keyv');
  const name = uniqueName(t, 'keyv');
  const map = new Shmap(name, { reset: true });
  t.after(() => map.close());
  const run = (role) => runNode([path.join(__dirname, 'fixtures', 'adapters', 'keyv-child.js'), name, role]);
  const writers = await Promise.all([0, 1, 2, 3].map(() => run('write')));
  const keyv = new Keyv({ store: new KeyvShmap(map), namespace: 'shared' });
  for (const w of writers) {
    assert.equal(w.code, 0, w.stderr);
    assert.deepEqual(await keyv.get(`from-${w.stdout}`), { pid: Number(w.stdout), buf: Buffer.from('hi') });
  }
  const loads = await Promise.all([0, 1, 2, 3].map(() => run('load')));
  const built = new Set(loads.map((l) => { assert.equal(l.code, 0, l.stderr); return JSON.parse(l.stdout).built; }));
  assert.equal(built.size, 1, 'every process got the one loaded value');
  assert.equal(map.get('loader-runs'), 1, 'the loader ran once');
});

test('setMany resolves one true per entry, as Keyv\'s own stores do', async (t) => {
  const { default: Keyv } = await import('keyv');
  const keyv = new Keyv({ store: openStore(t) });
  // Resolved undefined before: Keyv returns the store's result as it is.
  assert.deepEqual(await keyv.setMany([{ key: 'a', value: 1 }, { key: 'b', value: 2, ttl: 1000 }]), [true, true]);
  assert.equal(await keyv.get('b'), 2);
});
