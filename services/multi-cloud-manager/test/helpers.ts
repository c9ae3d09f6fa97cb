import { Writable } from 'node:stream';
import { createLogger, type Logger } from '@droplet-mesh/udc-kit';
import type { EmulatorHandle } from '@droplet-mesh/cloud-emulators';
import type { CloudProvider, CreateInstanceInput, ProviderName } from '../src/providers/cloud-provider.js';
import { DigitalOceanProvider } from '../src/providers/digitalocean/digitalocean-provider.js';
import { doErrorBody } from '../src/providers/digitalocean/digitalocean-mapping.js';
import { HetznerProvider } from '../src/providers/hetzner/hetzner-provider.js';
import { hzErrorBody } from '../src/providers/hetzner/hetzner-mapping.js';
import { ProviderHttpClient } from '../src/providers/http/provider-http-client.js';
import { VultrProvider } from '../src/providers/vultr/vultr-provider.js';
import { vuErrorBody } from '../src/providers/vultr/vultr-mapping.js';

export const quiet = () => new Writable({ write: (_c, _e, cb) => cb() });

/** A log destination that keeps every line, to prove what never reaches the logs. */
export function captureLogs(): { stream: Writable; text: () => string } {
  const lines: string[] = [];
  return { stream: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }), text: () => lines.join('') };
}

export function testLogger(stream: Writable = quiet()): Logger {
  return createLogger('mcm-test', 'debug', { destination: stream }).logger;
}

export type CloudName = Exclude<ProviderName, 'local'>;

/** A provider adapter over real HTTP to an emulator. */
export function providerFor(
  name: CloudName,
  emu: EmulatorHandle,
  opts: { token?: string; logger?: Logger; timeoutMs?: number; maxRps?: number; maxPages?: number } = {},
): { provider: CloudProvider; http: ProviderHttpClient } {
  const parseError = { digitalocean: doErrorBody, hetzner: hzErrorBody, vultr: vuErrorBody }[name];
  const http = new ProviderHttpClient({
    provider: name,
    baseUrl: emu.apiUrl,
    token: opts.token ?? emu.token,
    timeoutMs: opts.timeoutMs ?? 5000,
    logger: opts.logger ?? testLogger(),
    parseError,
    ...(opts.maxPages ? { maxPages: opts.maxPages } : {}),
    ...(name === 'vultr' ? { maxRequestsPerSecond: opts.maxRps ?? 25 } : { paceByHeaders: true }),
  });
  const provider =
    name === 'digitalocean' ? new DigitalOceanProvider(http) : name === 'hetzner' ? new HetznerProvider(http) : new VultrProvider(http);
  return { provider, http };
}

/** Valid create input for each emulator's catalog. */
export function createInput(name: CloudName, instanceName: string): CreateInstanceInput {
  const base = { name: instanceName, tags: ['web'], labels: { team: 'ops' } };
  if (name === 'digitalocean') return { ...base, region: 'nyc3', size: 's-1vcpu-1gb', image: 'ubuntu-24-04-x64' };
  if (name === 'hetzner') return { ...base, region: 'fsn1', size: 'cx22', image: 'ubuntu-24.04' };
  return { ...base, region: 'ewr', size: 'vc2-1c-1gb', image: '2284' };
}

/** Per-page maxima, to seed enough servers for several pages. */
export const PER_PAGE: Record<CloudName, number> = { digitalocean: 200, hetzner: 50, vultr: 500 };
