import { z } from 'zod';
import { Conflict, NotFound, paginate, paginationQuery, type Api } from '@droplet-mesh/udc-kit';
import { environmentInput, environmentPatch, nameSchema, type Environment } from '../domain/model.js';
import { now, type RouteDeps } from './route-deps.js';

const projectParams = z.object({ project: nameSchema });
const envParams = z.object({ project: nameSchema, environment: nameSchema });

/** Environments; their `env` values are plain configuration (secrets have their own routes). */
export function registerEnvironmentRoutes(api: Api, deps: RouteDeps): void {
  api.post(
    '/projects/:project/environments',
    {
      scope: 'write',
      summary: 'Add an environment (prod, uat, ...)',
      params: projectParams,
      body: environmentInput,
      status: 201,
      tags: ['environments'],
    },
    async ({ params: p, body }) => {
      if (!(await deps.stores().projects.get(p.project))) throw new NotFound(`no project '${p.project}'`);
      const t = now();
      const e: Environment = { ...body, project: p.project, created_at: t, updated_at: t };
      if (!(await deps.stores().environments.create([p.project, body.name], e)))
        throw new Conflict(`environment '${body.name}' exists in '${p.project}'`);
      return e;
    },
  );
  api.get(
    '/projects/:project/environments',
    { summary: 'List environments', params: projectParams, query: paginationQuery, tags: ['environments'] },
    async ({ params: p, query }) => paginate(await deps.stores().environments.list(p.project), query),
  );
  api.get(
    '/projects/:project/environments/:environment',
    { summary: 'One environment', params: envParams, tags: ['environments'] },
    async ({ params: p }) => {
      const e = await deps.stores().environments.get(p.project, p.environment);
      if (!e) throw new NotFound(`no environment '${p.environment}' in '${p.project}'`);
      return e;
    },
  );
  api.patch(
    '/projects/:project/environments/:environment',
    { scope: 'write', summary: 'Change an environment', params: envParams, body: environmentPatch, tags: ['environments'] },
    async ({ params: p, body }) => {
      const e = await deps.stores().environments.get(p.project, p.environment);
      if (!e) throw new NotFound(`no environment '${p.environment}' in '${p.project}'`);
      const next = { ...e, ...body, updated_at: now() };
      await deps.stores().environments.put([p.project, p.environment], next);
      return next;
    },
  );
  api.delete(
    '/projects/:project/environments/:environment',
    { scope: 'write', summary: 'Delete an environment with nothing deployed', params: envParams, tags: ['environments'] },
    async ({ params: p }) => {
      const st = deps.stores();
      if (!(await st.environments.get(p.project, p.environment))) throw new NotFound(`no environment '${p.environment}' in '${p.project}'`);
      const live = (await st.releases.list()).filter((r) => r.project === p.project && r.environment === p.environment);
      if (live.length > 0)
        throw new Conflict(
          `environment '${p.environment}' has deployed services: undeploy them first (DELETE /projects/${p.project}/services/{service}/deployment?environment=${p.environment})`,
          { targets: live.map((r) => r.target_id) },
        );
      for (const s of await st.secrets.list(p.project, p.environment)) await st.secrets.delete(p.project, p.environment, s.name);
      await st.environments.delete(p.project, p.environment);
    },
  );
  api.post(
    '/environments/:environment/promote',
    {
      scope: 'write',
      summary: 'Run in another environment (default prod) the exact image this environment runs',
      params: z.object({ environment: nameSchema }),
      body: z.object({ project: nameSchema, service: nameSchema, to: nameSchema.default('prod'), queue: z.boolean().default(true) }),
      status: 202,
      tags: ['environments'],
    },
    async ({ params: p, body, principal }) => {
      const { deployment, position } = await deps
        .deployer()
        .promote(body.project, body.service, p.environment, body.to, principal?.sub ?? 'unknown', { queue: body.queue });
      return {
        id: deployment.id,
        status: deployment.status,
        queue_position: position,
        promoted_from: deployment.promoted_from,
        image: deployment.source,
      };
    },
  );
}
