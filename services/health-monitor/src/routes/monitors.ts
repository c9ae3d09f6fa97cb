import { z } from 'zod';
import type { Api } from '@droplet-mesh/udc-kit';
import { readyEngine, type RouteDeps } from './engine-access.js';

export function registerMonitorRoutes(api: Api, deps: RouteDeps): void {
  api.get(
    '/monitors',
    {
      summary: 'Live monitors and which of them check each target',
      query: z.object({ target_id: z.string().min(1).max(256).optional() }),
      tags: ['monitors'],
    },
    ({ query }) => {
      const engine = readyEngine(deps);
      const targets = query.target_id ? engine.targets().filter((t) => t.id === query.target_id) : engine.targets();
      return {
        self: engine.monitorId,
        members: engine.members(),
        monitors_per_target: engine.k,
        assignments: Object.fromEntries(targets.map((t) => [t.id, engine.assignment(t.id)])),
      };
    },
  );
}
