// Types of `shmap/express-rate-limit`: an express-rate-limit ^8.7 Store.
import type { Store, Options, ClientRateLimitInfo, IncrementResponse } from 'express-rate-limit';
import type { Shmap, ShmapOptions } from 'shmap';

export interface ShmapStoreOptions {
  /** Options for opening the map when a name is given. Counters want `{ evict: false }`. */
  mapOptions?: ShmapOptions;
  /** Key prefix of this limiter's counters. Default `'rl:'`; give each limiter its own. */
  prefix?: string;
}

/**
 * An express-rate-limit Store over a shared-memory map: one fixed window per client, counted
 * across every process. `increment` returns the count and the window's end from one atomic step.
 */
export class ShmapStore implements Store {
  constructor(map: Shmap | string, options?: ShmapStoreOptions);
  readonly map: Shmap<any>;
  prefix: string;
  localKeys: false;
  windowMs: number;
  init(options: Options): void;
  get(key: string): ClientRateLimitInfo | undefined;
  increment(key: string): IncrementResponse;
  decrement(key: string): void;
  resetKey(key: string): void;
  resetAll(): void;
  shutdown(): void;
}

