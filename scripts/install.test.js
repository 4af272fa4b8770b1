'use strict';
// The package as a user gets it: `npm run pack` writes the tarballs, then in a fresh directory
// with cargo and rustc off PATH and the registry unreachable, npm installs them, a cluster
// script (3 forked workers) shares one map through require('shmap'), `npx shmap inspect
// --verify` checks the map, and the installed binary's glibc floor is read from its ELF.
// Run by `npm test` (scripts/run.js) after the Rust and Node steps.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { glibcFloor, compareVersions } = require('./elf');

const root = path.resolve(__dirname, '..');
const version = require('../node/package.json').version;
const tarball = (name) => path.join(root, 'dist', `${name}-${version}.tgz`);
// Nothing listens on port 9 of loopback: any registry request fails at once, and is logged.
const DEAD_REGISTRY = 'http://127.0.0.1:9/';

const timed = (t, what, fn) => {
  const started = Date.now();
  const r = fn();
  t.diagnostic(`${what}: ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return r;
};

function sh(cmd, args, opts) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, ...opts });
  assert.equal(r.error, undefined, `${cmd}: ${r.error && r.error.message}`);
  return r;
}

// PATH without any directory that holds cargo or rustc; node and npm stay reachable (through
// a directory of links if they lived beside cargo).
function pathWithoutRust(dir) {
  const has = (d, f) => fs.existsSync(path.join(d, f));
  const kept = (process.env.PATH || '').split(path.delimiter)
    .filter((d) => d && !has(d, 'cargo') && !has(d, 'rustc'));
  const links = path.join(dir, 'bin');
  fs.mkdirSync(links);
  for (const tool of ['node', 'npm', 'npx']) {
    if (kept.some((d) => has(d, tool))) continue;
    const found = (process.env.PATH || '').split(path.delimiter).find((d) => d && has(d, tool));
    if (found) fs.symlinkSync(fs.realpathSync(path.join(found, tool)), path.join(links, tool));
  }
  return [links, ...kept].join(path.delimiter);
}

const CLUSTER_APP = `'use strict';
// A user's cluster app: the primary creates the map, 3 forked workers share it.
const cluster = require('node:cluster');
const { Shmap } = require('shmap');
const name = process.argv[2];
const WORKERS = 3;
const N = 200;
if (cluster.isPrimary) {
  const cache = new Shmap(name, { reset: true });
  cache.set('config', { theme: 'dark' });
  let done = 0;
  const timer = setTimeout(() => { console.error('workers hung'); process.exit(3); }, 60000);
  for (let i = 0; i < WORKERS; i++) {
    cluster.fork({ WORKER_ID: String(i) }).on('exit', (code) => {
      if (code !== 0) { console.error('worker exited with ' + code); process.exit(4); }
      if (++done < WORKERS) return;
      clearTimeout(timer);
      const counted = cache.get('requests');
      const seen = [];
      for (let w = 0; w < WORKERS; w++) for (let k = 0; k < N; k++) {
        if (cache.get('w' + w + ':' + k) === w * N + k) seen.push(1);
      }
      console.log(JSON.stringify({ requests: counted, entries: seen.length }));
      cache.close();
    });
  }
} else {
  const id = Number(process.env.WORKER_ID);
  const cache = new Shmap(name);
  if (cache.get('config').theme !== 'dark') process.exit(5);
  for (let k = 0; k < N; k++) {
    cache.set('w' + id + ':' + k, id * N + k);
    cache.incr('requests');
  }
  cache.close();
  process.exit(0);
}
`;

test('installed from the tarballs without Rust, a cluster shares a map and shmap inspect verifies it', (t) => {
  // 1. Pack (reuses the cargo build when nothing changed).
  const pack = timed(t, 'npm run pack', () => sh(process.execPath, [path.join(root, 'scripts', 'pack.js')], {
    cwd: root, stdio: ['ignore', 'inherit', 'inherit'],
  }));
  assert.equal(pack.status, 0, 'npm run pack failed');
  for (const f of [tarball('shmap'), tarball('shmap-linux-x64-gnu')]) assert.ok(fs.existsSync(f), f);

  // 2. A fresh directory, no Rust, a registry that answers nothing.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmap-install-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), '{ "name": "user-app", "private": true }\n');
  const env = {
    ...process.env,
    PATH: pathWithoutRust(dir),
    CARGO: path.join(dir, 'no-cargo'),
    RUSTC: path.join(dir, 'no-rustc'),
    SHMAP_NATIVE: '',
    npm_config_registry: DEAD_REGISTRY,
    npm_config_cache: path.join(dir, 'npm-cache'),
    npm_config_fetch_retries: '0',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  for (const k of Object.keys(env)) if (k.startsWith('npm_package_') || k === 'npm_lifecycle_event') delete env[k];
  for (const tool of ['cargo', 'rustc']) {
    assert.notEqual(sh('sh', ['-c', `command -v ${tool}`], { env }).status, 0, `${tool} is still on PATH`);
  }

  // 3. Install: the platform package first, then shmap, whose optional dependency it then
  //    satisfies without asking the registry (README, "Install").
  for (const f of [tarball('shmap-linux-x64-gnu'), tarball('shmap')]) {
    const r = timed(t, `npm install ${path.basename(f)}`, () => sh('npm', ['install', '--loglevel=http', f], { cwd: app, env }));
    assert.equal(r.status, 0, `npm install ${f}:\n${r.stdout}\n${r.stderr}`);
    // Our packages come from the tarballs only (npm may still look up the manifests of the
    // adapters' optional peer dependencies, ioredis, keyv and the like, which fail here and
    // are skipped).
    assert.doesNotMatch(r.stderr, /http fetch \S+ \S+\/shmap/, `npm asked the registry for shmap:\n${r.stderr}`);
  }
  const lock = JSON.parse(fs.readFileSync(path.join(app, 'package-lock.json'), 'utf8'));
  for (const p of ['node_modules/shmap', 'node_modules/shmap-linux-x64-gnu']) {
    assert.match(lock.packages[p].resolved, /^file:/, p);
  }
  const installed = fs.readdirSync(path.join(app, 'node_modules', 'shmap'));
  assert.ok(!installed.some((f) => f.endsWith('.node')), `the JS package carries a binary: ${installed}`);

  // 4. The cluster app.
  const name = `shmap-install-${process.pid}-${Date.now()}`;
  t.after(() => fs.rmSync(`/dev/shm/${name}`, { force: true }));
  fs.writeFileSync(path.join(app, 'server.js'), CLUSTER_APP);
  const run = timed(t, 'cluster app', () => sh('node', ['server.js', name], { cwd: app, env, timeout: 90_000 }));
  assert.equal(run.status, 0, `cluster app:\n${run.stdout}\n${run.stderr}`);
  assert.deepEqual(JSON.parse(run.stdout), { requests: 600, entries: 600 });

  // 5. The command, from the installed package.
  const verify = sh('npx', ['--no-install', 'shmap', 'inspect', '--verify', name], { cwd: app, env });
  assert.equal(verify.status, 0, `shmap inspect --verify:\n${verify.stdout}\n${verify.stderr}`);
  assert.match(verify.stdout, /ok: no problems found/);
  const summary = sh('npx', ['--no-install', 'shmap', 'inspect', '--json', name], { cwd: app, env });
  assert.equal(summary.status, 0, summary.stderr);
  assert.equal(JSON.parse(summary.stdout).entries.live, 602);
  const rm = sh('npx', ['--no-install', 'shmap', 'rm', name], { cwd: app, env });
  assert.equal(rm.status, 0, rm.stderr);

  // 6. The binary that was installed: its glibc floor and size.
  const bin = path.join(app, 'node_modules', 'shmap-linux-x64-gnu', 'shmap.linux-x64-gnu.node');
  const floor = glibcFloor(bin);
  const size = fs.statSync(bin).size;
  t.diagnostic(`installed binary: ${(size / 1024).toFixed(0)} KiB, highest symbol version GLIBC_${floor}`);
  assert.ok(compareVersions(floor, '2.17') <= 0, `needs GLIBC_${floor}, above 2.17`);
  assert.ok(size < 4 << 20, `${size} bytes: not stripped?`);
});

test('installed without its platform package, require(\'shmap\') says which package is missing and why', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmap-install-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "name": "user-app", "private": true }\n');
  const env = { ...process.env, SHMAP_NATIVE: '', npm_config_cache: path.join(dir, 'npm-cache') };
  const r = sh('npm', ['install', '--offline', '--omit=optional', '--no-audit', '--no-fund', tarball('shmap')], { cwd: dir, env });
  assert.equal(r.status, 0, r.stderr);
  const probe = sh('node', ['-e', `try { require('shmap') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`], { cwd: dir, env });
  const e = JSON.parse(probe.stdout);
  assert.equal(e.code, 'ERR_SHMAP_NO_BINARY');
  assert.match(e.message, /shmap-linux-x64-gnu: not installed/);
  assert.match(e.message, /npm\/cli#4828/);
});

test('npm pack of node/ lists only what belongs in the package, with no install script', () => {
  const r = sh('npm', ['pack', '--dry-run', '--json', '--loglevel=error'], { cwd: path.join(root, 'node') });
  assert.equal(r.status, 0, r.stderr);
  const files = JSON.parse(r.stdout)[0].files.map((f) => f.path).sort();
  const allowed = /^(README\.md|package\.json|index\.(js|mjs|d\.ts)|bin\/shmap\.js|lib\/[a-z-]+\.js|adapters\/([a-z-]+\.(js|mjs|d\.ts)|README\.md))$/;
  assert.deepEqual(files.filter((f) => !allowed.test(f)), []);
  for (const f of ['index.js', 'index.d.ts', 'bin/shmap.js', 'lib/native.js', 'lib/cli.js']) assert.ok(files.includes(f), f);
  const pkg = require('../node/package.json');
  for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(pkg.scripts[s], undefined, s);
  assert.equal(pkg.bin.shmap, 'bin/shmap.js');
});
