// UDC message handlers: how other droplets (the health-monitor) drive instances over NATS.
import { z } from 'zod';
import { InvalidRequest, type MessageHandler } from '@droplet-mesh/udc-kit';
import type { Fleet } from './domain/fleet.js';
import { providerName } from './routes/schemas.js';

const rebootPayload = z.object({ provider: providerName, instance_id: z.string().min(1).max(128), wait: z.boolean().default(false) });
const listPayload = z.object({ provider: providerName.optional() });

function parse<S extends z.ZodType>(schema: S, payload: unknown): z.infer<S> {
  const r = schema.safeParse(payload);
  if (!r.success) throw new InvalidRequest('invalid payload', { fields: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
  return r.data;
}

export function messageHandlers(fleet: () => Fleet): Record<string, MessageHandler> {
  return {
    'instance.reboot': {
      types: ['command'],
      handle: async (payload) => {
        const p = parse(rebootPayload, payload);
        // Reboot is allowed on unmanaged instances: it is a recovery action, not a power-off.
        return fleet().act(p.provider, p.instance_id, { type: 'reboot', wait: p.wait, force: false });
      },
    },
    'instance.list': {
      types: ['query', 'command'],
      handle: async (payload) => {
        const p = parse(listPayload, payload);
        const r = await fleet().listAll(p.provider);
        return { instances: r.instances, total: r.instances.length, providers: r.providers };
      },
    },
  };
}
