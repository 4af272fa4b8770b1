'use strict';
// What the adapters share: taking a Shmap or opening one by name, and TTL arguments that are
// always explicit (an adapter never lets an entry inherit the map's maxAge by accident).

const { Shmap } = require('../lib/shmap');
const { argType } = require('../lib/errors');

/**
 * `map` is a Shmap (used as is) or a name/path opened with `mapOptions`. Returns the Shmap.
 * `who` names the caller in errors.
 */
function openMap(map, mapOptions, who) {
  if (map instanceof Shmap) return map;
  if (typeof map === 'string') return new Shmap(map, mapOptions || {});
  throw argType(`${who} map`, 'a Shmap or a map name (string)', map);
}

function optionsObject(o, name) {
  if (o === undefined) return {};
  if (o === null || typeof o !== 'object') throw argType(name, 'of type object', o);
  return o;
}

function stringOption(v, name, dflt) {
  if (v === undefined) return dflt;
  if (typeof v !== 'string') throw argType(name, 'of type string', v);
  return v;
}

module.exports = { openMap, optionsObject, stringOption };
