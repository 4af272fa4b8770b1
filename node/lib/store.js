'use strict';
// The store primitives behind Shmap's getRemainingTTL, expire, incr options and prefix
// operations (keys/scan/deletePrefix/deleteMany): what the adapters (../adapters/) need.

const { native, keyBuf, ver } = require('./native');
const { argType, argValue } = require('./errors');
const { writeKey, writePrefix, ttlArg, sizeArg, boolArg } = require('./args');
const { decodeEntryValue } = require('./codec');

// Keys removed per hold of the writer lock by deletePrefix.
const DELETE_BATCH = 256;

function optionsArg(o, name) {
  if (o === null || typeof o !== 'object') throw argType(name, 'of type object', o);
  return o;
}

// incr(key, delta, { ttl, initTtl, create, withExpiry }): `klen` is already in keyBuf.
function incrWith(id, klen, delta, o) {
  const { ttl, initTtl, create, withExpiry } = o;
  if (ttl !== undefined && initTtl !== undefined) {
    throw argValue('options', 'may have ttl or initTtl, not both', o);
  }
  const c = create === undefined ? true : boolArg(create, 'options.create');
  const w = withExpiry === undefined ? false : boolArg(withExpiry, 'options.withExpiry');
  const t = ttlArg(ttl, 'options.ttl');
  const it = ttlArg(initTtl, 'options.initTtl');
  const value = native.incrWith(id, klen, delta, t, it, c);
  if (Number.isNaN(value)) return undefined;
  if (!w) return value;
  const e = ver[0]; // the addon wrote the entry's expiry there
  return { value, expiresAt: e === 0 ? Infinity : e };
}

function remainingTtl(id, klen) {
  const e = native.expiresAt(id, klen);
  if (e < 0) return 0;
  if (e === 0) return Infinity;
  return Math.max(0, e - Date.now());
}

function prefixAndLimit(options, name = 'options') {
  optionsArg(options, name);
  const { prefix = '', limit } = options;
  return { prefix, limit: limit === undefined ? -1 : sizeArg(limit, `${name}.limit`) };
}

function keys(id, options) {
  const { prefix, limit } = prefixAndLimit(options);
  return native.keysWithPrefix(id, writePrefix(prefix, 'options.prefix'), limit);
}

// Entries fetched per call into the addon by scan(): bounds what one step of the iteration
// copies, however many keys match.
const SCAN_BATCH = 256;

// A lazy iterator over a resumable core scan: each batch comes from one lock-free
// Shmap::scan_from from the cursor the previous batch returned (two u32 halves: the cursor is a
// 64-bit hash), so the scan's semantics hold over the whole iteration, however long it lasts.
// `owner` (the Shmap) is read on every batch so that the handle cannot be garbage-collected,
// and so closed, while the iteration runs.
function* scanGen(owner, id, prefix, limit, values) {
  let left = limit < 0 ? Infinity : limit;
  let hi = 0;
  let lo = 0;
  while (left > 0 && owner !== null) {
    const b = native.scanBatch(id, prefix, hi, lo, Math.min(left, SCAN_BATCH), values);
    const ks = b.keys;
    left -= ks.length;
    if (values) {
      const vs = b.values;
      const ts = b.tags;
      for (let i = 0; i < ks.length; i++) yield [ks[i], decodeEntryValue(vs[i], ts[i])];
    } else {
      yield* ks;
    }
    if (b.done) return;
    hi = b.nextHi;
    lo = b.nextLo;
  }
}

function scan(map, id, options) {
  const { prefix, limit } = prefixAndLimit(options);
  const values = options.values === undefined ? false : boolArg(options.values, 'options.values');
  // Validated now (not at the first next()), and copied: the caller may reuse its buffer.
  const n = writePrefix(prefix, 'options.prefix');
  return scanGen(map, id, Buffer.from(keyBuf.subarray(0, n)), limit, values);
}

function deletePrefix(id, prefix) {
  if (prefix === undefined) throw argType('prefix', 'of type string or an instance of Buffer or Uint8Array', prefix);
  return native.deletePrefix(id, writePrefix(prefix), DELETE_BATCH);
}

// Packs the keys one after the other (their UTF-8 bytes) for one call into the addon.
function deleteMany(id, list) {
  if (!Array.isArray(list)) throw argType('keys', 'an instance of Array', list);
  if (list.length === 0) return 0;
  const lens = new Array(list.length);
  let total = 0;
  const parts = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const n = writeKey(list[i]); // validates
    parts[i] = Buffer.from(keyBuf.subarray(0, n));
    lens[i] = n;
    total += n;
  }
  return native.removePacked(id, Buffer.concat(parts, total), lens);
}

module.exports = { incrWith, remainingTtl, keys, scan, deletePrefix, deleteMany };
