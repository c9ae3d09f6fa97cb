// UDC message handlers: how other droplets (the health-monitor) drive instances over NATS.
import { z } from 'zod';
import { assertDropletOrAdmin, InvalidRequest, type MessageHandler, type Principal } from '@droplet-mesh/udc-kit';
import { callerOf, type Fleet } from './domain/fleet.js';
import { providerName } from './routes/schemas.js';
import { serverCreatePayload, serverDeletePayload, serverSnapshotsPayload, type ServerProvisioning } from './domain/server-provisioning.js';

const rebootPayload = z.object({ provider: providerName, instance_id: z.string().min(1).max(128), wait: z.boolean().default(false) });
const listPayload = z.object({ provider: providerName.optional() });
/** By unified id (`provider:provider_id`, as GET /instances shows it) or by provider and id. */
const getPayload = z.union([
  z.object({ provider: providerName, instance_id: z.string().min(1).max(128) }),
  z
    .object({ id: z.string().regex(/^[a-z]+:[A-Za-z0-9._-]{1,128}$/, "must be '<provider>:<provider_id>'") })
    .transform(({ id }) => ({ provider: id.slice(0, id.indexOf(':')), instance_id: id.slice(id.indexOf(':') + 1) })),
]);

function parse<S extends z.ZodType>(schema: S, payload: unknown): z.infer<S> {
  const r = schema.safeParse(payload);
  if (!r.success)
    throw new InvalidRequest('invalid payload', { fields: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
  return r.data;
}

/**
 * Server provisioning carries the server's key and creates machines: only the deployer (a
 * droplet token is read+write, so by identity) or an admin may ask.
 */
function assertDeployerOrAdmin(p: Principal | undefined): void {
  // The deployer or one of its replicas (DROPLET_ID deployer-<n> under MESH_REPLICAS, compose HA).
  assertDropletOrAdmin(p, ['deployer'], 'provision servers');
}

export function messageHandlers(fleet: () => Fleet, servers?: () => ServerProvisioning): Record<string, MessageHandler> {
  return {
    // The deployer provisioning a mesh server (its POST /servers/provision); the payload holds the server's key.
    'server.create': {
      types: ['command'],
      scope: 'write',
      handle: async (payload, _envelope, ctx) => {
        assertDeployerOrAdmin(ctx.principal);
        if (!servers) throw new InvalidRequest('server provisioning is not available');
        return servers().create(parse(serverCreatePayload, payload));
      },
    },
    'server.delete': {
      types: ['command'],
      scope: 'write',
      handle: async (payload, _envelope, ctx) => {
        // Also the orchestrator: a stack's server provisioned through the deployer goes with the stack.
        assertDropletOrAdmin(ctx.principal, ['deployer', 'orchestrator'], 'delete mesh servers');
        if (!servers) throw new InvalidRequest('server provisioning is not available');
        const p = parse(serverDeletePayload, payload);
        return servers().delete(p.provider, p.instance_id);
      },
    },
    // The deployer replacing a lost server: its instance (region, size) and snapshots, newest first.
    'server.snapshots': {
      types: ['query'],
      scope: 'read',
      handle: async (payload, _envelope, ctx) => {
        assertDeployerOrAdmin(ctx.principal);
        if (!servers) throw new InvalidRequest('server provisioning is not available');
        const p = parse(serverSnapshotsPayload, payload);
        return servers().snapshotsOf(p.provider, p.instance_id);
      },
    },
    'instance.reboot': {
      types: ['command'],
      handle: async (payload, _envelope, ctx) => {
        const p = parse(rebootPayload, payload);
        // Reboot is allowed on unmanaged cloud servers: it is a recovery action, not a power-off.
        // Local containers the mesh did not create are absent to any sender without `admin`.
        return fleet().act(p.provider, p.instance_id, { type: 'reboot', wait: p.wait, force: false }, callerOf(ctx.principal));
      },
    },
    'instance.get': {
      types: ['query', 'command'],
      scope: 'read',
      handle: async (payload, _envelope, ctx) => {
        const p = parse(getPayload, payload);
        const provider = parse(providerName, p.provider);
        return { instance: await fleet().get(provider, p.instance_id, callerOf(ctx.principal)) };
      },
    },
    'instance.list': {
      types: ['query', 'command'],
      scope: 'read',
      handle: async (payload, _envelope, ctx) => {
        const p = parse(listPayload, payload);
        const r = await fleet().listAll(p.provider, callerOf(ctx.principal));
        return { instances: r.instances, total: r.instances.length, providers: r.providers };
      },
    },
  };
}
