// Every failure meshctl reports is one of these: a UDC envelope from a droplet, a droplet
// that could not be reached, or a local problem (usage, config file). bin.ts prints them
// as `error: <CODE>: <message>` and exits 1; nothing else reaches the user.

export const UDC_CODES = [
  'INVALID_REQUEST',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'INTERNAL_ERROR',
  'DEPENDENCY_UNAVAILABLE',
] as const;
export type UdcCode = (typeof UDC_CODES)[number];

export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details?: unknown,
    /** A line telling the operator what to do next. */
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A droplet answered with the UDC error envelope (or, failing that, a bare HTTP error). */
export class ApiError extends CliError {
  constructor(
    readonly httpStatus: number,
    code: string,
    message: string,
    readonly url: string,
    details?: unknown,
    hint?: string,
  ) {
    super(code, message, details, hint);
  }
}

/** The request never got an answer: refused, reset, DNS, timeout. */
export class UnreachableError extends CliError {
  constructor(
    readonly url: string,
    reason: string,
  ) {
    super('DEPENDENCY_UNAVAILABLE', `could not reach ${url}: ${reason}`);
  }
}

export const LOGIN_HINT = 'run `meshctl login --registry URL --admin-key KEY` (or set REGISTRY_URL and REGISTRY_ADMIN_KEY)';

/** The code a bare HTTP status maps to when a response carries no envelope. */
export function codeForStatus(status: number): UdcCode {
  if (status === 400 || status === 413 || status === 422) return 'INVALID_REQUEST';
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status === 429) return 'RATE_LIMITED';
  if (status === 502 || status === 503 || status === 504) return 'DEPENDENCY_UNAVAILABLE';
  return 'INTERNAL_ERROR';
}
