import { z } from 'zod';
import { baseConfigShape, createDroplet } from '@droplet-mesh/udc-kit';
import { quiet } from './quiet.js';

export interface RecordedCommand {
  target_id: string;
  requested_by: string;
  incident_id: string;
  payload: Record<string, unknown>;
  at: number;
}
/**
 * A stand-in droplet `name` (built with udc-kit, on the real NATS) that records every
 * `action` command it receives and carries it out through `act` (given how many
 * commands this target has had so far, this one included).
 */
export async function startCommandRecorder(opts: {
  natsUrl: string;
  name: string;
  action: string;
  act: (payload: Record<string, unknown>, seenForTarget: number) => Promise<void>;
  /** More settings, e.g. how it verifies the senders' tokens (JWKS_URL, or REGISTRY_URL for the registry's keys). */
  env?: Record<string, string>;
}) {
  const requests: RecordedCommand[] = [];
  const droplet = createDroplet({
    name: opts.name,
    version: '0.0.0-test',
    capabilities: [opts.action],
    configSchema: z.object({ ...baseConfigShape, PORT: baseConfigShape.PORT.default(0) }),
    env: { PORT: '0', NATS_URL: opts.natsUrl, LOG_LEVEL: 'warn', ...opts.env },
    logDestination: quiet(),
    messageHandlers: {
      [opts.action]: {
        types: ['command'],
        handle: async (payload) => {
          const req = {
            target_id: String(payload.target_id),
            requested_by: String(payload.requested_by),
            incident_id: String(payload.incident_id),
            payload,
            at: Date.now(),
          };
          requests.push(req);
          await opts.act(payload, requests.filter((r) => r.target_id === req.target_id).length);
          return { done: opts.action, target_id: req.target_id };
        },
      },
    },
  });
  await droplet.start();
  return { requests, for: (id: string) => requests.filter((r) => r.target_id === id), stop: () => droplet.stop() };
}

/**
 * A stand-in deployer: counts the `restart` commands it receives and restarts the target
 * through `restart(id)`, except for the first `ignoreFirst[id]` requests (a restart that
 * did not help).
 */
export function startFakeDeployer(opts: {
  natsUrl: string;
  restart: (targetId: string) => Promise<void>;
  ignoreFirst?: Record<string, number>;
  env?: Record<string, string>;
}) {
  return startCommandRecorder({
    natsUrl: opts.natsUrl,
    env: opts.env,
    name: 'deployer',
    action: 'restart',
    act: async (payload, seen) => {
      const id = String(payload.target_id);
      if (seen > (opts.ignoreFirst?.[id] ?? 0)) await opts.restart(id);
    },
  });
}
