/// <reference types="node" />
// Types of `shmap/redis`: the map as every host's shared L1 in front of Redis.
import type { Shmap, Value } from '../index';

/** The ioredis client the tier duplicates for its own connections (any ioredis 5+ `Redis`). */
export interface RedisLike {
  duplicate(override?: Record<string, unknown>): unknown;
}

/** Options of `createRedisTier`. Times are in ms. */
export interface RedisTierOptions {
  /** The host's shared map (L1). Several tiers (different prefixes) may share one. */
  map: Shmap;
  /** An ioredis client; the tier opens its own connections with `redis.duplicate()`. */
  redis: RedisLike;
  /** Prefix of the Redis keys, and of the map keys this tier owns. */
  prefix: string;
  /** The invalidation channel (default `shmap:<prefix>`); its sequence number is the Redis key `<channel>\0seq`. */
  channel?: string;
  /** Redis TTL of `set` without one (default 0 = none). */
  ttl?: number;
  /** Cap on an L1 entry's TTL (default 60000); an entry filled from Redis also keeps Redis's remaining TTL. */
  l1Ttl?: number;
  /** Bound of every Redis command (default 500). An outage fails at once once the connection was up. */
  redisTimeout?: number;
  /** Period of the election and the sequence check (default 200). */
  checkInterval?: number;
  /** The staleness bound (default 1000; must exceed checkInterval + redisTimeout): after another host's acknowledged write, this host returns the old value for at most this long. */
  maxStale?: number;
  /** TTL of the subscriber's lease (default 1000): a dead or stalled subscriber is replaced within about electionTtl + checkInterval. */
  electionTtl?: number;
  /** TTL of per-key version entries (default 10000). */
  versionTtl?: number;
  /** TTL of getOrSet's cross-host Redis lock (default 5000). */
  lockTtl?: number;
  /**
   * While Redis fails, each process serves the L1 entries of the last epoch it saw valid for
   * this long after it last saw it valid (it looks at least every checkInterval), i.e. at most
   * maxStale + staleIfError after the last good sequence check; L1 misses still reject with
   * `ERR_SHMAP_TIER_UNAVAILABLE` (default 0 = never serve L1 past the bound).
   */
  staleIfError?: number;
}

/** Counters of one tier handle (this process or thread). */
export interface RedisTierStats {
  l1Hits: number;
  l2Hits: number;
  misses: number;
  /** Invalidations this handle applied to the map as the host's subscriber. */
  invalidationsApplied: number;
  /** Epochs this handle started (flushes of the host's L1 for this prefix). */
  flushes: number;
  /** Of those, for a gap in the sequence (a lost message). */
  gaps: number;
  /** Whether this handle is the host's subscriber now. */
  subscriber: boolean;
  /** The host's current epoch, or undefined while L1 is off (no live subscriber). */
  epoch: number | undefined;
}

export interface RedisTier<V extends Value = Value> {
  /** This host's id (random, kept in the map), published with every write. */
  readonly origin: string;
  /** L1, then Redis (filling L1), else undefined. @throws `ERR_SHMAP_TIER_UNAVAILABLE` on an L1 miss while Redis fails. */
  get(key: string): Promise<V | undefined>;
  /** Writes Redis, publishes the invalidation, updates this host's L1. @throws `ERR_SHMAP_TIER_UNAVAILABLE` */
  set(key: string, value: V, ttlMs?: number): Promise<this>;
  /** Deletes from Redis, publishes the invalidation, drops it from this host's L1. @throws `ERR_SHMAP_TIER_UNAVAILABLE` */
  delete(key: string): Promise<boolean>;
  /** The value, or the loader's, run once per host and at most once per key and lock period across hosts. */
  getOrSet<T extends V>(key: string, loader: (key: string) => T | Promise<T>, ttlMs?: number): Promise<T>;
  /** Counters of this handle. */
  stats(): RedisTierStats;
  /** Hands the subscriber role over (if held) and closes this handle's connections. Idempotent. */
  close(): Promise<void>;
}

/** Creates a tier over `options.map` and `options.redis`. */
export function createRedisTier<V extends Value = Value>(options: RedisTierOptions): RedisTier<V>;
/** Encodes a value in the tier's Redis format (one tag byte, then the payload). */
export function encode(value: Value): Buffer;
/** Decodes a value of the tier's Redis format (other bytes come back as a Buffer). */
export function decode(bytes: Buffer): Value;

declare const tier: { createRedisTier: typeof createRedisTier; encode: typeof encode; decode: typeof decode };
export default tier;
