#!/usr/bin/env node
// The two entry points of the repository (see README): `npm run demo` builds everything and
// runs the cluster demo; `npm test` runs every check, Rust and Node. Each step prints its
// command and duration; the first failure stops the run with its exit code.
'use strict';

const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { ensureRedisServer } = require('./redis-server');

const root = path.resolve(__dirname, '..');

function step(title, cmd, args, opts = {}) {
  const started = Date.now();
  console.log(`\n==> ${title}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (r.error) {
    console.error(`==> ${title}: could not run ${cmd}: ${r.error.message}`);
    process.exit(127);
  }
  if (r.status !== 0) {
    console.error(`==> ${title}: FAILED (exit ${r.status ?? r.signal}) after ${secs}s`);
    process.exit(r.status || 1);
  }
  console.log(`==> ${title}: ok (${secs}s)`);
}

function buildAll() {
  step('build Rust (core, inspect tool, Node addon)', 'cargo', ['build', '--release', '--workspace']);
  step('build Node package', 'npm', ['--prefix', 'node', 'run', 'build']);
}

// The shmap/redis tests need a real redis-server (Debian's): install it when missing and root,
// as on CI; elsewhere those tests skip with a printed reason.
function installRedis() {
  const started = Date.now();
  const why = ensureRedisServer((m) => console.log(`\n==> ${m}`));
  if (why) console.log(`\n==> ${why}: the shmap/redis tests will skip`);
  else console.log(`==> redis-server: ok (${((Date.now() - started) / 1000).toFixed(1)}s)`);
}

const commands = {
  demo() {
    buildAll();
    step('demo: a primary and 5 forked workers sharing one map', 'node', ['node/examples/cluster.js']);
  },
  test() {
    const started = Date.now();
    step('format', 'cargo', ['fmt', '--all', '--', '--check']);
    step('lint', 'cargo', ['clippy', '--workspace', '--all-targets', '--', '-D', 'warnings']);
    // Unit, integration (multi-process, SIGKILL loop, damage + proptest, full tmpfs,
    // snapshots), doc tests, and the benches in their quick smoke mode.
    step('Rust tests', 'cargo', ['test', '--workspace', '--all-targets']);
    step('Rust doc tests', 'cargo', ['test', '--workspace', '--doc']);
    // A second build of the core with the failpoints compiled in: a child aborts at each one.
    step('Rust failpoint crash test', 'cargo', [
      'test', '-p', 'shmap', '--features', 'failpoints', '--test', 'failpoints',
    ]);
    buildAll();
    installRedis();
    step('Node tests', 'npm', ['--prefix', 'node', 'test']);
    // npm run pack (the glibc 2.17 binary, cargo-zigbuild), then the tarballs installed and
    // used in a fresh directory without Rust on PATH (README, "Install").
    step('packed install test', 'node', ['--test', 'scripts/install.test.js']);
    step('Node benchmark smoke run (no speed asserted)', 'node', ['node/bench/cluster.js', '--quick']);
    // The Rust bench already ran in its smoke mode among the Rust tests.
    step('performance report smoke run (no speed asserted)', 'node', [
      'node/bench/report.js', '--quick', '--only', 'throughput,latency,memory,growth,write-scaling,growth-stall,redis-tier,adapters',
    ]);
    console.log(`\nall checks passed in ${((Date.now() - started) / 1000).toFixed(0)}s`);
  },
};

const which = process.argv[2];
if (!commands[which]) {
  console.error(`usage: node scripts/run.js ${Object.keys(commands).join('|')}`);
  process.exit(2);
}
commands[which]();
