'use strict';
// The map file is its owner's: as root, a map planted by another user (nobody), a group- or
// world-writable map, a symlink (to a map, to an empty file) and a hard link are each refused
// with ERR_SHMAP_PERMISSION and nothing is written into them; a deliberate mode 0o660 share
// between a root creator and a nobody worker works. Skipped (with the reason) where not root.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { spawnSync } = require('child_process');
const { Shmap } = require('..');
const { uniqueName, throwsCode } = require('./helpers');

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'needs root (to run a child as nobody and to change owners)';
const NOBODY = 65534;
const NOGROUP = 65534;

// The addon and the JS layer, copied where `nobody` can read them (the clone may sit under a
// directory nobody cannot enter).
let runtime;
function nobodyRuntime(t) {
  if (runtime) return runtime;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmap-nobody-'));
  fs.chmodSync(dir, 0o755);
  const pkg = path.join(__dirname, '..');
  fs.copyFileSync(path.join(pkg, 'shmap.node'), path.join(dir, 'shmap.node'));
  fs.copyFileSync(path.join(pkg, 'index.js'), path.join(dir, 'index.js'));
  fs.cpSync(path.join(pkg, 'lib'), path.join(dir, 'lib'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'child.js'), `
'use strict';
const { Shmap } = require('./index.js');
const [op, name, opts] = [process.argv[2], process.argv[3], JSON.parse(process.argv[4] || '{}')];
try {
  const m = new Shmap(name, opts);
  if (op === 'set') m.set('planted', 'by-' + process.getuid());
  const v = m.get('shared');
  m.close();
  console.log(JSON.stringify({ ok: true, value: v === undefined ? null : v }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }));
}
`);
  for (const f of fs.readdirSync(dir, { recursive: true })) {
    const p = path.join(dir, f);
    fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o755 : 0o644);
  }
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  runtime = dir;
  return dir;
}

function asNobody(t, op, name, opts = {}) {
  const dir = nobodyRuntime(t);
  const r = spawnSync(process.execPath, [path.join(dir, 'child.js'), op, name, JSON.stringify(opts)], {
    uid: NOBODY, gid: NOGROUP, cwd: dir, encoding: 'utf8',
  });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const digest = (p) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

function refusedUntouched(t, p, open) {
  const before = digest(p);
  throwsCode(assert, open, 'ERR_SHMAP_PERMISSION');
  assert.equal(digest(p), before, 'a refused file was written to');
}

test('a map planted by another user is refused, and nothing is written into it', { skip }, (t) => {
  for (const mode of [0o666, 0o600]) {
    const name = uniqueName(t, 'planted');
    const r = asNobody(t, 'set', name, { mode });
    assert.ok(r.ok, JSON.stringify(r));
    const p = `/dev/shm/${name}`;
    assert.equal(fs.statSync(p).uid, NOBODY);
    refusedUntouched(t, p, () => new Shmap(name));
    refusedUntouched(t, p, () => new Shmap(name, { mode: 0o666 }));
    try {
      new Shmap(name);
    } catch (e) {
      assert.match(e.message, /uid 65534/);
    }
  }
});

test('group- or world-writable maps, symlinks and hard links are refused', { skip }, (t) => {
  const dir = fs.mkdtempSync(path.join('/dev/shm', 'shmap-own-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const map = path.join(dir, 'map');
  const m = new Shmap(map);
  m.set('k', 'v');
  m.close();
  for (const mode of [0o660, 0o606, 0o666]) {
    fs.chmodSync(map, mode);
    refusedUntouched(t, map, () => new Shmap(map));
  }
  fs.chmodSync(map, 0o600);
  const link = path.join(dir, 'link');
  fs.symlinkSync(map, link);
  refusedUntouched(t, map, () => new Shmap(link));
  const empty = path.join(dir, 'victim');
  fs.writeFileSync(empty, '', { mode: 0o600 });
  const link2 = path.join(dir, 'link2');
  fs.symlinkSync(empty, link2);
  throwsCode(assert, () => new Shmap(link2), 'ERR_SHMAP_PERMISSION');
  assert.equal(fs.statSync(empty).size, 0, 'the symlink was followed');
  const hard = path.join(dir, 'hard');
  fs.linkSync(map, hard);
  refusedUntouched(t, map, () => new Shmap(map));
  refusedUntouched(t, map, () => new Shmap(hard));
});

test('a deliberate mode 0o660 share between a root creator and a nobody worker works', { skip }, (t) => {
  const name = uniqueName(t, 'share');
  const m = new Shmap(name, { mode: 0o660 });
  const p = `/dev/shm/${name}`;
  // The workers' group owns the file (or run the primary with that group).
  fs.chownSync(p, 0, NOGROUP);
  assert.equal(fs.statSync(p).mode & 0o777, 0o660);
  m.set('shared', 'from-root');
  // Root is trusted by default; the worker's handle accepts the group bits it asked for.
  const r = asNobody(t, 'set', name, { mode: 0o660 });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.value, 'from-root');
  assert.equal(m.get('planted'), `by-${NOBODY}`);
  // Without the matching mode the worker refuses the wider file.
  const r2 = asNobody(t, 'get', name);
  assert.equal(r2.code, 'ERR_SHMAP_PERMISSION', JSON.stringify(r2));
  m.close();
});

test('the mode option is checked', (t) => {
  throwsCode(assert, () => new Shmap(uniqueName(t), { mode: 0o1777 }), 'ERR_OUT_OF_RANGE', RangeError);
  throwsCode(assert, () => new Shmap(uniqueName(t), { trustedOwners: [-1] }), 'ERR_OUT_OF_RANGE', RangeError);
  throwsCode(assert, () => new Shmap(uniqueName(t), { lockTimeout: -1 }), 'ERR_OUT_OF_RANGE', RangeError);
});
