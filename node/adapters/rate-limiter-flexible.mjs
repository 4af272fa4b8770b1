// ESM entry of shmap/rate-limiter-flexible: the same class as the CommonJS entry (named export only, as in CommonJS).
import mod from './rate-limiter-flexible.js';

export const { RateLimiterShmap } = mod;
