import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { EmulatorError } from '../core/errors.js';
import type { AdapterContext } from '../core/provider-adapter.js';
import { locations, serverTypes } from './catalog.js';
import { parseLabelSelector } from './label-selector.js';
import { paginate } from './pagination.js';
import { rootPassword, type HetznerState } from './state.js';
import { actionView, imageView, locationView, serverTypeView, serverView } from './views.js';

const labels = z.record(z.string(), z.string().max(63));
const createBody = z.object({
  name: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9.-]*$/, 'must be a valid hostname'),
  server_type: z.string(),
  image: z.string(),
  location: z.string().optional(),
  labels: labels.optional(),
  start_after_create: z.boolean().optional(),
});
const createImageBody = z.object({
  description: z.string().optional(),
  type: z.enum(['snapshot', 'backup']).optional(),
  labels: labels.optional(),
});
const powerCommands = ['poweron', 'poweroff', 'shutdown', 'reboot', 'reset'] as const;

/** The subset of Hetzner Cloud API v1 that multi-cloud-manager uses, mounted under /v1. */
export function hetznerRoutes(state: HetznerState, ctx: AdapterContext): Router {
  const router = Router();
  const q = (req: Request) => req.query as Record<string, unknown>;
  const listUrl = (req: Request) => `${ctx.origin()}${req.baseUrl}${req.path}`;
  const sendPage = <T>(req: Request, res: Response, key: string, items: T[], view: (item: T) => unknown) => {
    const page = paginate(items, q(req), listUrl(req));
    res.setHeader('Link', page.linkHeader);
    res.json({ [key]: page.slice.map(view), meta: page.meta });
  };
  const server = (s: Parameters<typeof serverView>[0]) => serverView(s, state.images.get(s.imageId));

  router.get('/servers', (req, res) => {
    let servers = [...state.servers.values()];
    const query = q(req);
    if (typeof query.name === 'string') servers = servers.filter((s) => s.name === query.name);
    if (typeof query.label_selector === 'string') {
      const matches = parseLabelSelector(query.label_selector);
      servers = servers.filter((s) => matches(s.labels));
    }
    const statuses = asList(query.status);
    if (statuses.length) servers = servers.filter((s) => statuses.includes(s.status));
    sendPage(req, res, 'servers', sortBy(servers, query.sort), server);
  });

  router.post('/servers', (req, res) => {
    const body = parseBody(createBody, req.body);
    const created = state.createServer(body);
    res.status(201).json({
      server: server(created.server),
      action: actionView(created.action, ctx.now()),
      next_actions: created.nextActions.map((a) => actionView(a, ctx.now())),
      root_password: rootPassword(),
    });
  });

  router.get('/servers/:id', (req, res) => {
    res.json({ server: server(state.getServer(idParam(req.params.id, 'server'))) });
  });

  router.delete('/servers/:id', (req, res) => {
    res.json({ action: actionView(state.deleteServer(idParam(req.params.id, 'server')), ctx.now()) });
  });

  router.get('/servers/:id/actions', (req, res) => {
    const id = idParam(req.params.id, 'server');
    state.getServer(id);
    let actions = [...state.actions.values()].filter((a) => a.resources.some((r) => r.type === 'server' && r.id === id));
    const statuses = asList(q(req).status);
    if (statuses.length) actions = actions.filter((a) => statuses.includes(actionView(a, ctx.now()).status));
    sendPage(req, res, 'actions', actions, (a) => actionView(a, ctx.now()));
  });

  router.get('/servers/:id/actions/:actionId', (req, res) => {
    const id = idParam(req.params.id, 'server');
    const action = state.getAction(idParam(req.params.actionId, 'action'));
    if (!action.resources.some((r) => r.type === 'server' && r.id === id))
      throw new EmulatorError(404, 'not_found', `action with ID '${action.id}' not found`);
    res.json({ action: actionView(action, ctx.now()) });
  });

  router.post('/servers/:id/actions/create_image', (req, res) => {
    const body = parseBody(createImageBody, req.body ?? {});
    const { image, action } = state.createImage(idParam(req.params.id, 'server'), body.description, body.labels);
    res.status(201).json({ image: imageView(image), action: actionView(action, ctx.now()) });
  });

  router.post('/servers/:id/actions/:command', (req, res) => {
    const command = powerCommands.find((c) => c === req.params.command);
    if (!command) throw new EmulatorError(404, 'not_found', `action '${req.params.command}' is not emulated`);
    res.status(201).json({ action: actionView(state.serverAction(idParam(req.params.id, 'server'), command), ctx.now()) });
  });

  router.get('/actions', (req, res) => {
    const ids = asList(q(req).id).map(Number);
    const actions = ids.length ? ids.map((id) => state.actions.get(id)).filter((a) => a !== undefined) : [...state.actions.values()];
    sendPage(req, res, 'actions', actions, (a) => actionView(a, ctx.now()));
  });

  router.get('/actions/:id', (req, res) => {
    res.json({ action: actionView(state.getAction(idParam(req.params.id, 'action')), ctx.now()) });
  });

  router.get('/server_types', (req, res) => {
    const name = q(req).name;
    sendPage(
      req,
      res,
      'server_types',
      serverTypes.filter((t) => typeof name !== 'string' || t.name === name),
      serverTypeView,
    );
  });

  router.get('/server_types/:id', (req, res) => {
    const type = serverTypes.find((t) => t.id === idParam(req.params.id, 'server_type'));
    if (!type) throw new EmulatorError(404, 'not_found', `server_type with ID '${req.params.id}' not found`);
    res.json({ server_type: serverTypeView(type) });
  });

  router.get('/images', (req, res) => {
    const query = q(req);
    let images = [...state.images.values()];
    const types = asList(query.type);
    if (types.length) images = images.filter((i) => types.includes(i.type));
    const statuses = asList(query.status);
    if (statuses.length) images = images.filter((i) => statuses.includes(i.status));
    if (typeof query.name === 'string') images = images.filter((i) => i.name === query.name);
    if (typeof query.label_selector === 'string') {
      const matches = parseLabelSelector(query.label_selector);
      images = images.filter((i) => matches(i.labels));
    }
    if (query.architecture === 'arm') images = [];
    sendPage(req, res, 'images', sortBy(images, query.sort), imageView);
  });

  router.get('/images/:id', (req, res) => {
    const image = state.images.get(idParam(req.params.id, 'image'));
    if (!image) throw new EmulatorError(404, 'not_found', `image with ID '${req.params.id}' not found`);
    res.json({ image: imageView(image) });
  });

  router.get('/locations', (req, res) => {
    const name = q(req).name;
    sendPage(
      req,
      res,
      'locations',
      locations.filter((l) => typeof name !== 'string' || l.name === name),
      locationView,
    );
  });

  router.get('/locations/:id', (req, res) => {
    const location = locations.find((l) => l.id === idParam(req.params.id, 'location'));
    if (!location) throw new EmulatorError(404, 'not_found', `location with ID '${req.params.id}' not found`);
    res.json({ location: locationView(location) });
  });

  return router;
}

function asList(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).flatMap((v) => (typeof v === 'string' ? v.split(',') : []));
}

/** `sort=id|id:asc|id:desc|name|name:asc|name:desc|created...`, first key wins. */
function sortBy<T extends { id: number; name: string | null; created: number }>(items: T[], sort: unknown): T[] {
  const [key, dir] = (asList(sort)[0] ?? 'id:asc').split(':') as [string, string | undefined];
  const sign = dir === 'desc' ? -1 : 1;
  const field = (item: T): number | string => (key === 'name' ? (item.name ?? '') : key === 'created' ? item.created : item.id);
  return [...items].sort((a, b) => (field(a) < field(b) ? -sign : field(a) > field(b) ? sign : 0));
}

function idParam(raw: string | string[] | undefined, kind: string): number {
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(n) || n < 1)
    throw new EmulatorError(404, 'not_found', `${kind} with ID '${String(raw)}' not found`);
  return n;
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || 'body';
    throw new EmulatorError(422, 'invalid_input', `invalid input in field '${field}'`, {
      fields: [{ name: field, messages: parsed.error.issues.map((i) => i.message) }],
    });
  }
  return parsed.data;
}
