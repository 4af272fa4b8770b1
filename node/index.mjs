// ESM entry: the same classes as the CommonJS entry (one module instance, one addon load).
import shmap from './index.js';

export const { Shmap, NodeShareCache } = shmap;
export default shmap;
