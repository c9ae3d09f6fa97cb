import type { z } from 'zod';
import { InvalidRequest, paginate, reply, type Api, type Principal } from '@droplet-mesh/udc-kit';
import { callerOf, type Fleet } from '../domain/fleet.js';
import type { ProviderName } from '../providers/cloud-provider.js';
import {
  actionBody,
  actionQuery,
  createBody,
  type createFields,
  forceQuery,
  idempotencyKey,
  instanceParams,
  listQuery,
} from './schemas.js';

export interface InstanceRouteDeps {
  fleet: Fleet;
}

// The operations behind the unified routes; the legacy aliases call the same ones.

export async function listInstances(fleet: Fleet, q: z.infer<typeof listQuery>, principal: Principal | undefined) {
  const { page, per_page, ...filter } = q;
  const r = await fleet.list(filter, callerOf(principal));
  return { ...paginate(r.instances, { page, per_page }), providers: r.providers };
}

export async function createInstance(
  fleet: Fleet,
  provider: ProviderName,
  body: z.infer<typeof createFields>,
  header: string | undefined,
  principal: Principal | undefined,
) {
  let idem: { key: string; scope: string } | undefined;
  if (header !== undefined) {
    const parsed = idempotencyKey.safeParse(header);
    if (!parsed.success)
      throw new InvalidRequest('invalid Idempotency-Key header', {
        fields: [{ path: 'Idempotency-Key', message: 'must be 1-255 visible ASCII characters' }],
      });
    // Keys are per caller: two operators choosing the same key do not collide.
    idem = { key: parsed.data, scope: principal?.sub ?? 'anonymous' };
  }
  const r = await fleet.create({ ...body, provider }, idem, callerOf(principal));
  return reply(r.status, r.body, r.replayed ? { 'Idempotent-Replayed': 'true' } : {});
}

export async function instanceAction(
  fleet: Fleet,
  provider: ProviderName,
  id: string,
  body: z.infer<typeof actionBody>,
  q: z.infer<typeof actionQuery>,
  principal: Principal | undefined,
) {
  const wait = body.wait || q.wait;
  const r = await fleet.act(provider, id, { type: body.type, wait, force: body.force || q.force }, callerOf(principal));
  return reply(r.action.status === 'in_progress' ? 202 : 200, r);
}

export function deleteInstance(fleet: Fleet, provider: ProviderName, id: string, force: boolean, principal: Principal | undefined) {
  return fleet.delete(provider, id, force, callerOf(principal));
}

export function registerInstanceRoutes(api: Api, { fleet }: InstanceRouteDeps): void {
  api.get(
    '/instances',
    {
      summary: 'Instances on every provider (filters: provider, status, region, tag, name; paginated)',
      query: listQuery,
      tags: ['instances'],
    },
    ({ query, principal }) => listInstances(fleet, query, principal),
  );

  api.get('/instances/:provider/:id', { summary: 'One instance', params: instanceParams, tags: ['instances'] }, ({ params, principal }) =>
    fleet.get(params.provider, params.id, callerOf(principal)),
  );

  api.post(
    '/instances',
    {
      scope: 'write',
      summary: 'Create an instance (Idempotency-Key honoured; wait=true waits until it runs)',
      body: createBody,
      tags: ['instances'],
    },
    ({ body, req, principal }) => {
      const { provider, ...fields } = body;
      return createInstance(fleet, provider, fields, req.header('idempotency-key'), principal);
    },
  );

  api.delete(
    '/instances/:provider/:id',
    {
      scope: 'write',
      summary: 'Delete an instance (unmanaged ones need force=true)',
      params: instanceParams,
      query: forceQuery,
      tags: ['instances'],
    },
    ({ params, query, principal }) => deleteInstance(fleet, params.provider, params.id, query.force, principal),
  );

  api.post(
    '/instances/:provider/:id/actions',
    {
      scope: 'write',
      summary: 'power_on, power_off, shutdown or reboot; wait=true waits for the action',
      params: instanceParams,
      body: actionBody,
      query: actionQuery,
      tags: ['instances'],
    },
    ({ params, body, query, principal }) => instanceAction(fleet, params.provider, params.id, body, query, principal),
  );
}
