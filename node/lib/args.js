'use strict';
// Argument checks and conversions shared by every entry point: keys into the shared key
// buffer, TTLs, sizes, booleans.

const { keyBuf, MAX_KEY } = require('./native');
const { codedError, argType, argValue, outOfRange } = require('./errors');

function keyTooLarge(len) {
  return codedError(Error, 'ERR_SHMAP_TOO_LARGE',
    `key of ${len} bytes is too large (at most ${MAX_KEY})`);
}

// Writes `key` into keyBuf and returns its length in bytes (UTF-8 for strings).
function writeKey(key) {
  if (typeof key === 'string') {
    const n = key.length;
    if (n <= 64) {
      // Short ASCII keys: a plain loop beats any encoder call.
      let i = 0;
      for (; i < n; i++) {
        const c = key.charCodeAt(i);
        if (c > 0x7f) break;
        keyBuf[i] = c;
      }
      if (i === n) {
        if (n === 0) throw argValue('key', 'must not be empty', key);
        return n;
      }
    } else if (n > MAX_KEY / 3) {
      const bytes = Buffer.byteLength(key, 'utf8');
      if (bytes > MAX_KEY) throw keyTooLarge(bytes);
    }
    return keyBuf.utf8Write(key, 0);
  }
  if (key instanceof Uint8Array) {
    // byteLength, not length: an own `length` property can say anything.
    const n = key.byteLength;
    if (n === 0) throw argValue('key', 'must not be empty', key);
    if (n > MAX_KEY) throw keyTooLarge(n);
    keyBuf.set(key, 0);
    return n;
  }
  throw argType('key', 'of type string or an instance of Buffer or Uint8Array', key);
}

// A TTL argument: undefined = the map's default (-1 for the addon), 0 or Infinity = never.
function ttlArg(ttl, name = 'ttlMs') {
  if (ttl === undefined) return -1;
  if (typeof ttl !== 'number') throw argType(name, 'of type number', ttl);
  if (ttl === Infinity) return 0;
  // Past 2^53 ms (285,000 years) a TTL only saturates the clock: say so rather than store it.
  if (!(ttl >= 0 && ttl <= Number.MAX_SAFE_INTEGER)) {
    throw outOfRange(name, `>= 0 and <= ${Number.MAX_SAFE_INTEGER}, or Infinity`, ttl);
  }
  // A positive TTL under 1 ms is 1 ms: flooring it to 0 would mean "never expires".
  return ttl > 0 && ttl < 1 ? 1 : Math.floor(ttl);
}

// Writes a key prefix into keyBuf and returns its length; unlike a key, it may be empty.
function writePrefix(prefix, name = 'prefix') {
  if (prefix === '' || (prefix instanceof Uint8Array && prefix.length === 0)) return 0;
  if (typeof prefix !== 'string' && !(prefix instanceof Uint8Array)) {
    throw argType(name, 'of type string or an instance of Buffer or Uint8Array', prefix);
  }
  return writeKey(prefix);
}

function sizeArg(v, name) {
  if (typeof v !== 'number') throw argType(name, 'of type number', v);
  if (!(v >= 0) || !Number.isSafeInteger(Math.floor(v))) {
    throw outOfRange(name, `>= 0 and <= ${Number.MAX_SAFE_INTEGER}`, v);
  }
  return Math.floor(v);
}

function boolArg(v, name) {
  if (typeof v !== 'boolean') throw argType(name, 'of type boolean', v);
  return v;
}

// File permission bits (e.g. 0o660).
function modeArg(v, name) {
  if (typeof v !== 'number') throw argType(name, 'of type number', v);
  if (!Number.isInteger(v) || v < 0 || v > 0o777) throw outOfRange(name, 'an integer in 0..0o777', v);
  return v;
}

// A shard count: a power of two from 1 to 128, or 0 for twice the cores.
function shardsArg(v, name) {
  if (typeof v !== 'number') throw argType(name, 'of type number', v);
  if (!Number.isInteger(v) || v < 0 || v > 128 || (v & (v - 1)) !== 0) {
    throw outOfRange(name, 'a power of two from 1 to 128, or 0 (twice the cores)', v);
  }
  return v;
}

// A list of uids.
function uidsArg(v, name) {
  if (!Array.isArray(v)) throw argType(name, 'an array of numbers', v);
  for (const u of v) {
    if (typeof u !== 'number' || !Number.isInteger(u) || u < 0 || u > 0xFFFFFFFF) {
      throw outOfRange(`${name}[]`, 'an integer uid in 0..4294967295', u);
    }
  }
  return v.slice();
}

// Bytes the addon may read while nothing else changes them: a view of a SharedArrayBuffer,
// which another thread may be writing, is copied first (the record's checksum and its copy in
// the map must be of the same bytes; Rust must not read memory that changes under it).
function stableBytes(u) {
  return u.buffer instanceof SharedArrayBuffer ? Buffer.from(u) : u;
}

// JSON text for a value stored as JSON; a value JSON cannot hold (cyclic, BigInt, a toJSON
// that returns undefined, a function or a Symbol) is a TypeError naming "value".
function jsonText(value) {
  let json;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    const err = argValue('value', `cannot be stored as JSON (${e.message})`, value);
    err.cause = e;
    throw err;
  }
  if (typeof json !== 'string') {
    throw argValue('value', 'cannot be stored as JSON (its toJSON gave no JSON value)', value);
  }
  return json;
}

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') &&
    typeof v.then === 'function';
}

module.exports = {
  writeKey, writePrefix, ttlArg, sizeArg, boolArg, modeArg, uidsArg, shardsArg, isThenable,
  stableBytes, jsonText,
};
