import { z } from 'zod';
import type { Api } from '@droplet-mesh/udc-kit';
import { TARGET_OR_REPLICA_PATTERN, TARGET_PATTERN } from '../domain/naming.js';
import type { RouteDeps } from './route-deps.js';

/** `id` is the deployed target: app-<project>-<service>-<environment>. */
const params = z.object({ id: z.string().regex(TARGET_PATTERN, 'must be app-<project>-<service>-<environment>') });
/** A restart may name one replica by its registry record id, `<target>.r<n>` (what health-monitor knows). */
const restartParams = z.object({
  id: z.string().regex(TARGET_OR_REPLICA_PATTERN, 'must be app-<project>-<service>-<environment>, or a replica’s <target>.r<n>'),
});

export function registerServiceOpsRoutes(api: Api, deps: RouteDeps): void {
  api.get(
    '/services/:id',
    { summary: 'What runs now: deployment, image, containers and ports', params, tags: ['service-ops'] },
    async ({ params: p }) => deps.deployer().release(p.id),
  );
  api.get(
    '/services/:id/logs',
    {
      summary: 'Tail of the current containers’ logs (secret values masked)',
      params,
      query: z.object({ tail: z.coerce.number().int().min(1).max(5000).default(100) }),
      tags: ['service-ops'],
    },
    async ({ params: p, query }) => ({ target_id: p.id, containers: await deps.deployer().logs(p.id, query.tail) }),
  );
  api.post(
    '/services/:id/restart',
    {
      scope: 'write',
      summary: 'Restart the current containers (or one replica, `<target>.r<n>`); answers when healthy again',
      params: restartParams,
      tags: ['service-ops'],
    },
    async ({ params: p }) => deps.deployer().restart(p.id),
  );
  api.post(
    '/services/:id/scale',
    {
      scope: 'write',
      summary: 'Set replicas and roll the current image out at that size',
      params,
      body: z.object({ replicas: z.number().int().min(1).max(20) }),
      status: 202,
      tags: ['service-ops'],
    },
    async ({ params: p, body, principal }) => {
      const { deployment, position } = await deps.deployer().scale(p.id, body.replicas, principal?.sub ?? 'unknown');
      return { id: deployment.id, status: deployment.status, queue_position: position, replicas: body.replicas };
    },
  );
}
