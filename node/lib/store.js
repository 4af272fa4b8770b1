'use strict';
// The store primitives behind Shmap's getRemainingTTL, expire, incr options and prefix
// operations (keys/scan/deletePrefix/deleteMany): what the adapters (../adapters/) need.

const { native, keyBuf, ver } = require('./native');
const { argType, argValue } = require('./errors');
const { writeKey, writePrefix, ttlArg, sizeArg, boolArg } = require('./args');

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

// A lazy iterator. Today the addon takes the matching keys in one core scan and values are read
// as the iteration reaches them (a key deleted meanwhile is skipped).
function* scanGen(map, list, values) {
  for (const k of list) {
    if (!values) {
      yield k;
      continue;
    }
    const v = map.get(k);
    if (v !== undefined) yield [k, v];
  }
}

function scan(map, id, options) {
  const { prefix, limit } = prefixAndLimit(options);
  const values = options.values === undefined ? false : boolArg(options.values, 'options.values');
  const list = native.keysWithPrefix(id, writePrefix(prefix, 'options.prefix'), limit);
  return scanGen(map, list, values);
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
