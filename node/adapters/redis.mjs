// ESM entry of shmap/redis: the same tier as the CommonJS one (one module instance).
import tier from './redis.js';

export const { createRedisTier, RedisTier, encode, decode } = tier;
export default tier;
