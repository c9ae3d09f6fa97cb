// The Deploy API seed's routes (its dashboard called them under /api/v1 too), kept as thin
// aliases of the unified ones: same handlers, same validation, same errors.
import { z } from 'zod';
import { Conflict, NotFound, paginate, paginationQuery, type Api } from '@droplet-mesh/udc-kit';
import { deployConfigInput, nameSchema, type Server } from '../domain/model.js';
import { targetId } from '../domain/naming.js';
import { createDeployConfig, listDeployConfigs } from './deploy-configs.js';
import { deployCommandOf, historyQuery, listDeployments } from './deployments.js';
import { streamProgress } from './progress-stream.js';
import type { RouteDeps } from './route-deps.js';
import { provisionBody, provisionServer } from './servers.js';

export const INFRA_PREFIXES = ['/infra', '/api/v1/infra'] as const;

/**
 * The seed's rollback: a deployment id (`deployment_id` or `id`) to redeploy, or a service
 * (`project`, `service`, `environment`) to take back to the last good deploy before the one
 * it runs now.
 */
const rollbackBody = z
  .object({
    deployment_id: z.uuid().optional(),
    id: z.uuid().optional(),
    project: nameSchema.optional(),
    service: nameSchema.optional(),
    environment: nameSchema.optional(),
    queue: z.boolean().default(true),
  })
  .refine((b) => b.deployment_id || b.id || (b.project && b.service && b.environment), {
    message: 'give deployment_id, or project, service and environment',
  });

/** The deployment a seed rollback goes back to. */
async function rollbackTarget(deps: RouteDeps, b: z.infer<typeof rollbackBody>): Promise<string> {
  const direct = b.deployment_id ?? b.id;
  if (direct) return direct;
  const st = deps.stores();
  const tid = targetId(b.project!, b.service!, b.environment!);
  const release = await st.releases.get(tid);
  if (!release) throw new NotFound(`nothing is deployed for ${b.project}/${b.service} in '${b.environment}'`);
  const current = await st.deployments.get(release.deployment_id);
  const earlier = (await st.deployments.list())
    .filter(
      (d) =>
        d.target_id === tid &&
        d.status === 'succeeded' &&
        d.id !== release.deployment_id &&
        d.image !== release.image &&
        (!current || d.created_at < current.created_at),
    )
    .sort((x, y) => y.created_at.localeCompare(x.created_at));
  if (earlier.length === 0) throw new Conflict(`${tid} has no earlier successful deploy to roll back to`);
  return earlier[0].id;
}

const serverView = ({ tls_sealed, ...s }: Server) => ({ ...s, tls: !!tls_sealed });

export function registerInfraAliasRoutes(api: Api, deps: RouteDeps): void {
  const tags = ['legacy'];
  for (const prefix of INFRA_PREFIXES) {
    api.post(
      `${prefix}/deploy`,
      {
        scope: 'write',
        summary: 'Alias of POST /deployments (same JSON or multipart body), always answered as Server-Sent Events of its progress',
        tags,
      },
      async ({ req, res, principal }) => {
        const { deployment, position } = await deps.deployer().requestDeploy(await deployCommandOf(deps, req, principal?.sub ?? 'unknown'));
        const accepted = {
          id: deployment.id,
          status: deployment.status,
          queue_position: position,
          events_url: `/deployments/${deployment.id}/events`,
        };
        await streamProgress(deps, req, res, deployment.id, accepted);
      },
    );
    api.get(
      `${prefix}/deployments/history`,
      { summary: 'Alias of GET /deployments (deployment history, newest first)', query: historyQuery, tags },
      ({ query }) => listDeployments(deps, query),
    );
    api.post(
      `${prefix}/deployments/rollback`,
      {
        scope: 'write',
        summary:
          'Alias of POST /deployments/{id}/rollback: {deployment_id} or {project, service, environment} (back to the last good deploy before the current one), answered as Server-Sent Events',
        body: rollbackBody,
        tags,
      },
      async ({ body, req, res, principal }) => {
        const past = await rollbackTarget(deps, body);
        const { deployment, position } = await deps.deployer().rollback(past, principal?.sub ?? 'unknown', { queue: body.queue });
        const accepted = { id: deployment.id, status: deployment.status, queue_position: position, rollback_of: past };
        await streamProgress(deps, req, res, deployment.id, accepted);
      },
    );
    api.get(`${prefix}/servers`, { summary: 'Alias of GET /servers', query: paginationQuery, tags }, async ({ query }) =>
      paginate((await deps.stores().servers.list()).map(serverView), query),
    );
    api.post(
      `${prefix}/servers/provision`,
      {
        scope: 'write', // admin, or the orchestrator by identity: checked by provisionServer
        summary:
          'Alias of POST /servers/provision: {provider, region, size, name} has multi-cloud-manager create the machine and answers 202 with the progress at GET /servers/{name}',
        body: provisionBody,
        status: 201,
        tags,
      },
      ({ body, req, principal }) => provisionServer(deps, body, req, principal),
    );
    api.get(
      `${prefix}/snapshots`,
      {
        summary:
          'Alias of GET /deployments?status=succeeded: the successful deploys, newest first, each a point POST /deployments/{id}/rollback can return to (machine snapshots are multi-cloud-manager GET /snapshots)',
        query: historyQuery.omit({ status: true }),
        tags,
      },
      ({ query }) => listDeployments(deps, { ...query, status: 'succeeded' }),
    );
    api.get(`${prefix}/deploy-configs`, { summary: 'Alias of GET /deploy-configs', query: paginationQuery, tags }, ({ query }) =>
      listDeployConfigs(deps, query),
    );
    api.post(
      `${prefix}/deploy-configs`,
      { scope: 'write', summary: 'Alias of POST /deploy-configs', body: deployConfigInput, status: 201, tags },
      ({ body }) => createDeployConfig(deps, body),
    );
  }
}
