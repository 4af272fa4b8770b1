#!/usr/bin/env node
'use strict';
// The `shmap` command of the npm package: inspect, list and remove maps (lib/cli.js).
const { main } = require('../lib/cli');

process.exitCode = main(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
});
