#!/usr/bin/env node
'use strict';
// What does it cost to turn a JS value into bytes in a buffer and back? Helps choose the addon's
// value encoding. Prints median ns/op as two markdown tables (encode, decode).
//   node node/bench/encoding.js [--quick]
// Each cell: median over SAMPLES batches of ~MS ms each; includes a few ns of loop/call overhead
// (the 'empty' line printed first); each fn result is kept in globalThis.sink. '—' = not applicable to that value.
const v8 = require('v8');
const { makeObject, makeValue } = require('./values');

const QUICK = process.argv.includes('--quick');
const MS = QUICK ? 5 : 20;
const SAMPLES = QUICK ? 5 : 15;

const nonAscii = 'Grüße aus Köln, 東京の天気は晴れ — naïve café. ';
const VALUES = [
  ['object ~10 KB', makeObject(10240)],
  ['object ~100 B', makeObject(100)],
  ['string 10 KB ASCII (JSON text)', makeValue(10240)],
  ['string 10 KB non-ASCII', nonAscii.repeat(Math.ceil(10240 / Buffer.byteLength(nonAscii)))],
  ['string short', 'session:u_58vrs'],
  ['number', 1234.5678],
];

const out = Buffer.alloc(1 << 20); // reusable destination for encoders
const isLatin1 = (s) => /^[\x00-\xff]*$/.test(s);

// Each value gets its inputs prepared once; ops are [column, applies(v), fn(prepared)].
function prepare(v) {
  const json = JSON.stringify(v);
  const p = { v, json, kind: typeof v, v8: v8.serialize(v), jsonBuf: Buffer.from(json) };
  if (p.kind === 'string') {
    p.utf8 = Buffer.from(v, 'utf8');
    p.utf16 = Buffer.from(v, 'utf16le');
    if (isLatin1(v)) p.latin1 = Buffer.from(v, 'latin1');
  }
  if (p.kind === 'number') { p.f64 = Buffer.alloc(8); p.f64.writeDoubleLE(v); }
  return p;
}

const any = () => true;
const str = (p) => p.kind === 'string';
const lat = (p) => !!p.latin1;
const num = (p) => p.kind === 'number';

const ENCODE = [
  ['JSON.stringify only', any, (p) => JSON.stringify(p.v).length],
  ['JSON.stringify + Buffer.from', any, (p) => Buffer.from(JSON.stringify(p.v)).length],
  ['JSON.stringify + buf.write', any, (p) => out.write(JSON.stringify(p.v), 0, 'utf8')],
  ['v8.serialize', any, (p) => v8.serialize(p.v).length],
  ['raw buf.write utf8', str, (p) => out.write(p.v, 0, 'utf8')],
  ['raw buf.utf8Write', str, (p) => out.utf8Write(p.v, 0)],
  ['raw buf.write latin1', lat, (p) => out.write(p.v, 0, 'latin1')],
  ['raw buf.write utf16le', str, (p) => out.write(p.v, 0, 'utf16le')],
  ['raw writeDoubleLE', num, (p) => out.writeDoubleLE(p.v, 0)],
];

const DECODE = [
  ['JSON.parse only', any, (p) => JSON.parse(p.json)],
  ['toString utf8 + JSON.parse', any, (p) => JSON.parse(p.jsonBuf.toString('utf8', 0, p.jsonBuf.length))],
  ['utf8Slice + JSON.parse', any, (p) => JSON.parse(p.jsonBuf.utf8Slice(0, p.jsonBuf.length))],
  ['v8.deserialize', any, (p) => v8.deserialize(p.v8)],
  ['raw toString utf8', str, (p) => p.utf8.toString('utf8', 0, p.utf8.length)],
  ['raw utf8Slice', str, (p) => p.utf8.utf8Slice(0, p.utf8.length)],
  ['raw toString latin1', lat, (p) => p.latin1.toString('latin1', 0, p.latin1.length)],
  ['raw latin1Slice', lat, (p) => p.latin1.latin1Slice(0, p.latin1.length)],
  ['raw toString utf16le', str, (p) => p.utf16.toString('utf16le', 0, p.utf16.length)],
  ['raw ucs2Slice', str, (p) => p.utf16.ucs2Slice(0, p.utf16.length)],
  ['raw readDoubleLE', num, (p) => p.f64.readDoubleLE(0)],
];

// A fresh timing loop per measured function (new Function: its own feedback), so the call to `fn`
// stays monomorphic and can be inlined, as it would be in real code.
const makeTimer = () => new Function('fn', 'p', 'n', `
  let s; const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) s = fn(p);
  const t = Number(process.hrtime.bigint() - t0); globalThis.sink = s; return t;`);

function nsPerOp(fn, p) {
  const time = makeTimer();
  let n = 1, t;
  while ((t = time(fn, p, n)) < (MS * 1e6) / 8) n *= 2; // calibrate (also warms up)
  n = Math.max(1, Math.round((n * MS * 1e6) / t));
  const s = Array.from({ length: SAMPLES }, () => time(fn, p, n) / n).sort((a, b) => a - b);
  return s[s.length >> 1];
}

const fmt = (ns) => (ns < 100 ? ns.toFixed(1) : Math.round(ns).toLocaleString('en-US'));

function table(title, ops, prepared) {
  console.log(`\n${title} (median ns/op)\n`);
  console.log(`| value | JSON bytes | v8 bytes | ${ops.map(([c]) => c).join(' | ')} |`);
  console.log(`|---|---:|---:|${ops.map(() => '---:|').join('')}`);
  for (const [name, p] of prepared) {
    const cells = ops.map(([, applies, fn]) => (applies(p) ? fmt(nsPerOp(fn, p)) : '—'));
    console.log(`| ${name} | ${p.jsonBuf.length.toLocaleString('en-US')} | ${p.v8.length.toLocaleString('en-US')} | ${cells.join(' | ')} |`);
  }
}

const prepared = VALUES.map(([name, v]) => [name, prepare(v)]);
console.log(`node ${process.version}, ${require('os').availableParallelism()} cpus, ${SAMPLES} samples x ~${MS} ms`);
console.log(`empty: ${fmt(nsPerOp((p) => p, prepared[0][1]))} ns/op (loop + call overhead, included below)`);
table('Encode: value -> bytes', ENCODE, prepared);
table('Decode: bytes -> value', DECODE, prepared);
