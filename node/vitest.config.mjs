// vitest runs only @keyv/test-suite (which is written for it); every other test is node:test.
// test/keyv.test.js runs this from `npm test`.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/vitest/**/*.test.mjs'],
    pool: 'forks',
    fileParallelism: false,
  },
});
