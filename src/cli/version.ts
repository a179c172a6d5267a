/** package.json's version, set by build/build.mjs (esbuild `define`); unbundled (tests) there is none. */
declare const PORTMAP_VERSION: string | undefined;
export const VERSION = typeof PORTMAP_VERSION === 'string' ? PORTMAP_VERSION : '0.0.0-unbundled';

/** The release file `npm run release` makes for this machine's architecture. */
export const releaseFile = (): string => `portmap-${VERSION}-linux-${process.arch === 'x64' ? 'amd64' : process.arch}`;
