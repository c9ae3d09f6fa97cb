import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { EmulatorError } from './errors.js';
import { FaultInjector } from './faults.js';
import { loadContract, type OpenApiContract } from './openapi-contract.js';
import type { AdapterContext, ProviderAdapter } from './provider-adapter.js';
import { resolveOpenapiDir } from './spec-dir.js';
import type { ContractViolation, EmulatorHandle, EmulatorOptions, RequestRecord } from './types.js';

export const defaultToken = 'test-token';

/** Builds the provider's Express app around `makeAdapter`, listens on 127.0.0.1 and returns the handle. */
export async function startEmulatorServer(
  makeAdapter: (ctx: AdapterContext) => ProviderAdapter,
  options: EmulatorOptions = {},
): Promise<EmulatorHandle> {
  const now = options.now ?? Date.now;
  const token = options.token ?? defaultToken;
  let origin = '';
  const adapter = makeAdapter({ now, origin: () => origin, actionDurationMs: options.actionDurationMs ?? 1500 });
  const contract =
    options.validateContract === false ? undefined : await loadContract(resolveOpenapiDir(options.openapiDir), adapter.specFile);

  const requests: RequestRecord[] = [];
  const contractViolations: ContractViolation[] = [];
  const faults = new FaultInjector();
  let latencyMs = checkLatency(options.latencyMs ?? 0);

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

  app.use((req: Request, res: Response, next: NextFunction) => {
    const at = now();
    const path = req.path; // captured now: routers mounted under the prefix rewrite req.path
    res.locals.requestId = randomUUID();
    res.setHeader('x-request-id', res.locals.requestId as string);
    res.on('finish', () =>
      requests.push({ method: req.method, path, query: { ...(req.query as Record<string, unknown>) }, status: res.statusCode, at }),
    );
    if (latencyMs > 0) setTimeout(next, latencyMs);
    else next();
  });
  app.use(express.json({ limit: '1mb' }));
  if (contract) app.use(contractCheck(contract, adapter, contractViolations));
  app.use((req: Request, res: Response, next: NextFunction) => {
    const t = now();
    adapter.settle(t);
    const rate = adapter.rateLimit.check(t);
    for (const [k, v] of Object.entries(rate.headers)) res.setHeader(k, v);
    if (!rate.allowed) throw adapter.errorFor(429);
    const fault = faults.take(req.method, req.path);
    if (fault) {
      if (fault.status === 429) for (const [k, v] of Object.entries(adapter.injected429Headers(t))) res.setHeader(k, v);
      throw adapter.errorFor(fault.status);
    }
    if (!tokenMatches(req.headers.authorization, token)) throw adapter.errorFor(401);
    const paging = req.method === 'GET' ? faults.pagingFor(req.path) : undefined;
    if (paging) {
      // Rewrites list pages only (a body with paging meta), after the route has built them.
      const json = res.json.bind(res);
      const listUrl = `${origin}${req.path}`;
      res.json = (body: unknown) => {
        if (res.statusCode < 300 && isListPage(body))
          adapter.misPage(body, paging, req.query as Record<string, unknown>, listUrl, (k, v) => res.setHeader(k, v));
        return json(body);
      };
    }
    next();
  });
  app.use(adapter.prefix, adapter.router);
  app.use(() => {
    throw adapter.errorFor(404);
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let error: EmulatorError;
    if (err instanceof EmulatorError) error = err;
    else if (isBodyParseError(err)) {
      contractViolations.push({ kind: 'request', method: req.method, path: req.path, errors: ['request body is not valid JSON'] });
      error = adapter.errorFor(400);
    } else error = adapter.errorFor(500);
    const { body, headers } = adapter.renderError(error, res.locals.requestId as string);
    for (const [k, v] of Object.entries(headers ?? {})) res.setHeader(k, v);
    res.status(error.status).json(body);
  });

  const server = await listen(app, options.port ?? 0);
  const port = (server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${port}`;
  const apiUrl = adapter.provider === 'digitalocean' ? origin : `${origin}${adapter.prefix}`;

  return {
    provider: adapter.provider,
    url: origin,
    apiUrl,
    port,
    token,
    requests,
    contractViolations,
    setLatency: (ms) => {
      latencyMs = checkLatency(ms);
    },
    injectFault: (fault) => faults.add(fault),
    injectPagingFault: (fault) => faults.addPaging(fault),
    clearFaults: () => faults.clear(),
    resetRecords: () => {
      requests.length = 0;
      contractViolations.length = 0;
    },
    close: () => closeServer(server),
  };
}

/** Records every request and response that the provider's OpenAPI description does not allow. */
function contractCheck(contract: OpenApiContract, adapter: ProviderAdapter, violations: ContractViolation[]) {
  return (req: Request, res: Response, next: NextFunction) => {
    const path = req.path; // captured now: routers mounted under the prefix rewrite req.path
    if (!path.startsWith(`${adapter.prefix}/`)) {
      violations.push({ kind: 'request', method: req.method, path, errors: [`path outside ${adapter.prefix}/`] });
      return next();
    }
    const specPath = adapter.specPathsRelativeToPrefix ? path.slice(adapter.prefix.length) : path;
    const checked = contract.checkRequest({
      method: req.method,
      path: specPath,
      headers: req.headers,
      query: req.query as Record<string, unknown>,
      body: req.body,
    });
    if (checked.errors.length)
      violations.push({ kind: 'request', method: req.method, path, operationId: checked.operationId, errors: checked.errors });
    const operation = checked.operationId ? contract.operationFor(req.method, specPath) : undefined;
    if (!operation) return next();

    let sentJson: unknown = null;
    const json = res.json.bind(res);
    res.json = (body: unknown) => {
      sentJson = body;
      return json(body);
    };
    const end = res.end.bind(res) as (...args: unknown[]) => Response;
    res.end = ((...args: unknown[]) => {
      // Checked before the bytes go out, so a test reading contractViolations after its response sees it.
      const result = contract.checkResponse(operation, res.statusCode, sentJson, res.getHeaders() as Record<string, unknown>);
      if (result.errors.length)
        violations.push({
          kind: 'response',
          method: req.method,
          path,
          operationId: result.operationId,
          status: res.statusCode,
          errors: result.errors,
        });
      return end(...args);
    }) as Response['end'];
    next();
  };
}

function isListPage(body: unknown): body is Record<string, unknown> {
  return typeof body === 'object' && body !== null && 'meta' in body;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer (.+)$/i.exec(header ?? '');
  if (!match) return false;
  const given = Buffer.from(match[1]!);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function isBodyParseError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { type?: string }).type === 'entity.parse.failed';
}

function checkLatency(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) throw new Error('latency must be a non-negative number of milliseconds');
  return ms;
}

function listen(app: express.Express, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, '127.0.0.1');
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
