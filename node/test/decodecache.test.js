'use strict';
// The decode cache: a handle keeps strings it decoded with their record's version and returns
// them again while the record is unchanged. It must never serve a stale value (writes by other
// processes, rewrites with the same bytes, deletes, expiry, clear, generation switches), never
// serve mutable values (Buffers, objects), and keep to its byte bound.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Shmap } = require('..');
const { uniqueName, forkWorker, throwsCode, sleep } = require('./helpers');

function open(t, name, options = {}) {
  const m = new Shmap(name, options);
  t.after(() => m.close());
  return m;
}

const big = (tag, n = 1000) => `${tag}:`.padEnd(n, 'x');
const dc = (m) => {
  const s = m.stats();
  return { entries: s.decodeCacheEntries, bytes: s.decodeCacheBytes, hits: s.decodeCacheHits };
};

// A forked worker running operations on the map; `op(...)` resolves once the worker's call
// returned (so the write is acknowledged).
async function opsWorker(t, name) {
  const w = forkWorker(t, 'ops', { name });
  await w.message('ready');
  w.op = async (op, key, value, ttl) => {
    w.send({ t: 'op', op, key, value, ttl });
    return w.message('done');
  };
  // forkWorker's own hook may have killed it already: a send to a dead child fails with
  // EPIPE after the test ended (an uncaught error that failed the file once), so the
  // callback takes the error.
  t.after(() => { if (w.connected) w.send({ t: 'stop' }, () => {}); });
  return w;
}

test('unchanged reads return the same string from the cache; writes through the handle drop it', (t) => {
  const m = open(t, uniqueName(t), { reset: true });
  const v = big('a', 10240);
  m.set('k', v);
  assert.equal(m.get('k'), v);
  assert.deepEqual(dc(m), { entries: 1, bytes: dc(m).bytes, hits: 0 });
  const again = m.get('k');
  assert.equal(again, v);
  assert.equal(m.get('k'), again);
  assert.equal(dc(m).hits, 2);
  // Non-ASCII strings are kept too.
  const u = 'Grüße, 東京 '.repeat(50);
  m.set('u', u);
  assert.equal(m.get('u'), u);
  assert.equal(m.get('u'), u);
  assert.equal(dc(m).hits, 3);
  // set, add, delete and clear through this handle drop the entry at once.
  m.set('k', 'new value'.repeat(20));
  assert.equal(dc(m).entries, 1);
  assert.equal(m.get('k'), 'new value'.repeat(20));
  assert.equal(dc(m).entries, 2);
  m.delete('k');
  assert.equal(dc(m).entries, 1);
  assert.equal(m.get('k'), undefined);
  assert.equal(m.add('k', big('b')), true);
  assert.equal(m.get('k'), big('b'));
  m.clear();
  assert.deepEqual(dc(m), { entries: 0, bytes: 0, hits: 3 });
  assert.equal(m.get('k'), undefined);
  assert.equal(m.get('u'), undefined);
  // A Buffer key reads the same entry, without the cache.
  m.set('k', big('c'));
  assert.equal(m.get(Buffer.from('k')), big('c'));
  assert.equal(dc(m).entries, 0);
  // Small strings are not kept (decoding them is cheap).
  m.set('small', 'x'.repeat(63));
  m.get('small');
  assert.equal(dc(m).entries, 0);
  // A closed handle throws, cached key or not.
  m.get('k');
  assert.equal(dc(m).entries, 1);
  m.close();
  throwsCode(assert, () => m.get('k'), 'ERR_SHMAP_CLOSED');
});

test('Buffers, Uint8Arrays, objects and arrays are never served from the cache', (t) => {
  const m = open(t, uniqueName(t), { reset: true });
  const obj = { list: Array.from({ length: 100 }, (_, i) => i), text: big('o') };
  m.set('obj', obj);
  m.set('arr', [big('a'), 1, 2]);
  m.set('buf', Buffer.from(big('b')));
  m.set('u8', new Uint8Array(Buffer.from(big('u'))));
  for (let round = 0; round < 3; round++) {
    const o = m.get('obj');
    assert.deepEqual(o, obj);
    o.list.push('mutated');
    o.text = 'mutated';
    const a = m.get('arr');
    assert.deepEqual(a, [big('a'), 1, 2]);
    a.pop();
    const b = m.get('buf');
    assert.ok(Buffer.isBuffer(b));
    assert.equal(b.toString(), big('b'));
    b.fill(0);
    const u = m.get('u8');
    assert.ok(u instanceof Uint8Array && !Buffer.isBuffer(u));
    assert.equal(Buffer.from(u).toString(), big('u'));
    u.fill(1);
  }
  assert.deepEqual(dc(m), { entries: 0, bytes: 0, hits: 0 });
  // A cached string replaced by an object is not served as the string, nor cached.
  m.set('s', big('s'));
  m.get('s');
  const other = open(t, m.path.slice('/dev/shm/'.length));
  other.set('s', obj);
  assert.deepEqual(m.get('s'), obj);
  assert.equal(dc(m).entries, 0);
});

test('another process\'s writes are seen by the next get, including rewrites with the same bytes', async (t) => {
  const name = uniqueName(t);
  const m = open(t, name, { reset: true, maxSize: 64 << 20 });
  const w = await opsWorker(t, name);
  const read = (expected, { cached }) => {
    const before = dc(m).hits;
    assert.deepEqual(m.get('k'), expected);
    assert.equal(dc(m).hits - before, cached ? 1 : 0, `read of ${String(expected).slice(0, 12)} should ${cached ? '' : 'not '}come from the cache`);
  };

  await w.op('set', 'k', big('one'));
  read(big('one'), { cached: false });
  read(big('one'), { cached: true });
  await w.op('set', 'k', big('two'));
  read(big('two'), { cached: false });
  read(big('two'), { cached: true });
  // The same string again: a new record, so a new version, read afresh.
  await w.op('set', 'k', big('two'));
  read(big('two'), { cached: false });
  read(big('two'), { cached: true });
  // Larger than the handle's io buffer (16 KiB at first): read through the growing path.
  await w.op('set', 'k', big('huge', 100_000));
  read(big('huge', 100_000), { cached: false });
  read(big('huge', 100_000), { cached: true });
  // Small string, Buffer, removal, expiry, clear.
  await w.op('set', 'k', 'small');
  read('small', { cached: false });
  assert.equal(dc(m).entries, 0);
  await w.op('set', 'k', big('three'));
  read(big('three'), { cached: false });
  await w.op('setBuffer', 'k', 'bytes');
  read(Buffer.from('bytes'), { cached: false });
  await w.op('set', 'k', big('four'));
  read(big('four'), { cached: false });
  await w.op('delete', 'k');
  read(undefined, { cached: false });
  assert.equal(dc(m).entries, 0);
  await w.op('set', 'k', big('five'), 150);
  read(big('five'), { cached: false });
  read(big('five'), { cached: true });
  await sleep(300);
  read(undefined, { cached: false });
  await w.op('set', 'k', big('six'));
  read(big('six'), { cached: false });
  await w.op('clear');
  read(undefined, { cached: false });

  // Generation switches (the map grows) move every record: the version changes, the value not.
  await w.op('set', 'k', big('seven'));
  read(big('seven'), { cached: false });
  read(big('seven'), { cached: true });
  const { switches } = m.stats();
  const done = await w.op('fill', null, 2000);
  assert.ok(done.switches > switches, 'the fill should have switched generations');
  read(big('seven'), { cached: false });
  read(big('seven'), { cached: true });
  await w.op('set', 'k', big('eight'));
  read(big('eight'), { cached: false });
});

test('reads never return a value older than the last one acknowledged by a writing process', async (t) => {
  const name = uniqueName(t);
  const m = open(t, name, { reset: true });
  const w = forkWorker(t, 'churn', { name, n: 20000, size: 2048, every: 4 });
  await w.message('ready');
  let finished = false;
  w.message('finished').then(() => { finished = true; });
  w.send({ t: 'go' });
  let reads = 0;
  let lastSeen = 0;
  const check = () => {
    // The worker writes k, then seq: a k older than seq would be a stale read.
    const seq = m.get('seq');
    const v = m.get('k');
    if (seq === undefined) return;
    const n = Number(v.slice(0, v.indexOf('|')));
    assert.ok(n >= seq >> 1, `read k of write ${n} after seq ${seq}`);
    assert.equal(v.length, 2048);
    assert.ok(n >= lastSeen, 'k went backwards');
    lastSeen = n;
    reads++;
  };
  while (!finished) {
    for (let i = 0; i < 50; i++) check();
    await new Promise((resolve) => setImmediate(resolve));
  }
  check();
  assert.equal(m.get('seq'), 20000);
  assert.equal(m.get('k'), `${20000 >> 1}|`.padEnd(2048, 'c'));
  assert.equal(m.get('k'), `${20000 >> 1}|`.padEnd(2048, 'c'));
  assert.ok(dc(m).hits > 0, 'the cache should have served some reads');
  assert.ok(reads > 100, `only ${reads} reads`);
});

test('the cache keeps to its byte bound, spares recently read entries, and decodeCache: 0 turns it off', (t) => {
  const name = uniqueName(t);
  const w = open(t, name, { reset: true });
  for (let i = 0; i < 50; i++) w.set(`k${i}`, big(`v${i}`, 1000));
  w.set('hot', big('hot', 1000));

  // About 1,150 bytes an entry (value, key and bookkeeping): 5,000 bytes hold 4.
  const m = open(t, name, { decodeCache: 5000 });
  for (let i = 0; i < 50; i++) {
    assert.equal(m.get(`k${i}`), big(`v${i}`, 1000));
    const hits = dc(m).hits;
    assert.equal(m.get('hot'), big('hot', 1000));
    // Read between every eviction, the hot entry stays.
    if (i > 0) assert.equal(dc(m).hits, hits + 1, `hot was evicted at ${i}`);
    const { entries, bytes } = dc(m);
    assert.ok(bytes <= 5000, `${bytes} bytes cached`);
    assert.ok(entries >= 1 && entries <= 4, `${entries} entries`);
  }
  // A value larger than the bound is never kept.
  w.set('huge', big('huge', 6000));
  m.get('huge');
  assert.ok(dc(m).bytes <= 5000);
  assert.equal(m.get('huge'), big('huge', 6000));

  const off = open(t, name, { decodeCache: 0 });
  for (let r = 0; r < 3; r++) {
    for (let i = 0; i < 50; i++) assert.equal(off.get(`k${i}`), big(`v${i}`, 1000));
  }
  assert.deepEqual(dc(off), { entries: 0, bytes: 0, hits: 0 });

  // The default bound (8 MiB) holds all of these.
  const def = open(t, name);
  for (let r = 0; r < 2; r++) {
    for (let i = 0; i < 50; i++) assert.equal(def.get(`k${i}`), big(`v${i}`, 1000));
  }
  assert.equal(dc(def).entries, 50);
  assert.equal(dc(def).hits, 50);

  throwsCode(assert, () => new Shmap(name, { decodeCache: -1 }), 'ERR_OUT_OF_RANGE', RangeError);
  throwsCode(assert, () => new Shmap(name, { decodeCache: '8MB' }), 'ERR_INVALID_ARG_TYPE', TypeError);
});
