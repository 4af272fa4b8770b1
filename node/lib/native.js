'use strict';
// The native addon (built from src/lib.rs: shmap.node from source, or a platform package's
// prebuilt binary) and the per-thread buffers every handle shares with it. Hot paths cross
// N-API with numbers only: the key is written into `keyBuf`, the addon copies the value into
// the handle's `io` buffer and returns `len * 16 + tag`.

const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  PLATFORMS, KERNEL_FLOOR, packageOf, binaryOf, detectLibc, platformName, describePlatform,
} = require('./platforms');

const pkgDir = path.join(__dirname, '..');

// Loads a native addon file whatever its name (require would run a file not named .node as JS).
function dlopen(file) {
  const m = { exports: {} };
  process.dlopen(m, file);
  return m.exports;
}

// Loads the addon, trying in order:
//   1. $SHMAP_NATIVE, if set (and nothing else: an explicit choice that fails is an error);
//   2. a build in the package directory: shmap.node (`npm run build`, from source) or
//      shmap.<platform>.node (`napi build --platform`);
//   3. the platform package (shmap-linux-x64-gnu, ...), an optional dependency of shmap.
// When none loads, throws one Error with code ERR_SHMAP_NO_BINARY that says why for each.
function loadNative(env = process.env, dir = pkgDir) {
  const tried = []; // { what, cause }
  const attempt = (what, load) => {
    try {
      return { ok: true, value: load() };
    } catch (e) {
      tried.push({ what, cause: e });
      return { ok: false };
    }
  };
  if (env.SHMAP_NATIVE) {
    const file = path.resolve(env.SHMAP_NATIVE);
    const r = attempt(`SHMAP_NATIVE=${env.SHMAP_NATIVE}`, () => dlopen(file));
    if (r.ok) return r.value;
    throw noBinary(tried, null, null);
  }
  const tryLocal = (name) => {
    const file = path.join(dir, name);
    return fs.existsSync(file) ? attempt(file, () => dlopen(file)) : { ok: false };
  };
  // The build from source first, before the (few ms) libc detection it does not need.
  const dev = tryLocal('shmap.node');
  if (dev.ok) return dev.value;
  const libc = detectLibc();
  const platform = platformName(process.platform, process.arch, libc.libc);
  if (platform) {
    const r = tryLocal(binaryOf(platform));
    if (r.ok) return r.value;
  }
  const known = platform && PLATFORMS[platform];
  if (known) {
    const pkg = packageOf(platform);
    let resolved = null;
    try {
      resolved = require.resolve(pkg, { paths: [dir] });
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
      tried.push({ what: pkg, missing: true });
    }
    if (resolved) {
      const r = attempt(`${pkg} (${resolved})`, () => dlopen(resolved));
      if (r.ok) return r.value;
    }
  }
  throw noBinary(tried, platform, libc);
}

// The ERR_SHMAP_NO_BINARY error: what this system is, then what was tried and why each failed.
function noBinary(tried, platform, libc) {
  const version = require('../package.json').version;
  const lc = libc || detectLibc();
  const here = `${describePlatform(process.platform, process.arch, lc)}, kernel ${os.release()}`;
  const lines = [];
  const known = platform && PLATFORMS[platform];
  const shipped = Object.keys(PLATFORMS).filter((p) => PLATFORMS[p].ships);
  if (tried.length && tried[0].what.startsWith('SHMAP_NATIVE=')) {
    lines.push(`shmap: cannot load the native addon named by ${tried[0].what} (${here})`);
  } else if (!platform) {
    lines.push(`shmap: cannot tell which C library this Linux uses (${here}), so no prebuilt ` +
      `binary can be chosen; shmap ships binaries for ${shipped.join(', ')}.`);
  } else if (!known || !known.ships) {
    lines.push(`shmap: no prebuilt binary for ${platform} (${here}); ` +
      `binaries ship for ${shipped.join(', ')} only.` +
      (known ? ` ${platform} is laid out (node/npm/${platform}) but not built yet: run ` +
        '`npm run pack -- --platform ' + platform + '` in the repository on a machine with ' +
        `the Rust target ${known.target.replace(/\.\d+\.\d+$/, '')}.` : ''));
  } else {
    lines.push(`shmap: no native binary loads on ${platform} (${here}).`);
  }
  for (const t of tried) {
    if (t.missing) {
      lines.push(`- ${t.what}: not installed. It is the optional dependency of shmap that ` +
        `carries the ${platform} binary. npm leaves it out when a package-lock.json written ` +
        'on another platform omits it (npm/cli#4828), or when optional dependencies are ' +
        'skipped (--omit=optional, --no-optional). Install it beside shmap (npm install ' +
        `${t.what}-${version}.tgz with the tarballs \`npm run pack\` writes), or delete ` +
        'node_modules and package-lock.json and install again on this machine.');
    } else {
      const msg = String((t.cause && t.cause.message) || t.cause).split('\n')[0];
      lines.push(`- ${t.what}: ${msg}`);
      if (/GLIBC_|version `/.test(msg)) {
        lines.push(`  (the binaries need glibc ${known && known.glibc ? known.glibc : '2.17'} ` +
          `or later and Linux ${KERNEL_FLOOR} or later)`);
      }
    }
  }
  if (!tried.length && !(known && known.ships)) {
    lines.push('- no binary was tried. To build one from source (needs Rust 1.89+): ' +
      'npm --prefix node run build in the repository.');
  }
  const e = new Error(lines.join('\n'));
  e.code = 'ERR_SHMAP_NO_BINARY';
  e.platform = platform;
  e.tried = tried.map((t) => t.what);
  return e;
}

const native = loadNative();
// get, getIf, has and put as raw N-API callbacks (src/raw.rs): half the cost of a #[napi]
// function.
const fast = native.fastApi();

const MAX_KEY = 65535; // bytes, as in the core
const MIN_SIZE = 64 << 10; // smallest accepted map size, as in the core

// Returns of the addon's get/getIf besides `len * 16 + tag` (>= 0); below -2, `-3 - len` means
// io is too small for a value of `len` bytes.
const MISS = -1;
const UNCHANGED = -2; // getIf: the record is still the version in `ver`; nothing was copied

// One key buffer per thread (module instances are per thread), shared by every handle.
const keyBuf = Buffer.allocUnsafeSlow(MAX_KEY + 1);

// One version buffer per thread, shared by every handle: [generation, position] of a record.
// JS writes the version it holds before getIf; the addon writes the version of every hit.
// Versions are exact in a float64 below 2^53 (the addon reports -1 beyond). The third slot is
// the coarse wall clock (ms) of the last get on a handle that stamps (see Shmap[kStampClock]).
const verBuf = Buffer.alloc(24);
const ver = new Float64Array(verBuf.buffer, verBuf.byteOffset, 3);

// Frees the addon's slot of a Shmap that was collected without close().
const handles = new FinalizationRegistry((id) => native.free(id));

module.exports = {
  loadNative, noBinary, native, fast, keyBuf, verBuf, ver, handles, MAX_KEY, MIN_SIZE, MISS, UNCHANGED,
};
