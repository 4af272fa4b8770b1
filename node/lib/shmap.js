'use strict';
// The Shmap class: one handle on a map. Reads copy the value into the handle's io buffer and
// decode it here (codec.js); large strings are kept decoded per handle with their record's
// version (decode-cache.js), so reading such a key again asks the addon to copy nothing if the
// record is unchanged. See README.md ("How it is fast" and "Value encoding").

const { native, fast, keyBuf, verBuf, ver, handles, MISS, UNCHANGED } = require('./native');
const { argType, argValue, outOfRange } = require('./errors');
const {
  writeKey, writePrefix, ttlArg, sizeArg, boolArg, modeArg, uidsArg, shardsArg, stableBytes, jsonText,
} = require('./args');
const {
  T_BYTES, T_ASCII, T_JSON, T_F64, T_TRUE, T_FALSE, T_NULL, T_INT, T_U8, TWO_32,
  isPlainObject, decode, decodeEntryValue, encodeValue,
} = require('./codec');
const { DecodeCache } = require('./decode-cache');

// See Shmap[kStampClock]; Symbol.for, so that a map from another copy of this package still works.
const kStampClock = Symbol.for('shmap.stampClock');
const coarseClock = () => ver[2];
const { getOrSetSync, getOrSetAsync } = require('./lease');
const store = require('./store');

const IO_INITIAL = 16 << 10; // a handle's first io buffer
const IO_KEEP = 16 << 20; // larger io buffers are dropped after the call that needed them
const DEFAULT_LEASE_MS = 10000;

class Shmap {
  #id; // the addon's handle id
  #io; // this handle's io buffer (the addon keeps a reference)
  #path;
  #leaseMs;
  #vlen = 0; // byte length of the value #writeString just wrote
  #dc; // this handle's DecodeCache
  #port; // what lease.js may do with this handle (made on the first getOrSet)

  /**
   * Opens (creating if needed) the map `nameOrPath`: a bare name is `/dev/shm/<name>`, anything
   * with a `/` is a file path. See index.d.ts for the options.
   */
  constructor(nameOrPath, options = {}) {
    if (typeof nameOrPath !== 'string') throw argType('nameOrPath', 'of type string', nameOrPath);
    if (nameOrPath === '') throw argValue('nameOrPath', 'must not be empty', nameOrPath);
    if (options === null || typeof options !== 'object') {
      throw argType('options', 'of type object', options);
    }
    const o = {};
    const {
      maxSize, initialSize, maxAge, reset, lock, evict, leaseMs, decodeCache, lockTimeout, mode,
      trustedOwners, shards,
    } = options;
    if (maxSize !== undefined) o.maxSize = sizeArg(maxSize, 'options.maxSize');
    if (initialSize !== undefined) o.initialSize = sizeArg(initialSize, 'options.initialSize');
    if (maxAge !== undefined) o.maxAge = ttlArg(maxAge, 'options.maxAge');
    if (reset !== undefined) o.reset = boolArg(reset, 'options.reset');
    if (lock !== undefined) o.readOnly = !boolArg(lock, 'options.lock');
    if (evict !== undefined) o.evict = boolArg(evict, 'options.evict');
    if (lockTimeout !== undefined) o.lockTimeout = sizeArg(lockTimeout, 'options.lockTimeout');
    if (mode !== undefined) o.mode = modeArg(mode, 'options.mode');
    if (trustedOwners !== undefined) o.trustedOwners = uidsArg(trustedOwners, 'options.trustedOwners');
    if (shards !== undefined) o.shards = shardsArg(shards, 'options.shards');
    this.#leaseMs = leaseMs === undefined ? DEFAULT_LEASE_MS : sizeArg(leaseMs, 'options.leaseMs');
    this.#dc = new DecodeCache(
      decodeCache === undefined ? undefined : sizeArg(decodeCache, 'options.decodeCache'));
    this.#io = Buffer.allocUnsafeSlow(IO_INITIAL);
    this.#id = native.open(nameOrPath, o, keyBuf, this.#io, verBuf);
    handles.register(this, this.#id);
    this.#path = native.path(this.#id);
  }

  /** The file behind the map. */
  get path() { return this.#path; }

  /** Number of entries (including expired ones not yet reclaimed). */
  get size() { return native.len(this.#id); }

  /** Whether this handle refuses writes (`lock: false` or `setLock(false)`). */
  get readOnly() { return native.isReadOnly(this.#id); }

  /** The value of `key`, or undefined. */
  // Every get reaches the addon (even a decode-cache hit asks it whether the version changed):
  // shmap/redis relies on it for the clock each get reports when stamping (kStampClock).
  get(key) {
    const klen = writeKey(key);
    const dc = this.#dc;
    const e = dc.lookup(key, klen);
    if (e !== undefined) return this.#getCached(key, klen, e);
    const r = fast.get(this.#id, klen);
    if (r >= 0) return r < dc.minPacked ? decode(this.#io, r) : this.#decodeKeep(key, klen, r, undefined);
    if (r === MISS) return undefined;
    return this.#getLarge(key, r);
  }

  // get() of a key whose decoded string the cache holds in `e`: the addon copies nothing if
  // the key's record is still that version.
  #getCached(key, klen, e) {
    ver[0] = e.gen;
    ver[1] = e.pos;
    const r = fast.getIf(this.#id, klen);
    const dc = this.#dc;
    if (r === UNCHANGED) {
      e.used = true;
      dc.hits++;
      return e.value;
    }
    if (r >= dc.minPacked) return this.#decodeKeep(key, klen, r, e);
    dc.delete(key, e);
    if (r >= 0) return decode(this.#io, r);
    if (r === MISS) return undefined;
    return this.#getLarge(key, r);
  }

  // A value too large for io: grow it and read again (the key has no cache entry by now).
  #getLarge(key, r) {
    for (;;) {
      this.#ensure(-3 - r);
      const klen = writeKey(key);
      r = fast.get(this.#id, klen);
      if (r < MISS) continue; // it grew again in between
      let v;
      if (r >= this.#dc.minPacked) v = this.#decodeKeep(key, klen, r, undefined);
      else if (r >= 0) v = decode(this.#io, r);
      this.#trim();
      return v;
    }
  }

  // Decodes a hit of at least the cache's minimum size and offers it to the cache.
  #decodeKeep(key, klen, r, e) {
    const v = decode(this.#io, r);
    this.#dc.keep(key, klen, r, e, v);
    return v;
  }

  /** Stores `value` under `key`; `ttlMs` overrides the map's maxAge (0 = never expire). */
  set(key, value, ttlMs) {
    const klen = writeKey(key);
    this.#dc.forget(key, klen);
    this.#store(klen, value, ttlArg(ttlMs), false);
    if (this.#io.length > IO_KEEP) this.#trim();
    return this;
  }

  /** Stores `value` only if `key` is absent; true if stored. */
  add(key, value, ttlMs) {
    const klen = writeKey(key);
    const stored = this.#store(klen, value, ttlArg(ttlMs), true);
    if (stored) this.#dc.forget(key, klen);
    if (this.#io.length > IO_KEEP) this.#trim();
    return stored;
  }

  /** Whether `key` is present (and not expired). */
  has(key) {
    return fast.has(this.#id, writeKey(key));
  }

  /** Removes `key`; true if it was present. */
  delete(key) {
    const klen = writeKey(key);
    this.#dc.forget(key, klen);
    return native.remove(this.#id, klen);
  }

  /** Removes every entry, for every process. */
  clear() {
    native.clear(this.#id);
    this.#dc.clear();
  }

  /**
   * Adds `delta` to the integer at `key` atomically across processes (a missing key counts as
   * 0) and returns the new value. `ttlMs` as in set(); without it an existing entry keeps its
   * expiry.
   */
  incr(key, delta = 1, ttlMs) {
    const klen = writeKey(key);
    if (typeof delta !== 'number') throw argType('delta', 'of type number', delta);
    if (!Number.isSafeInteger(delta)) throw outOfRange('delta', 'a safe integer', delta);
    if (ttlMs !== null && typeof ttlMs === 'object') return store.incrWith(this.#id, klen, delta, ttlMs);
    if (ttlMs === null) throw argType('ttlMs', 'of type number or object', ttlMs);
    return native.incr(this.#id, klen, delta, ttlArg(ttlMs));
  }

  /**
   * The value of `key`; if absent, runs `loader(key)` once across all processes and stores its
   * result. While one process loads, the others wait for its value. A sync loader is waited
   * for synchronously; an async function makes this return a Promise (and wait with timers).
   * A plain function that returns a Promise gets one on a miss only: on a hit its loader is
   * not called, so the value comes back as is (and its waiters block).
   */
  getOrSet(key, loader, ttlMs) {
    writeKey(key); // validates
    if (typeof loader !== 'function') throw argType('loader', 'of type function', loader);
    const ttl = ttlArg(ttlMs);
    const port = this.#port || (this.#port = this.#makePort());
    if (loader[Symbol.toStringTag] === 'AsyncFunction') {
      return getOrSetAsync(port, key, loader, ttl);
    }
    return getOrSetSync(port, key, loader, ttl);
  }

  #makePort() {
    return {
      get: (key) => this.get(key),
      lease: (key) => this.#lease(key),
      leaseHeld: (key) => native.leaseHeld(this.#id, writeKey(key)),
      store: (key, value, ttl) => {
        // The loader may have used this map: write the key again.
        const klen = writeKey(key);
        this.#store(klen, value, ttl, false);
        this.#dc.forget(key, klen);
      },
      release: (key, token) => native.releaseLease(this.#id, writeKey(key), token),
      flightKey: (key) => (typeof key === 'string' ? `${this.#path}\0s${key}`
        : `${this.#path}\0b${Buffer.from(key.buffer, key.byteOffset, key.length).toString('hex')}`),
    };
  }

  // Asks for the lease on `key`: {state: 0, value} | {state: 1, token} | {state: 2}.
  #lease(key) {
    for (;;) {
      const out = native.lease(this.#id, writeKey(key), this.#leaseMs);
      if (out.state !== 0) return out;
      if (out.code >= 0) return { state: 0, value: decode(this.#io, out.code) };
      this.#ensure(-3 - out.code);
    }
  }

  /**
   * Every live key (strings; keys stored as bytes are decoded as UTF-8), or with
   * `{ prefix, limit }` those that start with `prefix`, at most `limit` of them: filtered in
   * the addon, so only matching keys cross into JS. Scan semantics, as entries().
   */
  keys(options) {
    if (options === undefined) return native.keys(this.#id);
    return store.keys(this.#id, options);
  }

  /** Milliseconds `key` has left: Infinity if it never expires, 0 if it is absent. */
  getRemainingTTL(key) {
    return store.remainingTtl(this.#id, writeKey(key));
  }

  /**
   * Gives `key` a new time to live (`ttlMs` from now; 0 or Infinity = never expires) without
   * rewriting its value; true if the key was present. Unlike Redis's `PEXPIRE k 0`, 0 does
   * not delete.
   */
  expire(key, ttlMs) {
    const klen = writeKey(key);
    if (ttlMs === undefined) throw argType('ttlMs', 'of type number', ttlMs);
    return native.expire(this.#id, klen, ttlArg(ttlMs));
  }

  /**
   * A lazy iterator over the live keys starting with `prefix` (every key without one), or
   * `[key, value]` pairs with `values: true`, at most `limit` of them, fetched in bounded
   * batches as the iteration reaches them; see README.md ("Prefix operations") for what a scan
   * guarantees.
   */
  scan(options = {}) {
    return store.scan(this, this.#id, options);
  }

  /** Removes every key that starts with `prefix` (scan a batch, remove it under one lock hold, go on); returns how many. */
  deletePrefix(prefix) {
    const n = store.deletePrefix(this.#id, prefix);
    this.#dc.clear();
    return n;
  }

  /** Removes each of `keys` (one call into the addon, one writer lock); returns how many were present. */
  deleteMany(keys) {
    const n = store.deleteMany(this.#id, keys);
    if (n > 0) this.#dc.clear();
    return n;
  }

  /**
   * Every live entry as [key, value] pairs. Not a snapshot: scan semantics (every entry present
   * for the whole call is returned, each key once; entries written or removed meanwhile may or
   * may not appear). Writers are never held off.
   */
  entries() {
    return native.entries(this.#id).map((e) => [e.key, decodeEntryValue(e.value, e.tag)]);
  }

  // For shmap/redis: from now on every get of this handle also reports the kernel's coarse wall
  // clock (ms; never ahead of Date.now(), at most `lagMs` behind), which `now()` reads: an L1
  // hit's clock for ~2 ns instead of a Date.now() of ~40.
  [kStampClock]() {
    native.stampClock(this.#id, true);
    return { now: coarseClock, lagMs: native.COARSE_SLACK_MS };
  }

  [Symbol.iterator]() {
    return this.entries()[Symbol.iterator]();
  }

  /** A snapshot of the map's counters, and of this handle's decode cache. */
  stats() {
    const s = native.stats(this.#id);
    const dc = this.#dc;
    s.decodeCacheEntries = dc.map.size;
    s.decodeCacheBytes = dc.bytes;
    s.decodeCacheHits = dc.hits;
    return s;
  }

  /** Writes the map to its file (needed for durability on disk; a no-op in effect on tmpfs). */
  flush() {
    native.flush(this.#id);
  }

  /** Closes this handle; later calls throw ERR_SHMAP_CLOSED. Idempotent. */
  close() {
    native.close(this.#id);
    this.#dc.clear();
  }

  /** Sets the default time to live in ms for every process (0 = never expire). */
  setMaxAge(ms) {
    if (ms === undefined) throw argType('ms', 'of type number', ms);
    native.setMaxAge(this.#id, ttlArg(ms, 'ms'));
  }

  /** Sets the cap on the map's memory in bytes, for every process. */
  setMaxSize(bytes) {
    native.setMaxSize(this.#id, sizeArg(bytes, 'bytes'));
  }

  /** Turns eviction of old entries when full on (default) or off, for every process. */
  setEvict(on) {
    native.setEvict(this.#id, boolArg(on, 'on'));
  }

  /** false makes this handle read-only (writes throw ERR_SHMAP_READ_ONLY); true undoes it. */
  setLock(on) {
    native.setReadOnly(this.#id, !boolArg(on, 'on'));
  }

  /**
   * Stores `value` under `key` only if the version condition `cond` holds, checked and written
   * as one step across processes (see index.d.ts, IfVersion); true if it held.
   */
  setIfVersion(key, value, ttlMs, cond) {
    const c = ifVersionArg(cond);
    const ttl = ttlArg(ttlMs);
    const enc = encodeValue(value);
    if (enc === undefined) {
      throw argType('value', 'a string, number, boolean, null, Buffer, Uint8Array, ' +
        'plain object or array', value);
    }
    const klen = writeKey(key);
    this.#dc.forget(key, klen);
    return native.putIf(this.#id, klen, enc[1], enc[0], ttl, c);
  }

  /** Removes `key` only if the version condition `cond` holds (as setIfVersion); true if it held. */
  deleteIfVersion(key, cond) {
    const c = ifVersionArg(cond);
    const klen = writeKey(key);
    this.#dc.forget(key, klen);
    return native.putIf(this.#id, klen, undefined, 0, -1, c);
  }

  // Encodes `value` (into io unless it is bytes) and stores it.
  #store(klen, value, ttl, add) {
    const id = this.#id;
    switch (typeof value) {
      case 'string': {
        const utf16 = this.#writeString(value);
        return fast.put(id, klen, this.#vlen, T_ASCII + utf16, ttl, add);
      }
      case 'number': {
        const io = this.#io;
        if (Number.isSafeInteger(value) && !Object.is(value, -0)) {
          io.writeUInt32LE(value >>> 0, 0);
          io.writeInt32LE(Math.floor(value / TWO_32), 4);
          return fast.put(id, klen, 8, T_INT, ttl, add);
        }
        io.writeDoubleLE(value, 0);
        return fast.put(id, klen, 8, T_F64, ttl, add);
      }
      case 'boolean':
        return fast.put(id, klen, 0, value ? T_TRUE : T_FALSE, ttl, add);
      case 'object': {
        if (value === null) return fast.put(id, klen, 0, T_NULL, ttl, add);
        if (value instanceof Uint8Array) {
          const tag = value instanceof Buffer ? T_BYTES : T_U8;
          return native.putBytes(id, klen, stableBytes(value), tag, ttl, add);
        }
        if (Array.isArray(value) || isPlainObject(value)) {
          const utf16 = this.#writeString(jsonText(value));
          return fast.put(id, klen, this.#vlen, T_JSON + utf16, ttl, add);
        }
        break;
      }
      default:
        break;
    }
    throw argType('value', 'a string, number, boolean, null, Buffer, Uint8Array, ' +
      'plain object or array', value);
  }

  // Writes a string into io: ASCII as is, anything else as UTF-16LE. Sets #vlen to its byte
  // length; returns 1 for UTF-16, else 0.
  #writeString(s) {
    const n = s.length;
    let io = this.#io;
    if (n * 3 > io.length) {
      if (n > 1 << 20) {
        // Huge: measure first rather than reserve 3 bytes a character.
        if (Buffer.byteLength(s, 'utf8') === n) {
          this.#vlen = this.#ensure(n).latin1Write(s, 0);
          return 0;
        }
        this.#vlen = this.#ensure(n * 2).ucs2Write(s, 0);
        return 1;
      }
      io = this.#ensure(n * 3);
    }
    const w = io.utf8Write(s, 0);
    if (w === n) {
      this.#vlen = w;
      return 0;
    }
    this.#vlen = io.ucs2Write(s, 0);
    return 1;
  }

  // Makes io at least `len` bytes; returns it.
  #ensure(len) {
    if (this.#io.length >= len) return this.#io;
    let size = this.#io.length;
    while (size < len) size *= 2;
    const io = Buffer.allocUnsafeSlow(size);
    native.setIoBuffer(this.#id, io);
    this.#io = io;
    return io;
  }

  // Drops an io buffer grown past IO_KEEP.
  #trim() {
    if (this.#io.length > IO_KEEP) {
      const io = Buffer.allocUnsafeSlow(IO_INITIAL);
      native.setIoBuffer(this.#id, io);
      this.#io = io;
    }
  }
}

const COMPARE = { '<=': 0, '<': 1, '===': 2 };

// Validates setIfVersion's condition into the addon's IfVersion.
function ifVersionArg(cond) {
  if (cond === null || typeof cond !== 'object') throw argType('cond', 'of type object', cond);
  const { versionKey, floorKey, version, compare = '<=', stamp = false, stampTtlMs } = cond;
  const keyBytes = (k, name) => {
    if (typeof k === 'string' && k !== '') return Buffer.from(k, 'utf8');
    if (k instanceof Uint8Array && k.byteLength > 0) {
      return stableBytes(Buffer.from(k.buffer, k.byteOffset, k.byteLength));
    }
    throw argType(name, 'a non-empty string, Buffer or Uint8Array', k);
  };
  if (typeof version !== 'number') throw argType('cond.version', 'of type number', version);
  if (!Number.isSafeInteger(version)) throw outOfRange('cond.version', 'a safe integer', version);
  if (typeof compare !== 'string' || !Object.hasOwn(COMPARE, compare)) throw argValue('cond.compare', "must be '<=', '<' or '==='", compare);
  return {
    versionKey: keyBytes(versionKey, 'cond.versionKey'),
    floorKey: floorKey === undefined ? undefined : keyBytes(floorKey, 'cond.floorKey'),
    version,
    compare: COMPARE[compare],
    stamp: boolArg(stamp, 'cond.stamp'),
    stampTtl: ttlArg(stampTtlMs, 'cond.stampTtlMs'),
  };
}

module.exports = { Shmap, kStampClock };
