import { z } from 'zod';
import { NotFound, type Api } from '@droplet-mesh/udc-kit';
import { nameSchema } from '../domain/model.js';
import { projectView, RegistryCredentials, registryCredentialsInput, registryHostParam } from '../registry/registry-credentials.js';
import type { RouteDeps } from './route-deps.js';

const projectParams = z.object({ project: nameSchema });
const hostParams = projectParams.extend({ host: registryHostParam });

/**
 * One project's pull credentials for private image registries: its deploys use them before the
 * mesh-wide ones (/registries), no other project's deploy does. Listed by host and username; the
 * password is never returned.
 */
export function registerProjectRegistryRoutes(api: Api, deps: RouteDeps): void {
  const credentials = async (project: string) => {
    if (!(await deps.stores().projects.get(project))) throw new NotFound(`no project '${project}'`);
    return new RegistryCredentials(deps.stores().projectRegistryCredentials, deps.ctx.config.DEPLOYER_MASTER_KEY, project);
  };
  api.get(
    '/projects/:project/registries',
    {
      summary: "A project's image registries with stored pull credentials (hosts and usernames, never passwords)",
      params: projectParams,
      tags: ['registries'],
    },
    async ({ params: p }) => {
      const c = await credentials(p.project);
      return { items: (await c.list()).map((r) => projectView(r, c.usernameOf(r))) };
    },
  );
  api.put(
    '/projects/:project/registries/:host',
    {
      scope: 'write',
      summary: "Store a project's pull credentials for an image registry (sealed; the password is never returned)",
      params: hostParams,
      body: registryCredentialsInput,
      tags: ['registries'],
    },
    async ({ params: p, body }) => projectView(await (await credentials(p.project)).put(p.host, body), body.username),
  );
  api.delete(
    '/projects/:project/registries/:host',
    { scope: 'write', summary: "Forget a project's pull credentials for an image registry", params: hostParams, tags: ['registries'] },
    async ({ params: p }) => {
      if (!(await (await credentials(p.project)).delete(p.host)))
        throw new NotFound(`no credentials are stored for registry '${p.host}' in project '${p.project}'`);
    },
  );
}
