import { Router, type Request } from 'express';
import { z } from 'zod';
import { EmulatorError } from '../core/errors.js';
import type { AdapterContext } from '../core/provider-adapter.js';
import { distributionImages, regions, sizes } from './catalog.js';
import { paginate, parsePageQuery } from './pagination.js';
import type { DigitalOceanState } from './state.js';
import { actionView, dropletSnapshotView, dropletView, imageView, regionView, sizeView, snapshotView } from './views.js';

const dropletName = z
  .string()
  .max(255)
  .regex(/^[a-zA-Z0-9]?[a-z0-9A-Z.-]*[a-z0-9A-Z]$/, 'must be a valid hostname');
const createBody = z.object({
  name: dropletName,
  region: z.string().optional(),
  size: z.string(),
  image: z.union([z.string(), z.number().int()]),
  tags: z.array(z.string().regex(/^[a-zA-Z0-9_\-:]+$/, 'tags may contain letters, numbers, colons, dashes, and underscores')).optional(),
  ipv6: z.boolean().optional(),
});
const actionBody = z.object({ type: z.string(), name: z.string().optional() });

/** The subset of DigitalOcean API v2 that multi-cloud-manager uses, mounted under /v2. */
export function digitalOceanRoutes(state: DigitalOceanState, ctx: AdapterContext): Router {
  const router = Router();
  const listUrl = (req: Request) => `${ctx.origin()}${req.baseUrl}${req.path}`;
  const query = (req: Request) => req.query as Record<string, unknown>;

  router.get('/account', (_req, res) => {
    res.json({
      account: {
        droplet_limit: 25,
        floating_ip_limit: 3,
        email: 'operator@example.com',
        name: 'Emulated Operator',
        uuid: 'b6fc48dbf6d9906cace5f2ea0f3d7f4d5f1ab09f',
        email_verified: true,
        status: 'active',
        status_message: '',
        team: { uuid: '5df3e3004a17e242b7c20ca6c9fc25b701a47ece', name: 'Emulated Team' },
      },
    });
  });

  router.get('/droplets', (req, res) => {
    const q = query(req);
    let droplets = [...state.droplets.values()];
    if (typeof q.tag_name === 'string') droplets = droplets.filter((d) => d.tags.includes(q.tag_name as string));
    if (typeof q.name === 'string') droplets = droplets.filter((d) => d.name === q.name);
    const page = paginate(droplets, parsePageQuery(q), listUrl(req), q);
    res.json({ droplets: page.slice.map(dropletView), links: page.links, meta: page.meta });
  });

  router.post('/droplets', (req, res) => {
    const body = parseBody(createBody, req.body);
    const { droplet, action } = state.createDroplet(body);
    res.status(202).json({
      droplet: dropletView(droplet),
      links: { actions: [{ id: action.id, rel: 'create', href: `${ctx.origin()}/v2/actions/${action.id}` }] },
    });
  });

  router.delete('/droplets', (req, res) => {
    const tag = query(req).tag_name;
    if (typeof tag !== 'string' || !tag)
      throw new EmulatorError(422, 'unprocessable_entity', 'tag_name is required to delete Droplets by tag.');
    state.deleteByTag(tag);
    res.status(204).end();
  });

  router.get('/droplets/:id', (req, res) => {
    res.json({ droplet: dropletView(state.getDroplet(idParam(req.params.id))) });
  });

  router.delete('/droplets/:id', (req, res) => {
    state.deleteDroplet(idParam(req.params.id));
    res.status(204).end();
  });

  router.post('/droplets/:id/actions', (req, res) => {
    const body = parseBody(actionBody, req.body);
    const action = state.dropletAction(idParam(req.params.id), body.type, body.name);
    res.status(201).json({ action: actionView(action, ctx.now()) });
  });

  router.get('/droplets/:id/actions', (req, res) => {
    const droplet = state.getDroplet(idParam(req.params.id));
    const actions = [...state.actions.values()].filter((a) => a.resourceId === droplet.id).reverse();
    const page = paginate(actions, parsePageQuery(query(req)), listUrl(req), query(req));
    res.json({ actions: page.slice.map((a) => actionView(a, ctx.now())), links: page.links, meta: page.meta });
  });

  router.get('/droplets/:id/actions/:actionId', (req, res) => {
    const droplet = state.getDroplet(idParam(req.params.id));
    const action = state.getAction(idParam(req.params.actionId));
    if (action.resourceId !== droplet.id) throw new EmulatorError(404, 'not_found', 'The resource you were accessing could not be found.');
    res.json({ action: actionView(action, ctx.now()) });
  });

  router.get('/droplets/:id/snapshots', (req, res) => {
    const droplet = state.getDroplet(idParam(req.params.id));
    const snapshots = [...state.snapshots.values()].filter((s) => s.dropletId === droplet.id);
    const page = paginate(snapshots, parsePageQuery(query(req)), listUrl(req), query(req));
    res.json({ snapshots: page.slice.map(dropletSnapshotView), links: page.links, meta: page.meta });
  });

  router.get('/actions', (req, res) => {
    const actions = [...state.actions.values()].reverse();
    const page = paginate(actions, parsePageQuery(query(req)), listUrl(req), query(req));
    res.json({ actions: page.slice.map((a) => actionView(a, ctx.now())), links: page.links, meta: page.meta });
  });

  router.get('/actions/:id', (req, res) => {
    res.json({ action: actionView(state.getAction(idParam(req.params.id)), ctx.now()) });
  });

  router.get('/sizes', (req, res) => {
    const page = paginate(sizes, parsePageQuery(query(req)), listUrl(req), query(req));
    res.json({ sizes: page.slice.map(sizeView), links: page.links, meta: page.meta });
  });

  router.get('/regions', (req, res) => {
    const page = paginate(
      regions.map((r) => r.slug),
      parsePageQuery(query(req)),
      listUrl(req),
      query(req),
    );
    res.json({ regions: page.slice.map(regionView), links: page.links, meta: page.meta });
  });

  router.get('/images', (req, res) => {
    const q = query(req);
    let images = [...distributionImages, ...state.snapshotImages()];
    if (q.type === 'distribution') images = distributionImages;
    else if (q.type === 'application') images = [];
    if (q.private === 'true') images = images.filter((i) => i.type !== 'base');
    const page = paginate(images, parsePageQuery(q), listUrl(req), q);
    res.json({ images: page.slice.map(imageView), links: page.links, meta: page.meta });
  });

  router.get('/snapshots', (req, res) => {
    const q = query(req);
    const snapshots = q.resource_type === 'volume' ? [] : [...state.snapshots.values()];
    const page = paginate(snapshots, parsePageQuery(q), listUrl(req), q);
    res.json({ snapshots: page.slice.map(snapshotView), links: page.links, meta: page.meta });
  });

  router.get('/snapshots/:id', (req, res) => {
    const snapshot = state.snapshots.get(Number(req.params.id));
    if (!snapshot) throw new EmulatorError(404, 'not_found', 'The resource you were accessing could not be found.');
    res.json({ snapshot: snapshotView(snapshot) });
  });

  router.delete('/snapshots/:id', (req, res) => {
    const id = Number(req.params.id);
    const snapshot = state.snapshots.get(id);
    if (!snapshot) throw new EmulatorError(404, 'not_found', 'The resource you were accessing could not be found.');
    state.snapshots.delete(id);
    const droplet = state.droplets.get(snapshot.dropletId);
    if (droplet) droplet.snapshotIds = droplet.snapshotIds.filter((s) => s !== id);
    res.status(204).end();
  });

  return router;
}

function idParam(raw: string | string[] | undefined): number {
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(n) || n < 1)
    throw new EmulatorError(404, 'not_found', 'The resource you were accessing could not be found.');
  return n;
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new EmulatorError(422, 'unprocessable_entity', `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return parsed.data;
}
