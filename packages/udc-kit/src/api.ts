import { tracingChannel } from 'node:diagnostics_channel';
import type { Request, Response, Router, RequestHandler, NextFunction } from 'express';
import { z } from 'zod';
import type { Logger } from 'pino';
import { assertScope, type Principal, type Scope } from './auth.js';
import { InvalidRequest, fieldErrors } from './errors.js';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteSpec<B extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, P extends z.ZodType = z.ZodType> {
  /** `public` routes skip JWT auth (they may do their own, e.g. X-Registry-Key). Default `read`. */
  scope?: Scope | 'public';
  summary?: string;
  body?: B;
  query?: Q;
  params?: P;
  /** Status of a plain return value. Default 200. */
  status?: number;
  tags?: string[];
}

export interface HandlerInput<B, Q, P> {
  body: B;
  query: Q;
  params: P;
  principal: Principal | undefined;
  req: Request;
  res: Response;
  log: Logger;
  correlationId: string;
}

/** Return `reply(...)` to choose the status or headers; return anything else to send it as JSON. */
export class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}
export function reply(status: number, body: unknown, headers?: Record<string, string>): Reply {
  return new Reply(status, body, headers);
}

export interface RouteRecord {
  method: Method;
  path: string;
  spec: RouteSpec;
}

type Infer<T> = T extends z.ZodType ? z.infer<T> : unknown;
type Handler<B, Q, P> = (input: HandlerInput<Infer<B>, Infer<Q>, Infer<P>>) => unknown | Promise<unknown>;

export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, where: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new InvalidRequest(`invalid ${where}`, { location: where, ...fieldErrors(r.error.issues) });
  return r.data;
}

/**
 * The caller's principal from a request, for a protected route: the principal when it is known
 * at once (a token verified before), else a promise of it; throws (or rejects) when the
 * caller is not authenticated. Given to the Api instead of an authenticate middleware, a
 * protected route is one handler, not two.
 */
export type PrincipalOf = (req: Request) => Principal | Promise<Principal>;

/** What the router's tracing channel reports to; while anyone listens, every request goes through the router. */
const routerTracing = tracingChannel('express.router.request');
const routerTraced = () =>
  routerTracing.start.hasSubscribers ||
  routerTracing.end.hasSubscribers ||
  routerTracing.asyncStart.hasSubscribers ||
  routerTracing.asyncEnd.hasSubscribers ||
  routerTracing.error.hasSubscribers;

/** A path with nothing for path-to-regexp to interpret (no parameter, wildcard, group or escape): matched by string equality. */
const STATIC_PATH = /^\/[A-Za-z0-9\-._~/]*$/;

/** The Express router's view of a layer and its route (not in @types/express). */
interface RouterLayer {
  route?: { path: string; methods: Record<string, boolean | undefined> };
  match(path: string): unknown;
}

/**
 * Declares routes once: validation, scope check and OpenAPI description come from the
 * same spec, and the route table lets the conformance suite find every protected route.
 */
export class Api {
  readonly routes: RouteRecord[] = [];
  /** GET routes with a static path that no earlier layer of the router matches: what `serve` answers without the router. */
  private readonly direct = new Map<string, { route: unknown; handler: RequestHandler }>();
  constructor(
    private router: Router,
    private authenticate: RequestHandler,
    private principalOf?: PrincipalOf,
  ) {}

  get<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType>(path: string, spec: RouteSpec<B, Q, P>, h: Handler<B, Q, P>) {
    this.add('get', path, spec, h);
  }
  post<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType>(path: string, spec: RouteSpec<B, Q, P>, h: Handler<B, Q, P>) {
    this.add('post', path, spec, h);
  }
  put<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType>(path: string, spec: RouteSpec<B, Q, P>, h: Handler<B, Q, P>) {
    this.add('put', path, spec, h);
  }
  patch<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType>(path: string, spec: RouteSpec<B, Q, P>, h: Handler<B, Q, P>) {
    this.add('patch', path, spec, h);
  }
  delete<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType>(path: string, spec: RouteSpec<B, Q, P>, h: Handler<B, Q, P>) {
    this.add('delete', path, spec, h);
  }

  /**
   * Answers a GET for a route with a static path directly, as the router would (same route
   * on `req.route`, same handler, errors to `next`), without walking the router's layers;
   * false when the request is not one of those (the router then takes it). Only for a
   * router that nothing but this Api adds to.
   */
  serve(req: Request, res: Response, next: NextFunction): boolean {
    if (req.method !== 'GET') return false;
    const url = req.url;
    const q = url.indexOf('?');
    const hit = this.direct.get(q === -1 ? url : url.slice(0, q));
    if (!hit || routerTraced()) return false;
    (req as { route: unknown }).route = hit.route;
    req.params = {};
    try {
      const out = hit.handler(req, res, next);
      if (isThenable(out)) out.then(undefined, (err: unknown) => next(err || new Error('Rejected promise')));
    } catch (err) {
      next(err);
    }
    return true;
  }

  private add(method: Method, path: string, spec: RouteSpec, h: Handler<any, any, any>): void {
    this.routes.push({ method, path, spec });
    const scope = spec.scope ?? 'read';
    // One handler after authentication (scope check, validation, the call, the answer), and
    // no promise unless the route's own handler returns one: a route is hit per request.
    const handle = (req: Request, res: Response) => {
      if (scope !== 'public') assertScope(req.principal, scope);
      const body = spec.body ? parseOrThrow(spec.body, req.body ?? {}, 'body') : req.body;
      const query = spec.query ? parseOrThrow(spec.query, req.query, 'query') : req.query;
      const params = spec.params ? parseOrThrow(spec.params, req.params, 'path') : req.params;
      const out = h(new Input(body, query, params, req, res));
      if (isThenable(out)) return Promise.resolve(out).then((v) => respond(res, v, spec.status));
      respond(res, out, spec.status);
    };
    const principalOf = this.principalOf;
    let handlers: RequestHandler[];
    if (scope === 'public') handlers = [handle];
    else if (principalOf) {
      // Authentication and the route in one handler: a known token costs no promise and no `next`.
      handlers = [
        (req, res) => {
          const p = principalOf(req);
          if (isThenable(p))
            return p.then((principal) => {
              req.principal = principal;
              return handle(req, res);
            });
          req.principal = p;
          return handle(req, res);
        },
      ];
    } else handlers = [this.authenticate, handle];
    const stack = (this.router as unknown as { stack?: RouterLayer[] }).stack ?? [];
    const earlier = stack.length;
    const route = this.router.route(path);
    route[method](...handlers);
    // Answered directly only when the router would pick this route for exactly this path:
    // no layer before it matches the path (a parameter route, a middleware).
    const first = stack
      .slice(0, earlier)
      .every((l) => !l.match(path) || (l.route !== undefined && !l.route.methods._all && !l.route.methods.get));
    if (method === 'get' && STATIC_PATH.test(path) && handlers.length === 1 && first && !this.direct.has(path))
      this.direct.set(path, { route, handler: handlers[0] });
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** The handler's input; `log` is a getter so that the request's child logger is built only when a handler logs. */
class Input<B, Q, P> implements HandlerInput<B, Q, P> {
  readonly principal: Principal | undefined;
  readonly correlationId: string;
  constructor(
    readonly body: B,
    readonly query: Q,
    readonly params: P,
    readonly req: Request,
    readonly res: Response,
  ) {
    this.principal = req.principal;
    this.correlationId = req.correlationId;
  }
  get log(): Logger {
    return this.req.log;
  }
}

function respond(res: Response, out: unknown, status: number | undefined): void {
  if (res.headersSent || res.writableEnded) return;
  if (out instanceof Reply) {
    for (const [k, v] of Object.entries(out.headers)) res.setHeader(k, v);
    if (out.body === undefined) res.status(out.status).end();
    else sendJson(res, out.status, out.body);
    return;
  }
  if (out === undefined) res.status(status ?? 204).end();
  else sendJson(res, status ?? 200, out);
}

/**
 * `res.status(s).json(body)` without Express's per-response work (content-type parsing,
 * charset, freshness): the same bytes and headers for the common case. A response whose
 * handler set its own Content-Type, ETag or Last-Modified, a bodiless status, or a body
 * JSON cannot encode goes through Express as before.
 */
function sendJson(res: Response, status: number, body: unknown): void {
  const text = status >= 200 && status !== 204 && status !== 304 ? JSON.stringify(body) : undefined;
  if (text === undefined || res.hasHeader('content-type') || res.hasHeader('etag') || res.hasHeader('last-modified')) {
    res.status(status).json(body);
    return;
  }
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  // Node sets Content-Length from the one chunk end() is given.
  res.end(text);
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      principal?: Principal;
      correlationId: string;
      log: Logger;
    }
  }
}

/** Page through an in-memory list: `?page=&per_page=`. */
export const paginationQuery = z.object({
  page: z.coerce.number().int().min(1).max(1_000_000).default(1),
  per_page: z.coerce.number().int().min(1).max(200).default(50),
});
export type PaginationQuery = z.infer<typeof paginationQuery>;

export function paginate<T>(items: T[], q: PaginationQuery) {
  const start = (q.page - 1) * q.per_page;
  const page = items.slice(start, start + q.per_page);
  const next = start + q.per_page < items.length ? q.page + 1 : null;
  return { items: page, pagination: { page: q.page, per_page: q.per_page, total: items.length, next_page: next } };
}
