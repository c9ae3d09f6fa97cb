import type { Api } from '@droplet-mesh/udc-kit';
import type { Fleet } from '../domain/fleet.js';
import { catalogParams, providerQuery } from './schemas.js';

export function registerCatalogRoutes(api: Api, { fleet }: { fleet: Fleet }): void {
  api.get(
    '/catalog/:kind',
    {
      summary: 'Sizes (with hourly and monthly prices), images or regions, cached with a TTL',
      params: catalogParams,
      query: providerQuery,
      tags: ['catalog'],
    },
    ({ params, query }) => fleet.catalog(params.kind, query.provider),
  );
}
