// ESM entry of shmap/express-session: the same class as the CommonJS entry (named export only, as in CommonJS).
import mod from './express-session.js';

export const { ShmapSessionStore } = mod;
