// ESM entry of shmap/express-rate-limit: the same class as the CommonJS entry.
import mod from './express-rate-limit.js';

export const { ShmapStore } = mod;
export default ShmapStore;
