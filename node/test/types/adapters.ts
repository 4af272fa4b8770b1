// Compiled (never run) by test/types.test.js: the adapters' subpath types.
import { Keyv } from 'keyv';
import session from 'express-session';
import { rateLimit } from 'express-rate-limit';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { Shmap } from 'shmap';
import { KeyvShmap } from 'shmap/keyv';
import { ShmapSessionStore } from 'shmap/express-session';
import { ShmapStore } from 'shmap/express-rate-limit';
import { RateLimiterShmap } from 'shmap/rate-limiter-flexible';

const map = new Shmap('types-adapters', { evict: false });
const store = new KeyvShmap(map, { namespace: 'n' });

const keyv = new Keyv({ store: new KeyvShmap('by-name', { mapOptions: { maxSize: 1 << 26 } }) });
export const viaKeyv: Promise<boolean> = keyv.set('k', { a: 1 }, 1000);
export const it: AsyncGenerator<[string, unknown], void> = store.iterator<unknown>('n');
export const loaded: Promise<number> = store.map.getOrSet('x', async () => 1, 1000);

const sessions = new ShmapSessionStore('sessions', { prefix: 'sess:', ttlMs: 86_400_000, disableTouch: false });
export const mw = session({ store: sessions, secret: 's', resave: false, saveUninitialized: false });
sessions.length((err, n) => console.log(err, n));
// @ts-expect-error ttlMs is a number
new ShmapSessionStore(map, { ttlMs: '1d' });

const rl = new ShmapStore(map, { prefix: 'rl:' });
export const limiter = rateLimit({ windowMs: 60_000, limit: 100, store: rl });
const hits: number = rl.increment('ip').totalHits;

const flex = new RateLimiterShmap({ storeClient: map, points: 10, duration: 1, blockDuration: 5, keyPrefix: 'api' });
export const consumed: Promise<RateLimiterRes> = flex.consume('ip', 1);
// @ts-expect-error storeClient is required
new RateLimiterShmap({ points: 1, duration: 1 });
export const out = [hits];
