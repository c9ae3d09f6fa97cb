// The one error vocabulary of the mesh (UDC v1.0). Routes and domain code throw these;
// the error middleware turns them into the envelope.
export const ERROR_CODES = [
  'INVALID_REQUEST',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'INTERNAL_ERROR',
  'DEPENDENCY_UNAVAILABLE',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorEnvelope {
  status: 'error';
  error: { code: ErrorCode; message: string; details?: unknown };
  timestamp: string;
}

export class UdcError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    /** Extra response headers, e.g. Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }

  toEnvelope(): ErrorEnvelope {
    return errorEnvelope(this.code, this.message, this.details);
  }
}

export class InvalidRequest extends UdcError {
  constructor(message: string, details?: unknown) {
    super(400, 'INVALID_REQUEST', message, details);
  }
}
/** 422: the request was well-formed but could not be applied (e.g. nginx -t refused it). */
export class Unprocessable extends UdcError {
  constructor(message: string, details?: unknown, code: ErrorCode = 'INVALID_REQUEST') {
    super(422, code, message, details);
  }
}
export class PayloadTooLarge extends UdcError {
  constructor(message = 'request body is too large', details?: unknown) {
    super(413, 'INVALID_REQUEST', message, details);
  }
}
export class Unauthorized extends UdcError {
  constructor(message = 'missing or invalid credentials', details?: unknown) {
    super(401, 'UNAUTHORIZED', message, details, { 'WWW-Authenticate': 'Bearer' });
  }
}
export class Forbidden extends UdcError {
  constructor(message = 'not allowed', details?: unknown) {
    super(403, 'FORBIDDEN', message, details);
  }
}
export class NotFound extends UdcError {
  constructor(message = 'not found', details?: unknown) {
    super(404, 'NOT_FOUND', message, details);
  }
}
export class Conflict extends UdcError {
  constructor(message: string, details?: unknown) {
    super(409, 'CONFLICT', message, details);
  }
}
export class RateLimited extends UdcError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    details?: unknown,
  ) {
    super(
      429,
      'RATE_LIMITED',
      message,
      { retry_after_seconds: retryAfterSeconds, ...(details as object) },
      {
        'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))),
      },
    );
  }
}
export class DependencyUnavailable extends UdcError {
  constructor(message: string, details?: unknown, httpStatus = 503) {
    super(httpStatus, 'DEPENDENCY_UNAVAILABLE', message, details);
  }
}
export class InternalError extends UdcError {
  constructor(message = 'internal error', details?: unknown) {
    super(500, 'INTERNAL_ERROR', message, details);
  }
}

export function errorEnvelope(code: ErrorCode, message: string, details?: unknown): ErrorEnvelope {
  return { status: 'error', error: { code, message, ...(details === undefined ? {} : { details }) }, timestamp: new Date().toISOString() };
}

/** zod issues as the `details` of a 400: one entry per failing field. */
export function fieldErrors(issues: ReadonlyArray<{ path: PropertyKey[]; message: string; code?: string }>) {
  return {
    fields: issues.map((i) => ({
      path: i.path.map(String).join('.') || '(root)',
      message: i.message,
      ...(i.code ? { code: i.code } : {}),
    })),
  };
}
