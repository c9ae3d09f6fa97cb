import type { Request } from 'express';
import { z } from 'zod';
import { InvalidRequest, NotFound, PayloadTooLarge, paginate, paginationQuery, reply, type Api } from '@droplet-mesh/udc-kit';
import { desiredResources } from '../domain/resources.js';
import { nameSchema, stackJsonSchema } from '../domain/stack-schema.js';
import { isDestroyable, type Orchestrator } from '../orchestrator.js';
import type { ApplyRecord, PlanRecord, StackRecord } from '../store.js';

const nameParams = z.object({ name: nameSchema });
const TEXT_LIMIT = 512 * 1024;
const EMPTY_FILE = { version: 1 as const, reconcile: false, servers: {}, projects: {}, routes: {} };

export interface StackRouteDeps {
  orchestrator: () => Orchestrator;
  applyWaitMaxMs: number;
  pollMs: number;
}

/** The request's stack file: YAML or JSON text (any non-JSON content type), a JSON object, or JSON {file: "<text>"}. */
async function readFile(req: Request): Promise<{ input: unknown; source: string }> {
  if (req.body !== undefined && typeof req.body === 'object' && req.body !== null) {
    const b = req.body as Record<string, unknown>;
    if (Object.keys(b).length === 1 && typeof b.file === 'string') return { input: b.file, source: b.file };
    return { input: b, source: JSON.stringify(b, null, 2) };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > TEXT_LIMIT) throw new PayloadTooLarge(`the stack file is larger than ${TEXT_LIMIT} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '')
    throw new InvalidRequest('send the stack file as the body (YAML or JSON)', { fields: [{ path: '(root)', message: 'empty body' }] });
  return { input: text, source: text };
}

export function planView(p: PlanRecord) {
  const { live: _live, file: _file, source: _source, ...rest } = p;
  return rest;
}

function stackView(s: StackRecord) {
  return {
    name: s.name,
    status: s.status,
    revision: s.revision,
    desired: s.desired,
    source: s.source,
    resources: Object.entries(s.managed)
      .map(([id, m]) => ({ id, kind: m.kind, created_by_stack: m.created, ...(m.ref ? { ref: m.ref } : {}) }))
      .sort((a, b) => a.id.localeCompare(b.id)),
    last_apply: s.last_apply ?? null,
    created_at: s.created_at,
    updated_at: s.updated_at,
  };
}

export function registerStackRoutes(api: Api, deps: StackRouteDeps): void {
  const orch = () => deps.orchestrator();

  /** Wait (bounded) for an apply this process runs; otherwise answer with its state now. */
  const settle = async (a: ApplyRecord, wait: boolean) => {
    const running = orch().finished(a.id);
    if (!wait || !running) return reply(202, a, { Location: `/stacks/${a.stack}/applies/${a.id}` });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((r) => {
      timer = setTimeout(() => r(undefined), deps.applyWaitMaxMs);
    });
    const done = await Promise.race([running, timeout]).finally(() => clearTimeout(timer));
    return done ? reply(200, done) : reply(202, a, { Location: `/stacks/${a.stack}/applies/${a.id}` });
  };
  const waitQuery = z.object({ wait: z.enum(['true', 'false']).optional() });

  api.get('/stacks/schema.json', { scope: 'public', summary: 'The JSON Schema of the stack file', tags: ['stacks'] }, () =>
    stackJsonSchema(),
  );

  api.get('/stacks', { summary: 'Stacks with their status and last apply', tags: ['stacks'] }, async () => ({
    items: (await orch().listStacks()).map((s) => ({
      name: s.name,
      status: s.status,
      revision: s.revision,
      resources: Object.keys(s.managed).length,
      last_apply: s.last_apply ?? null,
      updated_at: s.updated_at,
    })),
  }));

  api.get(
    '/stacks/:name',
    { summary: 'One stack: desired file, resources, last apply, last drift check, status', params: nameParams, tags: ['stacks'] },
    async ({ params }) => ({ ...stackView(await orch().stack(params.name)), last_drift: (await orch().lastDrift(params.name)) ?? null }),
  );

  api.post(
    '/stacks/:name/validate',
    { scope: 'read', summary: 'Check a stack file (YAML or JSON) without reading live state', params: nameParams, tags: ['stacks'] },
    async ({ params, req }) => {
      const { input } = await readFile(req);
      const file = orch().parse(params.name, input);
      return { valid: true, resources: desiredResources(params.name, file).map((r) => r.id) };
    },
  );

  api.post(
    '/stacks/:name/plan',
    {
      scope: 'write',
      summary: 'Plan a stack file (YAML or JSON body) against live state: ordered steps, before/after, cost delta',
      params: nameParams,
      status: 201,
      tags: ['stacks'],
    },
    async ({ params, req }) => {
      const { input, source } = await readFile(req);
      const file = orch().parse(params.name, input);
      return planView(await orch().plan(params.name, file, source));
    },
  );

  api.get(
    '/stacks/:name/plans/:id',
    { summary: 'One stored plan', params: nameParams.extend({ id: z.uuid() }), tags: ['stacks'] },
    async ({ params }) => {
      const p = await orch().getPlan(params.id);
      if (!p || p.stack !== params.name) throw new NotFound(`no plan '${params.id}' for stack '${params.name}'`);
      return planView(p);
    },
  );

  api.post(
    '/stacks/:name/apply',
    {
      scope: 'write',
      summary: 'Apply a plan (409 if live state changed since it was made); ?wait=true answers when it ends',
      params: nameParams,
      query: waitQuery,
      body: z.strictObject({ plan_id: z.uuid(), on_failure: z.enum(['rollback', 'stop']).default('rollback') }),
      tags: ['stacks'],
    },
    async ({ params, body, query }) => settle(await orch().apply(params.name, body.plan_id, body.on_failure), query.wait === 'true'),
  );

  api.get(
    '/stacks/:name/applies',
    { summary: "A stack's applies, newest first (steps summarised)", params: nameParams, query: paginationQuery, tags: ['stacks'] },
    async ({ params, query }) => {
      await orch().stack(params.name);
      const page = paginate(await orch().applies(params.name), query);
      return {
        ...page,
        items: page.items.map(({ steps, ...a }) => ({
          ...a,
          steps: steps.length,
          succeeded: steps.filter((s) => s.status === 'succeeded').length,
        })),
      };
    },
  );

  api.get(
    '/stacks/:name/applies/:id',
    {
      summary: 'One apply: each step with its status, the failed step, what was undone',
      params: nameParams.extend({ id: z.uuid() }),
      tags: ['stacks'],
    },
    async ({ params }) => {
      const a = await orch().getApply(params.id);
      if (!a || a.stack !== params.name) throw new NotFound(`no apply '${params.id}' for stack '${params.name}'`);
      return a;
    },
  );

  api.get(
    '/stacks/:name/applies/:id/events',
    {
      summary: "An apply's progress as Server-Sent Events: one `step` event per step change, then `status` with the final record",
      params: nameParams.extend({ id: z.uuid() }),
      tags: ['stacks'],
    },
    async ({ params, req, res }) => {
      let a = await orch().getApply(params.id);
      if (!a || a.stack !== params.name) throw new NotFound(`no apply '${params.id}' for stack '${params.name}'`);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      let closed = false;
      req.on('close', () => {
        closed = true;
      });
      const sent = new Map<number, string>();
      const deadline = Date.now() + deps.applyWaitMaxMs;
      const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      for (;;) {
        for (const st of a.steps) {
          const key = `${st.status}:${st.deployment_id ?? ''}:${st.detail ?? ''}`;
          if (sent.get(st.n) === key) continue;
          sent.set(st.n, key);
          if (st.status !== 'pending')
            send('step', {
              n: st.n,
              id: st.id,
              action: st.action,
              status: st.status,
              detail: st.detail,
              error: st.error,
              total: a.steps.length,
            });
        }
        if (a.status !== 'running') {
          send('status', { status: a.status, failed_step: a.failed_step, undo: a.undo, not_done: a.not_done });
          break;
        }
        if (closed || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, deps.pollMs));
        a = (await orch().getApply(params.id)) ?? a;
      }
      res.end();
    },
  );

  api.get(
    '/stacks/:name/drift',
    { summary: 'What differs between the last applied file and live state', params: nameParams, tags: ['stacks'] },
    async ({ params }) => orch().drift(params.name),
  );

  api.delete(
    '/stacks/:name',
    {
      scope: 'write',
      summary: 'Destroy what the stack created: without ?confirm=<name> answers the plan of deletions (400); with it, applies that plan',
      params: nameParams,
      query: waitQuery.extend({ confirm: z.string().max(64).optional(), on_failure: z.enum(['rollback', 'stop']).default('stop') }),
      tags: ['stacks'],
    },
    async ({ params, query }) => {
      const s = await orch().stack(params.name);
      if (!isDestroyable(s)) throw new NotFound(`stack '${params.name}' has nothing to destroy`);
      const p = await orch().plan(params.name, EMPTY_FILE, '', 'destroy');
      if (query.confirm !== params.name)
        throw new InvalidRequest(`destroying stack '${params.name}' needs ?confirm=${params.name}`, {
          fields: [{ path: 'confirm', message: `must be '${params.name}'` }],
          plan: planView(p),
        });
      return settle(await orch().apply(params.name, p.id, query.on_failure, { confirmedDestroy: true }), query.wait === 'true');
    },
  );

  api.post(
    '/stacks/:name/promote',
    {
      scope: 'write',
      summary: 'Deploy to environment `to` the images that run in `from` (every service both have); ?wait=true answers when done',
      params: nameParams,
      query: waitQuery,
      body: z.strictObject({
        from: nameSchema,
        to: nameSchema,
        project: nameSchema.optional(),
        on_failure: z.enum(['rollback', 'stop']).default('rollback'),
      }),
      tags: ['stacks'],
    },
    async ({ params, body, query }) => {
      const { plan, images } = await orch().promote(params.name, body.from, body.to, body.project);
      const r = await settle(await orch().apply(params.name, plan.id, body.on_failure), query.wait === 'true');
      return reply(r.status, { images, plan: planView(plan), apply: r.body }, r.headers);
    },
  );
}
