import { EmulatorError } from '../core/errors.js';
import { startEmulatorServer } from '../core/emulator-server.js';
import type { AdapterContext, ProviderAdapter } from '../core/provider-adapter.js';
import { HetznerRateLimit } from '../core/rate-limit.js';
import type { EmulatorHandle, EmulatorOptions } from '../core/types.js';
import { misPage } from './pagination.js';
import { hetznerRoutes } from './routes.js';
import { HetznerState } from './state.js';

export interface HetznerEmulatorOptions extends EmulatorOptions {
  /** Default: Hetzner's 3600 per hour, refilling one request per second. */
  rateLimit?: { perHour?: number };
}

const messages: Record<number, [string, string]> = {
  400: ['json_error', 'Invalid JSON input in your request.'],
  401: ['unauthorized', 'unable to authenticate'],
  403: ['forbidden', 'insufficient permissions for this request'],
  404: ['not_found', 'not found'],
  409: ['conflict', 'the resource has changed during the request, please retry'],
  422: ['invalid_input', 'invalid input'],
  423: ['locked', 'the item you are trying to access is locked'],
  429: ['rate_limit_exceeded', 'limit of 3600 requests per hour reached'],
  500: ['server_error', 'error within the API backend'],
  502: ['bad_gateway', 'the request could not be answered by the API backend, please retry'],
  503: ['unavailable', 'service currently unavailable'],
  504: ['timeout', 'the request could not be answered in time, please retry'],
};

export function createHetznerAdapter(options: HetznerEmulatorOptions, ctx: AdapterContext): ProviderAdapter {
  const state = new HetznerState(ctx.now, ctx.actionDurationMs);
  for (let i = 0; i < (options.seedInstances ?? 0); i++) state.seedServer(i, options.seedTags ?? ['seed']);
  const perHour = options.rateLimit?.perHour ?? 3600;
  return {
    provider: 'hetzner',
    specFile: 'hetzner-cloud-v1.json',
    prefix: '/v1',
    specPathsRelativeToPrefix: true,
    rateLimit: new HetznerRateLimit(perHour),
    router: hetznerRoutes(state, ctx),
    // Hetzner errors: {error: {code, message, details}}.
    renderError: (err) => ({ body: { error: { code: err.code, message: err.message, details: err.details } } }),
    errorFor: (status) => {
      const [code, message] = messages[status] ?? ['server_error', 'error within the API backend'];
      return new EmulatorError(status, code, status === 429 ? `limit of ${perHour} requests per hour reached` : message);
    },
    injected429Headers: (now) => ({ 'RateLimit-Remaining': '0', 'RateLimit-Reset': String(Math.ceil(now / 1000) + 1) }),
    misPage,
    settle: (now) => state.settle(now),
  };
}

/** A stateful Hetzner Cloud API v1 on 127.0.0.1; paths start with /v1 after `url` (`apiUrl` includes it). */
export function startHetznerEmulator(options: HetznerEmulatorOptions = {}): Promise<EmulatorHandle> {
  return startEmulatorServer((ctx) => createHetznerAdapter(options, ctx), options);
}
