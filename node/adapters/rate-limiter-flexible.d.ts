// Types of `shmap/rate-limiter-flexible`: a rate-limiter-flexible ~11.4 store limiter.
import { RateLimiterStoreAbstract } from 'rate-limiter-flexible';
import type { Shmap, ShmapOptions } from 'shmap';

/** The options of rate-limiter-flexible's store limiters (points, duration, keyPrefix, blockDuration, ...). */
type StoreOptions = ConstructorParameters<typeof RateLimiterStoreAbstract>[0];

export interface RateLimiterShmapOptions extends Omit<StoreOptions, 'storeClient'> {
  /** The map: a Shmap, or a map name/path opened with `mapOptions`. */
  storeClient: Shmap<any> | string;
  /** Options for opening the map when a name is given. Counters want `{ evict: false }`. */
  mapOptions?: ShmapOptions;
}

/**
 * A rate-limiter-flexible limiter whose counters live in a shared-memory map: every process
 * that opens the map counts against the same points, each call one atomic step.
 */
export class RateLimiterShmap extends RateLimiterStoreAbstract {
  constructor(opts: RateLimiterShmapOptions);
}

