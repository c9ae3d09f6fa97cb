import { reply, type Api } from '@droplet-mesh/udc-kit';
import { callerOf, type Fleet } from '../domain/fleet.js';
import { instanceParams, providerQuery, snapshotBody } from './schemas.js';

export function registerSnapshotRoutes(api: Api, { fleet }: { fleet: Fleet }): void {
  api.get(
    '/snapshots',
    { summary: 'Snapshots on every provider (partial results when one fails)', query: providerQuery, tags: ['snapshots'] },
    ({ query }) => fleet.snapshots(query.provider),
  );

  api.post(
    '/instances/:provider/:id/snapshots',
    { scope: 'write', summary: 'Snapshot an instance', params: instanceParams, body: snapshotBody, tags: ['snapshots'] },
    async ({ params, body, principal }) => {
      const r = await fleet.createSnapshot(params.provider, params.id, body, callerOf(principal));
      return reply(r.action && r.action.status === 'in_progress' ? 202 : 201, r);
    },
  );
}
