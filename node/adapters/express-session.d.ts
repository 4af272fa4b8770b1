/// <reference types="node" />
// Types of `shmap/express-session`: an express-session ^1.19 Store.
import session from 'express-session';
import type { Shmap, ShmapOptions } from 'shmap';

export interface ShmapSessionStoreOptions {
  /** Options for opening the map when a name is given. Sessions want `{ evict: false }`. */
  mapOptions?: ShmapOptions;
  /** Key prefix of the sessions in the map. Default `'sess:'`. */
  prefix?: string;
  /** TTL in ms of a session whose cookie has no expiry (a browser-session cookie). Default a day. */
  ttlMs?: number;
  /** Make `touch` a no-op. Default false. */
  disableTouch?: boolean;
}

/**
 * An express-session Store over a shared-memory map: every process that opens the map sees
 * the same sessions. A session's TTL is its cookie's remaining lifetime; `touch` re-times it
 * atomically without rewriting it.
 */
export class ShmapSessionStore extends session.Store {
  constructor(map: Shmap | string, options?: ShmapSessionStoreOptions);
  readonly map: Shmap<any>;
  readonly prefix: string;
  readonly ttlMs: number;
  readonly disableTouch: boolean;
  get(sid: string, callback: (err: any, session?: session.SessionData | null) => void): void;
  set(sid: string, session: session.SessionData, callback?: (err?: any) => void): void;
  destroy(sid: string, callback?: (err?: any) => void): void;
  touch(sid: string, session: session.SessionData, callback?: (err?: any) => void): void;
  all(callback: (err: any, obj?: { [sid: string]: session.SessionData } | null) => void): void;
  length(callback: (err: any, length?: number) => void): void;
  clear(callback?: (err?: any) => void): void;
}

