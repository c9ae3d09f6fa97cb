import { EmulatorError } from '../core/errors.js';
import { startEmulatorServer } from '../core/emulator-server.js';
import type { AdapterContext, ProviderAdapter } from '../core/provider-adapter.js';
import { DigitalOceanRateLimit } from '../core/rate-limit.js';
import type { EmulatorHandle, EmulatorOptions } from '../core/types.js';
import { misPage } from './pagination.js';
import { digitalOceanRoutes } from './routes.js';
import { DigitalOceanState } from './state.js';

export interface DigitalOceanEmulatorOptions extends EmulatorOptions {
  /** Defaults: DigitalOcean's 5000 per hour and 250 per minute. */
  rateLimit?: { perHour?: number; perMinute?: number };
}

const messages: Record<number, [string, string]> = {
  400: ['bad_request', 'The request could not be understood.'],
  401: ['unauthorized', 'Unable to authenticate you.'],
  403: ['forbidden', 'You do not have access for the attempted action.'],
  404: ['not_found', 'The resource you were accessing could not be found.'],
  422: ['unprocessable_entity', 'The request could not be processed.'],
  429: ['too_many_requests', 'API rate limit exceeded.'],
  500: ['server_error', 'Server was unable to give you a response.'],
  502: ['bad_gateway', 'Bad gateway.'],
  503: ['service_unavailable', 'The service is temporarily unavailable.'],
  504: ['gateway_timeout', 'Gateway timeout.'],
};

export function createDigitalOceanAdapter(options: DigitalOceanEmulatorOptions, ctx: AdapterContext): ProviderAdapter {
  const state = new DigitalOceanState(ctx.now, ctx.actionDurationMs);
  for (let i = 0; i < (options.seedInstances ?? 0); i++) state.seedDroplet(i, options.seedTags ?? ['seed']);
  return {
    provider: 'digitalocean',
    specFile: 'digitalocean-v2.json',
    prefix: '/v2',
    specPathsRelativeToPrefix: false,
    rateLimit: new DigitalOceanRateLimit(options.rateLimit?.perHour, options.rateLimit?.perMinute),
    router: digitalOceanRoutes(state, ctx),
    // DigitalOcean errors: {id, message, request_id}.
    renderError: (err, requestId) => ({ body: { id: err.code, message: err.message, request_id: requestId } }),
    errorFor: (status) => {
      const [code, message] = messages[status] ?? ['server_error', 'Server was unable to give you a response.'];
      return new EmulatorError(status, code, message);
    },
    injected429Headers: () => ({ 'retry-after': '1', 'ratelimit-remaining': '0' }),
    misPage,
    settle: (now) => state.settle(now),
  };
}

/** A stateful DigitalOcean API v2 on 127.0.0.1; paths start with /v2 after `url`. */
export function startDigitalOceanEmulator(options: DigitalOceanEmulatorOptions = {}): Promise<EmulatorHandle> {
  return startEmulatorServer((ctx) => createDigitalOceanAdapter(options, ctx), options);
}
