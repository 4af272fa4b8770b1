'use strict';
// Every error code the package documents, each provoked for real, and argument checking:
// nothing a caller passes may crash the process.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { Shmap, NodeShareCache } = require('..');
const { uniqueName, tempDir, throwsCode, runNode } = require('./helpers');

const PKG = path.join(__dirname, '..');

test('ERR_SHMAP_FULL: at maxSize with eviction off', (t) => {
  const m = new Shmap(uniqueName(t), { reset: true, initialSize: 64 << 10, maxSize: 64 << 10, evict: false });
  t.after(() => m.close());
  let stored = 0;
  throwsCode(assert, () => {
    for (let i = 0; i < 10_000; i++) {
      m.set(`k${i}`, 'v'.repeat(500));
      stored++;
    }
  }, 'ERR_SHMAP_FULL');
  assert.ok(stored > 0, 'some entries fit');
  // Nothing was lost, and the map still serves reads and deletes.
  for (let i = 0; i < stored; i++) assert.equal(m.get(`k${i}`), 'v'.repeat(500));
  assert.equal(m.delete('k0'), true);
  // With eviction back on, the same write succeeds by evicting.
  m.setEvict(true);
  for (let i = 0; i < 200; i++) m.set(`more${i}`, 'v'.repeat(500));
  assert.ok(m.stats().evictions > 0);
});

test('ERR_SHMAP_NO_SPACE: the file system is full (a 1 MiB tmpfs)', async (t) => {
  if (process.getuid() !== 0) {
    t.skip('needs root to mount a small tmpfs');
    console.log('# skipped ERR_SHMAP_NO_SPACE: not root, cannot mount a small tmpfs');
    return;
  }
  const mnt = fs.mkdtempSync(path.join(require('os').tmpdir(), 'shmap-test-mnt-'));
  let mounted = false;
  t.after(() => {
    if (mounted) execFileSync('umount', [mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'shmap-test', mnt], { stdio: 'pipe' });
    mounted = true;
  } catch (e) {
    t.skip(`cannot mount a tmpfs: ${String(e.stderr || e.message).trim()}`);
    console.log(`# skipped ERR_SHMAP_NO_SPACE: cannot mount a tmpfs (${String(e.stderr || e.message).trim()})`);
    return;
  }
  // In a child: should the map touch a page the file system cannot back, only it would die.
  // With eviction on, a map that cannot grow evicts instead; with it off, writes that need
  // more room than the file system has fail.
  const script = `
    const { Shmap } = require(${JSON.stringify(PKG)});
    const out = {};
    try {
      new Shmap(${JSON.stringify(path.join(mnt, 'too-big'))}, { initialSize: 4 << 20 });
    } catch (e) {
      out.open = e.code;
    }
    const m = new Shmap(${JSON.stringify(path.join(mnt, 'map'))}, { initialSize: 64 << 10, maxSize: 64 << 20, evict: false });
    let n = 0;
    try {
      for (; n < 10000; n++) m.set('k' + n, 'v'.repeat(10000));
    } catch (e) {
      Object.assign(out, { code: e.code, message: e.message, again: m.get('k0') });
    }
    out.n = n;
    console.log(JSON.stringify(out));`;
  const r = await runNode(['-e', script]);
  assert.equal(r.signal, null, `child died: ${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.open, 'ERR_SHMAP_NO_SPACE', 'opening a map larger than the file system');
  assert.equal(out.code, 'ERR_SHMAP_NO_SPACE', out.message);
  assert.ok(out.n > 0, 'some entries fit first');
  assert.equal(out.again, 'v'.repeat(10000), 'the map still reads after NO_SPACE');
});

test('ERR_SHMAP_CORRUPT: a damaged header', (t) => {
  const name = uniqueName(t);
  new Shmap(name, { reset: true }).close();
  const file = `/dev/shm/${name}`;
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from([0xde, 0xad]), 0, 2, 100); // inside the superblock's checksummed bytes
  fs.closeSync(fd);
  throwsCode(assert, () => new Shmap(name), 'ERR_SHMAP_CORRUPT');
  // reset re-creates a damaged map.
  const m = new Shmap(name, { reset: true });
  m.set('k', 1);
  assert.equal(m.get('k'), 1);
  m.close();
});

test('ERR_SHMAP_VERSION: a file of another format version', (t) => {
  const name = uniqueName(t);
  new Shmap(name, { reset: true }).close();
  const file = `/dev/shm/${name}`;
  const fd = fs.openSync(file, 'r+');
  const v = Buffer.alloc(4);
  v.writeUInt32LE(99);
  fs.writeSync(fd, v, 0, 4, 8); // the version field
  fs.closeSync(fd);
  assert.throws(() => new Shmap(name), (e) => {
    assert.equal(e.code, 'ERR_SHMAP_VERSION');
    assert.match(e.message, /99/);
    return true;
  });
});

for (const old of [2, 3, 4]) {
  test(`ERR_SHMAP_VERSION: a version-${old} map (the committed fixture) is refused; reset: true re-creates it as version 5`, (t) => {
    const fixture = path.join(PKG, '..', 'tests', 'fixtures', `v${old}.shmap`);
    const file = path.join(tempDir(t), 'old.shmap');
    fs.copyFileSync(fixture, file);
    fs.chmodSync(file, 0o600);
    const before = fs.readFileSync(file);
    assert.throws(() => new Shmap(file), (e) => {
      assert.equal(e.code, 'ERR_SHMAP_VERSION');
      assert.match(e.message, new RegExp(`version ${old}`));
      assert.match(e.message, /version 5/);
      assert.match(e.message, /reset: true/);
      return true;
    });
    assert.deepEqual(fs.readFileSync(file), before, 'the refusal wrote nothing');
    const m = new Shmap(file, { reset: true });
    assert.equal(m.get('alpha'), undefined);
    m.set('alpha', 'new');
    m.close();
    assert.equal(fs.readFileSync(file).readUInt32LE(8), 5, 'the file is version 5 now');
    const again = new Shmap(file);
    assert.equal(again.get('alpha'), 'new');
    again.close();
  });
}

test('ERR_SHMAP_NOT_A_MAP: refuses a file that is not a map', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'notes.txt');
  fs.writeFileSync(file, 'x'.repeat(64 << 10), { mode: 0o644 });
  fs.chmodSync(file, 0o644);
  // Wider than the handle's mode: refused before it is even read.
  throwsCode(assert, () => new Shmap(file), 'ERR_SHMAP_PERMISSION');
  fs.chmodSync(file, 0o600);
  throwsCode(assert, () => new Shmap(file), 'ERR_SHMAP_NOT_A_MAP');
  throwsCode(assert, () => new Shmap(file, { reset: true }), 'ERR_SHMAP_NOT_A_MAP');
  assert.equal(fs.readFileSync(file, 'utf8'), 'x'.repeat(64 << 10), 'the file is untouched');
});

test('ERR_SHMAP_TOO_LARGE: keys over 65535 bytes, values over the map', (t) => {
  const m = new Shmap(uniqueName(t), { reset: true, maxSize: 1 << 20 });
  t.after(() => m.close());
  throwsCode(assert, () => m.set('k'.repeat(65536), 1), 'ERR_SHMAP_TOO_LARGE');
  throwsCode(assert, () => m.get('é'.repeat(40000)), 'ERR_SHMAP_TOO_LARGE');
  throwsCode(assert, () => m.set(Buffer.alloc(70000), 1), 'ERR_SHMAP_TOO_LARGE');
  throwsCode(assert, () => m.set('big', Buffer.alloc(1 << 20)), 'ERR_SHMAP_TOO_LARGE');
  throwsCode(assert, () => m.set('big', 'x'.repeat(1 << 20)), 'ERR_SHMAP_TOO_LARGE');
  m.set('small', 1);
  assert.equal(m.get('small'), 1);
});

test('ERR_SHMAP_CLOSED: every method of a closed handle', (t) => {
  const m = new Shmap(uniqueName(t), { reset: true });
  m.set('k', 1);
  m.close();
  const calls = {
    get: () => m.get('k'), set: () => m.set('k', 2), add: () => m.add('n', 1), has: () => m.has('k'),
    delete: () => m.delete('k'), clear: () => m.clear(), incr: () => m.incr('c'),
    getOrSet: () => m.getOrSet('g', () => 1), keys: () => m.keys(), entries: () => m.entries(),
    stats: () => m.stats(), flush: () => m.flush(), size: () => m.size,
    setMaxAge: () => m.setMaxAge(1), setMaxSize: () => m.setMaxSize(1 << 20), setLock: () => m.setLock(false),
  };
  for (const [what, fn] of Object.entries(calls)) {
    assert.throws(fn, { code: 'ERR_SHMAP_CLOSED' }, what);
  }
});

test('ERR_SHMAP_READ_ONLY: lock: false, setLock(false), and the seed API', (t) => {
  const name = uniqueName(t);
  const w = new Shmap(name, { reset: true });
  t.after(() => w.close());
  w.set('k', 'v');
  const r = new Shmap(name, { lock: false });
  t.after(() => r.close());
  assert.equal(r.readOnly, true);
  assert.equal(r.get('k'), 'v');
  assert.equal(r.has('k'), true);
  for (const fn of [() => r.set('k', 1), () => r.add('x', 1), () => r.delete('k'), () => r.clear(),
    () => r.incr('c'), () => r.setMaxAge(5), () => r.setMaxSize(1 << 20), () => r.getOrSet('g', () => 1)]) {
    throwsCode(assert, fn, 'ERR_SHMAP_READ_ONLY');
  }
  r.setLock(true);
  r.set('k', 'from r');
  assert.equal(w.get('k'), 'from r');
  w.setLock(false);
  throwsCode(assert, () => w.set('k', 2), 'ERR_SHMAP_READ_ONLY');

  const c = new NodeShareCache(name, 1024 * 100, false);
  t.after(() => c.destroy());
  c.setLock(false);
  throwsCode(assert, () => c.set('k', 'v'), 'ERR_SHMAP_READ_ONLY');
  assert.equal(c.get('k'), 'from r');
});

test('ERR_INVALID_ARG_TYPE: wrong argument types are TypeErrors', (t) => {
  const m = new Shmap(uniqueName(t), { reset: true });
  t.after(() => m.close());
  const type = (fn) => throwsCode(assert, fn, 'ERR_INVALID_ARG_TYPE', TypeError);
  type(() => new Shmap(42));
  type(() => new Shmap(uniqueName(t), 'options'));
  type(() => new Shmap(uniqueName(t), { maxSize: '1MB' }));
  type(() => new Shmap(uniqueName(t), { reset: 1 }));
  type(() => new Shmap(uniqueName(t), { lock: 'yes' }));
  type(() => new NodeShareCache(7, 100, true));
  for (const key of [undefined, null, 1, {}, [], Symbol('k'), () => 1, 10n, new Float64Array(2)]) {
    type(() => m.get(key));
    type(() => m.set(key, 1));
    type(() => m.has(key));
    type(() => m.delete(key));
  }
  for (const value of [undefined, () => 1, Symbol('v'), 10n, new Date(), new Map(), new Float64Array(2), new (class Foo {})()]) {
    type(() => m.set('k', value));
    type(() => m.add('k', value));
  }
  type(() => m.set('k', 1, '100'));
  type(() => m.incr('c', '1'));
  type(() => m.getOrSet('k', 'not a function'));
  type(() => m.setMaxAge('1'));
  type(() => m.setMaxSize(null));
  type(() => m.setLock('no'));
  assert.equal(m.size, 0, 'nothing was stored');
  // Values out of range and empty keys are errors too, of their own codes.
  throwsCode(assert, () => m.set('k', 1, -1), 'ERR_OUT_OF_RANGE', RangeError);
  throwsCode(assert, () => m.incr('c', 1.5), 'ERR_OUT_OF_RANGE', RangeError);
  throwsCode(assert, () => m.set('', 1), 'ERR_INVALID_ARG_VALUE', TypeError);
  throwsCode(assert, () => m.set('k', { big: 10n }), 'ERR_INVALID_ARG_VALUE', TypeError);
  const cyclic = {};
  cyclic.self = cyclic;
  throwsCode(assert, () => m.set('k', cyclic), 'ERR_INVALID_ARG_VALUE', TypeError);
  throwsCode(assert, () => new Shmap(uniqueName(t), { initialSize: 1000 }), 'ERR_SHMAP_INVALID_ARGUMENT');
});

test('nothing a caller passes crashes the process', (t) => {
  const m = new Shmap(uniqueName(t), { reset: true });
  t.after(() => m.close());
  const weird = [undefined, null, true, 0, -1, NaN, Infinity, 2 ** 64, '', 'k', 'é', '\0', 'x'.repeat(70000),
    {}, [], [1], Buffer.alloc(0), Buffer.alloc(70000), new Uint8Array(3), new Float64Array(1), 10n,
    Symbol('s'), () => 1, new Proxy({}, {}), Object.create(null), new Error('e'), Promise.resolve(1)];
  const methods = ['get', 'set', 'add', 'has', 'delete', 'incr', 'getOrSet', 'setMaxAge', 'setMaxSize', 'setLock', 'setEvict'];
  let calls = 0;
  for (const method of methods) {
    for (const a of weird) {
      for (const b of [undefined, 1, 'v', -5, NaN, {}, () => 2]) {
        try {
          const r = m[method](a, b);
          if (r instanceof Promise) r.catch(() => {});
        } catch (e) {
          assert.ok(e instanceof Error, `${method}: threw a non-Error`);
          assert.equal(typeof e.code, 'string', `${method}(${typeof a}, ${typeof b}): ${e.message}`);
        }
        calls++;
      }
    }
  }
  m.setLock(true);
  m.setEvict(true);
  m.set('still', 'works');
  assert.equal(m.get('still'), 'works');
  assert.ok(calls > 500);
});
