/// <reference types="node" />
// Types of the npm package `shmap` (CommonJS `index.js`, ESM `index.mjs`).

/** A value that survives JSON: what objects and arrays may contain. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * What a map stores, each read back with its type: strings, numbers (safe integers are stored
 * as 64-bit integers, so `incr` works on them; other numbers, NaN, ±Infinity and -0 as float64),
 * booleans, `null`, Buffers, Uint8Arrays (read back as Uint8Array, not Buffer), and plain
 * objects and arrays (stored as JSON: nested values follow JSON's rules).
 * `undefined`, functions, symbols, bigints and class instances are refused with a TypeError.
 */
export type Value = string | number | boolean | null | Buffer | Uint8Array | JsonValue[] | { [key: string]: JsonValue };

/** A key: a string (stored as its UTF-8 bytes) or bytes. 1 to 65535 bytes. */
export type Key = string | Buffer | Uint8Array;

/** Options of `new Shmap(nameOrPath, options)`. */
export interface ShmapOptions {
  /** Cap on the map's memory in bytes, shared by every process (stored in the map). Default 800 MiB for a new map. */
  maxSize?: number;
  /** Size of a new map's file in bytes (at least 64 KiB; default 1 MiB). The map grows by itself. */
  initialSize?: number;
  /**
   * Shards of a new map: a power of two from 1 to 128, each with its own writer lock, so that
   * processes writing keys of different shards do not wait for each other; 0 = twice the
   * cores. Lowered until every shard's first generation fits `initialSize`. Default 1. An
   * existing map keeps the count it was created with (`reset: true` re-creates it). In this
   * release a value must fit one shard's ring, which grows only into budget the other shards
   * do not hold, and at `maxSize` a shard evicts only its own entries: once the other shards
   * hold the budget, a value that one shard would store can fail with ERR_SHMAP_TOO_LARGE
   * (see the README).
   */
  shards?: number;
  /** Default time to live in ms of entries set without one, for every process (stored in the map). 0 = never expire. */
  maxAge?: number;
  /** Start empty (a `clear()` if other processes are attached). Typically the primary passes true, workers false. */
  reset?: boolean;
  /** false opens the handle read-only: writes throw `ERR_SHMAP_READ_ONLY`. Default true. */
  lock?: boolean;
  /** Whether a full map evicts old entries (default) or refuses writes with `ERR_SHMAP_FULL`. Stored in the map. */
  evict?: boolean;
  /** How long a `getOrSet` loader may hold its key before another process may load it instead. Default 10000 ms. A `getOrSet` waiting for another process's loader waits at most this long (it is not bounded by `lockTimeout`), and holds no lock while it waits. */
  leaseMs?: number;
  /**
   * The longest any call waits for another process (a writer lock held by a stopped or slow
   * process, a creator or recoverer holding the file), in ms, measured on the monotonic clock;
   * then it throws `ERR_SHMAP_LOCK_TIMEOUT` (naming the holder's pid and how long it has held
   * the lock) and changes nothing. All the waits of one call share it (for the lock, then for a
   * stopped fast writer, say), per shard the call holds (`clear` holds each in turn;
   * `setIfVersion` over keys of several shards holds them at once). Default 5000: far above
   * the longest legitimate hold (a growth switch at the 800 MiB cap copies the ring in well
   * under a second), short enough that a frozen process costs an event loop seconds, not
   * forever. Readers and scans never wait for a lock.
   */
  lockTimeout?: number;
  /**
   * Permission bits of a new map file (default 0o600), applied with `fchmod` so the umask
   * cannot narrow them. An existing file that grants more than these bits is refused with
   * `ERR_SHMAP_PERMISSION`; so are symbolic links, files with several hard links, and files
   * owned by anyone but this process's user, root or `trustedOwners`. To share a map between
   * users: the creator passes e.g. `mode: 0o660` and runs with the workers' group (or chgrps the
   * file); workers pass the same `mode` (and `trustedOwners: [creatorUid]` unless it is root).
   */
  mode?: number;
  /** Uids trusted to own the map file besides this process's effective uid and root. */
  trustedOwners?: number[];
  /**
   * Bound in bytes of this handle's decode cache (default 8 MiB; 0 turns it off). The handle
   * keeps the strings of 64 bytes or more it reads, with the version of the record they came
   * from, and returns the same string again while the record is unchanged, without copying or
   * decoding it. Every write (from any process) makes a new record, so a read never returns a
   * stale value. Buffers, objects and other values are never kept. Each kept string counts as
   * its stored bytes (its length, twice that for non-ASCII strings) plus its key's length plus
   * 144 bytes of bookkeeping; the oldest are dropped first, sparing once those read since.
   */
  decodeCache?: number;
}

/** Options of `incr(key, delta, options)`. */
export interface IncrOptions {
  /** Time to live set on every call, as the number form's `ttlMs` (0 = never). Not with `initTtl`. */
  ttl?: number;
  /** Time to live of the entry only if this call creates it (0 = never); an existing entry keeps its expiry. OpenResty's `init_ttl`. */
  initTtl?: number;
  /** Whether a missing key is created (default true). With false, a missing key stays missing and `incr` returns `undefined`. */
  create?: boolean;
  /** Return `{ value, expiresAt }` instead of the value. */
  withExpiry?: boolean;
}

/** A counter and its expiry, read in the same atomic step as the increment. */
export interface Counter {
  /** The new value. */
  value: number;
  /** Expiry in epoch ms (as `Date.now()`), `Infinity` if it never expires. */
  expiresAt: number;
}

/** Options of `keys(options)`. */
export interface KeysOptions {
  /** Only keys that start with these bytes (a string is compared as its UTF-8 bytes). Default: every key. */
  prefix?: Key | '';
  /** At most this many keys. */
  limit?: number;
}

/** Options of `scan(options)`. */
export interface ScanOptions extends KeysOptions {
  /** Yield `[key, value]` pairs instead of keys. */
  values?: boolean;
}

/** A snapshot of a map's counters (`stats()`). Counters are shared by all processes unless noted. */
export interface ShmapStats {
  /** Live entries (including expired ones not yet reclaimed). */
  entries: number;
  /** Bytes of records live entries occupy. */
  liveBytes: number;
  /** Bytes of superseded, deleted or padding records not yet reclaimed. */
  deadBytes: number;
  /** The file's length. */
  fileBytes: number;
  /** The file's allocated storage. */
  fileAllocatedBytes: number;
  /** The configured cap (`maxSize`). */
  maxSize: number;
  /** The active generation (the map rebuilds itself into a new generation to grow or shrink). */
  generation: number;
  /** Live entries evicted so far. */
  evictions: number;
  /** Expired entries reclaimed so far. */
  expired: number;
  /** Generation switches so far. */
  switches: number;
  /** Incremental builds of a grown generation started so far (their publications count as switches). */
  builds: number;
  /** Builds a write had to finish at once because the active ring filled first. */
  buildsForced: number;
  /** Bytes of the record ring. */
  logCapacity: number;
  /** Slots of the hash index. */
  indexSlots: number;
  /** Used index slots (live and deleted). */
  usedSlots: number;
  /** Record bytes written by writes. */
  bytesWritten: number;
  /** Record bytes copied by cleaning and switches. */
  bytesCopied: number;
  /** Shards (fixed when the map was created; the counters here sum them). */
  shards: number;
  /** Default time to live in ms (0 = none). */
  maxAge: number;
  /** Whether eviction is on. */
  evict: boolean;
  /** Hits of this handle's reads (this handle only). */
  hits: number;
  /** Misses of this handle's reads (this handle only). */
  misses: number;
  /** Strings in this handle's decode cache (see `ShmapOptions.decodeCache`). */
  decodeCacheEntries: number;
  /** Bytes they count against the `decodeCache` bound. */
  decodeCacheBytes: number;
  /** Reads of this handle answered from its decode cache (unchanged records). */
  decodeCacheHits: number;
}

/** The stable `code` of errors thrown by shmap (besides Node's `ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE`, `ERR_OUT_OF_RANGE`). */
export type ShmapErrorCode =
  | 'ERR_SHMAP_FULL'
  | 'ERR_SHMAP_NO_SPACE'
  | 'ERR_SHMAP_CORRUPT'
  | 'ERR_SHMAP_VERSION'
  | 'ERR_SHMAP_TOO_LARGE'
  | 'ERR_SHMAP_CLOSED'
  | 'ERR_SHMAP_READ_ONLY'
  | 'ERR_SHMAP_NOT_A_MAP'
  | 'ERR_SHMAP_NOT_AN_INTEGER'
  | 'ERR_SHMAP_INVALID_ARGUMENT'
  | 'ERR_SHMAP_TOO_MANY_PROCESSES'
  | 'ERR_SHMAP_BUSY'
  | 'ERR_SHMAP_LOCK_TIMEOUT'
  | 'ERR_SHMAP_PERMISSION'
  | 'ERR_SHMAP_FORKED'
  | 'ERR_SHMAP_IO'
  | 'ERR_SHMAP_PANIC'
  | 'ERR_SHMAP_TIER_UNAVAILABLE'
  /** From `require('shmap')`: no native binary loads on this platform (the message says why). */
  | 'ERR_SHMAP_NO_BINARY';

/** An error thrown by shmap: an ordinary `Error` with a stable `code`. */
export interface ShmapError extends Error {
  code: ShmapErrorCode;
}

/**
 * A handle on a shared map. Every process (and worker thread) that opens the same name sees
 * the same entries; reads take no lock. All methods are synchronous except `getOrSet` with an
 * async loader.
 *
 * @typeParam V - the values this code stores (defaults to any storable value).
 */
export class Shmap<V extends Value = Value> implements Iterable<[string, V]> {
  /**
   * Opens (creating if needed) the map `nameOrPath`: a bare name is `/dev/shm/<name>`
   * (memory only), anything with a `/` is a file path (persists on disk after `flush`).
   * @throws {ShmapError} `ERR_SHMAP_CORRUPT`, `ERR_SHMAP_VERSION`, `ERR_SHMAP_NOT_A_MAP`, `ERR_SHMAP_NO_SPACE`, `ERR_SHMAP_IO`
   */
  constructor(nameOrPath: string, options?: ShmapOptions);

  /** The file behind the map. */
  readonly path: string;
  /** Number of entries (including expired ones not yet reclaimed). */
  readonly size: number;
  /** Whether this handle refuses writes (`lock: false` or `setLock(false)`). */
  readonly readOnly: boolean;

  /** The value of `key`, or `undefined` if it is absent or expired. */
  get(key: Key): V | undefined;
  /**
   * Stores `value` under `key` for every process.
   * @param ttlMs - time to live for this entry, overriding `maxAge` (0 or Infinity = never expire).
   * @throws {ShmapError} `ERR_SHMAP_FULL` (eviction off), `ERR_SHMAP_TOO_LARGE`, `ERR_SHMAP_READ_ONLY`, `ERR_SHMAP_NO_SPACE`
   */
  set(key: Key, value: V, ttlMs?: number): this;
  /** Stores `value` only if `key` is absent (or expired): true if it did. */
  add(key: Key, value: V, ttlMs?: number): boolean;
  /** Whether `key` is present and not expired. */
  has(key: Key): boolean;
  /** Removes `key`: true if it was present. */
  delete(key: Key): boolean;
  /** Removes every entry, for every process. */
  clear(): void;
  /**
   * Adds `delta` (a safe integer, default 1) to the integer at `key`, atomically across
   * processes, and returns the new value. A missing key counts as 0. Without `ttlMs` an
   * existing entry keeps its expiry.
   * @throws {ShmapError} `ERR_SHMAP_NOT_AN_INTEGER` if `key` holds something else,
   * `ERR_SHMAP_INVALID_ARGUMENT` if the sum overflows a 64-bit integer.
   */
  incr(key: Key, delta?: number, ttlMs?: number): number;
  /**
   * `incr` with options (see `IncrOptions`): `initTtl` sets the TTL only when this call
   * creates the entry, `create: false` leaves a missing key missing (and returns `undefined`),
   * `withExpiry` returns `{ value, expiresAt }` from the same atomic step.
   */
  incr(key: Key, delta: number, options: IncrOptions & { withExpiry: true; create: false }): Counter | undefined;
  incr(key: Key, delta: number, options: IncrOptions & { withExpiry: true }): Counter;
  incr(key: Key, delta: number, options: IncrOptions & { create: false }): number | undefined;
  incr(key: Key, delta: number, options: IncrOptions): number | Counter | undefined;
  /** Milliseconds `key` has left: `Infinity` if it never expires, `0` if it is absent (lru-cache's semantics). */
  getRemainingTTL(key: Key): number;
  /**
   * Gives `key` a new time to live, `ttlMs` from now, without rewriting its value; atomic
   * across processes. 0 (or Infinity) = never expires: unlike Redis's `PEXPIRE k 0`, which
   * deletes. Returns whether the key was present (nothing is created).
   */
  expire(key: Key, ttlMs: number): boolean;
  /**
   * Removes every key that starts with `prefix` (`''` = every key); returns how many were
   * present. Bounded batches: a lock-free scan finds up to 256 keys, one short hold of the
   * writer lock removes them, the scan goes on from its cursor; other writers get in between.
   * Every key present under the prefix for the whole call is removed; a key written under it
   * during the call may or may not be.
   */
  deletePrefix(prefix: Key | ''): number;
  /** Removes each of `keys` in one call (one hold of the writer lock); returns how many were present. */
  deleteMany(keys: Key[]): number;
  /**
   * A lazy iterator over the live keys that start with `prefix`, at most `limit` of them,
   * fetched in batches of at most 256 as the iteration reaches them (a resumable scan). Scan
   * semantics over the whole iteration: every entry present (and unexpired) and unchanged for
   * the whole scan is returned, each key at most once; an entry written, replaced or removed
   * during the scan may or may not appear. Not a snapshot; it holds no writer off.
   */
  scan(options?: ScanOptions & { values?: false }): IterableIterator<string>;
  /** The same, as `[key, value]` pairs (each value one the entry had during the scan). */
  scan(options: ScanOptions & { values: true }): IterableIterator<[string, V]>;
  /**
   * The value of `key`; if absent, `loader(key)` runs once across all processes and its
   * result is stored (with `ttlMs`) and returned. Other callers wait for that value: with an
   * async loader they get a Promise and wait on timers; with a sync loader they block.
   * If the loader throws, nothing is stored and the next caller loads. A Promise is returned
   * on a hit too only for an `async function` loader: a plain function that returns a Promise
   * gets the stored value itself on a hit (the loader is not called, so its kind is unknown),
   * and its waiters block (this overload's type is then wrong on a hit); declare loaders
   * `async` to always get a Promise. In this thread, a
   * sync `getOrSet` of a key this thread is loading (inside its loader, or while its Promise
   * is pending) runs its own loader at once rather than wait for itself.
   */
  getOrSet<T extends V>(key: Key, loader: (key: Key) => Promise<T>, ttlMs?: number): Promise<T>;
  getOrSet<T extends V>(key: Key, loader: (key: Key) => T, ttlMs?: number): T;
  /**
   * Stores `value` under `key` only if `cond` holds, atomically across processes; true if it held.
   * @throws {ShmapError} `ERR_SHMAP_NOT_AN_INTEGER` if a version entry holds something else; as `set` otherwise.
   */
  setIfVersion(key: Key, value: V, ttlMs: number | undefined, cond: IfVersion): boolean;
  /** Removes `key` only if `cond` holds, atomically across processes; true if it held. */
  deleteIfVersion(key: Key, cond: IfVersion): boolean;
  /**
   * Every live key (keys stored as bytes are decoded as UTF-8). With `prefix`, only the keys
   * that start with it (filtered natively), at most `limit` of them. Not a snapshot, and it
   * holds no writer off: every entry present (and unexpired) for the whole call is returned,
   * each key at most once; an entry written, replaced or removed during the call may or may not
   * appear.
   */
  keys(options?: KeysOptions): string[];
  /** Every live entry as `[key, value]`, with the same scan semantics as `keys()` (not a snapshot). */
  entries(): Array<[string, V]>;
  /** Iterates over `entries()`. */
  [Symbol.iterator](): IterableIterator<[string, V]>;
  /** A snapshot of the map's counters, and of this handle's decode cache. */
  stats(): ShmapStats;
  /** Writes the map to its file and waits: what makes writes durable on disk (a no-op in effect in /dev/shm). */
  flush(): void;
  /** Closes this handle (idempotent): later calls throw `ERR_SHMAP_CLOSED`. Other handles and processes are unaffected. */
  close(): void;
  /** Sets the default time to live in ms for every process (0 = never expire). */
  setMaxAge(ms: number): void;
  /** Sets the cap on the map's memory in bytes, for every process. */
  setMaxSize(bytes: number): void;
  /** Turns eviction on (default) or off, for every process. */
  setEvict(on: boolean): void;
  /** `false` makes this handle read-only (writes throw `ERR_SHMAP_READ_ONLY`); `true` makes it writable again. */
  setLock(on: boolean): void;
}

/**
 * The condition of `setIfVersion` / `deleteIfVersion`, checked and acted on as one step
 * across processes (under the map's writer lock).
 */
export interface IfVersion {
  /** The entry holding the version to compare with: an integer, or absent. It may be the written key itself. */
  versionKey: Key;
  /** Compared with when `versionKey` is absent (`'<='`/`'<'` only). When given and absent too, the condition fails. */
  floorKey?: Key;
  /** The caller's version (a safe integer). */
  version: number;
  /** Holds when the held version is `'<='` (default) / `'<'` this one, or (`'==='`) equals it. Absent entries: see `floorKey`; `'==='` never matches one. */
  compare?: '<=' | '<' | '===';
  /** On success also store `version` at `versionKey` and raise `floorKey` (if given; it never expires) to at least `version`. */
  stamp?: boolean;
  /** Time to live of the stamped version entry (default: the map's `maxAge`; 0 = never). */
  stampTtlMs?: number;
}

/**
 * The API of the original C++ addon, for code written against it. Entries expire after
 * `setMaxAge` ms (default 2000) unless `set` is given its own; the memory cap is
 * `setMaxSize` (default 800 MiB).
 */
export class NodeShareCache {
  /**
   * @param name - a bare name (`/dev/shm/<name>`) or a path.
   * @param size - initial size in bytes (at least 64 KiB is used); the map grows by itself.
   * @param reset - start empty: the primary passes true, workers false.
   */
  constructor(name: string, size?: number, reset?: boolean);
  /** The `Shmap` behind this cache, for the rest of the API. */
  readonly shmap: Shmap;
  get(key: Key): Value | undefined;
  /** Stores `value`; it expires after `maxAgeMs` (default: the `setMaxAge` value). Returns true. */
  set(key: Key, value: Value, maxAgeMs?: number): boolean;
  /** Removes `key`: true if it was present. */
  del(key: Key): boolean;
  /** Time to live in ms of entries this handle sets from now on (default 2000; 0 = never expire). */
  setMaxAge(ms: number): void;
  /** Cap on the map's memory in bytes, for every process (default 800 MiB). */
  setMaxSize(bytes: number): void;
  /** `false` makes this handle read-only: a later `set` throws `ERR_SHMAP_READ_ONLY`. */
  setLock(on: boolean): void;
  /** The map's counters. */
  stat(): ShmapStats;
  /** Closes this handle (the data stays for the other processes). */
  destroy(): void;
}

declare const shmap: {
  Shmap: typeof Shmap;
  NodeShareCache: typeof NodeShareCache;
};
export default shmap;
