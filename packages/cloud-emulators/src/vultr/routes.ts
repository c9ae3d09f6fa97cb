import { Router, type Request } from 'express';
import { z } from 'zod';
import { EmulatorError } from '../core/errors.js';
import type { AdapterContext } from '../core/provider-adapter.js';
import { operatingSystems, plans, vultrRegions } from './catalog.js';
import { paginate } from './pagination.js';
import type { VultrState } from './state.js';
import { instanceView, planView, snapshotView } from './views.js';

const createBody = z.object({
  region: z.string(),
  plan: z.string(),
  os_id: z.number().int().optional(),
  snapshot_id: z.string().optional(),
  label: z.string().max(255).optional(),
  hostname: z.string().optional(),
  tags: z.array(z.string()).optional(),
  tag: z.string().optional(),
  enable_ipv6: z.boolean().optional(),
});
const bulkBody = z.object({ instance_ids: z.array(z.string()) });
const snapshotBody = z.object({ instance_id: z.string(), description: z.string().optional() });

/** The subset of Vultr API v2 that multi-cloud-manager uses, mounted under /v2. */
export function vultrRoutes(state: VultrState, ctx: AdapterContext): Router {
  const router = Router();
  const q = (req: Request) => req.query as Record<string, unknown>;

  router.get('/account', (_req, res) => {
    res.json({
      account: {
        name: 'Emulated Operator',
        email: 'operator@example.com',
        acls: ['manage_users', 'subscriptions', 'billing', 'provisioning'],
        balance: -25.5,
        pending_charges: 3.2,
        last_payment_date: '2026-10-01T00:00:00+00:00',
        last_payment_amount: -25.5,
      },
    });
  });

  router.get('/instances', (req, res) => {
    const query = q(req);
    let instances = [...state.instances.values()];
    if (typeof query.tag === 'string') instances = instances.filter((i) => i.tags.includes(query.tag as string));
    if (typeof query.label === 'string') instances = instances.filter((i) => i.label === query.label);
    if (typeof query.main_ip === 'string') instances = instances.filter((i) => i.ips?.ipv4 === query.main_ip);
    if (typeof query.region === 'string') instances = instances.filter((i) => i.region === query.region);
    const page = paginate(instances, query);
    res.json({ instances: page.slice.map((i) => instanceView(i)), meta: page.meta });
  });

  router.post('/instances', (req, res) => {
    const { instance, defaultPassword } = state.createInstance(parseBody(createBody, req.body));
    res.status(202).json({ instance: instanceView(instance, defaultPassword) });
  });

  for (const kind of ['start', 'halt', 'reboot'] as const) {
    router.post(`/instances/${kind}`, (req, res) => {
      const { instance_ids } = parseBody(bulkBody, req.body);
      for (const id of instance_ids) state.power(id, kind);
      res.status(204).end();
    });
    router.post(`/instances/:id/${kind}`, (req, res) => {
      state.power(req.params.id, kind);
      res.status(204).end();
    });
  }

  router.get('/instances/:id', (req, res) => {
    res.json({ instance: instanceView(state.getInstance(req.params.id)) });
  });

  router.delete('/instances/:id', (req, res) => {
    state.deleteInstance(req.params.id);
    res.status(204).end();
  });

  router.get('/plans', (req, res) => {
    const type = q(req).type;
    const list = typeof type === 'string' && type !== 'all' ? plans.filter((p) => p.type === type) : plans;
    const page = paginate(list, q(req));
    res.json({ plans: page.slice.map(planView), meta: page.meta });
  });

  router.get('/os', (req, res) => {
    const page = paginate(operatingSystems, q(req));
    res.json({ os: page.slice, meta: page.meta });
  });

  router.get('/regions', (req, res) => {
    const page = paginate(vultrRegions, q(req));
    res.json({ regions: page.slice, meta: page.meta });
  });

  router.get('/snapshots', (req, res) => {
    const description = q(req).description;
    const list = [...state.snapshots.values()].filter((s) => typeof description !== 'string' || s.description === description);
    const page = paginate(list, q(req));
    res.json({ snapshots: page.slice.map((s) => snapshotView(s, ctx.now())), meta: page.meta });
  });

  router.post('/snapshots', (req, res) => {
    const body = parseBody(snapshotBody, req.body);
    res.status(201).json({ snapshot: snapshotView(state.createSnapshot(body.instance_id, body.description), ctx.now()) });
  });

  router.get('/snapshots/:id', (req, res) => {
    const snapshot = state.snapshots.get(req.params.id);
    if (!snapshot) throw new EmulatorError(404, 'not_found', 'Invalid snapshot ID.');
    res.json({ snapshot: snapshotView(snapshot, ctx.now()) });
  });

  router.delete('/snapshots/:id', (req, res) => {
    if (!state.snapshots.delete(req.params.id)) throw new EmulatorError(404, 'not_found', 'Invalid snapshot ID.');
    res.status(204).end();
  });

  return router;
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new EmulatorError(400, 'invalid_input', `Invalid ${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return parsed.data;
}
