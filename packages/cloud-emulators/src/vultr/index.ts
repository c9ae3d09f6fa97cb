import { EmulatorError } from '../core/errors.js';
import { startEmulatorServer } from '../core/emulator-server.js';
import type { AdapterContext, ProviderAdapter } from '../core/provider-adapter.js';
import { VultrRateLimit } from '../core/rate-limit.js';
import type { EmulatorHandle, EmulatorOptions } from '../core/types.js';
import { misPage } from './pagination.js';
import { vultrRoutes } from './routes.js';
import { VultrState } from './state.js';

export interface VultrEmulatorOptions extends EmulatorOptions {
  /** Default: Vultr's 30 requests per second; above it, 429 (Vultr sends no rate-limit headers). */
  rateLimit?: { perSecond?: number };
}

const messages: Record<number, string> = {
  400: 'Bad Request',
  401: 'Invalid API token.',
  403: 'Unauthorized IP address.',
  404: 'Not found.',
  429: 'Rate limit reached - please try your request again later.',
  500: 'Internal server error.',
  502: 'Bad gateway.',
  503: 'Service temporarily unavailable.',
  504: 'Gateway timeout.',
};

export function createVultrAdapter(options: VultrEmulatorOptions, ctx: AdapterContext): ProviderAdapter {
  const state = new VultrState(ctx.now, ctx.actionDurationMs);
  for (let i = 0; i < (options.seedInstances ?? 0); i++) state.seedInstance(i, options.seedTags ?? ['seed']);
  return {
    provider: 'vultr',
    specFile: 'vultr-v2.json',
    prefix: '/v2',
    specPathsRelativeToPrefix: true,
    rateLimit: new VultrRateLimit(options.rateLimit?.perSecond),
    router: vultrRoutes(state, ctx),
    // Vultr errors: {error: message, status}.
    renderError: (err) => ({ body: { error: err.message, status: err.status } }),
    errorFor: (status) => new EmulatorError(status, String(status), messages[status] ?? 'Internal server error.'),
    injected429Headers: () => ({}),
    misPage,
    settle: (now) => state.settle(now),
  };
}

/** A stateful Vultr API v2 on 127.0.0.1; paths start with /v2 after `url` (`apiUrl` includes it). */
export function startVultrEmulator(options: VultrEmulatorOptions = {}): Promise<EmulatorHandle> {
  return startEmulatorServer((ctx) => createVultrAdapter(options, ctx), options);
}
