'use strict';
// The store primitives the adapters build on: getRemainingTTL, expire, incr's options
// (initTtl, create, withExpiry), keys/scan/deletePrefix by prefix, deleteMany, and TTLs under
// 1 ms. Cross-process counting runs in real forked processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { fork } = require('child_process');
const { Shmap } = require('..');
const { uniqueName, sleep, throwsCode } = require('./helpers');

function open(t, options = {}) {
  const m = new Shmap(uniqueName(t), { reset: true, ...options });
  t.after(() => m.close());
  return m;
}

test('a positive TTL under 1 ms rounds up to 1 ms (it used to mean "never expires")', async (t) => {
  const m = open(t);
  m.set('half', 'v', 0.5);
  assert.ok(m.getRemainingTTL('half') <= 1, `remaining ${m.getRemainingTTL('half')}`);
  m.add('tiny', 'v', Number.MIN_VALUE);
  m.incr('c', 1, 0.25);
  const map2 = open(t, { maxAge: 0.5 });
  map2.set('default', 'v');
  await sleep(5);
  assert.equal(m.get('half'), undefined);
  assert.equal(m.get('tiny'), undefined);
  assert.equal(m.get('c'), undefined);
  assert.equal(map2.get('default'), undefined);
  assert.equal(map2.stats().maxAge, 1);
  // 0 and Infinity still mean never.
  m.set('zero', 'v', 0);
  m.set('inf', 'v', Infinity);
  assert.equal(m.getRemainingTTL('zero'), Infinity);
  assert.equal(m.getRemainingTTL('inf'), Infinity);
});

test('getRemainingTTL: ms left, Infinity without expiry, 0 when absent', async (t) => {
  const m = open(t);
  assert.equal(m.getRemainingTTL('absent'), 0);
  m.set('forever', 1);
  assert.equal(m.getRemainingTTL('forever'), Infinity);
  m.set('soon', 1, 60_000);
  const left = m.getRemainingTTL('soon');
  assert.ok(left > 59_000 && left <= 60_000, `left ${left}`);
  m.set('gone', 1, 5);
  await sleep(20);
  assert.equal(m.getRemainingTTL('gone'), 0);
  throwsCode(assert, () => m.getRemainingTTL(42), 'ERR_INVALID_ARG_TYPE', TypeError);
});

test('expire re-times an entry without rewriting its value; 0 = never expires', async (t) => {
  const m = open(t);
  assert.equal(m.expire('absent', 1000), false);
  assert.equal(m.has('absent'), false, 'expire creates nothing');
  const big = 'x'.repeat(1000); // large enough for the decode cache
  // TTLs long enough that a busy CI core does not let one lapse between two statements.
  m.set('s', big, 300);
  assert.equal(m.get('s'), big);
  assert.equal(m.expire('s', 60_000), true);
  await sleep(400);
  assert.equal(m.get('s'), big, 'outlived its first TTL');
  assert.ok(m.getRemainingTTL('s') > 59_000);
  assert.equal(m.expire('s', 0), true);
  assert.equal(m.getRemainingTTL('s'), Infinity);
  m.set('obj', { a: [1, 2] });
  m.expire('obj', 10);
  await sleep(30);
  assert.equal(m.get('obj'), undefined, 'a shorter TTL shortens');
  assert.equal(m.expire('obj', 1000), false, 'expired is absent');
  m.incr('n', 2);
  m.expire('n', 1000);
  assert.equal(m.incr('n'), 3, 'a counter stays a counter');
  throwsCode(assert, () => m.expire('n'), 'ERR_INVALID_ARG_TYPE', TypeError);
  throwsCode(assert, () => m.expire('n', -1), 'ERR_OUT_OF_RANGE', RangeError);
});

test('incr options: initTtl only on creation, create: false, withExpiry', async (t) => {
  const m = open(t);
  // The documented forms still work.
  assert.equal(m.incr('a'), 1);
  assert.equal(m.incr('a', 2, 60_000), 3);
  // initTtl: the window is set when the counter is created and never extended.
  const before = Date.now();
  // A 400 ms window: the second hit lands inside it even on a busy CI core.
  const r1 = m.incr('w', 1, { initTtl: 400, withExpiry: true });
  assert.equal(r1.value, 1);
  assert.ok(r1.expiresAt >= before + 400 && r1.expiresAt <= Date.now() + 400, `${r1.expiresAt}`);
  await sleep(40);
  const r2 = m.incr('w', 1, { initTtl: 400, withExpiry: true });
  assert.deepEqual(r2, { value: 2, expiresAt: r1.expiresAt });
  while (Date.now() <= r1.expiresAt) await sleep(r1.expiresAt - Date.now() + 5);
  const r3 = m.incr('w', 1, { initTtl: 400, withExpiry: true });
  assert.equal(r3.value, 1, 'a fresh window');
  assert.ok(r3.expiresAt > r1.expiresAt);
  // create: false never creates; returns undefined.
  assert.equal(m.incr('nope', -1, { create: false }), undefined);
  assert.equal(m.incr('nope', -1, { create: false, withExpiry: true }), undefined);
  assert.equal(m.has('nope'), false);
  assert.equal(m.incr('w', -1, { create: false }), 0);
  // withExpiry without expiry: Infinity.
  assert.deepEqual(m.incr('forever', 5, { withExpiry: true, initTtl: 0 }), { value: 5, expiresAt: Infinity });
  // ttl in the options re-times on every call, as the number form does.
  const t1 = m.incr('t', 1, { ttl: 100_000, withExpiry: true });
  await sleep(5);
  const t2 = m.incr('t', 1, { ttl: 100_000, withExpiry: true });
  assert.ok(t2.expiresAt > t1.expiresAt);
  throwsCode(assert, () => m.incr('t', 1, { ttl: 1, initTtl: 1 }), 'ERR_INVALID_ARG_VALUE', TypeError);
  throwsCode(assert, () => m.incr('t', 1, { create: 'no' }), 'ERR_INVALID_ARG_TYPE', TypeError);
  throwsCode(assert, () => m.incr('t', 1, { initTtl: -5 }), 'ERR_OUT_OF_RANGE', RangeError);
  throwsCode(assert, () => m.incr('t', 1, null), 'ERR_INVALID_ARG_TYPE', TypeError);
});

test('keys({ prefix, limit }), scan and deletePrefix touch only the prefix', (t) => {
  const m = open(t);
  for (let i = 0; i < 50; i++) m.set(`a:${i}`, i);
  for (let i = 0; i < 30; i++) m.set(`b:${i}`, { i });
  m.set('a', 'not under a:');
  m.set(Buffer.from('a:buf'), Buffer.from([1]));
  assert.equal(m.keys().length, 82);
  assert.equal(m.keys({ prefix: 'a:' }).length, 51);
  assert.equal(m.keys({ prefix: Buffer.from('b:') }).length, 30);
  assert.equal(m.keys({ prefix: 'a:', limit: 7 }).length, 7);
  assert.equal(m.keys({ prefix: '' }).length, 82);
  assert.deepEqual(m.keys({ prefix: 'zzz' }), []);
  assert.ok(m.keys({ prefix: 'b:' }).every((k) => k.startsWith('b:')));

  const it = m.scan({ prefix: 'b:' });
  assert.equal(typeof it.next, 'function', 'an iterator');
  const seen = [...it];
  assert.equal(seen.length, 30);
  assert.ok(seen.every((k) => typeof k === 'string' && k.startsWith('b:')));
  const withValues = [...m.scan({ prefix: 'b:', values: true, limit: 5 })];
  assert.equal(withValues.length, 5);
  for (const [k, v] of withValues) assert.deepEqual(v, { i: Number(k.slice(2)) });
  assert.deepEqual([...m.scan({ prefix: 'b:', limit: 0 })], []);
  throwsCode(assert, () => m.scan({ prefix: 1 }), 'ERR_INVALID_ARG_TYPE', TypeError); // at the call, not at next()

  assert.equal(m.deletePrefix('a:'), 51);
  assert.deepEqual(m.keys({ prefix: 'a:' }), []);
  assert.equal(m.get('a'), 'not under a:');
  assert.equal(m.deletePrefix('a:'), 0);
  throwsCode(assert, () => m.keys({ prefix: 1 }), 'ERR_INVALID_ARG_TYPE', TypeError);
  throwsCode(assert, () => m.keys({ limit: -1 }), 'ERR_OUT_OF_RANGE', RangeError);
  throwsCode(assert, () => m.deletePrefix(), 'ERR_INVALID_ARG_TYPE', TypeError);
});

test('deletePrefix of many keys works in batches and leaves other keys', (t) => {
  const m = open(t);
  for (let i = 0; i < 5000; i++) m.set(`ns1:${i}`, i);
  for (let i = 0; i < 100; i++) m.set(`ns2:${i}`, i);
  assert.equal(m.deletePrefix('ns1:'), 5000);
  assert.equal(m.size, 100);
});

test('scan is lazy: it fetches bounded batches as the iteration reaches them', (t) => {
  const m = open(t);
  for (let i = 0; i < 2000; i++) m.set(`p:${i}`, i);
  const it = m.scan({ prefix: 'p:', values: true });
  const [k0, v0] = it.next().value;
  assert.equal(v0, Number(k0.slice(2)));
  assert.equal(m.deletePrefix('p:'), 2000);
  // What is left is at most the rest of the batch already fetched: the scan did not take the
  // 2000 keys at once. (Entries removed during a scan may or may not appear.)
  const rest = [...it];
  assert.ok(rest.length < 1999, `${rest.length} yielded after the keys were removed`);
  for (const [k, v] of rest) assert.equal(v, Number(k.slice(2)));
  // Iteration past the limit stops; a long scan spans many batches.
  for (let i = 0; i < 2000; i++) m.set(`q:${i}`, i);
  assert.equal([...m.scan({ prefix: 'q:', limit: 1500 })].length, 1500);
  assert.equal(new Set(m.scan({ prefix: 'q:' })).size, 2000);
  // A closed handle fails the next batch with its code.
  const it2 = m.scan({ prefix: 'q:' });
  it2.next();
  m.close();
  throwsCode(assert, () => [...it2], 'ERR_SHMAP_CLOSED');
});

// Runs fixtures/adapters/churn-child.js on map `name` until `stop()`; resolves its report.
async function churn(t, name, prefix) {
  const c = fork(path.join(__dirname, 'fixtures', 'adapters', 'churn-child.js'), [name, prefix],
    { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  t.after(() => c.kill('SIGKILL'));
  let out = '';
  c.stdout.on('data', (d) => { out += d; });
  const report = new Promise((resolve, reject) => c.on('exit', (code) => (code === 0
    ? resolve(JSON.parse(out)) : reject(new Error(`churn child exit ${code}`)))));
  const m = new Shmap(name);
  t.after(() => m.close());
  for (let waited = 0; !m.has('ready'); waited += 5) {
    if (waited > 30_000) throw new Error('churn child never started');
    await sleep(5);
  }
  return { stop: () => { m.set('stop', 1); return report; } };
}

test('scan semantics hold while another process writes and deletes under the prefix', async (t) => {
  const name = uniqueName(t);
  const m = new Shmap(name, { reset: true, evict: false, maxSize: 256 << 20 });
  t.after(() => m.close());
  const N = 3000;
  for (let i = 0; i < N; i++) m.set(`p:s${i}`, { i });
  const child = await churn(t, name, 'p:');
  for (let round = 0; round < 5; round++) {
    const seen = new Set();
    let n = 0;
    for (const [k, v] of m.scan({ prefix: 'p:', values: true })) {
      assert.ok(k.startsWith('p:'), k);
      assert.ok(!seen.has(k), `${k} came twice in one scan`);
      seen.add(k);
      if (k.startsWith('p:s')) assert.deepEqual(v, { i: Number(k.slice(3)) });
      else if (k.startsWith('p:churn')) assert.equal(v.pad, 'c'.repeat(v.k % 200), 'a value it had');
      if (++n % 100 === 0) await sleep(0); // the iteration spans many batches and writes
    }
    for (let i = 0; i < N; i++) assert.ok(seen.has(`p:s${i}`), `p:s${i} (present all along) missed`);
    assert.ok(m.keys({ prefix: 'p:s' }).length === N);
  }
  const r = await child.stop();
  assert.ok(r.sets > 0);
});

test('deletePrefix of 100k keys lets another process write meanwhile (hang bound, not speed)', async (t) => {
  const name = uniqueName(t);
  const m = new Shmap(name, { reset: true, evict: false, maxSize: 256 << 20 });
  t.after(() => m.close());
  const N = 100_000;
  for (let i = 0; i < N; i++) m.set(`big:${i}`, i);
  const child = await churn(t, name, 'big:');
  const t0 = performance.now();
  const removed = m.deletePrefix('big:');
  const ms = performance.now() - t0;
  const r = await child.stop();
  t.diagnostic(`deletePrefix: ${removed} keys in ${ms.toFixed(0)} ms; the other process made ${r.sets} writes, the longest ${r.maxMs.toFixed(1)} ms`);
  // Keys present for the whole call are gone; keys written under the prefix meanwhile (the
  // child's churn and late keys) may or may not be.
  for (let i = 0; i < N; i += 97) assert.equal(m.has(`big:${i}`), false, `big:${i} survived`);
  assert.equal(m.keys({ prefix: 'big:' }).filter((k) => !/^big:(churn|late)\d+$/.test(k)).length, 0);
  assert.ok(removed >= N, `${removed} removed`);
  // The other process's writes outside the prefix all landed; none waited anywhere near the
  // lock timeout (5 s): writers got the lock between batches.
  for (const [j, k] of r.other) assert.equal(m.get(`other:${j}`), k);
  assert.ok(r.maxMs < 2000, `a write waited ${r.maxMs} ms`);
});

test('deleteMany removes each key and counts the present ones', (t) => {
  const m = open(t);
  m.set('x', 1).set('y', 2).set(Buffer.from('z'), 3);
  assert.equal(m.deleteMany(['x', 'nope', Buffer.from('z'), 'ü'.repeat(3)]), 2);
  assert.deepEqual(m.keys(), ['y']);
  assert.equal(m.deleteMany([]), 0);
  throwsCode(assert, () => m.deleteMany('x'), 'ERR_INVALID_ARG_TYPE', TypeError);
  throwsCode(assert, () => m.deleteMany(['ok', '']), 'ERR_INVALID_ARG_VALUE', TypeError);
});

test('4 processes x 100 incr with initTtl against a limit of 150: exactly 150 allowed', async (t) => {
  const name = uniqueName(t);
  const m = open(t);
  const m2 = new Shmap(name, { reset: true });
  t.after(() => m2.close());
  const runs = [];
  for (let p = 0; p < 4; p++) {
    runs.push(new Promise((resolve, reject) => {
      const c = fork(path.join(__dirname, 'fixtures', 'adapters', 'window-child.js'), [name, '100', '150'], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
      let out = '';
      c.stdout.on('data', (d) => { out += d; });
      c.on('exit', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`child exit ${code}`))));
    }));
  }
  const allowed = (await Promise.all(runs)).reduce((a, b) => a + b, 0);
  assert.equal(allowed, 150);
  assert.equal(m2.get('window'), 400);
  const left = m2.getRemainingTTL('window');
  assert.ok(left > 0 && left <= 60_000, 'the window kept its first expiry');
  void m;
});
