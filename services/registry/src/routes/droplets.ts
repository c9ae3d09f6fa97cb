import { z } from 'zod';
import {
  Conflict,
  dropletIdSchema,
  Forbidden,
  heartbeatSubject,
  MESH_DROPLETS,
  NotFound,
  paginate,
  paginationQuery,
  reply,
  type Api,
  type DropletContext,
} from '@droplet-mesh/udc-kit';
import { actingId, assertCallerScope, identifyCaller, isAdmin, type Caller, type CallerDeps } from '../caller.js';
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

const idParams = z.object({ id: dropletIdSchema });
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

const deleteQuery = z.object({
  /** Admin only: also forget that the id registered as itself (anyone may then register it). */
  forget: z.enum(['true', 'false']).optional(),
});

/**
 * Who stewards a record after this registration. Registering as itself (the admin key
 * without a steward named, the droplet's own key or its own token) makes a droplet its
 * own steward. An id that once registered as itself is never stewarded by another
 * droplet's token: that is refused.
 */
function stewardFor(caller: Caller, id: string, asked: string | undefined, claimed: boolean): string {
  if (caller.kind === 'admin') return asked ?? id;
  if (caller.kind === 'droplet-key') return id;
  const acting = actingId(caller)!;
  if (isAdmin(caller)) return asked ?? (claimed ? id : acting);
  if (claimed && acting !== id) throw new Forbidden(`'${id}' registers itself; only it or an admin may register it`);
  return acting;
}

/** `deployer-2` → `deployer`: the mesh droplet an id is, or is a replica of (MESH_REPLICAS names replicas `<name>-<n>`). */
function meshDropletOf(id: string | undefined): string | undefined {
  if (!id) return undefined;
  return MESH_DROPLETS.find((d) => id === d || (id.startsWith(`${d}-`) && /^[1-9][0-9]{0,3}$/.test(id.slice(d.length + 1))));
}

/**
 * A record a mesh droplet registered for something else (an app the deployer runs, a server
 * multi-cloud-manager made) may be updated or removed by any replica of that droplet: the
 * replica that deployed first may be down when another redeploys. Never a record that is its
 * own steward (a droplet's own registration), and never between droplets outside the mesh's.
 */
function replicaOfSteward(r: { id: string; steward: string }, acting: string | undefined): boolean {
  if (r.steward === r.id || !acting || acting === r.id) return false;
  const droplet = meshDropletOf(r.steward);
  return !!droplet && meshDropletOf(acting) === droplet;
}

export function registerDropletRoutes(api: Api, deps: DropletRouteDeps): void {
  const { store, liveness, ctx } = deps;
  const view = (r: StoredRecord) => publicRecord(r, liveness.lastSeenOf(r.id), liveness.lastReportOf(r.id));
  const { REGISTRY_MAX_RECORDS: maxRecords, REGISTRY_MAX_RECORDS_PER_STEWARD: maxPerSteward } = ctx.config;

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
      assertCallerScope(caller, 'write', 'registering');
      // A JWT caller stewards what it registers; it may not take over another's record.
      const sibling = !!existing && !isAdmin(caller) && replicaOfSteward(existing, acting);
      // Another replica of the stewarding mesh droplet keeps the record's steward as it was.
      const steward = sibling && existing ? existing.steward : stewardFor(caller, body.id, body.steward, store.isClaimed(body.id));
      if (existing && !isAdmin(caller) && existing.steward !== acting && existing.id !== acting && !sibling) {
        throw new Forbidden(`record '${body.id}' is stewarded by '${existing.steward}'`);
      }
      if (!existing) {
        // Bounded growth: the registry as a whole, and what one droplet's token may add.
        if (store.size >= maxRecords)
          throw new Conflict(`the registry holds its maximum of ${maxRecords} records; remove some first`, {
            limit: maxRecords,
            setting: 'REGISTRY_MAX_RECORDS',
          });
        if (caller.kind === 'jwt' && !isAdmin(caller) && steward !== body.id) {
          const held = store.all().filter((r) => r.steward === steward && r.id !== steward).length;
          if (held >= maxPerSteward)
            throw new Conflict(`'${steward}' already stewards ${held} records, the most one droplet may`, {
              limit: maxPerSteward,
              setting: 'REGISTRY_MAX_RECORDS_PER_STEWARD',
            });
        }
      }
      const now = new Date().toISOString();
      let dropletKey: string | undefined;
      const claim = store.claimOf(body.id);
      const record: StoredRecord = {
        ...body,
        name: body.name ?? body.id,
        steward,
        status: existing?.status ?? 'active',
        registered_at: existing?.registered_at ?? now,
        updated_at: now,
        last_heartbeat_at: existing?.last_heartbeat_at ?? now,
        // The key it holds stays valid across a deregistration (kept in its claim).
        key_hash: existing?.key_hash ?? claim?.key_hash,
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
      if (steward === record.id && (!claim || claim.key_hash !== record.key_hash))
        await store.putClaim({ id: record.id, key_hash: record.key_hash, claimed_at: claim?.claimed_at ?? now });
      await liveness.heartbeat(record.id);
      if (!existing) ctx.emit('droplet.registered', { droplet: view(record) });
      // A record that moved (a redeploy) is news to whoever checks it: the health-monitor follows this.
      else if (existing.url !== record.url || existing.health_path !== record.health_path || metaChanged(existing, record))
        ctx.emit('droplet.updated', { droplet: view(record) });
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
    {
      scope: 'public',
      summary: 'Deregister (admin key, own key, or the steward; tokens need write). ?forget=true (admin): release the id too',
      params: idParams,
      query: deleteQuery,
    },
    async ({ params, query, req }) => {
      const caller = await identifyCaller(req, deps, params.id);
      assertCallerScope(caller, 'write', 'removing a record');
      const forget = query.forget === 'true';
      if (forget && !isAdmin(caller)) throw new Forbidden('only an admin may forget an id');
      const r = store.get(params.id);
      const claimed = store.isClaimed(params.id);
      if (!r) {
        if (forget && store.claimOf(params.id)) {
          await store.deleteClaim(params.id);
          req.log.info({ droplet_id: params.id, action: 'forgotten' }, 'droplet id released');
          return undefined;
        }
        throw new NotFound(`no droplet '${params.id}'`);
      }
      const acting = actingId(caller);
      // A steward's token may not remove a record whose id registers itself (only it, or an admin).
      const mayAsSteward = (acting === r.steward || replicaOfSteward(r, acting)) && (!claimed || acting === r.id);
      if (!isAdmin(caller) && acting !== r.id && !mayAsSteward) throw new Forbidden(`only '${r.steward}' or an admin may remove '${r.id}'`);
      await store.delete(r.id);
      if (forget) await store.deleteClaim(r.id);
      else if (claimed) {
        // The id stays its own; an admin's removal also ends the droplet key (it falls back to its configured key).
        const claim = store.claimOf(r.id);
        const keyHash = isAdmin(caller) ? undefined : (r.key_hash ?? claim?.key_hash);
        await store.putClaim({ id: r.id, ...(keyHash ? { key_hash: keyHash } : {}), claimed_at: claim?.claimed_at ?? r.registered_at });
      }
      liveness.forget(r.id);
      ctx.emit('droplet.deregistered', { droplet: view(r) });
      req.log.info({ droplet_id: r.id, action: 'deregistered' }, 'droplet removed');
      return undefined;
    },
  );

  api.post(
    '/droplets/:id/heartbeat',
    { scope: 'write', summary: "A droplet's heartbeat (its own JWT, with write)", params: idParams, body: heartbeatBody },
    async ({ params, body, principal }) => {
      if (!principal || (principal.droplet_id !== params.id && !principal.scopes.includes('admin'))) {
        throw new Forbidden('a droplet may heartbeat only as itself');
      }
      if (!(await liveness.heartbeat(params.id, body))) throw new NotFound(`no droplet '${params.id}'`);
      // Other replicas learn of it the same way as of NATS heartbeats.
      ctx.bus.publishJson(heartbeatSubject(params.id), { ...body, id: params.id, at: new Date().toISOString() });
      return { received: true, droplet: view(store.get(params.id)!) };
    },
  );
}

function metaChanged(a: { metadata?: unknown }, b: { metadata?: unknown }): boolean {
  return JSON.stringify(a.metadata ?? {}) !== JSON.stringify(b.metadata ?? {});
}
