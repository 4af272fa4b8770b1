'use strict';
// The loader (lib/native.js): which binary it picks, and the one ERR_SHMAP_NO_BINARY error
// that says why none loaded (a bad file, a missing platform package, a platform that has no
// binary), each in a fresh process.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { tempDir } = require('./helpers');
const { PLATFORMS, detectLibc, platformName } = require('../lib/platforms');
const { noBinary } = require('../lib/native');

const pkgDir = path.join(__dirname, '..');

// Requires the package at `dir` in a fresh node; returns the error's code and message (or
// { loaded: true }).
function requireIn(dir, env = {}) {
  const script = `try { require(${JSON.stringify(dir)}); console.log(JSON.stringify({ loaded: true })); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, name: e.constructor.name })); }`;
  const r = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, SHMAP_NATIVE: '', ...env }, encoding: 'utf8', timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

// A copy of the JS package without any binary and without node_modules: what a user gets
// when npm left the platform package out.
function packageWithoutBinary(t) {
  const dir = path.join(tempDir(t), 'shmap');
  fs.mkdirSync(dir);
  for (const f of ['index.js', 'package.json', 'lib']) {
    fs.cpSync(path.join(pkgDir, f), path.join(dir, f), { recursive: true });
  }
  return dir;
}

test('this Linux is recognised: glibc and its version, without spawning anything', () => {
  const { libc, version } = detectLibc();
  assert.equal(libc, 'gnu');
  assert.match(version, /^2\.\d+$/);
  assert.equal(platformName('linux', 'x64', 'gnu'), 'linux-x64-gnu');
  assert.equal(platformName('linux', 'arm64', 'musl'), 'linux-arm64-musl');
  assert.equal(platformName('linux', 'x64', null), null);
});

test('SHMAP_NATIVE naming a file that is not a binary: ERR_SHMAP_NO_BINARY with the dlopen message', (t) => {
  const bad = path.join(tempDir(t), 'bad.node');
  fs.writeFileSync(bad, 'this is not an ELF file, only text that is long enough to be read as a header.\n'.repeat(4));
  const r = requireIn(pkgDir, { SHMAP_NATIVE: bad });
  assert.equal(r.code, 'ERR_SHMAP_NO_BINARY');
  assert.equal(r.name, 'Error');
  assert.match(r.message, /SHMAP_NATIVE=/);
  assert.ok(r.message.includes(bad), r.message);
  assert.match(r.message, /invalid ELF header/);
  assert.match(r.message, /Linux on x64 with glibc 2\.\d+, kernel /);
  // An explicit choice that fails is not silently replaced by another binary.
  assert.doesNotMatch(r.message, /shmap-linux-x64-gnu/);
});

test('SHMAP_NATIVE naming a missing file: the same error, naming it', (t) => {
  const missing = path.join(tempDir(t), 'nope.node');
  const r = requireIn(pkgDir, { SHMAP_NATIVE: missing });
  assert.equal(r.code, 'ERR_SHMAP_NO_BINARY');
  assert.ok(r.message.includes(missing), r.message);
});

test('the platform package missing (npm/cli#4828): one error naming the package, the platform and the lockfile problem', (t) => {
  const r = requireIn(packageWithoutBinary(t));
  assert.equal(r.code, 'ERR_SHMAP_NO_BINARY');
  assert.match(r.message, /no native binary loads on linux-x64-gnu \(Linux on x64 with glibc/);
  assert.match(r.message, /- shmap-linux-x64-gnu: not installed/);
  assert.match(r.message, /npm\/cli#4828/);
  assert.match(r.message, /package-lock\.json/);
  assert.equal(r.message.split('\n').filter((l) => l.startsWith('- ')).length, 1, r.message);
});

test('a platform package whose binary does not load: its dlopen message', (t) => {
  const dir = packageWithoutBinary(t);
  const plat = path.join(dir, 'node_modules', 'shmap-linux-x64-gnu');
  fs.mkdirSync(plat, { recursive: true });
  fs.writeFileSync(path.join(plat, 'package.json'), JSON.stringify({
    name: 'shmap-linux-x64-gnu', version: '0.1.0', main: 'shmap.linux-x64-gnu.node',
  }));
  fs.writeFileSync(path.join(plat, 'shmap.linux-x64-gnu.node'), Buffer.alloc(64));
  const r = requireIn(dir);
  assert.equal(r.code, 'ERR_SHMAP_NO_BINARY');
  assert.match(r.message, /- shmap-linux-x64-gnu \(.*shmap\.linux-x64-gnu\.node\): .*(invalid ELF header|too short)/);
  assert.doesNotMatch(r.message, /4828/);
});

test('a working platform package is loaded when there is no local build', (t) => {
  const dir = packageWithoutBinary(t);
  const plat = path.join(dir, 'node_modules', 'shmap-linux-x64-gnu');
  fs.mkdirSync(plat, { recursive: true });
  fs.writeFileSync(path.join(plat, 'package.json'), JSON.stringify({
    name: 'shmap-linux-x64-gnu', version: '0.1.0', main: 'shmap.linux-x64-gnu.node',
  }));
  fs.copyFileSync(path.join(pkgDir, 'shmap.node'), path.join(plat, 'shmap.linux-x64-gnu.node'));
  assert.deepEqual(requireIn(dir), { loaded: true });
});

test('platforms without a binary get one error naming the platform and what ships', () => {
  for (const p of ['linux-arm64-musl', 'linux-x64-musl', 'linux-arm64-gnu']) {
    assert.equal(PLATFORMS[p].ships, false, `${p} now ships: update this test and the README`);
    const e = noBinary([], p, { libc: p.endsWith('musl') ? 'musl' : 'gnu', version: null });
    assert.equal(e.code, 'ERR_SHMAP_NO_BINARY');
    assert.ok(e.message.startsWith(`shmap: no prebuilt binary for ${p} (`), e.message);
    assert.match(e.message, /binaries ship for linux-x64-gnu only/);
    assert.match(e.message, /npm run pack -- --platform/);
  }
  const e = noBinary([], 'darwin-arm64', { libc: null, version: null });
  assert.match(e.message, /^shmap: no prebuilt binary for darwin-arm64 \(/);
  assert.match(e.message, /build one from source/);
  const unknown = noBinary([], null, { libc: null, version: null });
  assert.match(unknown.message, /cannot tell which C library/);
});
