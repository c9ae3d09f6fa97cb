import { z } from 'zod';
import { NotFound, type Api } from '@droplet-mesh/udc-kit';
import { envVarName, nameSchema } from '../domain/model.js';
import { putSecret } from '../deploy/secrets.js';
import type { RouteDeps } from './route-deps.js';

const envParams = z.object({ project: nameSchema, environment: nameSchema });
const secretParams = envParams.extend({ name: envVarName });

/** Secrets are write-only: the API returns names and times, never values. */
export function registerSecretRoutes(api: Api, deps: RouteDeps): void {
  const environment = async (project: string, env: string) => {
    if (!(await deps.stores().environments.get(project, env))) throw new NotFound(`no environment '${env}' in '${project}'`);
  };
  api.get(
    '/projects/:project/environments/:environment/secrets',
    { summary: 'Secret names (never values)', params: envParams, tags: ['secrets'] },
    async ({ params: p }) => {
      await environment(p.project, p.environment);
      const list = await deps.stores().secrets.list(p.project, p.environment);
      return { items: list.map((s) => ({ name: s.name, updated_at: s.updated_at })).sort((a, b) => a.name.localeCompare(b.name)) };
    },
  );
  api.put(
    '/projects/:project/environments/:environment/secrets/:name',
    {
      scope: 'write',
      summary: 'Set a secret (stored AES-256-GCM encrypted, injected as an environment variable)',
      params: secretParams,
      body: z.object({ value: z.string().min(1).max(32_768) }),
      tags: ['secrets'],
    },
    async ({ params: p, body }) => {
      await environment(p.project, p.environment);
      await putSecret(deps.stores(), deps.ctx.config.DEPLOYER_MASTER_KEY, p.project, p.environment, p.name, body.value);
      return { name: p.name, updated_at: new Date().toISOString() };
    },
  );
  api.delete(
    '/projects/:project/environments/:environment/secrets/:name',
    { scope: 'write', summary: 'Delete a secret', params: secretParams, tags: ['secrets'] },
    async ({ params: p }) => {
      if (!(await deps.stores().secrets.get(p.project, p.environment, p.name))) throw new NotFound(`no secret '${p.name}'`);
      await deps.stores().secrets.delete(p.project, p.environment, p.name);
    },
  );
}
