import type { Api } from '@droplet-mesh/udc-kit';
import { callerOf, type Fleet } from '../domain/fleet.js';
import type { ProviderSet } from '../providers/provider-set.js';
import { providerQuery, searchQuery } from './schemas.js';

export function registerMultiRoutes(api: Api, { fleet, providers }: { fleet: Fleet; providers: ProviderSet }): void {
  api.get('/providers', { summary: 'Which providers are configured', tags: ['multi'] }, () => ({ providers: providers.states() }));

  api.get(
    '/multi/list',
    {
      summary: 'Every provider in parallel, each under its own timeout; partial results with per-provider errors',
      query: providerQuery,
      tags: ['multi'],
    },
    async ({ query, principal }) => {
      const r = await fleet.listAll(query.provider, callerOf(principal));
      return { instances: r.instances, total: r.instances.length, providers: r.providers };
    },
  );

  api.get(
    '/multi/summary',
    { summary: 'Counts by provider, status and region, and estimated monthly cost', tags: ['multi'] },
    ({ principal }) => fleet.summary(callerOf(principal)),
  );

  api.get(
    '/multi/search',
    { summary: 'Search by name, IP, id or tag (q), with provider and status filters', query: searchQuery, tags: ['multi'] },
    async ({ query, principal }) => {
      const { q, ...filter } = query;
      const r = await fleet.search(q, filter, callerOf(principal));
      return { query: q, instances: r.instances, total: r.instances.length, providers: r.providers };
    },
  );

  api.get('/multi/health-check', { summary: "Each provider's API reachable and token valid, with latency", tags: ['multi'] }, () =>
    fleet.healthCheck(),
  );
}
