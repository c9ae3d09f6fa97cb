import { parseOrThrow, type MessageHandler } from '@droplet-mesh/udc-kit';
import { z } from 'zod';
import { routeBodySchema, routeNameSchema } from './domain/route-spec.js';
import type { ProxyService } from './proxy-service.js';

/** Whether the stored route serves HTTPS (false when there is no such route). */
async function sslEnabled(service: ProxyService, name: string): Promise<boolean> {
  try {
    return (await service.get(name)).enable_ssl;
  } catch {
    return false;
  }
}

/** UDC commands the deployer uses: `route.upsert` (PUT body + name) and `route.delete` ({name}). */
export function routeMessageHandlers(deps: { readonly service: ProxyService }): Record<string, MessageHandler> {
  return {
    'route.upsert': {
      types: ['command'],
      handle: async (payload, envelope, { log }) => {
        const { action: _a, name, ...body } = payload;
        const routeName = parseOrThrow(routeNameSchema, name, 'payload.name');
        // A sender that does not mention enable_ssl (the deployer moving a route to new
        // upstreams) keeps the route's HTTPS: an operator's POST /proxies/{name}/ssl must
        // survive the next deploy instead of silently falling back to the schema default.
        const keepSsl = !('enable_ssl' in body) && !('https' in body) && (await sslEnabled(deps.service, routeName));
        const spec = parseOrThrow(routeBodySchema, keepSsl ? { ...body, enable_ssl: true } : body, 'payload');
        const { created, route } = await deps.service.upsert(routeName, spec, {
          log: log.child({ correlation_id: envelope.trace_id }),
          correlationId: envelope.trace_id,
        });
        return { created, route };
      },
    },
    'route.delete': {
      types: ['command'],
      handle: async (payload, envelope, { log }) => {
        const { name } = parseOrThrow(z.object({ action: z.string(), name: routeNameSchema }).strict(), payload, 'payload');
        await deps.service.remove(name, { log: log.child({ correlation_id: envelope.trace_id }), correlationId: envelope.trace_id });
        return { deleted: true, name };
      },
    },
  };
}
