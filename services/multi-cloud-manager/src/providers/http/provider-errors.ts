import {
  Conflict,
  DependencyUnavailable,
  InvalidRequest,
  NotFound,
  RateLimited,
  Unprocessable,
  type UdcError,
} from '@droplet-mesh/udc-kit';
import type { ProviderName } from '../cloud-provider.js';

/** What a provider said about a failed call, from its own error body. */
export interface ProviderErrorBody {
  code?: string;
  message?: string;
  request_id?: string;
}

export interface ProviderErrorDetails {
  provider: ProviderName;
  provider_status: number;
  provider_code?: string;
  provider_message?: string;
  request_id?: string;
  operation: string;
}

/**
 * A provider's HTTP error as a UDC error. The provider's message and request id go in
 * `details` so an operator can quote them to the provider's support.
 */
export function mapProviderError(
  provider: ProviderName,
  status: number,
  body: ProviderErrorBody,
  operation: string,
  retryAfterMs?: number,
): UdcError {
  const details: ProviderErrorDetails = {
    provider,
    provider_status: status,
    operation,
    ...(body.code ? { provider_code: body.code } : {}),
    ...(body.message ? { provider_message: body.message } : {}),
    ...(body.request_id ? { request_id: body.request_id } : {}),
  };
  const said = body.message ? `: ${body.message}` : '';
  if (status === 401)
    return new DependencyUnavailable(`${provider} rejected the configured API token`, { ...details, token_valid: false }, 502);
  if (status === 403)
    return new DependencyUnavailable(`${provider} refused the configured API token for this operation${said}`, details, 502);
  if (status === 404) return new NotFound(`${provider} has no such resource${said}`, details);
  if (status === 409 || status === 423) return new Conflict(`${provider} cannot do this now${said}`, details);
  if (status === 422) return new Unprocessable(`${provider} refused the request${said}`, details);
  if (status === 429)
    return new RateLimited(
      `${provider} is rate limiting this account${said}`,
      Math.max(1, Math.ceil((retryAfterMs ?? 1000) / 1000)),
      details,
    );
  if (status >= 500) return new DependencyUnavailable(`${provider} failed (${status})${said}`, details, 502);
  return new InvalidRequest(`${provider} refused the request${said}`, details);
}

export function unreachable(provider: ProviderName, operation: string, reason: string, timedOut: boolean): UdcError {
  return timedOut
    ? new DependencyUnavailable(`${provider} did not answer in time`, { provider, operation, reason }, 504)
    : new DependencyUnavailable(`${provider} is unreachable`, { provider, operation, reason }, 503);
}
