/// <reference types="node" />
// Types of `shmap/keyv`: a Keyv ^5.6 storage adapter (also for cache-manager 7).
import { EventEmitter } from 'node:events';
import type { Shmap, ShmapOptions } from 'shmap';

export interface KeyvShmapOptions {
  /** Options for opening the map when a name is given (ignored for a Shmap). Prefer `evict: false` for data that must not be dropped. */
  mapOptions?: ShmapOptions;
  /** The namespace until Keyv sets its own (Keyv does, `'keyv'` by default). */
  namespace?: string;
}

/**
 * A Keyv storage adapter over a shared-memory map: every process that opens the same map sees
 * the same entries. Keyv's TTL becomes the entry's own TTL in the map; `clear()` removes the
 * current namespace's keys only.
 *
 * Stock Keyv 5.6 builds `keyv.iterator` only for its own dialects (sqlite, postgres, mysql,
 * mongo, redis, valkey, etcd): with this store `keyv.iterator` is undefined. `store.iterator(ns)`
 * works; README.md shows a small Keyv subclass that wires it.
 */
export class KeyvShmap extends EventEmitter {
  constructor(map: Shmap | string, options?: KeyvShmapOptions);
  /** The map behind the store (its `getOrSet` loads once across processes). */
  readonly map: Shmap<any>;
  namespace?: string;
  opts: { dialect: 'shmap'; url: ''; [key: string]: unknown };
  get<Value>(key: string): Promise<Value | undefined>;
  getMany<Value>(keys: string[]): Promise<Array<Value | undefined>>;
  set(key: string, value: any, ttl?: number): Promise<boolean>;
  setMany(entries: Array<{ key: string; value: any; ttl?: number }>): Promise<boolean[]>;
  has(key: string): Promise<boolean>;
  hasMany(keys: string[]): Promise<boolean[]>;
  delete(key: string): Promise<boolean>;
  deleteMany(keys: string[]): Promise<boolean>;
  clear(): Promise<void>;
  iterator<Value>(namespace?: string): AsyncGenerator<[string, Value], void>;
  disconnect(): Promise<void>;
}

