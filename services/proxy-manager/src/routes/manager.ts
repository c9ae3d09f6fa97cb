import { DependencyUnavailable, UdcError, reply, type Api, type DropletContext, type HandlerInput } from '@droplet-mesh/udc-kit';
import { routesFromRegistry } from '../domain/registry-sync.js';
import type { ProxyService } from '../proxy-service.js';

export function registerManagerRoutes(api: Api, deps: { readonly service: ProxyService; ctx: DropletContext }): void {
  const { ctx } = deps;

  api.get(
    '/proxy-manager/health',
    { summary: 'healthy | degraded | unhealthy from nginx, config dir, last reload and certificate expiry' },
    async () => {
      const h = await deps.service.health();
      return reply(h.status === 'unhealthy' ? 503 : 200, h);
    },
  );

  const sync = async ({ log, correlationId }: Pick<HandlerInput<unknown, unknown, unknown>, 'log' | 'correlationId'>) => {
    const registry = ctx.registry;
    if (!registry) throw new DependencyUnavailable('this droplet has no registry link (set REGISTRY_KEY)');
    let records: Awaited<ReturnType<NonNullable<typeof ctx.registry>['list']>>;
    try {
      records = await registry.list();
    } catch (err) {
      throw new DependencyUnavailable('the registry did not answer', { reason: (err as Error).message });
    }
    const plan = routesFromRegistry(records);
    // All at once: the reconciler folds them into one nginx -t and one reload.
    const results = await Promise.all(
      plan.routes.map(async (r) => {
        try {
          const { created } = await deps.service.upsert(r.name, r.spec, { log, correlationId });
          return { name: r.name, record_id: r.record_id, result: created ? 'created' : 'updated' };
        } catch (err) {
          if (err instanceof UdcError)
            return {
              name: r.name,
              record_id: r.record_id,
              result: 'failed',
              error: { code: err.code, message: err.message, details: err.details },
            };
          log.error({ err, droplet_name: r.name, action: 'route.sync', result: 'failed' }, 'sync of one route failed');
          return { name: r.name, record_id: r.record_id, result: 'failed', error: { code: 'INTERNAL_ERROR', message: 'internal error' } };
        }
      }),
    );
    return { routes: results, skipped: plan.skipped };
  };
  api.post(
    '/proxy-manager/sync-from-registry',
    { scope: 'write', summary: 'Create routes for registered droplets that advertise a domain' },
    sync,
  );
  // The Proxy Manager seed answered GET too; it does the same (write scope: it changes routes).
  api.get(
    '/proxy-manager/sync-from-registry',
    { scope: 'write', summary: 'Alias of POST /proxy-manager/sync-from-registry (the seed called it with GET)', tags: ['legacy'] },
    sync,
  );
}
