// Compiled (never run) by test/types.test.js with `tsc --noEmit`: the package's types must
// accept every documented use and reject the misuses marked @ts-expect-error.
import shmap, { Shmap, NodeShareCache, type ShmapOptions, type ShmapStats, type ShmapError, type Value, type Counter } from 'shmap';

const options: ShmapOptions = { maxSize: 64 << 20, initialSize: 1 << 20, maxAge: 0, reset: true, lock: true, evict: true, leaseMs: 5000, decodeCache: 1 << 20, shards: 4 };
const m = new Shmap('types-demo', options);
const same: typeof Shmap = shmap.Shmap;

m.set('s', 'text').set('n', 1).set('b', Buffer.from('x'), 1000).set('o', { a: [1, 'two', null] });
m.set(Buffer.from('k'), new Uint8Array(2));
const v: Value | undefined = m.get('s');
if (typeof v === 'string') v.toUpperCase();
const added: boolean = m.add('k', true, 10);
const present: boolean = m.has('k');
const removed: boolean = m.delete('k');
const count: number = m.incr('hits') + m.incr('hits', 5) + m.incr('hits', -1, 60_000);
const loaded: { id: number } = m.getOrSet('user:1', () => ({ id: 1 }), 60_000);
const later: Promise<string> = m.getOrSet('page', async () => 'html');
const n: number = m.size;
const keys: string[] = m.keys();
for (const [key, value] of m) console.log(key.length, value);
const entries: Array<[string, Value]> = m.entries();
const stats: ShmapStats = m.stats();
const evicted: number = stats.evictions + stats.expired + stats.liveBytes + stats.deadBytes + stats.fileBytes + stats.generation;
const kept: number = stats.decodeCacheEntries + stats.decodeCacheBytes + stats.decodeCacheHits;
m.flush();
const left: number = m.getRemainingTTL('k');
const retimed: boolean = m.expire('k', 0);
const window: Counter = m.incr('w', 1, { initTtl: 1000, withExpiry: true });
const at: number = window.expiresAt + window.value;
const maybe: number | undefined = m.incr('w', -1, { create: false });
const maybeC: Counter | undefined = m.incr('w', -1, { create: false, withExpiry: true });
// @ts-expect-error create: false may return undefined
const notMaybe: number = m.incr('w', -1, { create: false });
const some: string[] = m.keys({ prefix: 'user:', limit: 10 });
for (const key of m.scan({ prefix: 'user:' })) key.toUpperCase();
for (const [key, value] of m.scan({ prefix: 'user:', values: true })) console.log(key, value);
const dropped: number = m.deletePrefix('user:') + m.deleteMany(['a', Buffer.from('b')]);
m.setMaxAge(1000);
m.setMaxSize(1 << 30);
m.setEvict(false);
m.setLock(false);
const ro: boolean = m.readOnly;
const p: string = m.path;
m.close();

// A map typed to its values.
const users = new Shmap<{ name: string }>('typed-users');
users.set('u1', { name: 'ada' });
const u: { name: string } | undefined = users.get('u1');
// @ts-expect-error: a number is not a user
users.set('u2', 5);

// @ts-expect-error: undefined is not a storable value
m.set('k', undefined);
// @ts-expect-error: keys are strings or bytes
m.get(5);
// @ts-expect-error: options are typed
new Shmap('x', { maxSize: '1MB' });
// @ts-expect-error: decodeCache is a byte count
new Shmap('x', { decodeCache: true });

try {
  m.get('k');
} catch (e) {
  const code: string = (e as ShmapError).code;
  if (code === 'ERR_SHMAP_CLOSED') console.log('closed');
}

// The original addon's API.
const c = new NodeShareCache('Highscorev3', 1024 * 100, true);
c.setMaxAge(40000);
c.setLock(true);
const ok: boolean = c.set('k', 'v', 500);
const got: Value | undefined = c.get('k');
const deleted: boolean = c.del('k');
c.setMaxSize(800 << 20);
const st: ShmapStats = c.stat();
const inner: Shmap = c.shmap;
c.destroy();

export { same, added, present, removed, count, loaded, later, n, keys, entries, evicted, kept, ro, p, u, got, ok, deleted, st, inner };
