'use strict';
// The `shmap` command (bin/shmap.js): inspect gives what shmap-inspect gives (same code, run
// through the addon), ls lists maps with their processes, rm removes a map only when no process
// has it open and names the ones that do.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { Shmap } = require('..');
const { uniqueName, tempDir, forkWorker } = require('./helpers');

const BIN = path.join(__dirname, '..', 'bin', 'shmap.js');
// The Rust binary, built by the repository's `npm test` (cargo build --release --workspace).
const INSPECT = path.join(__dirname, '..', '..', 'target', 'release', 'shmap-inspect');

function shmap(args) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.error, undefined);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function filled(t) {
  const name = uniqueName(t, 'cli');
  const m = new Shmap(name, { reset: true });
  for (let i = 0; i < 50; i++) m.set(`user:${i}`, { i });
  m.set('bin', Buffer.from([0, 1, 2, 255]));
  m.set('gone', 'x', 1);
  m.incr('hits', 3);
  return { name, m };
}

test('--help on every command', () => {
  for (const args of [['--help'], ['help'], ['inspect', '--help'], ['help', 'inspect'],
    ['ls', '--help'], ['help', 'ls'], ['rm', '--help'], ['rm', '-h'], ['dump', '--help'], ['help', 'load'], ['load', '-h']]) {
    const r = shmap(args);
    assert.equal(r.code, 0, `${args}: ${r.stderr}`);
    assert.match(r.stdout, /^usage: shmap /, args.join(' '));
  }
  assert.match(shmap(['inspect', '--help']).stdout, /^usage: shmap inspect \[--json\] FILE /);
  const bad = shmap(['frobnicate']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command frobnicate/);
  assert.equal(shmap(['rm', '--bogus', 'x']).code, 2);
  assert.match(shmap(['--version']).stdout, /^shmap \d+\.\d+\.\d+/);
});

test('shmap inspect: the same output and exit codes as shmap-inspect, in every mode', (t) => {
  const { name, m } = filled(t);
  const now = String(Date.now() + 10_000);
  const modes = [
    ['--now', now, name],
    ['--json', '--now', now, name],
    ['--verify', name],
    ['--json', '--verify', name],
    ['--keys', '--prefix', 'user:1', '--limit', '5', '--now', now, name],
    ['--keys', '--json', '--now', now, name],
    ['--dump', '--limit', '3', '--now', now, name],
    ['--now', now, 'shmap-test-no-such-map'],
    ['--json', '--now', now, 'shmap-test-no-such-map'],
    ['--verify', '--keys', name],
  ];
  const haveRust = fs.existsSync(INSPECT);
  if (!haveRust) t.diagnostic(`${INSPECT} not built: comparing exit codes only`);
  const expectCode = [0, 0, 0, 0, 0, 0, 0, 2, 2, 2];
  modes.forEach((args, i) => {
    const ours = shmap(['inspect', ...args]);
    assert.equal(ours.code, expectCode[i], `${args.join(' ')}: ${ours.stderr}`);
    if (!haveRust) return;
    const r = spawnSync(INSPECT, args, { encoding: 'utf8' });
    assert.equal(ours.code, r.status, args.join(' '));
    // Both runs read the same map at the same --now: the reports match byte for byte.
    assert.equal(ours.stdout, r.stdout, args.join(' '));
    assert.equal(ours.stderr.replaceAll('shmap inspect', 'shmap-inspect'), r.stderr, args.join(' '));
  });
  const verify = shmap(['inspect', '--verify', name]);
  assert.match(verify.stdout, /ok: no problems found/);
  const keys = shmap(['inspect', '--keys', '--prefix', 'user:1', '--limit', '5', name]);
  assert.deepEqual(keys.stdout.trim().split('\n'), ['user:1', 'user:10', 'user:11', 'user:12', 'user:13']);
  m.close();
});

test('shmap inspect reports damage with exit 1 and a file that is not a map with exit 2', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'm');
  const m = new Shmap(file, { reset: true });
  for (let i = 0; i < 20; i++) m.set(`k${i}`, 'v'.repeat(100));
  m.close();
  const r = shmap(['inspect', '--json', '--verify', file]);
  assert.equal(r.code, 0, r.stderr);
  // Flip bytes in the middle of the ring's records: their checksums no longer match.
  const json = JSON.parse(shmap(['inspect', '--json', file]).stdout);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, json.log.offset + 200);
  fs.closeSync(fd);
  const bad = shmap(['inspect', '--verify', file]);
  assert.equal(bad.code, 1, bad.stdout + bad.stderr);
  const foreign = path.join(dir, 'foreign');
  fs.writeFileSync(foreign, 'hello, not a map'.repeat(100));
  const nm = shmap(['inspect', foreign]);
  assert.equal(nm.code, 2);
  assert.match(nm.stderr, /^shmap inspect: /);
});

test('shmap ls lists maps with size, owner, mode, processes and last exit, and skips other files', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'listed');
  const m = new Shmap(file, { reset: true });
  m.set('a', 1);
  m.close();
  fs.writeFileSync(path.join(dir, 'not-a-map'), 'x'.repeat(30000));
  const w = forkWorker(t, 'hold', { name: file });
  const { pid } = await w.message('ready');
  const r = shmap(['ls', '--json', dir]);
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((x) => x.name), ['listed']);
  const [row] = rows;
  assert.equal(row.apparent_bytes, fs.statSync(file).size);
  assert.equal(row.mode, '0600');
  assert.equal(row.owner, process.getuid() === 0 ? 'root' : row.owner);
  assert.deepEqual(row.processes, [pid]);
  assert.equal(row.last_exit, 'in_use');
  assert.equal(row.live_entries, 1);
  const text = shmap(['ls', dir]);
  assert.match(text.stdout, /^NAME\s+SIZE\s+ALLOCATED\s+OWNER\s+MODE\s+PROCESSES\s+LAST EXIT\s+ENTRIES\n/);
  assert.match(text.stdout, new RegExp(`^listed\\s+2\\.0 MiB\\s+\\S+ \\S+\\s+\\S+\\s+0600\\s+${pid}\\s+in use\\s+1$`, 'm'));
  w.send({ t: 'close' });
  await w.message('closed');
  const after = JSON.parse(shmap(['ls', '--json', dir]).stdout);
  assert.deepEqual(after.processes, []);
  assert.equal(after.last_exit, 'clean');
});

test('shmap rm refuses while a process has the map open, names it, and removes the map after', async (t) => {
  const name = uniqueName(t, 'rm');
  const file = `/dev/shm/${name}`;
  new Shmap(name, { reset: true }).close();
  for (const readOnly of [false, true]) {
    const w = forkWorker(t, 'hold', { name, readOnly });
    const { pid } = await w.message('ready');
    const r = shmap(['rm', name]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`is open by pid ${pid} \\(.*worker\\.js hold`));
    assert.match(r.stderr, /not removed/);
    assert.ok(fs.existsSync(file), 'the map is still there');
    w.send({ t: 'close' });
    await w.message('closed');
    await w.exited;
  }
  const ok = shmap(['rm', name]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `removed ${file}\n`);
  assert.ok(!fs.existsSync(file));
  const again = shmap(['rm', name]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /no such map/);
});

test('shmap rm --force unlinks an open map; files that are not maps are never removed', async (t) => {
  const name = uniqueName(t, 'rmf');
  new Shmap(name, { reset: true }).close();
  const w = forkWorker(t, 'hold', { name });
  const { pid } = await w.message('ready');
  const r = shmap(['rm', '--force', name]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`--force; it was open by pid ${pid}`));
  assert.ok(!fs.existsSync(`/dev/shm/${name}`));
  w.send({ t: 'close' });
  await w.message('closed');
  const dir = tempDir(t);
  const other = path.join(dir, 'notes.txt');
  fs.writeFileSync(other, 'keep me'.repeat(5000));
  for (const args of [[other], ['--force', other]]) {
    const x = shmap(['rm', ...args]);
    assert.equal(x.code, 2);
    assert.match(x.stderr, /not a shmap map; not removed/);
    assert.ok(fs.existsSync(other));
  }
  fs.symlinkSync(other, path.join(dir, 'link'));
  assert.equal(shmap(['rm', path.join(dir, 'link')]).code, 2);
  assert.ok(fs.existsSync(other));
});

test('shmap rm: an empty file (a creation that never finished) goes, a file that is not a map stays', (t) => {
  const dir = tempDir(t);
  const empty = path.join(dir, 'empty');
  fs.writeFileSync(empty, '');
  assert.equal(shmap(['rm', empty]).code, 0);
  assert.ok(!fs.existsSync(empty));
  const text = path.join(dir, 'text');
  fs.writeFileSync(text, 'not a map at all'.repeat(10));
  const r = shmap(['rm', '--force', text]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not a shmap map; not removed/);
  assert.ok(fs.existsSync(text));
});

test('shmap dump then shmap load: every type, key, flag and expiry comes back; expired entries stay out', async (t) => {
  const { name, m } = filled(t);
  m.set('text', 'héllo ✓');
  m.set('obj', { a: [1, 2, { b: null }], c: 'x' });
  m.set('u8', new Uint8Array([7, 8]));
  m.set('num', -2.5);
  m.set('big', 'y'.repeat(200_000));
  m.set('soon', 'z', 300);
  m.set('later', 'w', 600_000);
  m.set(Buffer.from([0xff, 0x00, 0xfe]), 'a key that is not UTF-8');
  const dir = tempDir(t);
  const file = path.join(dir, 'map.ndjson');
  const d = spawnSync(process.execPath, [BIN, 'dump', name], { timeout: 60_000 });
  assert.equal(d.status, 0, d.stderr.toString());
  fs.writeFileSync(file, d.stdout);
  await new Promise((r) => setTimeout(r, 400)); // 'soon' expires between the dump and the load
  const copy = uniqueName(t, 'cli-copy');
  const r = shmap(['load', copy, file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^5[0-9] entries stored, 1 expired since the dump left out\n$/);
  const c = new Shmap(copy);
  t.after(() => { c.close(); m.close(); });
  for (const k of m.keys()) {
    if (k === 'soon') continue;
    assert.deepEqual(c.get(k), m.get(k), String(k));
  }
  assert.equal(c.get('soon'), undefined);
  const keys = (x) => x.keys().map(String).filter((k) => k !== 'soon').sort();
  assert.deepEqual(keys(c), keys(m));
  assert.ok(c.get('u8') instanceof Uint8Array && !Buffer.isBuffer(c.get('u8')));
  assert.ok(Buffer.isBuffer(c.get('bin')));
  assert.equal(c.incr('hits', 1), 4); // still a counter
  const ttl = c.getRemainingTTL('later');
  assert.ok(ttl > 500_000 && ttl <= 600_000, String(ttl));
  assert.equal(c.getRemainingTTL('text'), Infinity);
});

test('shmap load: a bad line stops it with exit 1 naming the line; a map of another version needs --reset', (t) => {
  const { name, m } = filled(t);
  t.after(() => m.close());
  const dir = tempDir(t);
  const good = spawnSync(process.execPath, [BIN, 'dump', '--limit', '3', name], { encoding: 'utf8' }).stdout;
  const file = path.join(dir, 'bad.ndjson');
  fs.writeFileSync(file, `${good}\n{"key":"k"}\n${good}`);
  const copy = uniqueName(t, 'cli-copy');
  let r = shmap(['load', copy, file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^shmap load: line 5: no "key_encoding" \(ERR_SHMAP_BAD_DUMP\); 3 entries stored before it\n$/);
  // A file of format version 1 (the fixture): refused, then re-created with --reset.
  const old = path.join(dir, 'v1.shmap');
  fs.copyFileSync(path.join(__dirname, '..', '..', 'tests', 'fixtures', 'v1.shmap'), old);
  fs.chmodSync(old, 0o600);
  fs.writeFileSync(file, good);
  r = shmap(['load', old, file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /version.*--reset re-creates it/s);
  r = shmap(['load', '--reset', old, file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '3 entries stored\n');
  assert.equal(shmap(['load', '--max-size', 'lots', copy]).code, 2);
});
