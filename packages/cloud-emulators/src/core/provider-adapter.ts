import type { Router } from 'express';
import type { EmulatorError } from './errors.js';
import type { RateLimitPolicy } from './rate-limit.js';
import type { PagingFaultSpec, ProviderName } from './types.js';

/** What the generic server needs from a provider: its routes, error shape, rate limit and spec. */
export interface ProviderAdapter {
  provider: ProviderName;
  /** File name in the OpenAPI directory. */
  specFile: string;
  /** Every route lives under this prefix (`/v2`, `/v1`). */
  prefix: string;
  /** True when the OpenAPI file's paths are relative to the prefix (its server URL ends with it). */
  specPathsRelativeToPrefix: boolean;
  rateLimit: RateLimitPolicy;
  router: Router;
  /** The provider's error body (and headers) for an error. */
  renderError(err: EmulatorError, requestId: string): { body: unknown; headers?: Record<string, string> };
  /** The provider's own error for a bare status: 401, 404, 429, 500, 503, ... */
  errorFor(status: number): EmulatorError;
  /** Extra headers for an injected 429 (retry-after, exhausted rate-limit headers). */
  injected429Headers(now: number): Record<string, string>;
  /**
   * Rewrites a list response's paging (body and headers) as `fault` says. `query` is the
   * request's query, `url` the absolute list URL without query. Called only for list responses.
   */
  misPage(
    body: Record<string, unknown>,
    fault: PagingFaultSpec,
    query: Record<string, unknown>,
    url: string,
    setHeader: (k: string, v: string) => void,
  ): void;
  /** Apply every timed transition that has finished by `now`. Called before each request. */
  settle(now: number): void;
}

/** Handed to a provider when it builds its adapter. */
export interface AdapterContext {
  now: () => number;
  /** `http://127.0.0.1:<port>`, known once the server listens. */
  origin: () => string;
  actionDurationMs: number;
}
