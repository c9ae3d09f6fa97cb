import { z } from 'zod';
import { Conflict, Forbidden, NotFound, paginate, paginationQuery, reply, type Api, type DropletContext } from '@droplet-mesh/udc-kit';
import { actingId, identifyCaller, isAdmin, type CallerDeps } from '../caller.js';
import { hashKey, newDropletKey } from '../credentials.js';
import type { LivenessMonitor } from '../liveness-monitor.js';
import { matchesFilter, publicRecord, recordInputSchema, type StoredRecord } from '../records.js';
import type { RecordStore } from '../record-store.js';
import type { RegistryConfig } from '../config.js';

export interface DropletRouteDeps extends CallerDeps {
  store: RecordStore;
  liveness: LivenessMonitor;
  ctx: DropletContext<RegistryConfig>;
}

const idParams = z.object({ id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a droplet id') });
const heartbeatBody = z
  .object({
    status: z.string().max(32).optional(),
    metrics: z
      .record(z.string(), z.unknown())
      .refine((m) => JSON.stringify(m).length <= 4096, 'must be at most 4 KiB as JSON')
      .optional(),
    at: z.string().optional(),
    id: z.string().optional(),
  })
  .default({});

export function registerDropletRoutes(api: Api, deps: DropletRouteDeps): void {
  const { store, liveness, ctx } = deps;
  const view = (r: StoredRecord) => publicRecord(r, liveness.lastSeenOf(r.id), liveness.lastReportOf(r.id));

  api.post(
    '/droplets',
    {
      scope: 'public',
      summary: 'Register or update a droplet (X-Registry-Key, or a JWT for records it stewards)',
      body: recordInputSchema,
    },
    async ({ body, req }) => {
      const caller = await identifyCaller(req, deps, body.id);
      const existing = store.get(body.id);
      const acting = actingId(caller);
      if (caller.kind === 'jwt' && !caller.principal.scopes.some((s) => s === 'write' || s === 'admin'))
        throw new Forbidden("registering needs the 'write' scope");
      // A JWT caller stewards what it registers; it may not take over another's record.
      const steward =
        caller.kind === 'admin' ? (body.steward ?? existing?.steward ?? body.id) : caller.kind === 'droplet-key' ? body.id : acting!;
      if (existing && !isAdmin(caller) && existing.steward !== acting && existing.id !== acting) {
        throw new Forbidden(`record '${body.id}' is stewarded by '${existing.steward}'`);
      }
      const now = new Date().toISOString();
      let dropletKey: string | undefined;
      const record: StoredRecord = {
        ...body,
        name: body.name ?? body.id,
        steward,
        status: existing?.status ?? 'active',
        registered_at: existing?.registered_at ?? now,
        updated_at: now,
        last_heartbeat_at: existing?.last_heartbeat_at ?? now,
        key_hash: existing?.key_hash,
      };
      if (!record.key_hash && steward === record.id) {
        dropletKey = newDropletKey();
        record.key_hash = hashKey(dropletKey);
      }
      try {
        await store.put(record, existing ? store.revisionOf(body.id) : 'create');
      } catch {
        throw new Conflict(`record '${body.id}' changed concurrently; retry`);
      }
      await liveness.heartbeat(record.id);
      if (!existing) ctx.emit('droplet.registered', { droplet: view(record) });
      req.log.info({ droplet_id: record.id, steward, action: existing ? 'updated' : 'registered' }, 'droplet record saved');
      return reply(existing ? 200 : 201, {
        droplet: view(store.get(record.id) ?? record),
        ...(dropletKey ? { droplet_key: dropletKey } : {}),
      });
    },
  );

  api.get(
    '/droplets',
    {
      summary: 'List droplets (filters: capability, status, kind; paginated)',
      query: paginationQuery.extend({
        capability: z.string().max(64).optional(),
        status: z.enum(['active', 'stale', 'down']).optional(),
        kind: z.enum(['service', 'host']).optional(),
      }),
    },
    ({ query }) => {
      const items = store
        .all()
        .filter((r) => matchesFilter(r, query))
        .sort((a, b) => a.id.localeCompare(b.id))
        .map(view);
      return paginate(items, query);
    },
  );

  api.get('/droplets/:id', { summary: 'One droplet', params: idParams }, ({ params }) => {
    const r = store.get(params.id);
    if (!r) throw new NotFound(`no droplet '${params.id}'`);
    return { droplet: view(r) };
  });

  api.delete(
    '/droplets/:id',
    { scope: 'public', summary: 'Deregister (admin key, own key, or the steward)', params: idParams },
    async ({ params, req }) => {
      const caller = await identifyCaller(req, deps, params.id);
      const r = store.get(params.id);
      if (!r) throw new NotFound(`no droplet '${params.id}'`);
      const acting = actingId(caller);
      if (!isAdmin(caller) && acting !== r.id && acting !== r.steward)
        throw new Forbidden(`only '${r.steward}' or an admin may remove '${r.id}'`);
      await store.delete(r.id);
      liveness.forget(r.id);
      ctx.emit('droplet.deregistered', { droplet: view(r) });
      req.log.info({ droplet_id: r.id, action: 'deregistered' }, 'droplet removed');
      return undefined;
    },
  );

  api.post(
    '/droplets/:id/heartbeat',
    { summary: "A droplet's heartbeat (its own JWT)", params: idParams, body: heartbeatBody },
    async ({ params, body, principal }) => {
      if (!principal || (principal.droplet_id !== params.id && !principal.scopes.includes('admin'))) {
        throw new Forbidden('a droplet may heartbeat only as itself');
      }
      if (!(await liveness.heartbeat(params.id, body))) throw new NotFound(`no droplet '${params.id}'`);
      // Other replicas learn of it the same way as of NATS heartbeats.
      ctx.bus.publishJson(`registry.heartbeat.${params.id}`, { ...body, id: params.id, at: new Date().toISOString() });
      return { received: true, droplet: view(store.get(params.id)!) };
    },
  );
}
