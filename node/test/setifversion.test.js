'use strict';
// setIfVersion / deleteIfVersion: the version check and the write are one step across
// processes (the coherence primitive of shmap/redis).
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { fork } = require('node:child_process');
const { Shmap } = require('..');
const { uniqueName, throwsCode } = require('./helpers');

const cond = (version, compare = '<=', stamp = false) => ({ versionKey: 'v:k', floorKey: 'floor', version, compare, stamp });

test('setIfVersion compares with the version entry, then the floor, and stamps', (t) => {
  const m = new Shmap(uniqueName(t, 'setif'));
  assert.equal(m.setIfVersion('k', 'a', 0, cond(1)), false, 'a floor that is absent refuses');
  m.set('floor', 5);
  assert.equal(m.setIfVersion('k', 'old', 0, cond(4)), false);
  assert.equal(m.setIfVersion('k', 'five', 0, cond(5)), true);
  assert.equal(m.get('k'), 'five');
  assert.equal(m.get('v:k'), undefined, 'no stamp asked for');
  assert.equal(m.setIfVersion('k', { seven: 7 }, 0, cond(7, '<=', true)), true);
  assert.deepEqual([m.get('k'), m.get('v:k'), m.get('floor')], [{ seven: 7 }, 7, 7]);
  assert.equal(m.setIfVersion('k', 'six', 0, cond(6)), false, 'a fill older than the stamp');
  assert.equal(m.deleteIfVersion('k', cond(7, '<', true)), false, 'strict: not newer');
  assert.equal(m.deleteIfVersion('k', cond(8, '<', true)), true);
  assert.equal(m.get('k'), undefined);
  assert.equal(m.setIfVersion('k', 'seven again', 0, cond(7)), false, 'the deleted value stays deleted');
  // Every value type goes through, typed as set() stores it.
  for (const v of ['ascii', 'ünïcødé', 'x'.repeat(100), 42, -0, NaN, 2 ** 60, true, false, null,
    Buffer.from([1, 2]), new Uint8Array([3]), [1, 'two'], { a: { b: 'ç' } }]) {
    assert.equal(m.setIfVersion('k', v, 0, cond(9)), true);
    assert.deepStrictEqual(m.get('k'), v);
  }
  // '===' with the written key as its own version: renew-if-still-mine.
  const mine = { versionKey: 'lease', version: 42, compare: '===' };
  assert.equal(m.setIfVersion('lease', 42, 60000, mine), false, 'absent is nobody\'s');
  m.set('lease', 41);
  assert.equal(m.setIfVersion('lease', 42, 60000, mine), false);
  // Short-lived but not so short that a busy CI core lets it lapse before the renewal.
  m.set('lease', 42, 300);
  assert.equal(m.setIfVersion('lease', 42, 60000, mine), true);
  // A TTL given to the value is kept (here: expires).
  assert.equal(m.setIfVersion('short', 'x', 1, { versionKey: 'nover', version: 1 }), true);
  const until = Date.now() + 20;
  while (Date.now() < until);
  assert.equal(m.get('short'), undefined);
  m.close();
});

test('setIfVersion refuses bad arguments with typed errors', (t) => {
  const m = new Shmap(uniqueName(t, 'setif-args'));
  throwsCode(assert, () => m.setIfVersion('k', 1, 0), 'ERR_INVALID_ARG_TYPE', TypeError);
  throwsCode(assert, () => m.setIfVersion('k', 1, 0, { versionKey: '', version: 1 }), 'ERR_INVALID_ARG_TYPE', TypeError);
  throwsCode(assert, () => m.setIfVersion('k', 1, 0, { versionKey: 'v', version: 1.5 }), 'ERR_OUT_OF_RANGE', RangeError);
  throwsCode(assert, () => m.setIfVersion('k', 1, 0, { versionKey: 'v', version: 1, compare: '>' }), 'ERR_INVALID_ARG_VALUE', TypeError);
  throwsCode(assert, () => m.setIfVersion('k', undefined, 0, { versionKey: 'v', version: 1 }), 'ERR_INVALID_ARG_TYPE', TypeError);
  throwsCode(assert, () => m.deleteIfVersion('k', { versionKey: 'v', version: 1, stamp: 'yes' }), 'ERR_INVALID_ARG_TYPE', TypeError);
  m.set('v', 'not a number');
  throwsCode(assert, () => m.setIfVersion('k', 1, 0, { versionKey: 'v', version: 1 }), 'ERR_SHMAP_NOT_AN_INTEGER');
  m.close();
});

test('racing fills in other processes never put back a value older than a stamp', async (t) => {
  const name = uniqueName(t, 'setif-race');
  const m = new Shmap(name);
  m.set('floor', 0, 0);
  const script = path.join(__dirname, 'fixtures', 'setif-worker.js');
  const kids = ['writer', 'filler', 'writer', 'filler'].map((role, i) => {
    const c = fork(script, [role, name, String(i + 1)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    t.after(() => c.kill('SIGKILL'));
    return new Promise((resolve) => c.on('exit', (code, signal) => resolve({ role, code, signal })));
  });
  const results = await Promise.all(kids);
  for (const r of results) assert.deepEqual(r, { role: r.role, code: 0, signal: null });
  const ver = m.get('v:k');
  assert.ok(ver > 0, 'writers stamped');
  const v = m.get('k');
  if (v !== undefined) assert.ok(v >= ver, `final value ${v} below the stamped version ${ver}`);
  m.close();
});
