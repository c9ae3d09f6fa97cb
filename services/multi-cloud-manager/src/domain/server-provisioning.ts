// `server.create` / `server.delete`: the deployer provisioning a mesh server. On a cloud the
// instance is created with the cloud-init user_data (server-bootstrap.ts) that installs
// Docker with the server's mesh certificate and reports back with the one-time token; on
// the local provider a real engine is started here and reports back the same way.
import { z } from 'zod';
import { Conflict, DependencyUnavailable, InvalidRequest, NotFound } from '@droplet-mesh/udc-kit';
import { MANAGED_TAG, type Instance, type ProviderName, type Snapshot } from '../providers/cloud-provider.js';
import type { LocalServers } from '../providers/local/local-servers.js';
import { providerName } from '../routes/schemas.js';
import type { Fleet } from './fleet.js';
import type { HostRegistry } from './host-registry.js';
import { bootstrapFromProvision, renderUserData } from './server-bootstrap.js';

/** The image a mesh server starts from on each cloud (Debian 12: its cloud-init is what the user_data is checked with). */
export const SERVER_IMAGES: Record<Exclude<ProviderName, 'local'>, string> = {
  digitalocean: 'debian-12-x64',
  hetzner: 'debian-12',
  vultr: '2136',
};

const pem = z.string().min(1).max(20_000);
const address = z.string().regex(/^[0-9A-Fa-f.:/]{2,49}$/, 'must be an IP address or CIDR');

export const serverCreatePayload = z.object({
  provider: providerName,
  region: z.string().min(1).max(64),
  size: z.string().min(1).max(64),
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a lowercase name'),
  image: z.string().min(1).max(128).optional(),
  /** What the deployer's provisioning answered: the server's certificate and one-time token. */
  provision: z.object({
    server_id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
    engine_port: z.number().int().min(1).max(65535),
    ca: pem,
    cert: pem,
    key: pem,
    callback_token: z.string().regex(/^[A-Za-z0-9_-]{32,128}$/),
    callback_path: z.string().regex(/^\/[A-Za-z0-9/_-]{1,200}$/),
  }),
  /** The deployer's base URL the machine reports to. */
  deployer_url: z.url({ protocol: /^https?$/ }),
  /** Mesh addresses allowed to reach the engine and app ports (the server's firewall). */
  allow_from: z.array(address).min(1).max(32),
  app_ports: z.tuple([z.number().int(), z.number().int()]).optional(),
  /** The mesh image registry the server pulls deploy images from, and its CA (trusted in certs.d). */
  mesh_registry: z.object({ host: z.string().min(1).max(300), ca: pem }).optional(),
});
export type ServerCreatePayload = z.infer<typeof serverCreatePayload>;

export const serverDeletePayload = z.object({ provider: providerName, instance_id: z.string().min(1).max(128) });
/** `server.snapshots`: what a lost server's replacement is made from. */
export const serverSnapshotsPayload = serverDeletePayload;

/** Newest first: by creation time, then by id (numeric ids grow with time). */
function newestFirst(a: Snapshot, b: Snapshot): number {
  const t = (s: Snapshot) => (s.created_at ? Date.parse(s.created_at) || 0 : 0);
  if (t(b) !== t(a)) return t(b) - t(a);
  const n = Number(b.id) - Number(a.id);
  return Number.isFinite(n) && n !== 0 ? n : b.id.localeCompare(a.id);
}

export class ServerProvisioning {
  constructor(
    private readonly fleet: () => Fleet,
    private readonly local: LocalServers,
    private readonly hosts: HostRegistry,
    /** LOCAL_PROVIDER_ENABLED: local servers are local instances too. */
    private readonly localEnabled = true,
  ) {}

  /** Creates the machine; answers as soon as it exists (the ready report comes later, from the machine). */
  async create(p: ServerCreatePayload): Promise<{ instance: Instance; user_data_bytes?: number }> {
    const callbackUrl = new URL(p.provision.callback_path, p.deployer_url).toString();
    if (p.provider === 'local') {
      if (!this.localEnabled) throw new InvalidRequest('the local provider is disabled here (LOCAL_PROVIDER_ENABLED=false)');
      if (p.region !== 'local')
        throw new InvalidRequest("local has only the region 'local'", { fields: [{ path: 'region', message: "must be 'local'" }] });
      const instance = await this.local.create({
        name: p.name,
        serverId: p.provision.server_id,
        enginePort: p.provision.engine_port,
        tls: { ca: p.provision.ca, cert: p.provision.cert, key: p.provision.key },
        callbackUrl,
        callbackToken: p.provision.callback_token,
      });
      await this.hosts.register(instance);
      return { instance };
    }
    let userData: string;
    try {
      userData = renderUserData(
        bootstrapFromProvision(p.provision, {
          deployerUrl: p.deployer_url,
          allowFrom: p.allow_from,
          ...(p.app_ports ? { appPorts: p.app_ports } : {}),
          ...(p.mesh_registry ? { registry: p.mesh_registry } : {}),
        }),
      );
    } catch (err) {
      throw new InvalidRequest((err as Error).message);
    }
    const res = await this.fleet().create(
      {
        provider: p.provider,
        name: p.name,
        region: p.region,
        size: p.size,
        image: p.image ?? SERVER_IMAGES[p.provider],
        tags: [MANAGED_TAG, 'mesh-server'],
        labels: { 'mesh-server': p.provision.server_id },
        user_data: userData,
        wait: false,
      },
      undefined,
      { admin: true },
    );
    const instance = (res.body as { instance: Instance }).instance;
    return { instance, user_data_bytes: Buffer.byteLength(userData) };
  }

  /**
   * The instance a mesh server runs on (null when the provider no longer has it) and its
   * snapshots that can be created from, newest first: a lost server's replacement is the
   * newest one on the same provider, region and size. A local server (a dockerd in its own
   * network namespace) has none.
   */
  async snapshotsOf(provider: ProviderName, instanceId: string): Promise<{ instance: Instance | null; snapshots: Snapshot[] }> {
    let instance: Instance | null = null;
    try {
      instance = await this.fleet().get(provider, instanceId, { admin: true });
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
    }
    if (provider === 'local') return { instance, snapshots: [] };
    const { snapshots, providers } = await this.fleet().snapshots(provider);
    const failed = providers.find((p) => p.provider === provider && p.status !== 'ok');
    if (failed) throw new DependencyUnavailable(`${provider} did not list its snapshots`);
    const own = snapshots.filter((s) => s.provider === provider && s.resource_id === instanceId && s.status === 'available');
    return { instance, snapshots: own.sort(newestFirst) };
  }

  async delete(provider: ProviderName, instanceId: string): Promise<{ deleted: boolean }> {
    if (provider === 'local') {
      const found = this.local.byProviderId(instanceId);
      if (!found) throw new NotFound(`no local server '${instanceId}'`);
      await this.hosts.remove(found.instance);
      return { deleted: await this.local.delete(found.name) };
    }
    // Only a machine created as a mesh server: this action is not a general delete.
    const i = await this.fleet().get(provider, instanceId, { admin: true });
    if (!i.tags.includes('mesh-server') && !('mesh-server' in i.labels))
      throw new Conflict(`${i.id} is not a mesh server (no 'mesh-server' tag): delete it with DELETE /instances`);
    // force: the deployer asks this itself (a provisioning that failed), so the guard that
    // asks the deployer whether services still run there has its answer already.
    await this.fleet().delete(provider, instanceId, true, { admin: true });
    return { deleted: true };
  }
}
