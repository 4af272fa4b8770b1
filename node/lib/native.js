'use strict';
// The native addon (shmap.node, built from src/lib.rs) and the per-thread buffers every handle
// shares with it. Hot paths cross N-API with numbers only: the key is written into `keyBuf`,
// the addon copies the value into the handle's `io` buffer and returns `len * 16 + tag`.

const path = require('path');

function loadNative() {
  const file = process.env.SHMAP_NATIVE || path.join(__dirname, '..', 'shmap.node');
  try {
    return require(file);
  } catch (e) {
    e.message = `shmap: cannot load the native addon ${file}; build it with ` +
      `\`npm --prefix node run build\` (needs Rust). Cause: ${e.message}`;
    throw e;
  }
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
// Versions are exact in a float64 below 2^53 (the addon reports -1 beyond).
const verBuf = Buffer.allocUnsafeSlow(16);
const ver = new Float64Array(verBuf.buffer, verBuf.byteOffset, 2);

// Frees the addon's slot of a Shmap that was collected without close().
const handles = new FinalizationRegistry((id) => native.free(id));

module.exports = {
  native, fast, keyBuf, verBuf, ver, handles, MAX_KEY, MIN_SIZE, MISS, UNCHANGED,
};
