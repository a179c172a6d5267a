/** CNI error codes (SPEC "Error" table, plus skel's 999 for untyped errors). */
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  Internal: 999,
} as const;

/** An error that the protocol layer prints as a CNI error object. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details: string } {
    return { cniVersion, code: this.code, msg: this.message, details: this.details };
  }
}

export const invalidConfig = (msg: string, details = ''): CniError =>
  new CniError(ErrorCode.InvalidConfig, msg, details);

/** Any thrown value as a CniError: typed errors pass through, others become code 999. */
export function asCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof Error) return new CniError(ErrorCode.Internal, err.message, '');
  return new CniError(ErrorCode.Internal, String(err), '');
}
