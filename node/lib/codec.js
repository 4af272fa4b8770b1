'use strict';
// Value encoding (README.md, "Value encoding"): each record's user flags hold a type tag, so a
// value comes back with the type it was stored with. Encoding is done by the handle (it writes
// into its own io buffer: see Shmap#store); decoding is here.

const { stableBytes, jsonText } = require('./args');

// Type tags. Must match `mod tag` in src/lib.rs.
const T_BYTES = 0; // Buffer
const T_ASCII = 1; // string, ASCII bytes (decoded as latin1: same bytes, fastest)
const T_UTF16 = 2; // string with non-ASCII characters, UTF-16LE (T_ASCII + 1)
const T_JSON = 3; // plain object or array, JSON text in ASCII
const T_JSON16 = 4; // the same, JSON text in UTF-16LE (T_JSON + 1)
const T_F64 = 5; // number that is not a safe integer (or is -0), float64 LE
const T_TRUE = 6;
const T_FALSE = 7;
const T_NULL = 8;
const T_INT = 9; // safe integer, i64 LE (the core's counter format, so incr() works on it)
const T_U8 = 10; // Uint8Array that is not a Buffer

const TWO_32 = 4294967296;

function isPlainObject(v) {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// Decodes the value the addon copied into `io`; `r` is `len * 16 + tag`.
function decode(io, r) {
  const tag = r & 15;
  const len = (r - tag) / 16;
  switch (tag) {
    case T_ASCII: return io.latin1Slice(0, len);
    case T_UTF16: return io.ucs2Slice(0, len);
    case T_JSON: return JSON.parse(io.latin1Slice(0, len));
    case T_JSON16: return JSON.parse(io.ucs2Slice(0, len));
    case T_INT: return io.readInt32LE(4) * TWO_32 + io.readUInt32LE(0);
    case T_F64: return io.readDoubleLE(0);
    case T_TRUE: return true;
    case T_FALSE: return false;
    case T_NULL: return null;
    case T_U8: {
      const u = new Uint8Array(len);
      u.set(io.subarray(0, len));
      return u;
    }
    default: { // T_BYTES, and tags of writers we do not know
      const b = Buffer.allocUnsafe(len);
      io.copy(b, 0, 0, len);
      return b;
    }
  }
}

// Decodes an entry's value from its own buffer (entries() is not a hot path).
function decodeEntryValue(buf, tag) {
  if (tag === T_BYTES || tag > T_U8) return buf;
  return decode(buf, buf.length * 16 + tag);
}

// Encodes `value` into its own Buffer as [tag, bytes] (what Shmap#store writes into io, for
// the less hot paths that pass bytes: setIfVersion). undefined for a type the map refuses; a
// JSON.stringify failure throws.
function encodeValue(value) {
  switch (typeof value) {
    case 'string': return encodeText(value, T_ASCII);
    case 'number': {
      const b = Buffer.allocUnsafe(8);
      if (Number.isSafeInteger(value) && !Object.is(value, -0)) {
        b.writeUInt32LE(value >>> 0, 0);
        b.writeInt32LE(Math.floor(value / TWO_32), 4);
        return [T_INT, b];
      }
      b.writeDoubleLE(value, 0);
      return [T_F64, b];
    }
    case 'boolean': return [value ? T_TRUE : T_FALSE, EMPTY];
    case 'object':
      if (value === null) return [T_NULL, EMPTY];
      if (value instanceof Uint8Array) return [value instanceof Buffer ? T_BYTES : T_U8, stableBytes(value)];
      if (Array.isArray(value) || isPlainObject(value)) return encodeText(jsonText(value), T_JSON);
      return undefined;
    default: return undefined;
  }
}

const EMPTY = Buffer.alloc(0);

// ASCII text as is (tag), anything else as UTF-16LE (tag + 1).
function encodeText(s, tag) {
  const b = Buffer.from(s, 'utf8');
  return b.length === s.length ? [tag, b] : [tag + 1, Buffer.from(s, 'utf16le')];
}

module.exports = {
  T_BYTES, T_ASCII, T_UTF16, T_JSON, T_JSON16, T_F64, T_TRUE, T_FALSE, T_NULL, T_INT, T_U8,
  TWO_32, isPlainObject, decode, decodeEntryValue, encodeValue,
};
