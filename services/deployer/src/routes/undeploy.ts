import { z } from 'zod';
import { NotFound, type Api } from '@droplet-mesh/udc-kit';
import { nameSchema } from '../domain/model.js';
import { undeploy } from '../deploy/undeploy.js';
import type { RouteDeps } from './route-deps.js';

const params = z.object({ project: nameSchema, service: nameSchema });
const query = z.object({ environment: nameSchema.optional() });

export function registerUndeployRoutes(api: Api, deps: RouteDeps): void {
  api.delete(
    '/projects/:project/services/:service/deployment',
    {
      scope: 'write',
      summary:
        'Undeploy: in ?environment= (default every environment it runs in) remove its route, stop and remove its containers, drop its registry record and release; its deployment history stays. Then the service, environment and project can be deleted. 409 while a deploy of it runs.',
      params,
      query,
      tags: ['services'],
    },
    async ({ params: p, query: q, principal, log }) => {
      const st = deps.stores();
      if (!(await st.services.get(p.project, p.service))) throw new NotFound(`no service '${p.service}' in '${p.project}'`);
      if (q.environment && !(await st.environments.get(p.project, q.environment)))
        throw new NotFound(`no environment '${q.environment}' in '${p.project}'`);
      const releases = (await st.releases.list())
        .filter((r) => r.project === p.project && r.service === p.service && (!q.environment || r.environment === q.environment))
        .sort((a, b) => a.environment.localeCompare(b.environment));
      if (releases.length === 0)
        throw new NotFound(`nothing is deployed for ${p.project}/${p.service}${q.environment ? ` in '${q.environment}'` : ''}`);
      const deployer = deps.deployer();
      const ctx = deps.ctx;
      const undeployed = [];
      for (const r of releases)
        undeployed.push(
          await undeploy(
            {
              stores: st,
              engines: deps.engines(),
              lanes: deployer.lanes,
              send: (req) => ctx.send(req),
              registry: () => ctx.registry,
              emit: (type, data, level) => ctx.emit(type, data, level),
              logger: log,
            },
            r.target_id,
            principal?.sub ?? 'unknown',
          ),
        );
      return { undeployed };
    },
  );
}
