// ESM entry of shmap/express-session: the same class as the CommonJS entry.
import mod from './express-session.js';

export const { ShmapSessionStore } = mod;
export default ShmapSessionStore;
