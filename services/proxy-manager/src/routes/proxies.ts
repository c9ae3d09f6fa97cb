import { z } from 'zod';
import { paginate, paginationQuery, reply, type Api } from '@droplet-mesh/udc-kit';
import { routeBodySchema, routeNameSchema } from '../domain/route-spec.js';
import type { ProxyService } from '../proxy-service.js';

const nameParams = z.object({ name: routeNameSchema });

// `deps.service` is read per request: the droplet (and its logger) exists before the service.
export function registerProxyRoutes(api: Api, deps: { readonly service: ProxyService }): void {
  api.put(
    '/proxies/:name',
    { scope: 'write', summary: 'Create or update a route (201 on create, 200 on update)', params: nameParams, body: routeBodySchema },
    async ({ params, body, log, correlationId }) => {
      const { created, route } = await deps.service.upsert(params.name, body, { log, correlationId });
      return reply(created ? 201 : 200, route);
    },
  );

  api.delete(
    '/proxies/:name',
    { scope: 'write', summary: 'Delete a route', params: nameParams },
    async ({ params, log, correlationId }) => {
      await deps.service.remove(params.name, { log, correlationId });
      return { deleted: true, name: params.name };
    },
  );

  api.get('/proxies', { summary: 'Routes, paginated', query: paginationQuery }, async ({ query }) =>
    paginate(await deps.service.list(), query),
  );

  api.get(
    '/proxies/:name',
    { summary: 'One route with its last health result, certificate and applied revision', params: nameParams },
    ({ params }) => deps.service.get(params.name),
  );

  api.post(
    '/proxies/:name/ssl',
    {
      scope: 'write',
      summary: 'Obtain or renew a certificate over ACME HTTP-01 and switch the route to HTTPS',
      params: nameParams,
      body: z
        .strictObject({ email: z.email().max(254).optional(), force_renew: z.boolean().default(false) })
        .default({ force_renew: false }),
    },
    ({ params, body, log, correlationId }) => deps.service.enableSsl(params.name, body, { log, correlationId }),
  );
}
