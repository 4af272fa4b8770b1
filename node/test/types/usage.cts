// The CommonJS view of the same types (compiled, never run, by test/types.test.js).
import shmap = require('shmap');

const m: shmap.Shmap = new shmap.Shmap('types-cjs', { reset: true });
const v = m.get('k');
export const out = [v, new shmap.NodeShareCache('x', 100, false)];
