import { Writable } from 'node:stream';
import { Bus } from '@droplet-mesh/udc-kit';
import { createRegistryDroplet } from '../src/app.js';

export const ADMIN_KEY = 'test-admin-key-0123456789';
export const quiet = () => new Writable({ write: (_c, _e, cb) => cb() });

export async function startRegistry(natsUrl: string, extraEnv: Record<string, string> = {}) {
  const env = {
    PORT: '0',
    NATS_URL: natsUrl,
    REGISTRY_ADMIN_KEY: ADMIN_KEY,
    HEARTBEAT_INTERVAL_S: '30',
    LOG_LEVEL: 'info',
    ...extraEnv,
  };
  const made = await createRegistryDroplet({ env, logDestination: quiet() });
  const { url } = await made.droplet.start();
  return { ...made, url };
}

export async function subscribeEvents(natsUrl: string, subject: string) {
  const bus = await Bus.connect({ url: natsUrl, name: 'event-listener' });
  const seen: Array<{ subject: string; data: any; at: number }> = [];
  const sub = bus.nc.subscribe(subject, { callback: (_e, m) => void seen.push({ subject: m.subject, data: m.json(), at: Date.now() }) });
  await bus.nc.flush();
  return {
    seen,
    close: async () => {
      sub.unsubscribe();
      await bus.close();
    },
  };
}
