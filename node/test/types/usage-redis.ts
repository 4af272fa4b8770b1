// Types of shmap/redis and of setIfVersion, compiled by types.test.js.
import Redis from 'ioredis';
import { Shmap } from 'shmap';
import type { ShmapErrorCode } from 'shmap';
import { createRedisTier, type RedisTierStats } from 'shmap/redis';

const map = new Shmap('usage-redis');
const held: boolean = map.setIfVersion('k', 'v', 1000, { versionKey: 'ver:k', floorKey: 'floor', version: 3 });
const gone: boolean = map.deleteIfVersion('k', { versionKey: 'ver:k', version: 4, compare: '<', stamp: true, stampTtlMs: 60_000 });
const tier = createRedisTier<{ name: string }>({ map, redis: new Redis(), prefix: 'users:', ttl: 60_000, maxStale: 1000 });
async function use(): Promise<void> {
  await tier.set('u1', { name: 'Ada' }, 30_000);
  const u: { name: string } | undefined = await tier.get('u1');
  const v: { name: string } = await tier.getOrSet('u2', async () => ({ name: 'Bob' }));
  await tier.delete('u1');
  const s: RedisTierStats = tier.stats();
  const sub: boolean = s.subscriber;
  const code: ShmapErrorCode = 'ERR_SHMAP_TIER_UNAVAILABLE';
  console.log(u, v, sub, code, held, gone);
  await tier.close();
}
void use;
