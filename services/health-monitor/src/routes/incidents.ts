import { z } from 'zod';
import { NotFound, paginate, paginationQuery, type Api } from '@droplet-mesh/udc-kit';
import { readyEngine, type RouteDeps } from './engine-access.js';

const incidentQuery = paginationQuery.extend({
  status: z.enum(['open', 'recovering', 'resolved', 'active']).optional(),
  target_id: z.string().min(1).max(256).optional(),
});

export function registerIncidentRoutes(api: Api, deps: RouteDeps): void {
  api.get(
    '/incidents',
    { summary: 'Incidents, newest first (status=active means open or recovering)', query: incidentQuery, tags: ['incidents'] },
    ({ query }) => {
      const items = readyEngine(deps)
        .incidents.all()
        .filter((i) => !query.target_id || i.target_id === query.target_id)
        .filter((i) => !query.status || (query.status === 'active' ? i.status !== 'resolved' : i.status === query.status));
      return paginate(items, query);
    },
  );

  api.get(
    '/incidents/:id',
    { summary: 'One incident with its timeline', params: z.object({ id: z.string().min(1).max(256) }), tags: ['incidents'] },
    async ({ params }) => {
      const incident = await readyEngine(deps).incidents.get(params.id);
      if (!incident) throw new NotFound(`no incident '${params.id}'`);
      return incident;
    },
  );
}
