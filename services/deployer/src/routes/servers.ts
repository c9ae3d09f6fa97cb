import { z } from 'zod';
import { Conflict, DependencyUnavailable, InvalidRequest, NotFound, paginate, paginationQuery, type Api } from '@droplet-mesh/udc-kit';
import { nameSchema, serverInput, type Server } from '../domain/model.js';
import { sealSecret } from '../domain/secrets-crypto.js';
import { LOCAL_SERVER_ID } from '../deploy/deployer.js';
import { now, type RouteDeps } from './route-deps.js';

const params = z.object({ id: nameSchema });
const publicView = ({ tls_sealed, ...s }: Server) => ({ ...s, tls: !!tls_sealed });

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
  api.post(
    '/servers',
    {
      scope: 'write',
      summary: 'Add a Docker engine: local, unix://, tcp:// (TLS), ssh://, or a multi-cloud-manager instance',
      body: serverInput,
      status: 201,
      tags: ['servers'],
    },
    async ({ body }) => {
      let address = body.address;
      let dockerHost = body.docker_host;
      if (body.instance_id) {
        const ip = await instanceAddress(deps, body.instance_id);
        address ??= ip;
        dockerHost ??= `ssh://${body.ssh_user ?? 'root'}@${ip}`;
      }
      if (!address) address = dockerHost === 'local' || dockerHost!.startsWith('unix:') ? '127.0.0.1' : new URL(dockerHost!).hostname;
      const server: Server = {
        id: body.id,
        docker_host: dockerHost!,
        address,
        ...(body.instance_id ? { instance_id: body.instance_id } : {}),
        ...(body.tls
          ? { tls_sealed: sealSecret(deps.ctx.config.DEPLOYER_MASTER_KEY, JSON.stringify(body.tls), `server/${body.id}/tls`) }
          : {}),
        created_at: now(),
      };
      if (!(await deps.stores().servers.create([body.id], server))) throw new Conflict(`server '${body.id}' exists`);
      return publicView(server);
    },
  );
  api.get('/servers', { summary: 'List servers', query: paginationQuery, tags: ['servers'] }, async ({ query }) =>
    paginate((await deps.stores().servers.list()).map(publicView), query),
  );
  api.get('/servers/:id', { summary: 'One server', params, tags: ['servers'] }, async ({ params: p }) => {
    const s = await deps.stores().servers.get(p.id);
    if (!s) throw new NotFound(`no server '${p.id}'`);
    return publicView(s);
  });
  api.delete(
    '/servers/:id',
    { scope: 'write', summary: 'Remove a server that runs nothing', params, tags: ['servers'] },
    async ({ params: p }) => {
      const st = deps.stores();
      if (p.id === LOCAL_SERVER_ID) throw new Conflict('the local server cannot be removed');
      if (!(await st.servers.get(p.id))) throw new NotFound(`no server '${p.id}'`);
      const using = (await st.releases.list()).filter((r) => r.containers.some((c) => c.server_id === p.id));
      if (using.length > 0) throw new Conflict(`server '${p.id}' runs deployed services`, { targets: using.map((r) => r.target_id) });
      await st.servers.delete(p.id);
    },
  );
}
