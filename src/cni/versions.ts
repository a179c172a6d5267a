import { CniError, ErrorCode } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Parses "major[.minor[.micro]]" like the reference (strconv.Atoi on each part); code 6 on failure. */
export function parseVersion(v: string): [number, number, number] {
  const parts = v.split('.');
  if (parts.length > 3) {
    throw new CniError(ErrorCode.DecodingFailure, `invalid version "${v}": only major, minor and micro versions are supported`);
  }
  const names = ['major', 'minor', 'micro'];
  const nums = parts.map((p, i) => {
    if (!/^[+-]?\d+$/.test(p)) {
      throw new CniError(
        ErrorCode.DecodingFailure,
        `failed to convert ${names[i]} version part "${p}": strconv.Atoi: parsing "${p}": invalid syntax`,
      );
    }
    return Number.parseInt(p, 10);
  });
  return [nums[0] ?? 0, nums[1] ?? 0, nums[2] ?? 0];
}

export function versionAtLeast(v: string, min: string): boolean {
  const a = parseVersion(v);
  const b = parseVersion(min);
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return true;
}

/** The exact-match check skel runs before calling a verb: code 1 when unsupported. */
export function requireSupportedVersion(v: string): CniVersion {
  if (isSupportedVersion(v)) return v;
  const list = SUPPORTED_VERSIONS.map((s) => `"${s}"`).join(' ');
  throw new CniError(ErrorCode.IncompatibleVersion, 'incompatible CNI versions', `config is "${v}", plugin supports [${list}]`);
}

/** Result format family of a version: 0.1.0/0.2.0 (ip4/ip6), 0.3.x/0.4.0 (ips with "version"), 1.x. */
export type ResultFamily = 'v02' | 'v04' | 'v1';
export function resultFamily(v: CniVersion): ResultFamily {
  if (v === '0.1.0' || v === '0.2.0') return 'v02';
  if (v === '1.0.0' || v === '1.1.0') return 'v1';
  return 'v04';
}
