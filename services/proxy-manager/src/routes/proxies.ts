import { z } from 'zod';
import { paginate, paginationQuery, reply, type Api } from '@droplet-mesh/udc-kit';
import {
  DEFAULT_MAX_BODY_SIZE,
  healthPathSchema,
  hostnameSchema,
  LB_METHODS,
  routeBodySchema,
  routeNameSchema,
  upstreamHostSchema,
  type RouteSpec,
} from '../domain/route-spec.js';
import type { ProxyService } from '../proxy-service.js';

const nameParams = z.object({ name: routeNameSchema });

/** The Proxy Manager seed's `POST /proxies` body: the route's name in the body, one upstream. */
export const seedProxyBody = z
  .strictObject({
    droplet_name: routeNameSchema,
    domain: hostnameSchema,
    upstream_host: upstreamHostSchema,
    upstream_port: z.number().int().min(1).max(65535),
    enable_ssl: z.boolean().default(false),
    require_healthy: z.boolean().default(true),
    health_path: healthPathSchema.default('/health'),
    websocket: z.boolean().default(false),
    lb: z.enum(LB_METHODS).default('round_robin'),
  })
  .transform(({ droplet_name, upstream_host, upstream_port, ...rest }): { name: string; spec: RouteSpec } => ({
    name: droplet_name,
    spec: {
      ...rest,
      upstreams: [{ host: upstream_host, port: upstream_port, weight: 1 }],
      paths: [],
      max_body_size: DEFAULT_MAX_BODY_SIZE,
      access_log: true,
    },
  }));

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

  api.post(
    '/proxies',
    {
      scope: 'write',
      summary:
        "Alias of PUT /proxies/{droplet_name} (the seed's body: droplet_name, domain, upstream_host, upstream_port, enable_ssl, require_healthy, health_path): 201 with the route, 200 when it replaced one",
      body: seedProxyBody,
      status: 201,
      tags: ['legacy'],
    },
    async ({ body, log, correlationId }) => {
      const { created, route } = await deps.service.upsert(body.name, body.spec, { log, correlationId });
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
