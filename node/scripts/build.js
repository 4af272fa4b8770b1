#!/usr/bin/env node
'use strict';
// Builds the native addon with cargo and installs it as node/shmap.node.
//   node scripts/build.js [--debug]
// Cargo reports where it put the library (so CARGO_TARGET_DIR and workspace settings are
// respected); the copy is renamed into place, so processes still running the old addon keep a
// valid mapping of it.
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const pkgDir = path.resolve(__dirname, '..');
const debug = process.argv.includes('--debug');
const args = ['build', '-p', 'shmap-node', '--message-format=json-render-diagnostics'];
if (!debug) args.push('--release');

console.error(`shmap: cargo ${args.join(' ')}`);
const r = spawnSync(process.env.CARGO || 'cargo', args, {
  cwd: pkgDir,
  stdio: ['ignore', 'pipe', 'inherit'],
  encoding: 'utf8',
  maxBuffer: 256 << 20,
});
if (r.error) {
  console.error(`shmap: cannot run cargo: ${r.error.message} (install Rust: https://rustup.rs)`);
  process.exit(1);
}
if (r.status !== 0) process.exit(r.status || 1);

let lib = null;
for (const line of r.stdout.split('\n')) {
  if (!line.startsWith('{')) continue;
  const msg = JSON.parse(line);
  if (msg.reason === 'compiler-artifact' && msg.target && msg.target.name === 'shmap_node') {
    lib = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || lib;
  }
}
if (!lib) {
  console.error('shmap: cargo did not report the shmap_node library');
  process.exit(1);
}

const dest = path.join(pkgDir, 'shmap.node');
const tmp = `${dest}.${process.pid}.tmp`;
fs.copyFileSync(lib, tmp);
fs.renameSync(tmp, dest);
console.error(`shmap: ${path.relative(process.cwd(), lib)} -> ${path.relative(process.cwd(), dest)}`);
