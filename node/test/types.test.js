'use strict';
// The TypeScript types (index.d.ts) compile against a program using the whole API
// (test/types/usage.ts), and reject its marked misuses.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { runNode } = require('./helpers');

test('index.d.ts compiles against usage.ts with tsc --noEmit', { timeout: 120_000 }, async () => {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc');
  } catch {
    assert.fail('typescript is not installed: run `npm install` in node/ (npm test does it first)');
  }
  const r = await runNode([tsc, '--noEmit', '-p', path.join(__dirname, 'types', 'tsconfig.json')]);
  assert.equal(r.code, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
