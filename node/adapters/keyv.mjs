// ESM entry of shmap/keyv: the same class as the CommonJS entry.
import mod from './keyv.js';

export const { KeyvShmap } = mod;
export default KeyvShmap;
