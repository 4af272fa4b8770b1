'use strict';
// What a caller can pass across the boundary that the type checks alone do not catch: memory
// another thread is writing, loaders that re-enter or return odd thenables, names inherited
// from Object.prototype, values JSON cannot hold. Each case failed before its fix.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Worker } = require('worker_threads');
const { Shmap } = require('..');
const { uniqueName, throwsCode } = require('./helpers');

// A Worker scribbling over a SharedArrayBuffer while this thread stores views of it.
function scribbler(t, sab) {
  const w = new Worker(`
    const { workerData, parentPort } = require('worker_threads');
    const u = new Uint8Array(workerData);
    parentPort.postMessage('running');
    for (let i = 0; ; i++) u[(i * 4099) & (u.length - 1)] = (i * 7) & 255;`,
  { eval: true, workerData: sab });
  t.after(() => w.terminate());
  return new Promise((resolve) => w.once('message', resolve));
}

test('a value whose memory another thread writes is stored as one snapshot, never a corrupt record', { timeout: 60_000 }, async (t) => {
  const m = new Shmap(uniqueName(t), { reset: true });
  t.after(() => m.close());
  const sab = new SharedArrayBuffer(1 << 20);
  await scribbler(t, sab);
  const views = [new Uint8Array(sab), Buffer.from(sab)];
  for (let i = 0; i < 200; i++) {
    const v = views[i % 2];
    m.set('k', v);
    const got = m.get('k'); // threw ERR_SHMAP_CORRUPT: the CRC was of other bytes than those copied
    assert.equal(got.length, v.length);
    assert.equal(got instanceof Buffer, v instanceof Buffer);
    m.setIfVersion('s', v, undefined, { versionKey: 'sv', version: i });
    assert.equal(m.get('s').length, v.length);
  }
});

test('a getOrSet nested in its own loader loads at once instead of waiting out its own lease', { timeout: 30_000 }, (t) => {
  const m = new Shmap(uniqueName(t), { reset: true, leaseMs: 20_000 });
  t.after(() => m.close());
  const start = Date.now();
  assert.equal(m.getOrSet('k', () => m.getOrSet('k', () => 'inner')), 'inner');
  assert.ok(Date.now() - start < 10_000, `waited ${Date.now() - start} ms for this thread's own lease`);
  assert.equal(m.get('k'), 'inner');
});

test('a sync getOrSet does not wait for a Promise this thread is still loading', { timeout: 30_000 }, async (t) => {
  const m = new Shmap(uniqueName(t), { reset: true, leaseMs: 20_000 });
  t.after(() => m.close());
  let resolve;
  const first = m.getOrSet('k', () => new Promise((r) => { resolve = r; }));
  assert.ok(first instanceof Promise);
  const start = Date.now();
  assert.equal(m.getOrSet('k', () => 'second'), 'second');
  assert.ok(Date.now() - start < 10_000, `waited ${Date.now() - start} ms for this thread's own load`);
  resolve('first');
  assert.equal(await first, 'first');
});

test('a loader result whose then getter throws gives its lease back', { timeout: 30_000 }, (t) => {
  const m = new Shmap(uniqueName(t), { reset: true, leaseMs: 20_000 });
  t.after(() => m.close());
  const odd = { get then() { throw new Error('then getter'); } };
  assert.throws(() => m.getOrSet('k', () => odd), /then getter/);
  const start = Date.now();
  assert.equal(m.getOrSet('k', () => 5), 5);
  assert.ok(Date.now() - start < 10_000, `the next caller waited ${Date.now() - start} ms for a leaked lease`);
});

test('setIfVersion: a compare named after an Object.prototype property is a TypeError', (t) => {
  const m = new Shmap(uniqueName(t), { reset: true });
  t.after(() => m.close());
  for (const compare of ['toString', 'constructor', '__proto__', 'valueOf', 'hasOwnProperty']) {
    throwsCode(assert, () => m.setIfVersion('a', 1, undefined, { versionKey: 'v', version: 1, compare }),
      'ERR_INVALID_ARG_VALUE', TypeError);
  }
});

test('values JSON cannot hold are TypeErrors with a code, from set and from setIfVersion', (t) => {
  const m = new Shmap(uniqueName(t), { reset: true });
  t.after(() => m.close());
  const cyclic = []; cyclic.push(cyclic);
  const cond = { versionKey: 'v', version: 1 };
  for (const value of [{ toJSON() {} }, { toJSON() { return Symbol('s'); } }, { toJSON() { return () => 1; } }, cyclic]) {
    for (const store of [() => m.set('a', value), () => m.add('b', value), () => m.setIfVersion('c', value, undefined, cond),
      () => m.getOrSet('d', () => value)]) {
      const e = throwsCode(assert, store, 'ERR_INVALID_ARG_VALUE', TypeError);
      assert.match(e.message, /"value"/);
    }
  }
  assert.equal(m.size, 0);
});

test('a key whose length property lies is measured by its bytes', (t) => {
  const m = new Shmap(uniqueName(t), { reset: true });
  t.after(() => m.close());
  const k = new Uint8Array([1, 2, 3]);
  Object.defineProperty(k, 'length', { value: -1 });
  m.set(k, 'v');
  assert.equal(m.get(new Uint8Array([1, 2, 3])), 'v');
});

test('a TTL past 2^53 ms is out of range, not a TTL that saturates', (t) => {
  const m = new Shmap(uniqueName(t), { reset: true });
  t.after(() => m.close());
  for (const ttl of [1e300, 2 ** 64, Number.MAX_VALUE]) {
    throwsCode(assert, () => m.set('a', 1, ttl), 'ERR_OUT_OF_RANGE', RangeError);
    throwsCode(assert, () => m.expire('a', ttl), 'ERR_OUT_OF_RANGE', RangeError);
    throwsCode(assert, () => m.incr('c', 1, ttl), 'ERR_OUT_OF_RANGE', RangeError);
  }
  m.set('a', 1, Infinity);
  assert.equal(m.getRemainingTTL('a'), Infinity);
});
