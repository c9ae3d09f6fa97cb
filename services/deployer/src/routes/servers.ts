import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import Docker from 'dockerode';
import type { Request } from 'express';
import { z } from 'zod';
import {
  AddressPolicy,
  AddressRefused,
  assertDropletOrAdmin,
  assertScope,
  Conflict,
  DependencyUnavailable,
  InvalidRequest,
  NotFound,
  paginate,
  paginationQuery,
  reply,
  Unauthorized,
  Unprocessable,
  type Api,
  type Principal,
} from '@droplet-mesh/udc-kit';
import { engineIdentity, fingerprint, issueCertificate, loadOrCreateMeshCa, type MeshCa } from '../domain/mesh-ca.js';
import { nameSchema, serverInput, type Server } from '../domain/model.js';
import { environmentRefs } from '../domain/placement.js';
import {
  isExpired,
  isOpen,
  newProvisionToken,
  PROVISION_PREFIX,
  pendingView,
  tokenMatches,
  type PendingServer,
} from '../domain/provisioning.js';
import { allowFromFor, ServerProvisioner, type MachineRequest } from '../deploy/server-provisioner.js';
import { KvCollection } from '../store/kv-collection.js';
import { DEFAULT_SERVER_LOSS, SERVER_LOSS_PREFIX, serverLossPolicies, type ServerLossPolicy } from '../deploy/server-loss-policy.js';
import { sealSecret } from '../domain/secrets-crypto.js';
import { LOCAL_SERVER_ID } from '../deploy/deployer.js';
import { dockerOptions } from '../engine/engine-pool.js';
import { now, type RouteDeps } from './route-deps.js';

/** Docker engines are never at link-local/metadata addresses nor on the mesh's own loopback ports. */
const policy = new AddressPolicy();
const PING_TIMEOUT_MS = 5000;
/** Droplets that may provision servers without the admin scope (a droplet's token is read+write). */
const PROVISIONERS = ['orchestrator'] as const;

async function checkAddress(host: string, port: number, where: string): Promise<void> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const v = await policy.check(bare, port);
  if (!v.ok) throw new AddressRefused(bare, port, v.reason ?? 'refused', where);
}

/**
 * Who may add which engine: tcp:// (a remote engine API) needs TLS and the admin scope,
 * unix:// (a socket on this host) the admin scope; every remote host, and the address the
 * proxy reaches containers at, must pass the address policy.
 */
async function checkServer(principal: Principal | undefined, dockerHost: string, address: string, hasTls: boolean): Promise<void> {
  if (dockerHost.startsWith('tcp:') || dockerHost.startsWith('unix:')) assertScope(principal, 'admin');
  if (dockerHost.startsWith('tcp:') && !hasTls)
    throw new InvalidRequest(
      "a tcp:// Docker host is reached only over mutual TLS: give tls: 'mesh' (an engine certified by the mesh CA) or tls: {ca, cert, key}",
      { fields: [{ path: 'tls', message: 'required for tcp://' }] },
    );
  if (dockerHost.startsWith('tcp:') || dockerHost.startsWith('ssh:')) {
    const u = new URL(dockerHost);
    await checkAddress(u.hostname, Number(u.port) || (u.protocol === 'ssh:' ? 22 : 2376), 'docker_host');
  }
  await checkAddress(address, 0, 'address');
}

/** What went wrong reaching an engine, in our words only: never the remote's answer. */
function engineFailure(err: unknown): string {
  if (err instanceof Error && /only over mutual TLS/.test(err.message))
    return 'it has no TLS material, and a tcp:// engine is used only over mutual TLS';
  const e = err as { statusCode?: unknown; code?: unknown; message?: unknown };
  if (typeof e.statusCode === 'number') return `it answered HTTP ${e.statusCode}, not as a Docker Engine`;
  if (typeof e.code === 'string' && /^[A-Z0-9_]{2,64}$/.test(e.code)) return `the connection failed (${e.code})`;
  if (typeof e.message === 'string' && /timeout|timed out/i.test(e.message)) return `no answer within ${PING_TIMEOUT_MS} ms`;
  return 'the connection failed';
}

/** A tcp:// engine is tried once (GET /_ping over TLS) before it is saved. */
async function pingEngine(server: Server, masterKey: Buffer): Promise<void> {
  const docker = new Docker({ ...dockerOptions(server, masterKey), timeout: PING_TIMEOUT_MS });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), PING_TIMEOUT_MS + 1000);
      }),
    ]);
  } catch (err) {
    throw new Unprocessable(
      `the Docker Engine at ${server.docker_host} could not be used: ${engineFailure(err)}`,
      { docker_host: server.docker_host },
      'DEPENDENCY_UNAVAILABLE',
    );
  } finally {
    clearTimeout(timer);
  }
}

const params = z.object({ id: nameSchema });
const publicView = ({ tls_sealed, ...s }: Server) => ({ ...s, tls: !!tls_sealed });

const tlsMaterial = z.object({
  ca: z.string().min(1).max(20_000),
  cert: z.string().min(1).max(20_000),
  key: z.string().min(1).max(20_000),
});
/**
 * POST /servers: `tls: 'mesh'` makes the deployer reach the engine with a client certificate
 * of the mesh CA and trust only engines whose certificate that CA signed for this server id
 * (engineIdentity: `<id>.engine.droplet-mesh.internal`);
 * `environments` names the environments (`<env>` in any project, or `<project>/<env>`) whose
 * services are spread over this server when they have no explicit placement.
 */
const serverBody = z
  .object({ ...serverInput.shape, tls: z.union([z.literal('mesh'), tlsMaterial]).optional(), environments: environmentRefs.optional() })
  .refine((s) => s.docker_host || s.instance_id, { message: 'give docker_host or instance_id', path: ['docker_host'] });

const engineCertificateBody = z.object({
  /** The server id the certificate is for (its common name). */
  server_id: nameSchema,
  /** IPs or DNS names the engine is reached at (subjectAltNames beside its identity name; none for a machine not created yet). */
  addresses: z
    .array(z.string().regex(/^[A-Za-z0-9.:-]{1,253}$/, 'must be an IP address or a DNS name'))
    .max(8)
    .default([]),
  days: z.number().int().min(1).max(825).default(397),
});

export const provisionBody = z
  .object({
    /** The server id (also its certificate's name); `name` is the same, as the seed and `meshctl server add` say it. */
    id: nameSchema.optional(),
    name: nameSchema.optional(),
    environments: environmentRefs.optional(),
    engine_port: z.number().int().min(1).max(65535).default(2376),
    /** How long the one-time token is good for (with a provider: PROVISION_TIMEOUT_S unless given). */
    expires_in_s: z.number().int().min(1).max(86_400).optional(),
    /** With a provider, multi-cloud-manager creates the machine and the answer is 202 with the progress to follow. */
    provider: z.enum(['local', 'digitalocean', 'hetzner', 'vultr']).optional(),
    region: z.string().min(1).max(64).optional(),
    size: z.string().min(1).max(64).optional(),
    image: z.string().min(1).max(128).optional(),
  })
  .refine((b) => b.id || b.name, { message: 'give id (or name)', path: ['id'] })
  .refine((b) => !b.id || !b.name || b.id === b.name, { message: 'id and name differ', path: ['name'] })
  .refine((b) => !b.provider || (b.region && b.size), { message: 'a provider needs region and size', path: ['region'] });
export type ProvisionBody = z.infer<typeof provisionBody>;

/** What the machine reports (the report script of multi-cloud-manager's user_data sends the last four). */
const readyBody = z.object({
  /** Where the engine is reached; default: the address this report came from. */
  address: z
    .string()
    .regex(/^[A-Za-z0-9.:-]{1,253}$/)
    .optional(),
  server_id: nameSchema.optional(),
  engine_port: z.number().int().min(1).max(65535).optional(),
  docker_version: z.string().max(64).optional(),
  certificate_sha256: z.string().max(200).optional(),
});

const bearer = (h: string | undefined) => (h && /^Bearer [A-Za-z0-9_-]{1,256}$/.test(h) ? h.slice(7) : undefined);

const caLoaders = new WeakMap<object, () => Promise<MeshCa>>();
/** The mesh CA, loaded (or created) once per process from the deployer's KV bucket. */
function meshCaLoader(deps: RouteDeps): () => Promise<MeshCa> {
  const known = caLoaders.get(deps.ctx);
  if (known) return known;
  let p: Promise<MeshCa> | undefined;
  const load = () => {
    if (!p) {
      p = deps.ctx.bus
        .kv(deps.ctx.config.KV_BUCKET, { history: 3 })
        .then((kv) => loadOrCreateMeshCa(kv, deps.ctx.config.DEPLOYER_MASTER_KEY));
      p.catch(() => {
        p = undefined;
      });
    }
    return p;
  };
  caLoaders.set(deps.ctx, load);
  return load;
}

const pendingStore = async (deps: RouteDeps) =>
  new KvCollection<PendingServer>(await deps.ctx.bus.kv(deps.ctx.config.KV_BUCKET, { history: 3 }), PROVISION_PREFIX);

const provisioners = new WeakMap<object, ServerProvisioner>();
/** One provisioner per droplet (its timers wait for machines' reports). */
/** Give a registered server its instance (`provider:id`) unless it has one (compare-and-set, retried). */
async function attachInstance(deps: RouteDeps, serverId: string, instanceRef: string): Promise<void> {
  const servers = deps.stores().servers;
  for (let attempt = 0; attempt < 5; attempt++) {
    const cur = await servers.getWithRevision(serverId);
    if (!cur || cur.value.instance_id) return;
    if (await servers.update([serverId], { ...cur.value, instance_id: instanceRef }, cur.revision)) return;
  }
}

export function provisionerOf(deps: RouteDeps): ServerProvisioner {
  let p = provisioners.get(deps.ctx);
  if (!p) {
    const c = deps.ctx.config;
    p = new ServerProvisioner({
      pendings: () => pendingStore(deps),
      send: (req) => deps.ctx.send(req),
      emit: (type, data, level) => deps.ctx.emit(type, data, level),
      logger: deps.ctx.logger,
      createTimeoutMs: c.PROVISION_CREATE_TIMEOUT_S * 1000,
      reportTimeoutMs: c.PROVISION_TIMEOUT_S * 1000,
      attachInstance: (serverId, instanceRef) => attachInstance(deps, serverId, instanceRef),
    });
    provisioners.set(deps.ctx, p);
  }
  return p;
}

/** The mesh image registry a new server trusts (its CA from MESH_REGISTRY_CA_FILE), when both are set. */
function meshRegistryTrust(c: { MESH_REGISTRY?: string; MESH_REGISTRY_CA_FILE?: string }): { meshRegistry?: { host: string; ca: string } } {
  if (!c.MESH_REGISTRY || !c.MESH_REGISTRY_CA_FILE) return {};
  let ca: string;
  try {
    ca = readFileSync(c.MESH_REGISTRY_CA_FILE, 'utf8');
  } catch {
    throw new DependencyUnavailable('MESH_REGISTRY_CA_FILE cannot be read: a new server could not pull from the mesh registry');
  }
  return { meshRegistry: { host: c.MESH_REGISTRY, ca } };
}

/** The deployer's URL as a machine reaches it: configured, else where this request came in. */
function deployerUrl(deps: RouteDeps, req: Request): string {
  if (deps.ctx.config.DEPLOYER_PUBLIC_URL) return deps.ctx.config.DEPLOYER_PUBLIC_URL;
  const a = (req.socket.localAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
  return `http://${isIP(a) === 6 ? `[${a}]` : a}:${req.socket.localPort}`;
}

/**
 * POST /servers/provision (and the seed's /infra/servers/provision): without a provider, the
 * engine certificate and one-time token for a machine the caller creates (201); with one,
 * multi-cloud-manager creates the machine with them and the answer is 202, the provisioning
 * record to follow at GET /servers/{id} (or /servers/provision/{id}) until ready or failed.
 */
export async function provisionServer(deps: RouteDeps, body: ProvisionBody, req: Request, principal: Principal | undefined) {
  // It hands out an engine's key and creates machines: an admin, or the orchestrator (its stacks' servers) by identity.
  assertDropletOrAdmin(principal, PROVISIONERS, 'provision servers');
  const id = (body.id ?? body.name)!;
  if (await deps.stores().servers.get(id)) throw new Conflict(`server '${id}' exists`);
  const machine = body.provider
    ? machineRequest(deps, { ...body, provider: body.provider, region: body.region!, size: body.size! }, deployerUrl(deps, req))
    : undefined;
  const { pending, material } = await beginProvisioning(deps, id, body, machine);
  if (!machine) return reply(201, { ...material, expires_at: pending.expires_at });
  return reply(202, { ...pendingView(pending), progress_url: `/servers/${id}` });
}

/**
 * A lost server's replacement (src/deploy/snapshot-replacement.ts): provisioned like any
 * other, from `image` (its snapshot), with a fresh certificate and one-time token. The
 * machine reports to DEPLOYER_PUBLIC_URL (there is no request to take an address from).
 */
export async function provisionReplacement(
  deps: RouteDeps,
  r: { id: string; environments?: string[]; provider: NonNullable<ProvisionBody['provider']>; region: string; size: string; image: string },
): Promise<PendingServer> {
  const url = deps.ctx.config.DEPLOYER_PUBLIC_URL;
  if (!url) throw new InvalidRequest('DEPLOYER_PUBLIC_URL is not set: a replacement machine would not know where to report');
  if (await deps.stores().servers.get(r.id)) throw new Conflict(`server '${r.id}' exists`);
  const machine = machineRequest(deps, r, url);
  return (await beginProvisioning(deps, r.id, { engine_port: 2376, ...(r.environments ? { environments: r.environments } : {}) }, machine))
    .pending;
}

function machineRequest(
  deps: RouteDeps,
  b: { provider: string; region: string; size: string; image?: string; expires_in_s?: number },
  url: string,
): MachineRequest {
  const c = deps.ctx.config;
  const allowFrom = allowFromFor(c.SERVER_ALLOW_FROM, url);
  if (b.provider !== 'local' && allowFrom.length === 0)
    throw new InvalidRequest(
      'set SERVER_ALLOW_FROM (the mesh addresses a new server opens its engine port to) or DEPLOYER_PUBLIC_URL with an IP address',
    );
  return {
    provider: b.provider,
    region: b.region,
    size: b.size,
    ...(b.image ? { image: b.image } : {}),
    deployerUrl: url,
    allowFrom,
    appPorts: c.DEPLOY_PORT_RANGE,
    ...(b.expires_in_s ? { reportTimeoutMs: b.expires_in_s * 1000 } : {}),
    ...meshRegistryTrust(c),
  };
}

/** The pending record, certificate and token; with a machine, multi-cloud-manager is asked for it (in the background). */
async function beginProvisioning(
  deps: RouteDeps,
  id: string,
  body: { engine_port: number; environments?: string[]; expires_in_s?: number },
  machine: MachineRequest | undefined,
) {
  const c = deps.ctx.config;
  const store = await pendingStore(deps);
  const cur = await store.getWithRevision(id);
  if (cur && isOpen(cur.value.status) && !isExpired(cur.value))
    throw new Conflict(`server '${id}' is already being provisioned (until ${cur.value.expires_at})`);
  const issued = await issueCertificate(await meshCaLoader(deps)(), { kind: 'server', commonName: id, addresses: [engineIdentity(id)] });
  const { token, sha256 } = newProvisionToken();
  const t = Date.now();
  const expiresIn = body.expires_in_s ?? (machine ? c.PROVISION_TIMEOUT_S + c.PROVISION_CREATE_TIMEOUT_S : 1800);
  const at = new Date(t).toISOString();
  const pending: PendingServer = {
    id,
    token_sha256: sha256,
    engine_port: body.engine_port,
    ...(body.environments ? { environments: body.environments } : {}),
    status: machine ? 'creating_instance' : 'waiting',
    ...(machine ? { provider: machine.provider, region: machine.region, size: machine.size } : {}),
    steps: [
      {
        at,
        status: machine ? 'creating_instance' : 'waiting',
        message: machine
          ? `asking multi-cloud-manager for a ${machine.size} machine in ${machine.provider}/${machine.region}${machine.image ? ` from image ${machine.image}` : ''}`
          : "engine certificate issued; waiting for the machine's ready report",
      },
    ],
    expires_at: new Date(t + expiresIn * 1000).toISOString(),
    created_at: at,
    updated_at: at,
  };
  const saved = cur ? await store.update([id], pending, cur.revision) : await store.create([id], pending);
  if (!saved) throw new Conflict(`server '${id}' is being provisioned by another request`);
  const material = {
    server_id: id,
    engine_port: body.engine_port,
    ca: issued.ca,
    cert: issued.cert,
    key: issued.key,
    callback_token: token,
    callback_path: `/servers/provision/${id}/ready`,
  };
  if (machine) {
    deps.ctx.emit('server.provisioning', { server_id: id, status: pending.status, message: pending.steps![0].message });
    void provisionerOf(deps).launch(material, machine);
  }
  return { pending, material };
}

/** The address of a multi-cloud-manager instance, asked over UDC. */
async function instanceAddress(deps: RouteDeps, instanceId: string): Promise<string> {
  const reply = await deps.ctx.send({
    target: 'multi-cloud-manager',
    message_type: 'query',
    payload: { action: 'instance.get', id: instanceId },
    timeout_ms: 5000,
    retry_count: 1,
  });
  if (reply.result !== 'success')
    throw new InvalidRequest(`multi-cloud-manager has no usable instance '${instanceId}': ${reply.error?.message ?? reply.result}`);
  // multi-cloud-manager's `instance.get` answers `{ instance }` in its unified model.
  const ip = (reply.data as { instance?: { ipv4?: string | null } } | undefined)?.instance?.ipv4;
  if (!ip) throw new DependencyUnavailable(`instance '${instanceId}' has no address yet`);
  return ip;
}

export function registerServerRoutes(api: Api, deps: RouteDeps): void {
  const meshCa = meshCaLoader(deps);
  const pendings = () => pendingStore(deps);

  /** A client certificate of the mesh CA for server `id`, sealed with the CA and the identity its engine must present. */
  const meshClientTls = async (id: string) => {
    const ca = await meshCa();
    const client = await issueCertificate(ca, { kind: 'client', commonName: `deployer-${id}`.slice(0, 64) });
    return { ca: ca.certPem, cert: client.cert, key: client.key, mesh: true, server_name: engineIdentity(id) };
  };

  api.get(
    '/mesh-ca',
    { summary: 'The mesh CA certificate every engine and the deployer trust (the key stays sealed)', tags: ['servers'] },
    async () => {
      const ca = await meshCa();
      return { certificate: ca.certPem, fingerprint_sha256: fingerprint(ca.certPem) };
    },
  );
  api.post(
    '/mesh-ca/engine-certificates',
    {
      scope: 'admin',
      summary:
        "Issue a Docker Engine's server certificate (its --tlscert/--tlskey, with --tlscacert the mesh CA): the key is returned once and never stored",
      body: engineCertificateBody,
      status: 201,
      tags: ['servers'],
    },
    async ({ body }) => {
      for (const a of body.addresses) if (isIP(a)) await checkAddress(a, 0, 'addresses');
      const issued = await issueCertificate(await meshCa(), {
        kind: 'server',
        commonName: body.server_id,
        addresses: [engineIdentity(body.server_id), ...body.addresses],
        days: body.days,
      });
      return { server_id: body.server_id, ...issued };
    },
  );
  api.post(
    '/servers',
    {
      scope: 'write',
      summary:
        'Add a Docker engine: local, ssh://, a multi-cloud-manager instance, or (admin) unix:// or tcp:// with TLS, tried before it is saved',
      body: serverBody,
      status: 201,
      tags: ['servers'],
    },
    async ({ body, principal }) => {
      let address = body.address;
      let dockerHost = body.docker_host;
      if (body.instance_id) {
        const ip = await instanceAddress(deps, body.instance_id);
        address ??= ip;
        dockerHost ??= `ssh://${body.ssh_user ?? 'root'}@${ip}`;
      }
      if (!address) address = dockerHost === 'local' || dockerHost!.startsWith('unix:') ? '127.0.0.1' : new URL(dockerHost!).hostname;
      await checkServer(principal, dockerHost!, address, !!body.tls);
      // tls 'mesh': a client certificate of the mesh CA for this server, sealed with the CA as the only trust anchor.
      const tls = body.tls === 'mesh' ? await meshClientTls(body.id) : body.tls;
      const server: Server & { environments?: string[] } = {
        id: body.id,
        docker_host: dockerHost!,
        address,
        ...(body.instance_id ? { instance_id: body.instance_id } : {}),
        ...(tls ? { tls_sealed: sealSecret(deps.ctx.config.DEPLOYER_MASTER_KEY, JSON.stringify(tls), `server/${body.id}/tls`) } : {}),
        ...(body.environments ? { environments: body.environments } : {}),
        created_at: now(),
      };
      if (await deps.stores().servers.get(body.id)) throw new Conflict(`server '${body.id}' exists`);
      if (server.docker_host.startsWith('tcp:')) await pingEngine(server, deps.ctx.config.DEPLOYER_MASTER_KEY);
      if (!(await deps.stores().servers.create([body.id], server))) throw new Conflict(`server '${body.id}' exists`);
      return publicView(server);
    },
  );
  api.get('/servers', { summary: 'List servers', query: paginationQuery, tags: ['servers'] }, async ({ query }) =>
    paginate((await deps.stores().servers.list()).map(publicView), query),
  );
  api.get('/servers/:id', { summary: 'One server', params, tags: ['servers'] }, async ({ params: p }) => {
    const s = await deps.stores().servers.get(p.id);
    if (s) return publicView(s);
    // Not registered yet: where its provisioning stands (a failed one says why).
    const pending = await (await pendings()).get(p.id);
    if (pending && pending.status !== 'ready') return { ...pendingView(pending), provisioning: true };
    throw new NotFound(`no server '${p.id}'`);
  });
  api.post(
    '/servers/provision',
    {
      // The admin scope, or the orchestrator by identity (checked by provisionServer).
      scope: 'write',
      summary:
        "Provision a server (admin, or the orchestrator by its identity). With provider, region and size: multi-cloud-manager creates the machine with the server's engine certificate and one-time token (cloud-init user_data, or a local engine) and the answer is 202, the progress at GET /servers/{id} until ready or failed (event server.provisioning). Without: the certificate and token for a machine created by hand (201)",
      body: provisionBody,
      status: 201,
      tags: ['servers'],
    },
    ({ body, req, principal }) => provisionServer(deps, body, req, principal),
  );
  api.get('/servers/provision/:id', { summary: 'Where provisioning a server stands', params, tags: ['servers'] }, async ({ params: p }) => {
    const cur = await (await pendings()).get(p.id);
    if (!cur) throw new NotFound(`no server '${p.id}' is being provisioned`);
    return pendingView(cur);
  });
  api.post(
    '/servers/provision/:id/ready',
    {
      scope: 'public',
      summary:
        "The machine's ready report (Authorization: Bearer <its one-time token>): its engine is tried over mutual TLS by identity, then registered as a server; the token is then spent",
      params,
      body: readyBody,
      status: 201,
      tags: ['servers'],
    },
    async ({ params: p, body, req }) => {
      const store = await pendings();
      const cur = await store.getWithRevision(p.id);
      if (!cur || !tokenMatches(bearer(req.header('authorization')), cur.value.token_sha256))
        throw new Unauthorized('unknown server or wrong token');
      if (cur.value.status === 'failed') throw new Conflict(`provisioning server '${p.id}' failed: ${cur.value.reason ?? 'see its steps'}`);
      if (!isOpen(cur.value.status)) throw new Conflict(`server '${p.id}' already reported ready: the token is spent`);
      if (isExpired(cur.value)) throw new Conflict(`the token for server '${p.id}' expired at ${cur.value.expires_at}`);
      if (body.server_id && body.server_id !== p.id) throw new InvalidRequest(`the report names server '${body.server_id}', not '${p.id}'`);
      const from = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      const address = body.address ?? from;
      if (!isIP(address)) throw new InvalidRequest('give the address the engine is reached at');
      const port = cur.value.engine_port;
      await checkAddress(address, port, 'address');
      const host = isIP(address) === 6 ? `[${address}]` : address;
      const server: Server & { environments?: string[] } = {
        id: p.id,
        docker_host: `tcp://${host}:${port}`,
        address,
        tls_sealed: sealSecret(deps.ctx.config.DEPLOYER_MASTER_KEY, JSON.stringify(await meshClientTls(p.id)), `server/${p.id}/tls`),
        ...(cur.value.environments ? { environments: cur.value.environments } : {}),
        ...(cur.value.provider && cur.value.instance_id ? { instance_id: `${cur.value.provider}:${cur.value.instance_id}` } : {}),
        created_at: now(),
      };
      await pingEngine(server, deps.ctx.config.DEPLOYER_MASTER_KEY);
      // Spend the token (compare-and-set: of two reports at once, one wins), then register. A
      // progress step written meanwhile (the provisioner noting the instance, which a local
      // engine's report can overtake) is not a second report: read again and try again.
      let spent = false;
      for (let attempt = 0, at = cur; attempt < 5; attempt++) {
        const ready: PendingServer = {
          ...at.value,
          status: 'ready',
          address,
          ...(body.docker_version ? { docker_version: body.docker_version } : {}),
          updated_at: now(),
          steps: [
            ...(at.value.steps ?? []),
            { at: now(), status: 'ready', message: `engine answered over mutual TLS at ${address}:${port}; registered` },
          ],
        };
        if (await store.update([p.id], ready, at.revision)) {
          spent = true;
          break;
        }
        const again = await store.getWithRevision(p.id);
        if (!again || !isOpen(again.value.status) || again.value.token_sha256 !== cur.value.token_sha256) break;
        at = again;
      }
      if (!spent) throw new Conflict(`server '${p.id}' already reported ready: the token is spent`);
      if (!(await deps.stores().servers.create([p.id], server))) throw new Conflict(`server '${p.id}' exists`);
      // The instance may have been noted on the record after this report read it (a local engine
      // reports before multi-cloud-manager's answer is written): read it again.
      const latest = await store.get(p.id);
      if (!server.instance_id && latest?.provider && latest.instance_id)
        await attachInstance(deps, p.id, `${latest.provider}:${latest.instance_id}`);
      provisionerOf(deps).ready(p.id);
      deps.ctx.emit('server.provisioned', { server_id: p.id, address, docker_version: body.docker_version });
      deps.ctx.emit('server.provisioning', { server_id: p.id, status: 'ready', message: 'registered' });
      return publicView(server);
    },
  );
  api.get(
    '/servers/:id/engine',
    {
      summary:
        "Is this server's Docker Engine reachable (GET /_ping, then its version, over the server's transport: mutual TLS for tcp://)? 200 when it answers, 503 otherwise",
      params,
      tags: ['servers'],
    },
    async ({ params: p }) => {
      const server = await deps.stores().servers.get(p.id);
      if (!server) throw new NotFound(`no server '${p.id}'`);
      const started = Date.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        const docker = new Docker({
          ...dockerOptions(server, deps.ctx.config.DEPLOYER_MASTER_KEY, deps.ctx.config.DOCKER_HOST),
          timeout: PING_TIMEOUT_MS,
        });
        const version = await Promise.race([
          docker.ping().then(() => docker.version()),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('timeout')), PING_TIMEOUT_MS + 1000);
          }),
        ]);
        return { server_id: server.id, ok: true, latency_ms: Date.now() - started, docker_version: version.Version };
      } catch (err) {
        return reply(503, { server_id: server.id, ok: false, latency_ms: Date.now() - started, error: engineFailure(err) });
      } finally {
        clearTimeout(timer);
      }
    },
  );
  api.patch(
    '/servers/:id',
    {
      scope: 'write',
      summary:
        "Change which environments a server serves (`<env>` or `<project>/<env>`): their next deploys spread over it, or leave it (their containers there are removed by that deploy); `max_replicas`: how many containers it takes when a lost server's replicas move (default 50)",
      params,
      body: z
        .object({ environments: environmentRefs.optional(), max_replicas: z.number().int().min(0).max(1000).optional() })
        .refine((b) => b.environments || b.max_replicas !== undefined, {
          message: 'give environments or max_replicas',
          path: ['environments'],
        }),
      tags: ['servers'],
    },
    async ({ params: p, body }) => {
      const st = deps.stores();
      for (let attempt = 0; attempt < 5; attempt++) {
        const cur = await st.servers.getWithRevision(p.id);
        if (!cur) throw new NotFound(`no server '${p.id}'`);
        const next: Server & { environments?: string[]; max_replicas?: number } = {
          ...cur.value,
          ...(body.environments ? { environments: body.environments } : {}),
          ...(body.max_replicas !== undefined ? { max_replicas: body.max_replicas } : {}),
        };
        if (await st.servers.update([p.id], next, cur.revision)) return publicView(next);
      }
      throw new Conflict(`server '${p.id}' changed meanwhile; try again`);
    },
  );
  api.post(
    '/servers/:id/drain',
    {
      scope: 'write',
      summary:
        "Drain a server: no new replicas are placed on it, and every service with a replica there is redeployed onto its environment's other servers (202, one deployment each); {draining: false} takes it back for the next deploys",
      params,
      body: z.object({ draining: z.boolean().default(true) }).default({ draining: true }),
      status: 202,
      tags: ['servers'],
    },
    async ({ params: p, body, principal }) => {
      if (p.id === LOCAL_SERVER_ID && body.draining) throw new Conflict('the local server cannot be drained');
      const st = deps.stores();
      let server: Server | undefined;
      for (let attempt = 0; attempt < 5 && !server; attempt++) {
        const cur = await st.servers.getWithRevision(p.id);
        if (!cur) throw new NotFound(`no server '${p.id}'`);
        const next: Server = { ...cur.value, draining: body.draining };
        if (!body.draining) delete next.draining;
        if (await st.servers.update([p.id], next, cur.revision)) server = next;
      }
      if (!server) throw new Conflict(`server '${p.id}' changed meanwhile; try again`);
      const moves = body.draining && deps.replacement ? await deps.replacement().moveOff(p.id, 'drain', principal?.sub ?? 'unknown') : [];
      deps.ctx.emit(body.draining ? 'server.drained' : 'server.undrained', { server_id: p.id, moves });
      return { server: publicView(server), moves };
    },
  );
  const policies = async () =>
    new KvCollection<ServerLossPolicy>(await deps.ctx.bus.kv(deps.ctx.config.KV_BUCKET, { history: 3 }), SERVER_LOSS_PREFIX);
  const envParams = z.object({ project: nameSchema, environment: nameSchema });
  api.get(
    '/projects/:project/environments/:environment/server-loss-policy',
    {
      summary:
        "What happens to this environment's replicas when one of its servers is declared down (on_server_loss: move, the default, none or replace_from_snapshot)",
      params: envParams,
      tags: ['servers'],
    },
    async ({ params: p }) => {
      if (!(await deps.stores().environments.get(p.project, p.environment)))
        throw new NotFound(`no environment '${p.environment}' in project '${p.project}'`);
      return (await (await policies()).get(p.project, p.environment)) ?? { ...p, on_server_loss: DEFAULT_SERVER_LOSS };
    },
  );
  api.put(
    '/projects/:project/environments/:environment/server-loss-policy',
    {
      scope: 'write',
      summary:
        "Set on_server_loss: `move` redeploys a lost server's replicas onto the environment's other servers (room permitting), `none` leaves them for an operator (the incident says so), `replace_from_snapshot` moves them too, provisions a replacement from the lost instance's newest snapshot and moves them onto it once ready (falling back to `move` without a snapshot or when the replacement fails)",
      params: envParams,
      body: z.object({ on_server_loss: z.enum(serverLossPolicies) }),
      tags: ['servers'],
    },
    async ({ params: p, body, principal }) => {
      if (!(await deps.stores().environments.get(p.project, p.environment)))
        throw new NotFound(`no environment '${p.environment}' in project '${p.project}'`);
      const policy: ServerLossPolicy = {
        ...p,
        on_server_loss: body.on_server_loss,
        updated_at: now(),
        updated_by: principal?.sub ?? 'unknown',
      };
      await (await policies()).put([p.project, p.environment], policy);
      return policy;
    },
  );
  api.post(
    '/servers/:id/move-back',
    {
      scope: 'write',
      summary:
        'A server declared down answers again: redeploy the services moved off it, so their spread includes it again (202, one deployment each); 422 while its engine does not answer',
      params,
      status: 202,
      tags: ['servers'],
    },
    async ({ params: p, principal }) => {
      const st = deps.stores();
      const server = await st.servers.get(p.id);
      if (!server) throw new NotFound(`no server '${p.id}'`);
      if (!deps.replacement) throw new Conflict('moving services is not available here');
      if (server.docker_host.startsWith('tcp:')) await pingEngine(server, deps.ctx.config.DEPLOYER_MASTER_KEY);
      if (server.draining) {
        const cur = await st.servers.getWithRevision(p.id);
        if (cur) {
          const { draining: _d, ...rest } = cur.value;
          await st.servers.update([p.id], rest, cur.revision);
        }
      }
      const moves = await deps.replacement().moveBack(p.id, principal?.sub ?? 'unknown');
      return { server_id: p.id, moves };
    },
  );
  api.delete(
    '/servers/:id',
    {
      scope: 'write',
      summary:
        "Remove a server: one that runs nothing at once (204); otherwise it is drained first (202: its replicas redeployed onto its environments' other servers, one deployment each) and removed once they have finished, its `removal` shown at GET /servers/{id} meanwhile (a move that fails leaves it, drained, with the reason)",
      params,
      tags: ['servers'],
    },
    async ({ params: p, principal }) => {
      const st = deps.stores();
      if (p.id === LOCAL_SERVER_ID) throw new Conflict('the local server cannot be removed');
      if (!(await st.servers.get(p.id))) throw new NotFound(`no server '${p.id}'`);
      const using = (await st.releases.list()).filter((r) => r.containers.some((c) => c.server_id === p.id));
      if (using.length === 0) {
        await st.servers.delete(p.id);
        deps.ctx.emit('server.removed', { server_id: p.id });
        return undefined;
      }
      if (!deps.replacement)
        throw new Conflict(`server '${p.id}' runs deployed services: drain it first (POST /servers/${p.id}/drain)`, {
          targets: using.map((r) => r.target_id),
        });
      // Drained (nothing new lands there) and marked as being removed, before the moves start.
      let server: Server | undefined;
      const removal = { status: 'draining', started_at: now(), by: principal?.sub ?? 'unknown' };
      for (let attempt = 0; attempt < 5 && !server; attempt++) {
        const cur = await st.servers.getWithRevision(p.id);
        if (!cur) throw new NotFound(`no server '${p.id}'`);
        const next = { ...cur.value, draining: true, removal };
        if (await st.servers.update([p.id], next, cur.revision)) server = next;
      }
      if (!server) throw new Conflict(`server '${p.id}' changed meanwhile; try again`);
      const { moves, finished } = await deps.replacement().drainAndRemove(p.id, principal?.sub ?? 'unknown');
      deps.ctx.emit('server.removing', { server_id: p.id, moves });
      void finished.catch((err) =>
        deps.ctx.logger.warn({ server_id: p.id, reason: (err as Error).message }, 'could not finish removing a server'),
      );
      return reply(202, { server: publicView(server), moves, progress_url: `/servers/${p.id}` });
    },
  );
}
