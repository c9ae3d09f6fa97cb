import { z } from 'zod';
import { Conflict, NotFound, paginate, paginationQuery, type Api, type PaginationQuery } from '@droplet-mesh/udc-kit';
import { deployConfigInput, nameSchema, type DeployConfig } from '../domain/model.js';
import { deployConfigView, storedSource, toSource } from './deploy-input.js';
import { now, type RouteDeps } from './route-deps.js';

const params = z.object({ name: nameSchema });

export async function createDeployConfig(deps: RouteDeps, body: z.infer<typeof deployConfigInput>) {
  const t = now();
  const source = storedSource(deps.ctx.config.DEPLOYER_MASTER_KEY, body.source);
  const c: DeployConfig = { ...body, source, created_at: t, updated_at: t };
  if (!(await deps.stores().deployConfigs.create([body.name], c))) throw new Conflict(`deploy config '${body.name}' exists`);
  return deployConfigView(c);
}

export async function listDeployConfigs(deps: RouteDeps, query: PaginationQuery) {
  return paginate((await deps.stores().deployConfigs.list()).map(deployConfigView), query);
}

/** Saved deploy configs: a named {project, service, environment, source} to deploy again in one call. */
export function registerDeployConfigRoutes(api: Api, deps: RouteDeps): void {
  api.post(
    '/deploy-configs',
    { scope: 'write', summary: 'Save a deploy config', body: deployConfigInput, status: 201, tags: ['deploy-configs'] },
    ({ body }) => createDeployConfig(deps, body),
  );
  api.get('/deploy-configs', { summary: 'List deploy configs', query: paginationQuery, tags: ['deploy-configs'] }, ({ query }) =>
    listDeployConfigs(deps, query),
  );
  api.get('/deploy-configs/:name', { summary: 'One deploy config', params, tags: ['deploy-configs'] }, async ({ params: p }) => {
    const c = await deps.stores().deployConfigs.get(p.name);
    if (!c) throw new NotFound(`no deploy config '${p.name}'`);
    return deployConfigView(c);
  });
  api.put(
    '/deploy-configs/:name',
    { scope: 'write', summary: 'Replace a deploy config', params, body: deployConfigInput.omit({ name: true }), tags: ['deploy-configs'] },
    async ({ params: p, body }) => {
      const old = await deps.stores().deployConfigs.get(p.name);
      const t = now();
      const source = storedSource(deps.ctx.config.DEPLOYER_MASTER_KEY, body.source);
      const c: DeployConfig = { ...body, source, name: p.name, created_at: old?.created_at ?? t, updated_at: t };
      await deps.stores().deployConfigs.put([p.name], c);
      return deployConfigView(c);
    },
  );
  api.delete(
    '/deploy-configs/:name',
    { scope: 'write', summary: 'Delete a deploy config', params, tags: ['deploy-configs'] },
    async ({ params: p }) => {
      if (!(await deps.stores().deployConfigs.get(p.name))) throw new NotFound(`no deploy config '${p.name}'`);
      await deps.stores().deployConfigs.delete(p.name);
    },
  );
  api.post(
    '/deploy-configs/:name/deploy',
    {
      scope: 'write',
      summary: 'Deploy a saved config',
      params,
      body: z.object({ queue: z.boolean().default(true) }).default({ queue: true }),
      status: 202,
      tags: ['deploy-configs'],
    },
    async ({ params: p, body, principal }) => {
      const c = await deps.stores().deployConfigs.get(p.name);
      if (!c) throw new NotFound(`no deploy config '${p.name}'`);
      const { deployment, position } = await deps
        .deployer()
        .requestDeploy({ ...c, source: toSource(c.source), queue: body.queue, requested_by: principal?.sub ?? 'unknown' });
      return { id: deployment.id, status: deployment.status, queue_position: position };
    },
  );
}
