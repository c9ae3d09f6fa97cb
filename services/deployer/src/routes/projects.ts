import { z } from 'zod';
import { Conflict, NotFound, paginate, paginationQuery, type Api } from '@droplet-mesh/udc-kit';
import { nameSchema, projectInput } from '../domain/model.js';
import { RegistryCredentials } from '../registry/registry-credentials.js';
import { now, type RouteDeps } from './route-deps.js';

const params = z.object({ project: nameSchema });

export function registerProjectRoutes(api: Api, deps: RouteDeps): void {
  api.post(
    '/projects',
    { scope: 'write', summary: 'Create a project', body: projectInput, status: 201, tags: ['projects'] },
    async ({ body }) => {
      const t = now();
      const project = { ...body, created_at: t, updated_at: t };
      if (!(await deps.stores().projects.create([body.name], project))) throw new Conflict(`project '${body.name}' exists`);
      return project;
    },
  );
  api.get('/projects', { summary: 'List projects', query: paginationQuery, tags: ['projects'] }, async ({ query }) =>
    paginate(
      (await deps.stores().projects.list()).sort((a, b) => a.name.localeCompare(b.name)),
      query,
    ),
  );
  api.get(
    '/projects/:project',
    { summary: 'One project with its services and environments', params, tags: ['projects'] },
    async ({ params: p }) => {
      const s = deps.stores();
      const project = await s.projects.get(p.project);
      if (!project) throw new NotFound(`no project '${p.project}'`);
      return {
        ...project,
        services: (await s.services.list(p.project)).map((x) => x.name),
        environments: (await s.environments.list(p.project)).map((x) => x.name),
      };
    },
  );
  api.patch(
    '/projects/:project',
    { scope: 'write', summary: 'Update a project', params, body: projectInput.omit({ name: true }), tags: ['projects'] },
    async ({ params: p, body }) => {
      const s = deps.stores();
      const project = await s.projects.get(p.project);
      if (!project) throw new NotFound(`no project '${p.project}'`);
      const next = { ...project, ...body, updated_at: now() };
      await s.projects.put([p.project], next);
      return next;
    },
  );
  api.delete(
    '/projects/:project',
    { scope: 'write', summary: 'Delete a project without services', params, tags: ['projects'] },
    async ({ params: p }) => {
      const s = deps.stores();
      if (!(await s.projects.get(p.project))) throw new NotFound(`no project '${p.project}'`);
      const services = await s.services.list(p.project);
      if (services.length > 0) throw new Conflict(`project '${p.project}' still has services`, { services: services.map((x) => x.name) });
      // Nothing of it may outlive it: a project made again under the name would inherit it.
      for (const e of await s.environments.list(p.project)) {
        for (const secret of await s.secrets.list(p.project, e.name)) await s.secrets.delete(p.project, e.name, secret.name);
        await s.environments.delete(p.project, e.name);
      }
      const credentials = new RegistryCredentials(s.projectRegistryCredentials, deps.ctx.config.DEPLOYER_MASTER_KEY, p.project);
      for (const c of await credentials.list()) await credentials.delete(c.host);
      await s.projects.delete(p.project);
    },
  );
}
