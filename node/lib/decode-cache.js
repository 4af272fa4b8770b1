'use strict';
// The decode cache (per handle): strings of at least DC_MIN_BYTES stored bytes are kept decoded
// with their record's version, up to `decodeCache` bytes (DC_DEFAULT by default). Reading one
// unchanged saves the copy and V8's string creation (~60 ns plus ~0.1 ns a byte) and costs a
// Map lookup (~15 ns) and the entry's memory; a value that changed pays ~30-50 ns more. Each
// entry counts as its stored bytes, its key's length and DC_ENTRY_COST (measured on node 20:
// ~100 B of Map slot and entry object, plus the headers of the value and key strings).
//
// Only strings are kept: they are immutable, so handing out the same one again is safe;
// Buffers and objects never are. A version still means "same bytes" (see the core's
// read_into_if_changed), so an entry is valid exactly while its record is.

const { keyBuf, ver } = require('./native');

const DC_MIN_BYTES = 64;
const DC_ENTRY_COST = 144;
const DC_DEFAULT = 8 << 20;
// The Map lookup hashes the key, which for a key string built per call (`user:${id}`) costs
// 20-60 ns. A counting filter on the key's byte length and two of its bytes spares it to reads
// of keys the cache cannot hold: misses, small or non-string values.
const DC_FILTER_MASK = 1023;

// The filter bucket of the key writeKey just wrote (`klen` bytes, at least 1): read from
// keyBuf, as a string's characters may be slow to reach (a concatenation).
function dcBucket(klen) {
  return (klen * 97 + keyBuf[klen - 1] * 31 + keyBuf[klen >> 1]) & DC_FILTER_MASK;
}

// A decoded string kept by the decode cache, with the version of the record it came from.
class DcEntry {
  constructor(gen, pos, value, cost, bucket) {
    this.gen = gen;
    this.pos = pos;
    this.value = value;
    this.cost = cost; // what it counts against the bound: see DC_ENTRY_COST
    this.bucket = bucket; // its key's dcBucket
    this.used = false; // read again since it was cached or last spared by eviction
  }
}

class DecodeCache {
  // string key -> DcEntry, in insertion order (eviction scans from the oldest, sparing once
  // those read since: second chance).
  map = new Map();
  filter = new Uint32Array(DC_FILTER_MASK + 1); // entries per dcBucket
  bytes = 0; // sum of the entries' costs: 0 exactly when the map is empty
  hits = 0;

  constructor(max = DC_DEFAULT) {
    this.max = max; // the bound, in bytes (0 = off)
    // A hit's `len * 16 + tag` from which it may be cached (Infinity when off).
    this.minPacked = max > 0 ? DC_MIN_BYTES * 16 : Infinity;
  }

  // The entry of `key` (of `klen` bytes, still in keyBuf), if any.
  lookup(key, klen) {
    if (this.bytes !== 0 && typeof key === 'string' && this.filter[dcBucket(klen)] !== 0) {
      return this.map.get(key);
    }
    return undefined;
  }

  // Keeps `v`, decoded from a hit of at least DC_MIN_BYTES (`r` = len * 16 + tag; its version
  // is in `ver`), if it is a string read by a string key (of `klen` bytes, still in keyBuf):
  // in `e`, the key's entry, if it has one (no allocation then), else in a new one. A value
  // that is not kept drops `e`.
  keep(key, klen, r, e, v) {
    const gen = ver[0];
    if (typeof v === 'string' && typeof key === 'string' && gen >= 0) { // gen < 0: no exact version
      const cost = (r - (r & 15)) / 16 + key.length + DC_ENTRY_COST;
      if (cost <= this.max) {
        if (e === undefined) {
          const bucket = dcBucket(klen);
          this.map.set(key, new DcEntry(gen, ver[1], v, cost, bucket));
          this.filter[bucket]++;
          this.bytes += cost;
        } else {
          e.gen = gen;
          e.pos = ver[1];
          e.value = v;
          e.used = true;
          this.bytes += cost - e.cost;
          e.cost = cost;
        }
        if (this.bytes > this.max) this.evict();
        return;
      }
    }
    if (e !== undefined) this.delete(key, e);
  }

  // Evicts the oldest entries until the bound holds, sparing once (moving to the back) those
  // read since they were cached or last spared: second chance, an approximate LRU that costs
  // nothing on a hit but setting a flag.
  evict() {
    const dc = this.map;
    for (const [k, e] of dc) {
      if (this.bytes <= this.max) break;
      dc.delete(k);
      if (e.used) {
        e.used = false;
        dc.set(k, e); // re-inserted at the back: the iteration visits it again, last
      } else {
        this.filter[e.bucket]--;
        this.bytes -= e.cost;
      }
    }
  }

  delete(key, e) {
    this.map.delete(key);
    this.filter[e.bucket]--;
    this.bytes -= e.cost;
  }

  // Drops the decoded copy of `key` (of `klen` bytes, still in keyBuf) after a write through
  // this handle (a later get would see the new version anyway; this frees the memory now).
  forget(key, klen) {
    const e = this.lookup(key, klen);
    if (e !== undefined) this.delete(key, e);
  }

  clear() {
    this.map.clear();
    this.filter.fill(0);
    this.bytes = 0;
  }
}

module.exports = { DecodeCache };
