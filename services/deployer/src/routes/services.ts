import { z } from 'zod';
import { Conflict, InvalidRequest, NotFound, paginate, paginationQuery, type Api } from '@droplet-mesh/udc-kit';
import { nameSchema, placementInput, serviceInput, servicePatch, type Service } from '../domain/model.js';
import { now, type RouteDeps } from './route-deps.js';

const projectParams = z.object({ project: nameSchema });
const serviceParams = z.object({ project: nameSchema, service: nameSchema });
const placementParams = serviceParams.extend({ environment: nameSchema });

function checkShape(s: Pick<Service, 'type' | 'domain'>): void {
  if (s.type === 'worker' && s.domain)
    throw new InvalidRequest('a worker has no domain', { fields: [{ path: 'domain', message: 'only web services have a domain' }] });
}

export function registerServiceRoutes(api: Api, deps: RouteDeps): void {
  const project = async (name: string) => {
    if (!(await deps.stores().projects.get(name))) throw new NotFound(`no project '${name}'`);
  };
  api.post(
    '/projects/:project/services',
    { scope: 'write', summary: 'Add a web or worker service', params: projectParams, body: serviceInput, status: 201, tags: ['services'] },
    async ({ params: p, body }) => {
      await project(p.project);
      checkShape(body);
      const t = now();
      const service: Service = { ...body, project: p.project, created_at: t, updated_at: t };
      if (!(await deps.stores().services.create([p.project, body.name], service)))
        throw new Conflict(`service '${body.name}' exists in '${p.project}'`);
      return service;
    },
  );
  api.get(
    '/projects/:project/services',
    { summary: 'List services', params: projectParams, query: paginationQuery, tags: ['services'] },
    async ({ params: p, query }) => {
      await project(p.project);
      return paginate(await deps.stores().services.list(p.project), query);
    },
  );
  api.get(
    '/projects/:project/services/:service',
    { summary: 'One service', params: serviceParams, tags: ['services'] },
    async ({ params: p }) => {
      const s = await deps.stores().services.get(p.project, p.service);
      if (!s) throw new NotFound(`no service '${p.service}' in '${p.project}'`);
      return s;
    },
  );
  api.patch(
    '/projects/:project/services/:service',
    {
      scope: 'write',
      summary: 'Change a service (applies from the next deploy)',
      params: serviceParams,
      body: servicePatch,
      tags: ['services'],
    },
    async ({ params: p, body }) => {
      const s = await deps.stores().services.get(p.project, p.service);
      if (!s) throw new NotFound(`no service '${p.service}' in '${p.project}'`);
      const next = { ...s, ...body, updated_at: now() };
      checkShape(next);
      await deps.stores().services.put([p.project, p.service], next);
      return next;
    },
  );
  api.delete(
    '/projects/:project/services/:service',
    { scope: 'write', summary: 'Delete a service with nothing deployed', params: serviceParams, tags: ['services'] },
    async ({ params: p }) => {
      const st = deps.stores();
      if (!(await st.services.get(p.project, p.service))) throw new NotFound(`no service '${p.service}' in '${p.project}'`);
      const live = (await st.releases.list()).filter((r) => r.project === p.project && r.service === p.service);
      if (live.length > 0)
        throw new Conflict(
          `service '${p.service}' is deployed: undeploy it first (DELETE /projects/${p.project}/services/${p.service}/deployment)`,
          {
            targets: live.map((r) => r.target_id),
          },
        );
      // Its placements go with it (a service created again under the name starts clean).
      for (const pl of await st.placements.list(p.project, p.service)) await st.placements.delete(p.project, p.service, pl.environment);
      await st.services.delete(p.project, p.service);
    },
  );
  api.put(
    '/projects/:project/services/:service/placements/:environment',
    {
      scope: 'write',
      summary: 'Which servers run this service in an environment, with replicas',
      params: placementParams,
      body: placementInput,
      tags: ['services'],
    },
    async ({ params: p, body }) => {
      const st = deps.stores();
      if (!(await st.services.get(p.project, p.service))) throw new NotFound(`no service '${p.service}' in '${p.project}'`);
      if (!(await st.environments.get(p.project, p.environment))) throw new NotFound(`no environment '${p.environment}' in '${p.project}'`);
      for (const s of body.servers)
        if (!(await st.servers.get(s.server_id)))
          throw new InvalidRequest(`no server '${s.server_id}'`, {
            fields: [{ path: 'servers', message: `unknown server ${s.server_id}` }],
          });
      const placement = { ...body, project: p.project, service: p.service, environment: p.environment, updated_at: now() };
      await st.placements.put([p.project, p.service, p.environment], placement);
      return placement;
    },
  );
  api.delete(
    '/projects/:project/services/:service/placements/:environment',
    {
      scope: 'write',
      summary:
        "Remove a service's placement in an environment: its next deploy spreads it over the environment's servers again (or runs it on local); what runs now stays until then",
      params: placementParams,
      tags: ['services'],
    },
    async ({ params: p }) => {
      const st = deps.stores();
      if (!(await st.placements.get(p.project, p.service, p.environment)))
        throw new NotFound(`no placement of '${p.service}' in '${p.project}/${p.environment}'`);
      await st.placements.delete(p.project, p.service, p.environment);
    },
  );
  api.get(
    '/projects/:project/services/:service/placements/:environment',
    { summary: 'Placement of a service in an environment', params: placementParams, tags: ['services'] },
    async ({ params: p }) => {
      const placement = await deps.stores().placements.get(p.project, p.service, p.environment);
      if (!placement) throw new NotFound('no placement: the service runs on the local server with its default replicas');
      return placement;
    },
  );
}
