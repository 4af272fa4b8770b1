// The CommonJS view of the adapters' types (compiled, never run, by test/types.test.js).
import keyv = require('shmap/keyv');
import es = require('shmap/express-session');
import erl = require('shmap/express-rate-limit');
import rlf = require('shmap/rate-limiter-flexible');

export const stores = [
  new keyv.KeyvShmap('cjs'),
  new es.ShmapSessionStore('cjs'),
  new erl.ShmapStore('cjs'),
  new rlf.RateLimiterShmap({ storeClient: 'cjs', points: 1, duration: 1 }),
];
