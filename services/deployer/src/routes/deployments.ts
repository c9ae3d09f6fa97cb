import { join } from 'node:path';
import type { Request } from 'express';
import { z } from 'zod';
import { InvalidRequest, NotFound, paginate, paginationQuery, parseOrThrow, reply, type Api } from '@droplet-mesh/udc-kit';
import { DEPLOYMENT_STATUSES, nameSchema, type Deployment } from '../domain/model.js';
import type { DeployCommand } from '../deploy/deployer.js';
import { readMultipartDeploy } from '../source/upload.js';
import { multipartFields, parseJsonDeploy, sourceView, toSource } from './deploy-input.js';
import { streamProgress, wantsEventStream } from './progress-stream.js';
import type { RouteDeps } from './route-deps.js';

const idParams = z.object({ id: z.uuid() });
export const historyQuery = paginationQuery.extend({
  project: nameSchema.optional(),
  service: nameSchema.optional(),
  environment: nameSchema.optional(),
  status: z.enum(DEPLOYMENT_STATUSES).optional(),
});

/** A deployment as the API shows it: no event log (that is /events), git credentials redacted, a queue position while queued. */
export function deploymentView(d: Deployment, position?: number) {
  const { events: _events, owner: _owner, ...rest } = d;
  return { ...rest, source: sourceView(d.source), ...(position !== undefined ? { queue_position: position } : {}) };
}

export type HistoryQuery = z.infer<typeof historyQuery>;

/** Deployment history, newest first, filtered and paged. */
export async function listDeployments(deps: RouteDeps, query: HistoryQuery) {
  const all = (await deps.stores().deployments.list())
    .filter(
      (d) =>
        (!query.project || d.project === query.project) &&
        (!query.service || d.service === query.service) &&
        (!query.environment || d.environment === query.environment) &&
        (!query.status || d.status === query.status),
    )
    .sort((a, b) => b.created_at.localeCompare(a.created_at));
  const page = paginate(all, query);
  return { ...page, items: await Promise.all(page.items.map(async (d) => deploymentView(d, await deps.deployer().queuePosition(d)))) };
}

/** The deploy a POST /deployments request asks for: JSON (a source or a saved config's name) or multipart with a tarball. */
export async function deployCommandOf(deps: RouteDeps, req: Request, by: string): Promise<DeployCommand> {
  let cmd: DeployCommand;
  if (req.is('multipart/form-data')) {
    const limit = deps.ctx.config.UPLOAD_LIMIT_MB * 1024 * 1024;
    const { fields, archive } = await readMultipartDeploy(req, join(deps.ctx.config.DATA_DIR, 'uploads'), limit);
    const f = parseOrThrow(multipartFields, fields, 'body');
    cmd = {
      ...f,
      source: { kind: 'upload', filename: archive.filename, bytes: archive.bytes, sha256: archive.sha256 },
      uploadPath: archive.path,
      requested_by: by,
    };
  } else {
    if (req.body === undefined) throw new InvalidRequest('send application/json or multipart/form-data');
    const body = parseJsonDeploy(req.body);
    if ('config' in body) {
      const c = await deps.stores().deployConfigs.get(body.config);
      if (!c) throw new NotFound(`no deploy config '${body.config}'`);
      cmd = {
        project: c.project,
        service: c.service,
        environment: c.environment,
        source: toSource(c.source),
        auto_rollback: c.auto_rollback,
        queue: body.queue,
        requested_by: by,
      };
    } else {
      cmd = { ...body, source: toSource(body.source), requested_by: by };
    }
  }
  return cmd;
}

export function registerDeploymentRoutes(api: Api, deps: RouteDeps): void {
  api.post(
    '/deployments',
    {
      scope: 'write',
      summary:
        'Deploy: JSON {project, service, environment, source: {image}|{git:{url,ref}}} or {config}, or multipart with a .tar.gz `source`. 202 with the id; ?wait=true or Accept: text/event-stream streams progress.',
      status: 202,
      tags: ['deployments'],
    },
    async ({ req, res, principal }) => {
      const { deployment, position } = await deps.deployer().requestDeploy(await deployCommandOf(deps, req, principal?.sub ?? 'unknown'));
      const accepted = {
        id: deployment.id,
        status: deployment.status,
        queue_position: position,
        events_url: `/deployments/${deployment.id}/events`,
      };
      if (wantsEventStream(req)) return streamProgress(deps, req, res, deployment.id, accepted);
      return reply(202, accepted, { Location: `/deployments/${deployment.id}` });
    },
  );

  api.get(
    '/deployments',
    {
      summary: 'Deployment history, newest first; filter by project, service, environment, status',
      query: historyQuery,
      tags: ['deployments'],
    },
    ({ query }) => listDeployments(deps, query),
  );

  api.get(
    '/deployments/:id',
    { summary: 'One deployment: status, steps with timings, image and digest', params: idParams, tags: ['deployments'] },
    async ({ params: p }) => {
      const d = await deps.stores().deployments.get(p.id);
      if (!d) throw new NotFound(`no deployment '${p.id}'`);
      return deploymentView(d, await deps.deployer().queuePosition(d));
    },
  );

  api.get(
    '/deployments/:id/events',
    {
      summary: 'Progress as Server-Sent Events (step, percent, log lines), ending with the final status',
      params: idParams,
      tags: ['deployments'],
    },
    async ({ params: p, req, res }) => {
      await streamProgress(deps, req, res, p.id);
    },
  );

  api.post(
    '/deployments/:id/rollback',
    {
      scope: 'write',
      summary: "Redeploy this deployment's exact image",
      params: idParams,
      body: z.object({ queue: z.boolean().default(true) }).default({ queue: true }),
      status: 202,
      tags: ['deployments'],
    },
    async ({ params: p, body, principal }) => {
      const { deployment, position } = await deps.deployer().rollback(p.id, principal?.sub ?? 'unknown', { queue: body.queue });
      return {
        id: deployment.id,
        status: deployment.status,
        queue_position: position,
        rollback_of: p.id,
        image: sourceView(deployment.source),
      };
    },
  );
}
