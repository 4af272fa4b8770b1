#!/usr/bin/env node
// `npm run pack`: builds the shipped binaries and writes the installable tarballs to dist/:
// shmap-<version>.tgz (the JS package) and shmap-<platform>-<version>.tgz (each binary).
//
//   node scripts/pack.js                          linux-x64-gnu (glibc 2.17): what ships
//   node scripts/pack.js --platform linux-arm64-gnu,linux-x64-musl
//   node scripts/pack.js --platform all           every platform in node/lib/platforms.js
//
// Each binary is built the napi-rs way, `napi build --platform` (@napi-rs/cli, a dev
// dependency of node/), with cargo-zigbuild and zig (PyPI's ziglang), which link against an
// old glibc (the target's `.2.17` suffix) and cross-compile to any target rustup has installed.
// It uses the `dist` cargo profile (stripped, LTO). A platform needs its Rust target
// (`rustup target add ...`); the others are not built. The main package lists as optional
// dependencies exactly the platforms whose tarballs are in dist/.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const nodeDir = path.join(root, 'node');
const dist = path.join(root, 'dist');
const work = path.join(root, 'target', 'pack');
const { PLATFORMS, packageOf, binaryOf } = require('../node/lib/platforms');
const { glibcFloor, compareVersions } = require('./elf');

// Pinned so a build is reproducible; both ship their binaries in PyPI wheels.
const ZIG_TOOLS = ['ziglang==0.17.1', 'cargo-zigbuild==0.24.1'];

function run(cmd, args, opts = {}) {
  console.error(`pack: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
  return r;
}

function output(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', ...opts });
  return r.status === 0 ? r.stdout : null;
}

function parseArgs(argv) {
  let platforms = Object.keys(PLATFORMS).filter((p) => PLATFORMS[p].ships);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = a.startsWith('--platform=') ? a.slice(11) : a === '--platform' ? argv[++i] : null;
    if (v === null || v === undefined) throw new Error(`usage: npm run pack [-- --platform P,...|all] (got ${a})`);
    platforms = v === 'all' ? Object.keys(PLATFORMS) : v.split(',');
    for (const p of platforms) {
      if (!PLATFORMS[p]) throw new Error(`unknown platform ${p} (known: ${Object.keys(PLATFORMS).join(', ')})`);
    }
  }
  return platforms;
}

// cargo-zigbuild and zig, from PyPI when they are missing; returns the PATH to build with.
function zigTools() {
  const scripts = (output('python3', ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))']) || '').trim();
  const env = { ...process.env, PATH: [scripts, process.env.PATH].filter(Boolean).join(path.delimiter) };
  const have = () => output('cargo-zigbuild', ['--version'], { env }) !== null
    && output('python3', ['-c', 'import ziglang'], { env }) !== null;
  if (!have()) {
    run('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check',
      '--root-user-action=ignore', ...ZIG_TOOLS], { env });
    if (!have()) throw new Error(`cargo-zigbuild is not on PATH after pip install ${ZIG_TOOLS.join(' ')}`);
  }
  return env;
}

function napiCli() {
  const bin = path.join(nodeDir, 'node_modules', '.bin', 'napi');
  if (!fs.existsSync(bin)) run('npm', ['--prefix', 'node', 'install', '--no-audit', '--no-fund', '--loglevel=error']);
  return bin;
}

function installedTargets() {
  const out = output('rustup', ['target', 'list', '--installed']);
  return out ? out.split('\n').map((s) => s.trim()).filter(Boolean) : null;
}

function rustTarget(platform) {
  return PLATFORMS[platform].target.replace(/\.\d+\.\d+$/, '');
}

function buildBinary(platform, env, napi) {
  const info = PLATFORMS[platform];
  const out = path.join(work, platform);
  fs.rmSync(out, { recursive: true, force: true });
  const buildEnv = { ...env };
  if (platform.endsWith('-musl')) {
    // A Node addon is a shared library: link musl's libc dynamically, as Node itself does.
    const key = `CARGO_TARGET_${rustTarget(platform).toUpperCase().replace(/-/g, '_')}_RUSTFLAGS`;
    buildEnv[key] = [buildEnv[key], '-C target-feature=-crt-static'].filter(Boolean).join(' ');
  }
  run(napi, ['build', '--platform', '--profile', 'dist', '--target', info.target,
    '--cross-compile', '--package', 'shmap-node', '--output-dir', out, '--no-js'],
  { cwd: nodeDir, env: buildEnv });
  const built = path.join(out, binaryOf(platform));
  if (!fs.existsSync(built)) throw new Error(`napi build did not write ${built}`);
  if (info.glibc) {
    const floor = glibcFloor(built);
    if (floor && compareVersions(floor, info.glibc) > 0) {
      throw new Error(`${built} needs GLIBC_${floor}, above the ${info.glibc} floor`);
    }
    console.error(`pack: ${binaryOf(platform)} needs GLIBC_${floor} at most (floor ${info.glibc})`);
  }
  const dest = path.join(nodeDir, 'npm', platform, binaryOf(platform));
  fs.copyFileSync(built, `${dest}.tmp`);
  fs.renameSync(`${dest}.tmp`, dest);
  return dest;
}

function npmPack(dir) {
  const out = output('npm', ['pack', dir, '--pack-destination', dist, '--json', '--loglevel=error']);
  if (out === null) run('npm', ['pack', dir, '--pack-destination', dist]); // shows the error
  const [info] = JSON.parse(out);
  return path.join(dist, info.filename);
}

// The JS package, as `npm pack node/` would write it, plus the optional dependencies on the
// platform packages in dist/, and without the fields that only matter in the repository.
function packMain(version) {
  const listing = JSON.parse(output('npm', ['pack', '--dry-run', '--json', '--loglevel=error'], { cwd: nodeDir }));
  const stage = path.join(work, 'shmap');
  fs.rmSync(stage, { recursive: true, force: true });
  for (const { path: f } of listing[0].files) {
    fs.mkdirSync(path.dirname(path.join(stage, f)), { recursive: true });
    fs.copyFileSync(path.join(nodeDir, f), path.join(stage, f));
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(nodeDir, 'package.json'), 'utf8'));
  delete pkg.scripts;
  delete pkg.devDependencies;
  delete pkg.napi;
  pkg.optionalDependencies = {};
  for (const p of Object.keys(PLATFORMS)) {
    if (fs.existsSync(path.join(dist, `${packageOf(p)}-${version}.tgz`))) {
      pkg.optionalDependencies[packageOf(p)] = version;
    }
  }
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  return { tarball: npmPack(stage), optional: Object.keys(pkg.optionalDependencies) };
}

function main() {
  const started = Date.now();
  const platforms = parseArgs(process.argv.slice(2));
  const version = JSON.parse(fs.readFileSync(path.join(nodeDir, 'package.json'), 'utf8')).version;
  const have = installedTargets();
  const missing = platforms.filter((p) => have && !have.includes(rustTarget(p)));
  if (missing.length) {
    throw new Error(`no Rust target for ${missing.join(', ')}: ` +
      `rustup target add ${missing.map(rustTarget).join(' ')} (or choose --platform)`);
  }
  const env = zigTools();
  const napi = napiCli();
  fs.mkdirSync(dist, { recursive: true });
  const written = [];
  for (const p of platforms) {
    const pkgVersion = JSON.parse(fs.readFileSync(path.join(nodeDir, 'npm', p, 'package.json'), 'utf8')).version;
    if (pkgVersion !== version) throw new Error(`node/npm/${p}/package.json is ${pkgVersion}, shmap is ${version}`);
    const bin = buildBinary(p, env, napi);
    written.push({ file: npmPack(path.dirname(bin)), note: `${(fs.statSync(bin).size / 1024).toFixed(0)} KiB binary` });
  }
  const main = packMain(version);
  written.unshift({ file: main.tarball, note: `optional dependencies: ${main.optional.join(', ') || 'none'}` });
  console.log(`\npack: wrote in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  for (const w of written) console.log(`  ${path.relative(root, w.file)}  (${w.note})`);
  // The platform packages first: then shmap's optional dependencies are satisfied without a
  // registry lookup (README, "Install on a server").
  const order = [...written.slice(1), written[0]].map((w) => path.relative(root, w.file));
  console.log(`install, in this order: ${order.map((f) => `npm install ./${f}`).join(' && ')}`);
}

try {
  main();
} catch (e) {
  console.error(`pack: ${e.message}`);
  process.exit(1);
}
