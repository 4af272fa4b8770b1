'use strict';
// Errors with a stable `code`: Node's own codes for bad arguments (TypeError/RangeError), and
// ERR_SHMAP_* for the map's (the addon throws those; see README.md's error table).

function codedError(Ctor, code, message) {
  const e = new Ctor(message);
  e.code = code;
  return e;
}

// How Node's own ERR_INVALID_ARG_TYPE messages name a received value.
function describe(v) {
  if (v === null) return 'null';
  if (typeof v === 'function') return `function ${v.name || '<anonymous>'}`;
  if (typeof v === 'object') {
    const name = v.constructor && v.constructor.name;
    return name ? `an instance of ${name}` : 'an object';
  }
  if (typeof v === 'string') {
    const s = v.length > 28 ? `${v.slice(0, 25)}...` : v;
    return `type string ('${s}')`;
  }
  return `type ${typeof v} (${String(v)})`;
}

function argType(name, expected, actual) {
  return codedError(TypeError, 'ERR_INVALID_ARG_TYPE',
    `The "${name}" argument must be ${expected}. Received ${describe(actual)}`);
}

function argValue(name, reason, actual) {
  return codedError(TypeError, 'ERR_INVALID_ARG_VALUE',
    `The "${name}" argument ${reason}. Received ${describe(actual)}`);
}

function outOfRange(name, range, actual) {
  return codedError(RangeError, 'ERR_OUT_OF_RANGE',
    `The value of "${name}" is out of range. It must be ${range}. Received ${String(actual)}`);
}

module.exports = { codedError, describe, argType, argValue, outOfRange };
