import { LATEST_VERSION, SUPPORTED_VERSIONS } from './versions.js';

/** VERSION: echoes the input's cniVersion (as the SPEC says) and lists what we support. */
export function versionInfo(stdin: string): { cniVersion: string; supportedVersions: string[] } {
  let cniVersion: string = LATEST_VERSION;
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion;
    if (typeof v === 'string' && v !== '') cniVersion = v;
  } catch {
    // VERSION does not need a configuration; without a readable one we answer with our latest.
  }
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}
