import { z } from 'zod';
import { baseConfigShape, createDroplet } from '@droplet-mesh/udc-kit';
import { quiet } from './quiet.js';

export interface RestartRequest {
  target_id: string;
  requested_by: string;
  incident_id: string;
  at: number;
}

/**
 * A stand-in deployer droplet (built with udc-kit, on the real NATS): it counts the
 * `restart` commands it receives and restarts the target through `restart(id)`,
 * except for the first `ignoreFirst[id]` requests (a restart that did not help).
 */
export async function startFakeDeployer(opts: { natsUrl: string; restart: (targetId: string) => Promise<void>; ignoreFirst?: Record<string, number> }) {
  const requests: RestartRequest[] = [];
  const droplet = createDroplet({
    name: 'deployer',
    version: '0.0.0-test',
    capabilities: ['restart'],
    configSchema: z.object({ ...baseConfigShape, PORT: baseConfigShape.PORT.default(0) }),
    env: { PORT: '0', NATS_URL: opts.natsUrl, LOG_LEVEL: 'warn' },
    logDestination: quiet(),
    messageHandlers: {
      restart: {
        types: ['command'],
        handle: async (payload) => {
          const req = { target_id: String(payload.target_id), requested_by: String(payload.requested_by), incident_id: String(payload.incident_id), at: Date.now() };
          requests.push(req);
          const seen = requests.filter((r) => r.target_id === req.target_id).length;
          if (seen > (opts.ignoreFirst?.[req.target_id] ?? 0)) await opts.restart(req.target_id);
          return { restarted: req.target_id };
        },
      },
    },
  });
  await droplet.start();
  return { requests, for: (id: string) => requests.filter((r) => r.target_id === id), stop: () => droplet.stop() };
}
