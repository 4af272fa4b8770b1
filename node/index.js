'use strict';
// shmap: a shared-memory key/value cache for the processes (and threads) of one machine.
//
// This file is the whole JS layer: argument checks, value encoding, and the two reusable
// buffers that every call shares with the native addon (shmap.node, built from src/lib.rs).
// Hot paths cross N-API with numbers only: the key is written into `keyBuf`, the addon copies
// the value into the handle's `io` buffer and returns `len * 16 + tag`, and the value is
// decoded here. Large strings are kept decoded per handle with their record's version (the
// "decode cache"): reading such a key again asks the addon to copy nothing if the record is
// unchanged. See README.md ("How it is fast" and "Value encoding").

const path = require('path');

const native = loadNative();
// get, getIf, has and put as raw N-API callbacks (src/raw.rs): half the cost of a #[napi]
// function.
const fast = native.fastApi();

function loadNative() {
  const file = process.env.SHMAP_NATIVE || path.join(__dirname, 'shmap.node');
  try {
    return require(file);
  } catch (e) {
    e.message = `shmap: cannot load the native addon ${file}; build it with ` +
      `\`npm --prefix node run build\` (needs Rust). Cause: ${e.message}`;
    throw e;
  }
}

// Type tags, stored in each record's user flags. Must match `mod tag` in src/lib.rs.
const T_BYTES = 0; // Buffer
const T_ASCII = 1; // string, ASCII bytes (decoded as latin1: same bytes, fastest)
const T_UTF16 = 2; // string with non-ASCII characters, UTF-16LE (T_ASCII + 1)
const T_JSON = 3; // plain object or array, JSON text in ASCII
const T_JSON16 = 4; // the same, JSON text in UTF-16LE (T_JSON + 1)
const T_F64 = 5; // number that is not a safe integer (or is -0), float64 LE
const T_TRUE = 6;
const T_FALSE = 7;
const T_NULL = 8;
const T_INT = 9; // safe integer, i64 LE (the core's counter format, so incr() works on it)
const T_U8 = 10; // Uint8Array that is not a Buffer

const MAX_KEY = 65535; // bytes, as in the core
const MIN_SIZE = 64 << 10; // smallest accepted map size, as in the core
const IO_INITIAL = 16 << 10; // a handle's first io buffer
const IO_KEEP = 16 << 20; // larger io buffers are dropped after the call that needed them
const DEFAULT_LEASE_MS = 10000;
const TWO_32 = 4294967296;

// Returns of the addon's get/getIf besides `len * 16 + tag` (>= 0); below -2, `-3 - len` means
// io is too small for a value of `len` bytes.
const MISS = -1;
const UNCHANGED = -2; // getIf: the record is still the version in `ver`; nothing was copied

// The decode cache (per handle): strings of at least DC_MIN_BYTES stored bytes are kept decoded
// with their record's version, up to `decodeCache` bytes (DC_DEFAULT by default). Reading one
// unchanged saves the copy and V8's string creation (~60 ns plus ~0.1 ns a byte) and costs a
// Map lookup (~15 ns) and the entry's memory; a value that changed pays ~30-50 ns more. Each
// entry counts as its stored bytes, its key's length and DC_ENTRY_COST (measured on node 20:
// ~100 B of Map slot and entry object, plus the headers of the value and key strings).
const DC_MIN_BYTES = 64;
const DC_ENTRY_COST = 144;
const DC_DEFAULT = 8 << 20;
// The Map lookup hashes the key, which for a key string built per call (`user:${id}`) costs
// 20-60 ns. A counting filter on the key's byte length and two of its bytes spares it to reads
// of keys the cache cannot hold: misses, small or non-string values.
const DC_FILTER_MASK = 1023;

// One key buffer per thread (module instances are per thread), shared by every handle.
const keyBuf = Buffer.allocUnsafeSlow(MAX_KEY + 1);

// The decode cache's filter bucket of the key writeKey just wrote (`klen` bytes, at least 1):
// read from keyBuf, as a string's characters may be slow to reach (a concatenation).
function dcBucket(klen) {
  return (klen * 97 + keyBuf[klen - 1] * 31 + keyBuf[klen >> 1]) & DC_FILTER_MASK;
}
// One version buffer per thread, shared by every handle: [generation, position] of a record.
// JS writes the version it holds before getIf; the addon writes the version of every hit.
// Versions are exact in a float64 below 2^53 (the addon reports -1 beyond).
const verBuf = Buffer.allocUnsafeSlow(16);
const ver = new Float64Array(verBuf.buffer, verBuf.byteOffset, 2);

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));
const sleepSync = (ms) => Atomics.wait(SLEEPER, 0, 0, ms);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Keys being loaded by an async getOrSet in this thread ("<path>\0<key>"): a synchronous
// getOrSet must not block waiting for a loader that needs this very thread to finish.
const inflight = new Set();

// Frees the addon's slot of a Shmap that was collected without close().
const handles = new FinalizationRegistry((id) => native.free(id));

function codedError(Ctor, code, message) {
  const e = new Ctor(message);
  e.code = code;
  return e;
}

function describe(v) {
  if (v === null) return 'null';
  if (typeof v === 'function') return `function ${v.name || '<anonymous>'}`;
  if (typeof v === 'object') {
    const name = v.constructor && v.constructor.name;
    return name ? `an instance of ${name}` : 'an object';
  }
  if (typeof v === 'string') {
    const s = v.length > 28 ? `${v.slice(0, 25)}...` : v;
    return `type string ('${s}')`;
  }
  return `type ${typeof v} (${String(v)})`;
}

function argType(name, expected, actual) {
  return codedError(TypeError, 'ERR_INVALID_ARG_TYPE',
    `The "${name}" argument must be ${expected}. Received ${describe(actual)}`);
}

function argValue(name, reason, actual) {
  return codedError(TypeError, 'ERR_INVALID_ARG_VALUE',
    `The "${name}" argument ${reason}. Received ${describe(actual)}`);
}

function outOfRange(name, range, actual) {
  return codedError(RangeError, 'ERR_OUT_OF_RANGE',
    `The value of "${name}" is out of range. It must be ${range}. Received ${String(actual)}`);
}

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
    const n = key.length;
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
  if (!(ttl >= 0)) throw outOfRange(name, '>= 0', ttl);
  return ttl === Infinity ? 0 : Math.floor(ttl);
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

function isPlainObject(v) {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') &&
    typeof v.then === 'function';
}

// Decodes the value the addon copied into `io`; `r` is `len * 16 + tag`.
function decode(io, r) {
  const tag = r & 15;
  const len = (r - tag) / 16;
  switch (tag) {
    case T_ASCII: return io.latin1Slice(0, len);
    case T_UTF16: return io.ucs2Slice(0, len);
    case T_JSON: return JSON.parse(io.latin1Slice(0, len));
    case T_JSON16: return JSON.parse(io.ucs2Slice(0, len));
    case T_INT: return io.readInt32LE(4) * TWO_32 + io.readUInt32LE(0);
    case T_F64: return io.readDoubleLE(0);
    case T_TRUE: return true;
    case T_FALSE: return false;
    case T_NULL: return null;
    case T_U8: {
      const u = new Uint8Array(len);
      u.set(io.subarray(0, len));
      return u;
    }
    default: { // T_BYTES, and tags of writers we do not know
      const b = Buffer.allocUnsafe(len);
      io.copy(b, 0, 0, len);
      return b;
    }
  }
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

// Decodes an entry's value from its own buffer (entries() is not a hot path).
function decodeEntryValue(buf, tag) {
  if (tag === T_BYTES || tag > T_U8) return buf;
  return decode(buf, buf.length * 16 + tag);
}

class Shmap {
  #id; // the addon's handle id
  #io; // this handle's io buffer (the addon keeps a reference)
  #path;
  #leaseMs;
  #vlen = 0; // byte length of the value #writeString just wrote
  // The decode cache: string key -> DcEntry, in insertion order (eviction scans from the
  // oldest, sparing once those read since: second chance). Only strings are kept: they are
  // immutable, so handing out the same one again is safe; Buffers and objects never are.
  #dc = new Map();
  #dcFilter = new Uint32Array(DC_FILTER_MASK + 1); // entries per dcBucket
  #dcBytes = 0; // sum of the entries' costs: 0 exactly when #dc is empty
  #dcMax; // the bound, in bytes (0 = off)
  #dcMinPacked; // a hit's `len * 16 + tag` from which it may be cached (Infinity when off)
  #dcHits = 0;

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
    const { maxSize, initialSize, maxAge, reset, lock, evict, leaseMs, decodeCache } = options;
    if (maxSize !== undefined) o.maxSize = sizeArg(maxSize, 'options.maxSize');
    if (initialSize !== undefined) o.initialSize = sizeArg(initialSize, 'options.initialSize');
    if (maxAge !== undefined) o.maxAge = ttlArg(maxAge, 'options.maxAge');
    if (reset !== undefined) o.reset = boolArg(reset, 'options.reset');
    if (lock !== undefined) o.readOnly = !boolArg(lock, 'options.lock');
    if (evict !== undefined) o.evict = boolArg(evict, 'options.evict');
    this.#leaseMs = leaseMs === undefined ? DEFAULT_LEASE_MS : sizeArg(leaseMs, 'options.leaseMs');
    this.#dcMax = decodeCache === undefined ? DC_DEFAULT : sizeArg(decodeCache, 'options.decodeCache');
    this.#dcMinPacked = this.#dcMax > 0 ? DC_MIN_BYTES * 16 : Infinity;
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
  get(key) {
    const klen = writeKey(key);
    if (this.#dcBytes !== 0 && typeof key === 'string' && this.#dcFilter[dcBucket(klen)] !== 0) {
      const e = this.#dc.get(key);
      if (e !== undefined) return this.#getCached(key, klen, e);
    }
    const r = fast.get(this.#id, klen);
    if (r >= 0) return r < this.#dcMinPacked ? decode(this.#io, r) : this.#decodeKeep(key, klen, r, undefined);
    if (r === MISS) return undefined;
    return this.#getLarge(key, r);
  }

  // get() of a key whose decoded string the cache holds in `e`: the addon copies nothing if
  // the key's record is still that version.
  #getCached(key, klen, e) {
    ver[0] = e.gen;
    ver[1] = e.pos;
    const r = fast.getIf(this.#id, klen);
    if (r === UNCHANGED) {
      e.used = true;
      this.#dcHits++;
      return e.value;
    }
    if (r >= this.#dcMinPacked) return this.#decodeKeep(key, klen, r, e);
    this.#dcDelete(key, e);
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
      if (r >= this.#dcMinPacked) v = this.#decodeKeep(key, klen, r, undefined);
      else if (r >= 0) v = decode(this.#io, r);
      this.#trim();
      return v;
    }
  }

  // Decodes a hit of at least DC_MIN_BYTES (`r` = len * 16 + tag; its version is in `ver`) and
  // keeps it if it is a string read by a string key (of `klen` bytes, still in keyBuf): in `e`,
  // the key's entry, if it has one (no allocation then), else in a new one. A value that is
  // not kept drops `e`.
  #decodeKeep(key, klen, r, e) {
    const v = decode(this.#io, r);
    const gen = ver[0];
    if (typeof v === 'string' && typeof key === 'string' && gen >= 0) { // gen < 0: no exact version
      const cost = (r - (r & 15)) / 16 + key.length + DC_ENTRY_COST;
      if (cost <= this.#dcMax) {
        if (e === undefined) {
          const bucket = dcBucket(klen);
          this.#dc.set(key, new DcEntry(gen, ver[1], v, cost, bucket));
          this.#dcFilter[bucket]++;
          this.#dcBytes += cost;
        } else {
          e.gen = gen;
          e.pos = ver[1];
          e.value = v;
          e.used = true;
          this.#dcBytes += cost - e.cost;
          e.cost = cost;
        }
        if (this.#dcBytes > this.#dcMax) this.#dcEvict();
        return v;
      }
    }
    if (e !== undefined) this.#dcDelete(key, e);
    return v;
  }

  // Evicts the oldest entries until the bound holds, sparing once (moving to the back) those
  // read since they were cached or last spared: second chance, an approximate LRU that costs
  // nothing on a hit but setting a flag.
  #dcEvict() {
    const dc = this.#dc;
    for (const [k, e] of dc) {
      if (this.#dcBytes <= this.#dcMax) break;
      dc.delete(k);
      if (e.used) {
        e.used = false;
        dc.set(k, e); // re-inserted at the back: the iteration visits it again, last
      } else {
        this.#dcFilter[e.bucket]--;
        this.#dcBytes -= e.cost;
      }
    }
  }

  #dcDelete(key, e) {
    this.#dc.delete(key);
    this.#dcFilter[e.bucket]--;
    this.#dcBytes -= e.cost;
  }

  // Drops the decoded copy of `key` (of `klen` bytes, still in keyBuf) after a write through
  // this handle (a later get would see the new version anyway; this frees the memory now).
  #dcForget(key, klen) {
    if (this.#dcBytes !== 0 && typeof key === 'string' && this.#dcFilter[dcBucket(klen)] !== 0) {
      const e = this.#dc.get(key);
      if (e !== undefined) this.#dcDelete(key, e);
    }
  }

  #dcClear() {
    this.#dc.clear();
    this.#dcFilter.fill(0);
    this.#dcBytes = 0;
  }

  /** Stores `value` under `key`; `ttlMs` overrides the map's maxAge (0 = never expire). */
  set(key, value, ttlMs) {
    const klen = writeKey(key);
    this.#dcForget(key, klen);
    this.#store(klen, value, ttlArg(ttlMs), false);
    if (this.#io.length > IO_KEEP) this.#trim();
    return this;
  }

  /** Stores `value` only if `key` is absent; true if stored. */
  add(key, value, ttlMs) {
    const klen = writeKey(key);
    const stored = this.#store(klen, value, ttlArg(ttlMs), true);
    if (stored) this.#dcForget(key, klen);
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
    this.#dcForget(key, klen);
    return native.remove(this.#id, klen);
  }

  /** Removes every entry, for every process. */
  clear() {
    native.clear(this.#id);
    this.#dcClear();
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
    return native.incr(this.#id, klen, delta, ttlArg(ttlMs));
  }

  /**
   * The value of `key`; if absent, runs `loader(key)` once across all processes and stores its
   * result. While one process loads, the others wait for its value. A sync loader is waited
   * for synchronously; an async function makes this return a Promise (and wait with timers),
   * as does a loader that returns a Promise.
   */
  getOrSet(key, loader, ttlMs) {
    writeKey(key); // validates
    if (typeof loader !== 'function') throw argType('loader', 'of type function', loader);
    const ttl = ttlArg(ttlMs);
    if (loader[Symbol.toStringTag] === 'AsyncFunction') {
      return this.#getOrSetAsync(key, loader, ttl);
    }
    let delay = 1;
    for (;;) {
      const v = this.get(key);
      if (v !== undefined) return v;
      if (inflight.has(this.#flightKey(key))) {
        // An async load of this key is running in this thread: waiting here would block it.
        return this.#finishLoad(key, loader(key), ttl, 0);
      }
      const st = this.#lease(key);
      if (st.state === 0) return st.value;
      if (st.state === 1) return this.#load(key, loader, ttl, st.token);
      sleepSync(delay);
      delay = Math.min(delay * 2, 50);
    }
  }

  async #getOrSetAsync(key, loader, ttl) {
    let delay = 1;
    for (;;) {
      const v = this.get(key);
      if (v !== undefined) return v;
      const st = this.#lease(key);
      if (st.state === 0) return st.value;
      if (st.state === 1) {
        const fk = this.#flightKey(key);
        inflight.add(fk);
        try {
          return await this.#load(key, loader, ttl, st.token);
        } finally {
          inflight.delete(fk);
        }
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 50);
    }
  }

  #flightKey(key) {
    return typeof key === 'string' ? `${this.#path}\0s${key}`
      : `${this.#path}\0b${Buffer.from(key.buffer, key.byteOffset, key.length).toString('hex')}`;
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

  #load(key, loader, ttl, token) {
    let value;
    try {
      value = loader(key);
    } catch (e) {
      this.#release(key, token);
      throw e;
    }
    if (isThenable(value)) {
      return Promise.resolve(value).then(
        (v) => this.#finishLoad(key, v, ttl, token),
        (e) => { this.#release(key, token); throw e; });
    }
    return this.#finishLoad(key, value, ttl, token);
  }

  #finishLoad(key, value, ttl, token) {
    if (isThenable(value)) {
      return Promise.resolve(value).then((v) => this.#finishLoad(key, v, ttl, token));
    }
    try {
      // The loader may have used this map: write the key again.
      const klen = writeKey(key);
      this.#store(klen, value, ttl, false);
      this.#dcForget(key, klen);
    } catch (e) {
      this.#release(key, token);
      throw e;
    }
    return value;
  }

  #release(key, token) {
    if (!token) return;
    try {
      native.releaseLease(this.#id, writeKey(key), token);
    } catch {
      // Closed meanwhile: the lease expires by itself.
    }
  }

  /** Every live key (strings; keys stored as bytes are decoded as UTF-8). */
  keys() {
    return native.keys(this.#id);
  }

  /** Every live entry as [key, value] pairs (a consistent snapshot). */
  entries() {
    return native.entries(this.#id).map((e) => [e.key, decodeEntryValue(e.value, e.tag)]);
  }

  [Symbol.iterator]() {
    return this.entries()[Symbol.iterator]();
  }

  /** A snapshot of the map's counters, and of this handle's decode cache. */
  stats() {
    const s = native.stats(this.#id);
    s.decodeCacheEntries = this.#dc.size;
    s.decodeCacheBytes = this.#dcBytes;
    s.decodeCacheHits = this.#dcHits;
    return s;
  }

  /** Writes the map to its file (needed for durability on disk; a no-op in effect on tmpfs). */
  flush() {
    native.flush(this.#id);
  }

  /** Closes this handle; later calls throw ERR_SHMAP_CLOSED. Idempotent. */
  close() {
    native.close(this.#id);
    this.#dcClear();
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
          return native.putBytes(id, klen, value, value instanceof Buffer ? T_BYTES : T_U8, ttl, add);
        }
        if (Array.isArray(value) || isPlainObject(value)) {
          let json;
          try {
            json = JSON.stringify(value);
          } catch (e) {
            const err = argValue('value', `cannot be stored as JSON (${e.message})`, value);
            err.cause = e;
            throw err;
          }
          const utf16 = this.#writeString(json);
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

/**
 * The original C++ addon's API, for code written against it: `new NodeShareCache(name, size,
 * reset)`. `size` is the map's initial size in bytes (it grows by itself up to setMaxSize,
 * 800 MB by default); entries expire after setMaxAge ms (default 2000) unless set() is given
 * its own; setLock(false) makes the handle read-only.
 */
class NodeShareCache {
  #map;
  #maxAge = 2000;

  constructor(name, size, reset) {
    if (typeof name !== 'string') throw argType('name', 'of type string', name);
    const initialSize = size === undefined ? MIN_SIZE : Math.max(sizeArg(size, 'size'), MIN_SIZE);
    const opts = { initialSize, reset: Boolean(reset) };
    if (initialSize > 800 * 1024 * 1024) opts.maxSize = initialSize;
    this.#map = new Shmap(name, opts);
  }

  /** The Shmap behind this cache, for the rest of the API. */
  get shmap() { return this.#map; }

  get(key) { return this.#map.get(key); }

  set(key, value, maxAgeMs) {
    this.#map.set(key, value, maxAgeMs === undefined ? this.#maxAge : maxAgeMs);
    return true;
  }

  del(key) { return this.#map.delete(key); }

  /** Time to live in ms of entries this handle sets (default 2000; 0 = never expire). */
  setMaxAge(ms) {
    if (ms === undefined) throw argType('ms', 'of type number', ms);
    this.#maxAge = ttlArg(ms, 'ms');
  }

  setMaxSize(bytes) { this.#map.setMaxSize(bytes); }

  setLock(on) { this.#map.setLock(on); }

  stat() { return this.#map.stats(); }

  /** Closes this handle (the map and its data stay for the other processes). */
  destroy() { this.#map.close(); }
}

module.exports = { Shmap, NodeShareCache };
module.exports.default = module.exports;
