// The original droplet's per-provider routes, kept as thin aliases of the unified ones.
import type { Api } from '@droplet-mesh/udc-kit';
import type { CatalogKind } from '../domain/catalog-cache.js';
import type { Fleet } from '../domain/fleet.js';
import type { ProviderName } from '../providers/cloud-provider.js';
import { createInstance, deleteInstance, instanceAction, listInstances } from './instances.js';
import { actionBody, actionQuery, createFields, forceQuery, idParams, listQuery } from './schemas.js';

function registerCommonAliases(api: Api, fleet: Fleet, prefix: string, provider: ProviderName): void {
  const tags = ['legacy'];
  api.get(
    `/${prefix}/list`,
    { summary: `Alias of GET /instances?provider=${provider}`, query: listQuery.omit({ provider: true }), tags },
    ({ query, principal }) => listInstances(fleet, { ...query, provider }, principal),
  );
  api.post(
    `/${prefix}/register`,
    { scope: 'write', summary: `Alias of POST /instances with provider=${provider}`, body: createFields, tags },
    ({ body, req, principal }) => createInstance(fleet, provider, body, req.header('idempotency-key'), principal),
  );
  api.post(
    `/${prefix}/action/:id`,
    {
      scope: 'write',
      summary: `Alias of POST /instances/${provider}/{id}/actions`,
      params: idParams,
      body: actionBody,
      query: actionQuery,
      tags,
    },
    ({ params, body, query, principal }) => instanceAction(fleet, provider, params.id, body, query, principal),
  );
  api.delete(
    `/${prefix}/delete/:id`,
    { scope: 'write', summary: `Alias of DELETE /instances/${provider}/{id}`, params: idParams, query: forceQuery, tags },
    ({ params, query, principal }) => deleteInstance(fleet, provider, params.id, query.force, principal),
  );
}

function registerCatalogAlias(api: Api, fleet: Fleet, path: string, provider: ProviderName, kind: CatalogKind): void {
  api.get(path, { summary: `Alias of GET /catalog/${kind}?provider=${provider}`, tags: ['legacy'] }, () => fleet.catalog(kind, provider));
}

export function registerLegacyAliasRoutes(api: Api, { fleet }: { fleet: Fleet }): void {
  registerCommonAliases(api, fleet, 'do', 'digitalocean');

  registerCommonAliases(api, fleet, 'hetzner', 'hetzner');
  registerCatalogAlias(api, fleet, '/hetzner/sizes', 'hetzner', 'sizes');
  registerCatalogAlias(api, fleet, '/hetzner/images', 'hetzner', 'images');
  registerCatalogAlias(api, fleet, '/hetzner/locations', 'hetzner', 'regions');

  registerCommonAliases(api, fleet, 'vultr', 'vultr');
  registerCatalogAlias(api, fleet, '/vultr/plans', 'vultr', 'sizes');
  registerCatalogAlias(api, fleet, '/vultr/os', 'vultr', 'images');
  registerCatalogAlias(api, fleet, '/vultr/regions', 'vultr', 'regions');
  api.get('/vultr/instance/:id', { summary: 'Alias of GET /instances/vultr/{id}', params: idParams, tags: ['legacy'] }, ({ params }) =>
    fleet.get('vultr', params.id),
  );
}
