// ESM entry of shmap/express-rate-limit: the same class as the CommonJS entry (named export only, as in CommonJS).
import mod from './express-rate-limit.js';

export const { ShmapStore } = mod;
