import { z } from 'zod';
import { NotFound, type Api } from '@droplet-mesh/udc-kit';
import { publicView, RegistryCredentials, registryCredentialsInput, registryHostParam } from '../registry/registry-credentials.js';
import type { RouteDeps } from './route-deps.js';

const hostParams = z.object({ host: registryHostParam });

/**
 * Mesh-wide pull credentials for private image registries, one per registry host, used by every
 * deploy of an image from that host when its project stores none of its own
 * (/projects/:project/registries). Write-only: listed by host, never returned.
 */
export function registerRegistryRoutes(api: Api, deps: RouteDeps): void {
  const credentials = () => new RegistryCredentials(deps.stores().registryCredentials, deps.ctx.config.DEPLOYER_MASTER_KEY);
  api.get('/registries', { summary: 'Image registries with stored pull credentials (hosts only)', tags: ['registries'] }, async () => ({
    items: (await credentials().list()).map(publicView),
  }));
  api.put(
    '/registries/:host',
    {
      scope: 'admin',
      summary: 'Store pull credentials for an image registry (sealed; never returned)',
      params: hostParams,
      body: registryCredentialsInput,
      tags: ['registries'],
    },
    async ({ params, body }) => publicView(await credentials().put(params.host, body)),
  );
  api.delete(
    '/registries/:host',
    { scope: 'admin', summary: "Forget an image registry's pull credentials", params: hostParams, tags: ['registries'] },
    async ({ params }) => {
      if (!(await credentials().delete(params.host))) throw new NotFound(`no credentials are stored for registry '${params.host}'`);
    },
  );
}
