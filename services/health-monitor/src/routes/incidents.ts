import { z } from 'zod';
import { NotFound, paginate, paginationQuery, type Api } from '@droplet-mesh/udc-kit';
import { readyEngine, type RouteDeps } from './engine-access.js';

const idParams = z.object({ id: z.string().min(1).max(256) });
const targetId = z.string().min(1).max(256);
/** A silence lasts 1 s to 30 days. */
const duration = z
  .number()
  .int()
  .min(1)
  .max(30 * 24 * 3600);
const reason = z.string().trim().min(1).max(500).optional();
const silenceBody = z.strictObject({ duration_s: duration, reason });
const by = (p: { sub?: string } | undefined) => p?.sub ?? 'unknown';

const incidentQuery = paginationQuery.extend({
  status: z.enum(['open', 'recovering', 'resolved', 'active']).optional(),
  target_id: z.string().min(1).max(256).optional(),
});

export function registerIncidentRoutes(api: Api, deps: RouteDeps): void {
  api.get(
    '/incidents',
    { summary: 'Incidents, newest first (status=active means open or recovering)', query: incidentQuery, tags: ['incidents'] },
    ({ query }) => {
      const items = readyEngine(deps)
        .incidents.all()
        .filter((i) => !query.target_id || i.target_id === query.target_id)
        .filter((i) => !query.status || (query.status === 'active' ? i.status !== 'resolved' : i.status === query.status));
      return paginate(items, query);
    },
  );

  api.get(
    '/incidents/:id',
    { summary: 'One incident with its timeline', params: z.object({ id: z.string().min(1).max(256) }), tags: ['incidents'] },
    async ({ params }) => {
      const incident = await readyEngine(deps).incidents.get(params.id);
      if (!incident) throw new NotFound(`no incident '${params.id}'`);
      return incident;
    },
  );

  api.post(
    '/incidents/:id/ack',
    {
      scope: 'write',
      summary: 'Acknowledge an open incident: a person has it, no more notifications about it but its resolution (idempotent)',
      params: idParams,
      body: z.strictObject({ note: reason }).default({}),
      tags: ['incidents'],
    },
    ({ params, body, principal }) => readyEngine(deps).actions.acknowledge(params.id, by(principal), body.note),
  );

  api.post(
    '/incidents/:id/silence',
    {
      scope: 'write',
      summary: "Silence the incident's target for duration_s seconds: no notifications about it until then (POST /silences for any target)",
      params: idParams,
      body: silenceBody,
      status: 201,
      tags: ['incidents'],
    },
    async ({ params, body, principal }) => {
      const e = readyEngine(deps);
      const incident = await e.incidents.get(params.id);
      if (!incident) throw new NotFound(`no incident '${params.id}'`);
      return e.actions.silence(incident.target_id, body.duration_s, by(principal), body.reason);
    },
  );

  api.post(
    '/incidents/:id/recover',
    {
      scope: 'write',
      summary:
        'Run a recovery step now (restart through the deployer, reboot through multi-cloud-manager; default the first that applies), whatever the backoff or an exhausted policy say; resume=true starts the automatic policy over. 502 when the step is refused.',
      params: idParams,
      body: z
        .strictObject({ step: z.enum(['restart', 'reboot']).optional(), resume: z.boolean().default(false) })
        .default({ resume: false }),
      tags: ['incidents'],
    },
    ({ params, body, principal }) => readyEngine(deps).actions.recover(params.id, by(principal), body),
  );

  api.get('/silences', { summary: 'Targets whose notifications are held back, and until when', tags: ['incidents'] }, () => ({
    items: readyEngine(deps).actions.silences(),
  }));

  api.post(
    '/silences',
    {
      scope: 'write',
      summary: 'Silence a target (known or not yet) for duration_s seconds, e.g. for planned work; replaces its silence',
      body: silenceBody.extend({ target_id: targetId }),
      status: 201,
      tags: ['incidents'],
    },
    ({ body, principal }) => readyEngine(deps).actions.silence(body.target_id, body.duration_s, by(principal), body.reason),
  );

  api.delete(
    '/silences/:target_id',
    { scope: 'write', summary: "Lift a target's silence", params: z.object({ target_id: targetId }), tags: ['incidents'] },
    async ({ params, principal }) => {
      await readyEngine(deps).actions.unsilence(params.target_id, by(principal));
    },
  );
}
