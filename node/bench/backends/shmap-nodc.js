'use strict';
// shmap with its per-handle decode cache off (`decodeCache: 0`): every get copies the value out of
// the map and creates a new JS string, as happens for keys the cache cannot hold (working sets
// above its 8 MiB per handle, values under 64 B, objects, Buffers). On its own map.
module.exports = require('./shmap').variant('shmap-nodc', { decodeCache: 0 });
