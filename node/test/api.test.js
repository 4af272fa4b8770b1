'use strict';
// The JS API in one process: value round-trips, keys, the Map-like methods, incr, TTL,
// getOrSet, stats, and the CommonJS/ESM entries.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const { Shmap, NodeShareCache } = require('..');
const { uniqueName, sleep } = require('./helpers');

function open(t, options = {}) {
  const m = new Shmap(uniqueName(t), { reset: true, ...options });
  t.after(() => m.close());
  return m;
}

const nonAscii = 'Grüße aus Köln, 東京の天気は晴れ — naïve café 🎉';
const VALUES = [
  ['empty string', ''],
  ['ASCII string', 'hello world'],
  ['latin1 string', 'café crème'],
  ['non-ASCII string', nonAscii],
  ['lone surrogate', 'a\ud800b'],
  ['large ASCII string (grows the io buffer)', 'x'.repeat(300_000)],
  ['large non-ASCII string', nonAscii.repeat(5000)],
  ['zero', 0],
  ['negative zero', -0],
  ['small integer', 42],
  ['negative integer', -7],
  ['largest safe integer', Number.MAX_SAFE_INTEGER],
  ['smallest safe integer', Number.MIN_SAFE_INTEGER],
  ['2^53 (not safe)', 2 ** 53],
  ['float', 3.141592653589793],
  ['tiny float', 5e-324],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['true', true],
  ['false', false],
  ['null', null],
  ['Buffer', Buffer.from([0, 1, 2, 253, 254, 255])],
  ['empty Buffer', Buffer.alloc(0)],
  ['large Buffer', Buffer.alloc(100_000, 7)],
  ['Uint8Array', new Uint8Array([9, 8, 7])],
  ['plain object', { a: 1, b: 'two', c: [true, null, { d: 1.5 }], e: {} }],
  ['object with non-ASCII', { name: nonAscii, list: ['é', '東京'] }],
  ['null-prototype object', Object.assign(Object.create(null), { x: 1 })],
  ['array', [1, 'a', null, false, [2, [3]], { k: 'v' }]],
  ['empty array', []],
];

test('every value type round-trips with its type', (t) => {
  const m = open(t);
  for (const [what, v] of VALUES) {
    m.set(what, v);
    const got = m.get(what);
    if (typeof v === 'number') {
      assert.ok(Object.is(got, v), `${what}: got ${got}`);
    } else if (v instanceof Buffer) {
      assert.ok(Buffer.isBuffer(got), `${what}: not a Buffer`);
      assert.deepEqual(got, v, what);
    } else if (v instanceof Uint8Array) {
      assert.ok(got instanceof Uint8Array && !Buffer.isBuffer(got), `${what}: not a plain Uint8Array`);
      assert.deepEqual([...got], [...v], what);
    } else if (typeof v === 'object' && v !== null) {
      assert.deepEqual(JSON.stringify(got), JSON.stringify(v), what);
      assert.equal(Array.isArray(got), Array.isArray(v), what);
    } else {
      assert.equal(got, v, what);
    }
  }
  // A value read back is a copy: changing it changes nothing in the map.
  const b = m.get('Buffer');
  b[0] = 99;
  assert.equal(m.get('Buffer')[0], 0);
});

test('a value read after a larger one is decoded from the right bytes', (t) => {
  const m = open(t);
  m.set('big', 'b'.repeat(50_000));
  m.set('small', 'ok');
  assert.equal(m.get('big').length, 50_000);
  assert.equal(m.get('small'), 'ok');
  assert.equal(m.get('big'), 'b'.repeat(50_000));
});

test('overwriting changes the type', (t) => {
  const m = open(t);
  m.set('k', 'a string');
  m.set('k', 12);
  assert.equal(m.get('k'), 12);
  m.set('k', { o: 1 });
  assert.deepEqual(m.get('k'), { o: 1 });
  m.set('k', null);
  assert.equal(m.get('k'), null);
  assert.equal(m.has('k'), true);
});

test('keys: strings, Unicode and bytes', (t) => {
  const m = open(t);
  m.set('ascii', 1);
  m.set('clé 東京', 2);
  m.set('x'.repeat(200), 3); // past the short-key fast path
  m.set('é'.repeat(200), 4);
  m.set(Buffer.from([1, 2, 3]), 5);
  assert.equal(m.get('ascii'), 1);
  assert.equal(m.get('clé 東京'), 2);
  assert.equal(m.get('x'.repeat(200)), 3);
  assert.equal(m.get('é'.repeat(200)), 4);
  assert.equal(m.get(Buffer.from([1, 2, 3])), 5);
  assert.equal(m.get(new Uint8Array([1, 2, 3])), 5);
  // A string key is its UTF-8 bytes.
  assert.equal(m.get(Buffer.from('clé 東京')), 2);
  // Largest key: 65535 bytes.
  const longest = 'k'.repeat(65535);
  m.set(longest, 'long');
  assert.equal(m.get(longest), 'long');
  assert.deepEqual(new Set(m.keys()), new Set(['ascii', 'clé 東京', 'x'.repeat(200), 'é'.repeat(200), '\u0001\u0002\u0003', longest]));
});

test('add, has, delete, clear, size', (t) => {
  const m = open(t);
  assert.equal(m.add('a', 1), true);
  assert.equal(m.add('a', 2), false);
  assert.equal(m.get('a'), 1);
  assert.equal(m.has('a'), true);
  assert.equal(m.has('b'), false);
  assert.equal(m.set('b', 2), m, 'set returns the map');
  assert.equal(m.size, 2);
  assert.equal(m.delete('a'), true);
  assert.equal(m.delete('a'), false);
  assert.equal(m.get('a'), undefined);
  assert.equal(m.size, 1);
  m.clear();
  assert.equal(m.size, 0);
  assert.equal(m.get('b'), undefined);
});

test('entries, keys and iteration decode values', (t) => {
  const m = open(t);
  const want = { s: 'str', n: 5, f: 1.5, o: { x: [1] }, b: Buffer.from('bytes'), t: true, z: null };
  for (const [k, v] of Object.entries(want)) m.set(k, v);
  const got = Object.fromEntries(m.entries());
  assert.deepEqual(got, want);
  assert.deepEqual(Object.fromEntries([...m]), want);
  assert.deepEqual(m.keys().sort(), Object.keys(want).sort());
});

test('incr is an integer counter, and works on set() integers', (t) => {
  const m = open(t);
  assert.equal(m.incr('c'), 1);
  assert.equal(m.incr('c'), 2);
  assert.equal(m.incr('c', 10), 12);
  assert.equal(m.incr('c', -20), -8);
  assert.equal(m.get('c'), -8);
  m.set('n', 2 ** 40);
  assert.equal(m.incr('n', 1), 2 ** 40 + 1);
  m.set('neg', -5);
  assert.equal(m.incr('neg'), -4);
  m.set('f', 1.5);
  assert.throws(() => m.incr('f'), { code: 'ERR_SHMAP_NOT_AN_INTEGER' });
  m.set('s', '1');
  assert.throws(() => m.incr('s'), { code: 'ERR_SHMAP_NOT_AN_INTEGER' });
});

test('TTL: per entry, the map default, and 0 = never', async (t) => {
  const m = open(t);
  m.set('short', 'v', 500); // long enough to be read back at once even on a loaded machine
  m.set('forever', 'v', 0);
  m.set('plain', 'v');
  assert.equal(m.get('short'), 'v');
  await sleep(700);
  assert.equal(m.get('short'), undefined);
  assert.equal(m.has('short'), false);
  assert.equal(m.get('forever'), 'v');
  assert.equal(m.get('plain'), 'v');
  // An expired key is absent for add().
  assert.equal(m.add('short', 'again'), true);

  m.setMaxAge(30);
  assert.equal(m.stats().maxAge, 30);
  m.set('default', 'v');
  m.set('override', 'v', 60_000);
  m.incr('counter', 1, 30);
  await sleep(120);
  assert.equal(m.get('default'), undefined);
  assert.equal(m.get('counter'), undefined);
  assert.equal(m.get('override'), 'v');
  assert.equal(m.get('forever'), 'v');
  m.setMaxAge(0);
  m.set('again', 'v');
  await sleep(60);
  assert.equal(m.get('again'), 'v');
});

test('maxAge option', async (t) => {
  const m = open(t, { maxAge: 30 });
  m.set('k', 1);
  await sleep(120);
  assert.equal(m.get('k'), undefined);
});

test('getOrSet (one process): loads once, caches, and handles failure', async (t) => {
  const m = open(t);
  let calls = 0;
  const loader = (key) => { calls++; return { key, n: calls }; };
  assert.deepEqual(m.getOrSet('k', loader), { key: 'k', n: 1 });
  assert.deepEqual(m.getOrSet('k', loader), { key: 'k', n: 1 });
  assert.equal(calls, 1);

  assert.throws(() => m.getOrSet('bad', () => { throw new Error('boom'); }), /boom/);
  assert.equal(m.getOrSet('bad', () => 'second try'), 'second try', 'a failed loader releases the key');
  assert.throws(() => m.getOrSet('undef', () => undefined), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.equal(m.getOrSet('undef', () => 1), 1);

  const p = m.getOrSet('async', async () => { await sleep(10); return 'later'; }, 60_000);
  assert.ok(p instanceof Promise);
  assert.equal(await p, 'later');
  assert.equal(await m.getOrSet('async', async () => 'not called'), 'later');
  // A plain function returning a promise also yields a promise.
  assert.equal(await m.getOrSet('thenable', () => Promise.resolve(7)), 7);
  assert.equal(m.get('thenable'), 7);
  await assert.rejects(m.getOrSet('rejects', async () => { throw new Error('nope'); }), /nope/);
  assert.equal(await m.getOrSet('rejects', async () => 'ok'), 'ok');

  // Concurrent async calls in one process share one load.
  let loads = 0;
  const slow = async () => { loads++; await sleep(50); return 'shared'; };
  const all = await Promise.all([1, 2, 3].map(() => m.getOrSet('conc', slow)));
  assert.deepEqual(all, ['shared', 'shared', 'shared']);
  assert.equal(loads, 1);
});

test('stats has the documented counters', (t) => {
  const m = open(t);
  m.set('a', 'x'.repeat(100));
  m.get('a');
  m.get('missing');
  const s = m.stats();
  for (const k of ['entries', 'liveBytes', 'deadBytes', 'fileBytes', 'generation', 'evictions', 'expired', 'maxSize', 'hits', 'misses']) {
    assert.equal(typeof s[k], 'number', k);
  }
  assert.equal(s.entries, 1);
  assert.ok(s.liveBytes >= 100);
  assert.ok(s.fileBytes > 0);
  assert.equal(s.hits, 1);
  assert.equal(s.misses, 1);
  assert.equal(s.evict, true);
});

test('setMaxSize and setEvict are shared settings', (t) => {
  const m = open(t);
  m.setMaxSize(64 << 20);
  m.setEvict(false);
  const other = new Shmap(m.path);
  t.after(() => other.close());
  assert.equal(other.stats().maxSize, 64 << 20);
  assert.equal(other.stats().evict, false);
});

test('two handles on one map in one process', (t) => {
  const m = open(t);
  const name = m.path;
  const a = new Shmap(name);
  const b = new Shmap(name);
  a.set('k', 'from a');
  assert.equal(b.get('k'), 'from a');
  a.close();
  assert.throws(() => a.get('k'), { code: 'ERR_SHMAP_CLOSED' });
  assert.equal(b.get('k'), 'from a');
  b.close();
  a.close(); // idempotent
});

test('handles that are never closed are collected', async (t) => {
  require('v8').setFlagsFromString('--expose-gc');
  const gc = require('vm').runInNewContext('gc');
  const name = uniqueName(t);
  for (let i = 0; i < 50; i++) new Shmap(name).set('k', i);
  gc();
  await sleep(10);
  gc();
  const m = new Shmap(name);
  assert.equal(m.get('k'), 49);
  m.close();
});

test('the ESM entry exports the same classes', async () => {
  const esm = await import('../index.mjs');
  assert.equal(esm.Shmap, Shmap);
  assert.equal(esm.NodeShareCache, NodeShareCache);
  assert.equal(esm.default.Shmap, Shmap);
});

test('shards: a map of several shards serves every operation; the option is checked', (t) => {
  const name = uniqueName(t);
  const m = new Shmap(name, { reset: true, shards: 8, initialSize: 256 << 10 });
  t.after(() => m.close());
  const file = fs.readFileSync(m.path);
  assert.equal(file.readUInt32LE(88), 3, 'shard_bits of 8 shards');
  assert.equal(m.stats().shards, 8);
  for (let i = 0; i < 3000; i++) m.set(`k${i}`, { i, pad: 'x'.repeat(i % 100) });
  for (let i = 0; i < 3000; i += 5) m.delete(`k${i}`);
  assert.equal(m.size, 2400);
  for (let i = 1; i < 3000; i += 5) assert.deepEqual(m.get(`k${i}`), { i, pad: 'x'.repeat(i % 100) });
  const keys = [...m.keys()];
  assert.equal(keys.length, 2400);
  assert.equal(new Set(keys).size, 2400, 'each key once across the shards');
  assert.equal(m.incr('n', 2), 2);
  // An existing map keeps its count; reset re-creates it with the new one.
  const again = new Shmap(name, { shards: 2 });
  assert.equal(fs.readFileSync(m.path).readUInt32LE(88), 3);
  again.close();
  for (const bad of [3, 129, -1, 1.5]) {
    assert.throws(() => new Shmap(name, { shards: bad }), { code: 'ERR_OUT_OF_RANGE' }, String(bad));
  }
  assert.throws(() => new Shmap(name, { shards: '4' }), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('NodeShareCache API (seed compatibility)', async (t) => {
  const name = uniqueName(t);
  const c = new NodeShareCache(name, 1024 * 100, true);
  assert.equal(c.set('k', 'v'), true);
  assert.equal(c.get('k'), 'v');
  assert.equal(c.del('k'), true);
  assert.equal(c.get('k'), undefined);
  // Default max age is 2000 ms; setMaxAge changes it for this handle's later sets.
  c.setMaxAge(30);
  c.set('short', 1);
  c.set('own', 1, 60_000);
  await sleep(120);
  assert.equal(c.get('short'), undefined);
  assert.equal(c.get('own'), 1);
  c.setMaxSize(16 << 20);
  assert.equal(c.stat().maxSize, 16 << 20);
  assert.ok(c.shmap instanceof Shmap);
  c.setLock(false);
  assert.equal(c.get('own'), 1);
  assert.throws(() => c.set('x', 1), { code: 'ERR_SHMAP_READ_ONLY' });
  c.setLock(true);
  c.set('x', 1);
  c.destroy();
  assert.throws(() => c.get('x'), { code: 'ERR_SHMAP_CLOSED' });
});

test('a stamping handle reports the coarse wall clock of every get (shmap/redis reads it instead of Date.now)', (t) => {
  const m = new Shmap(uniqueName(t, 'stamp'), { reset: true });
  t.after(() => m.close());
  const { now: clock, lagMs } = m[Symbol.for('shmap.stampClock')]();
  assert.equal(lagMs, 50);
  m.set('k', 'x'.repeat(100));
  for (const key of ['k', 'k', 'absent']) { // a miss and a decode-cache hit stamp too
    const before = Date.now();
    m.get(key);
    const after = Date.now();
    const c = clock();
    assert.ok(c <= after && c >= before - lagMs, `${c} not within [${before - lagMs}, ${after}]`);
  }
});
