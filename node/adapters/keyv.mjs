// ESM entry of shmap/keyv: the same class as the CommonJS entry (named export only, as in CommonJS).
import mod from './keyv.js';

export const { KeyvShmap } = mod;
