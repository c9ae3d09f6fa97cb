import type { EmulatorHandle, EmulatorOptions } from './core/types.js';
import { startDigitalOceanEmulator, type DigitalOceanEmulatorOptions } from './digitalocean/index.js';
import { startHetznerEmulator, type HetznerEmulatorOptions } from './hetzner/index.js';
import { startVultrEmulator, type VultrEmulatorOptions } from './vultr/index.js';

export interface AllEmulatorsOptions extends Omit<EmulatorOptions, 'port'> {
  /** Per-provider overrides (port, token, rate limits, ...) on top of the shared options. */
  digitalocean?: DigitalOceanEmulatorOptions;
  hetzner?: HetznerEmulatorOptions;
  vultr?: VultrEmulatorOptions;
}

export interface AllEmulators {
  digitalocean: EmulatorHandle;
  hetzner: EmulatorHandle;
  vultr: EmulatorHandle;
  close(): Promise<void>;
}

/** The three emulators, each on its own free port; `close()` stops all of them. */
export async function startAllEmulators(options: AllEmulatorsOptions = {}): Promise<AllEmulators> {
  const { digitalocean, hetzner, vultr, ...shared } = options;
  const started = await Promise.allSettled([
    startDigitalOceanEmulator({ ...shared, ...digitalocean }),
    startHetznerEmulator({ ...shared, ...hetzner }),
    startVultrEmulator({ ...shared, ...vultr }),
  ]);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.close() : undefined)));
    throw (failed as PromiseRejectedResult).reason;
  }
  const [d, h, v] = started.map((s) => (s as PromiseFulfilledResult<EmulatorHandle>).value) as [
    EmulatorHandle,
    EmulatorHandle,
    EmulatorHandle,
  ];
  return { digitalocean: d, hetzner: h, vultr: v, close: async () => void (await Promise.all([d.close(), h.close(), v.close()])) };
}
