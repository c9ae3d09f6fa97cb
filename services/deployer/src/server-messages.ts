// UDC queries and commands about servers, for health-monitor: which engines there are, and a
// short-lived client certificate of the mesh CA to ping them (GET /_ping over mutual TLS).
// Docker's TLS has no per-client permissions: any certificate of the mesh CA can drive every
// engine, so it is given only to the health-monitor droplet (by its token's identity: droplet
// tokens carry read+write) or an admin, for a day, named after the caller.
import { z } from 'zod';
import { assertDropletOrAdmin, parseOrThrow, type MessageHandler } from '@droplet-mesh/udc-kit';
import { engineIdentity, issueCertificate, type MeshCa } from './domain/mesh-ca.js';
import type { Stores } from './store/stores.js';

/** Validity of a monitor's client certificate; it asks again before half of it is gone. */
export const MONITOR_CERT_HOURS = 24;

export function serverMessageHandlers(stores: () => Stores, meshCa: () => Promise<MeshCa>): Record<string, MessageHandler> {
  return {
    'servers.engines': {
      types: ['query'],
      scope: 'read',
      handle: async () => {
        const servers = (await stores().servers.list()).filter((s) => s.docker_host.startsWith('tcp://') && s.tls_sealed);
        return {
          engines: servers.map((s) => {
            const u = new URL(s.docker_host);
            return {
              server_id: s.id,
              host: u.hostname.replace(/^\[|\]$/g, ''),
              port: Number(u.port) || 2376,
              // The name its certificate carries (it may not name its address).
              servername: engineIdentity(s.id),
              ...(s.draining ? { draining: true } : {}),
            };
          }),
        };
      },
    },
    // multi-cloud-manager asks before deleting an instance: is it a server still running services?
    'servers.usage': {
      types: ['query'],
      scope: 'read',
      handle: async (payload) => {
        const p = parseOrThrow(
          z.object({ instance_id: z.string().min(1).max(200).optional(), server_id: z.string().min(1).max(63).optional() }),
          payload,
          'payload',
        );
        const servers = await stores().servers.list();
        const server = servers.find((s) => (p.instance_id && s.instance_id === p.instance_id) || (p.server_id && s.id === p.server_id));
        if (!server) return { services: [] };
        const services = (await stores().releases.list())
          .filter((r) => r.containers.some((c) => c.server_id === server.id))
          .map((r) => r.target_id);
        return { server_id: server.id, services };
      },
    },
    'mesh-ca.monitor-certificate': {
      types: ['command'],
      scope: 'write',
      handle: async (payload, envelope, ctx) => {
        // health-monitor or one of its replicas (health-monitor-<n>), or an admin.
        assertDropletOrAdmin(ctx.principal, ['health-monitor'], 'have an engine client certificate');
        parseOrThrow(z.object({}).passthrough(), payload, 'payload');
        const who = (ctx.principal?.sub ?? envelope.source).replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 48);
        const ca = await meshCa();
        const issued = await issueCertificate(ca, { kind: 'client', commonName: `monitor-${who}`, days: 1 });
        return {
          ca: ca.certPem,
          cert: issued.cert,
          key: issued.key,
          expires_at: new Date(Date.now() + MONITOR_CERT_HOURS * 3600_000).toISOString(),
        };
      },
    },
  };
}
