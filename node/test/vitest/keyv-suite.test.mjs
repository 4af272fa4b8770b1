// @keyv/test-suite's API, value, namespace and iterator tests against KeyvShmap, under
// vitest (the suite is written for it). Run by test/keyv.test.js.
import * as test from 'vitest';
import fs from 'node:fs';
import Keyv from 'keyv';
import { keyvApiTests, keyvValueTests, keyvNamespaceTest, keyvIteratorTests } from '@keyv/test-suite';
import { Shmap } from 'shmap';
import { KeyvShmap } from 'shmap/keyv';

const name = `shmap-test-keyv-suite-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
const map = new Shmap(name, { reset: true, evict: false });
test.afterAll(() => {
  map.close();
  fs.rmSync(`/dev/shm/${name}`, { force: true });
});

const store = () => new KeyvShmap(map);

keyvApiTests(test, Keyv, store);
keyvValueTests(test, Keyv, store);
keyvNamespaceTest(test, Keyv, store);

// Stock Keyv 5.6 builds keyv.iterator only for stores whose opts name one of its own dialects;
// KeyvShmap names none. This subclass wires the store's own iterator, as README.md shows.
class IterableKeyv extends Keyv {
  constructor(...args) {
    super(...args);
    const s = this.store;
    if (this.iterator === undefined && typeof s.iterator === 'function') {
      this.iterator = this.generateIterator(s.iterator.bind(s));
    }
  }
}
keyvIteratorTests(test, IterableKeyv, store);

test.describe('stock Keyv and the iterator', () => {
  test.it('stock Keyv does not build keyv.iterator for KeyvShmap (no claimed dialect)', (t) => {
    const keyv = new Keyv({ store: store() });
    t.expect(keyv.iterator).toBeUndefined();
    t.expect(keyv.store.opts.dialect).toBe('shmap');
  });
});
