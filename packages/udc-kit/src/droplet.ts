import { createHash, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import swaggerUi from 'swagger-ui-express';
import { z } from 'zod';
import type { Subscription } from '@nats-io/transport-node';
import { RegistryClient, type DropletRecord, type RecordInput } from '@droplet-mesh/registry-client';
import { Api } from './api.js';
import { assertScope, bearerToken, createTokenVerifier, type KeyResolver, type Principal, type TokenVerifier } from './auth.js';
import { RevocationWatcher } from './revocation.js';
import { Bus } from './bus.js';
import { parseConfig, type BaseConfig, type Env, ConfigError } from './config.js';
import { environmentWithFile, planReload, type LiveConfig } from './config-reload.js';
import { backupBucketsOf, bucketDumpSchema, dumpBuckets, restoreBuckets, type BackupOptions } from './backup.js';
import { completeEnvelope, messageEnvelopeSchema, sendRequestSchema } from './envelope.js';
import { DependencyUnavailable, InvalidRequest, NotFound, Unauthorized } from './errors.js';
import { errorMiddleware } from './error-middleware.js';
import { HealthBoard, type DependencyStatus, type HealthCheck } from './health.js';
import { createLogger, LEVEL_ORDER, type Logger, type LogEntry } from './logger.js';
import { MessageDispatcher, sendMessage, serveMessages, type MessageHandler } from './messaging.js';
import { createMetrics, type Metrics } from './metrics.js';
import { buildOpenApi } from './openapi.js';
import { Ring } from './ring.js';
import { RuntimeStats } from './stats.js';
import { redocRouter } from './redoc.js';

export const UDC_VERSION = '1.0';

export type { RecordInput as RegistryRecordInput, DropletRecord as RegistryRecord } from '@droplet-mesh/registry-client';
type RegistryRecordInput = RecordInput;
type RegistryRecord = DropletRecord;

/** What udc-kit needs from a registry client; @droplet-mesh/registry-client implements it. */
export interface RegistryLink {
  /** Register (retrying with backoff, in the background) and heartbeat. */
  start(): void;
  /** Deregister (best effort) and stop heartbeating. */
  stop(opts?: { deregister?: boolean }): Promise<void>;
  status(): { reachable: boolean; registered: boolean; last_error?: string; last_heartbeat_at?: string };
  /** Register or update a record this droplet stewards (an app it deployed, a host it created). */
  upsertRecord(record: RegistryRecordInput): Promise<RegistryRecord>;
  removeRecord(id: string): Promise<void>;
  /** Cached for a few seconds. */
  list(filter?: { capability?: string; kind?: 'service' | 'host'; status?: string }): Promise<RegistryRecord[]>;
  get(id: string): Promise<RegistryRecord | undefined>;
  /** A current JWT for calling other droplets over HTTP. */
  token(): Promise<string>;
}

export interface DeclaredDependency {
  name: string;
  required?: boolean;
}

export interface EventRecord {
  type: string;
  subject: string;
  data: unknown;
  time: string;
  level: 'info' | 'warn' | 'error';
}

export interface DropletContext<C extends BaseConfig = BaseConfig> {
  readonly name: string;
  readonly version: string;
  readonly config: C;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The NATS connection; throws before start(). */
  readonly bus: Bus;
  emit(type: string, data: unknown, level?: EventRecord['level']): void;
  /** Record the last verified action for /proof. */
  recordProof(action: string, detail?: unknown): void;
  send: (req: z.input<typeof sendRequestSchema>) => ReturnType<typeof sendMessage>;
  /** The registry client, when the droplet has one (REGISTRY_KEY set, or injected). */
  readonly registry: RegistryLink | undefined;
}

export interface DropletOptions<C extends BaseConfig> {
  name: string;
  version: string;
  description?: string;
  capabilities: string[];
  dependencies?: DeclaredDependency[];
  configSchema: z.ZodType<C>;
  /** Environment read at start and again by /reload-config, with the env file (ENV_FILE, default <DATA_DIR>/<name>.env) over it. Default process.env. */
  env?: Env;
  /** A connected bus; stop() closes it too unless keepBusOpen (the droplet owns it either way). */
  bus?: Bus;
  keepBusOpen?: boolean;
  routes?: (api: Api, ctx: DropletContext<C>) => void;
  messageHandlers?: Record<string, MessageHandler>;
  healthChecks?: Record<string, HealthCheck>;
  /** Default: a RegistryClient when REGISTRY_KEY is set. `false`: none (the registry itself). */
  registry?: RegistryLink | false;
  /** The registry verifies tokens with its own keys instead of fetching its JWKS. */
  keyResolver?: KeyResolver;
  /** Revoked tokens: by default a watcher on the registry's revocation bucket, started and stopped with the droplet. */
  revocations?: RevocationWatcher | false;
  logDestination?: NodeJS.WritableStream;
  /** Called by /shutdown and /emergency-stop; tests replace process.exit. */
  exit?: (code: number) => void;
  /** Runs once NATS is connected, before the HTTP server listens (load state, start loops). */
  onStart?: (ctx: DropletContext<C>) => Promise<void> | void;
  /** Runs once the HTTP server listens. */
  onListening?: (info: { url: string; port: number }) => Promise<void> | void;
  /** Service cleanup before NATS closes (stop loops, flush). */
  onStop?: () => Promise<void> | void;
  /** Settings applied live by /reload-config, and how (LOG_LEVEL always is); any other change waits for a restart. */
  liveConfig?: LiveConfig<C>;
  /** Which of its buckets GET /admin/backup exports and POST /admin/restore fills (default: the ones it owns, minus ephemeral state). */
  backup?: BackupOptions;
}

export interface Droplet<C extends BaseConfig = BaseConfig> {
  app: Express;
  ctx: DropletContext<C>;
  api: Api;
  start(opts?: { port?: number; host?: string }): Promise<{ url: string; port: number }>;
  /** Stop serving and close NATS without exiting the process. */
  stop(opts?: { deregister?: boolean }): Promise<void>;
  shutdown(reason: string, exitCode?: number): Promise<void>;
  installSignalHandlers(): void;
  health(): HealthReport;
}

export interface HealthReport {
  status: 'active' | 'inactive' | 'error';
  droplet: string;
  version: string;
  timestamp: string;
  uptime_seconds: number;
  degraded: string[];
  dependencies: DependencyStatus[];
}

const correlationPattern = /^[A-Za-z0-9._:-]{1,128}$/;
const STARTED = Symbol('request started (performance.now)');

export function createDroplet<C extends BaseConfig>(opts: DropletOptions<C>): Droplet<C> {
  const env = opts.env ?? process.env;
  const readEnv = () => environmentWithFile(opts.name, env);
  let config = parseConfig(opts.configSchema, readEnv());
  const liveKeys = new Set<string>(['LOG_LEVEL', ...(opts.liveConfig?.keys ?? [])]);
  const { logger, ring: logRing } = createLogger(opts.name, config.LOG_LEVEL, { destination: opts.logDestination });
  const metrics = createMetrics(opts.name);
  const stats = new RuntimeStats();
  const eventRing = new Ring<EventRecord>(1000);
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let bus: Bus | undefined = opts.bus;
  const ownsBus = !opts.keepBusOpen;
  let server: Server | undefined;
  let messageSub: Subscription | undefined;
  let phase: 'created' | 'running' | 'stopping' | 'stopped' = 'created';
  let proof = { action: 'created', detail: undefined as unknown, at: new Date().toISOString() };
  let registry: RegistryLink | undefined;

  const revocations = opts.revocations === false ? undefined : (opts.revocations ?? new RevocationWatcher());
  const verifier: TokenVerifier = createTokenVerifier({
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    jwksUri: config.JWKS_URL ?? `${config.REGISTRY_URL.replace(/\/$/, '')}/.well-known/jwks.json`,
    keyResolver: opts.keyResolver,
    allowSimpleToken: config.ALLOW_SIMPLE_TOKEN,
    apiToken: config.API_TOKEN,
    revocations,
  });

  const ctx: DropletContext<C> = {
    name: opts.name,
    version: opts.version,
    get config() {
      return config;
    },
    logger,
    metrics,
    get bus() {
      if (!bus) throw new DependencyUnavailable('no NATS connection: the droplet has not started');
      return bus;
    },
    emit(type, data, level = 'info') {
      const subject = `${opts.name}.${type}`;
      eventRing.push({ type, subject, data, time: new Date().toISOString(), level });
      if (bus?.isConnected()) {
        // Best effort: a type NATS refuses as a subject must not fail the caller's request.
        try {
          bus.publishJson(subject, data);
          bus.publishJson(`udc.${opts.name}.events.${type}`, data);
        } catch (err) {
          logger.warn({ err, type }, 'event not published');
        }
      }
    },
    recordProof(action, detail) {
      proof = { action, detail, at: new Date().toISOString() };
    },
    send: async (req) => sendMessage(ctx.bus, opts.name, sendRequestSchema.parse(req), logger, await ownToken()),
    get registry() {
      return registry;
    },
  };

  /** This droplet's JWT for the messages it sends; none yet (registry unreachable) means only public actions work. */
  const ownToken = async (): Promise<string | undefined> => {
    try {
      return await registry?.token();
    } catch (err) {
      logger.warn({ err }, 'no token for an outgoing message');
      return undefined;
    }
  };

  const board = new HealthBoard(opts.healthChecks ?? {}, logger);
  const deps = new HealthBoard(
    Object.fromEntries(
      (opts.dependencies ?? []).map((d) => [
        d.name,
        {
          required: d.required,
          intervalMs: 10_000,
          check: async () => {
            if (!bus?.isConnected()) return { ok: false, detail: 'no NATS connection' };
            try {
              await bus.nc.request(
                `udc.${d.name}.message`,
                JSON.stringify(completeEnvelope({ source: opts.name, target: d.name, message_type: 'query', payload: { action: 'ping' } })),
                { timeout: 1000 },
              );
              return { ok: true };
            } catch (err) {
              return { ok: false, detail: (err as Error).message };
            }
          },
        } satisfies HealthCheck,
      ]),
    ),
    logger,
  );

  const dispatcher = new MessageDispatcher(
    opts.name,
    {
      // Liveness only (what /version tells anyone): no token needed, so dependency checks work before registration.
      ping: { scope: 'public', handle: () => ({ pong: true, droplet: opts.name, version: opts.version }) },
      ...(opts.messageHandlers ?? {}),
    },
    logger,
  );

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');
  app.set('query parser', 'simple');
  // Responses are live state: an ETag (a hash of every body) buys nothing.
  app.set('etag', false);
  // req.log is built on first use: /health and /metrics never log, and a pino child costs.
  Object.defineProperty(app.request, 'log', {
    configurable: true,
    get(this: Request & { _log?: Logger }) {
      return (this._log ??= logger.child({ correlation_id: this.correlationId }));
    },
    set(this: Request & { _log?: Logger }, v: Logger) {
      this._log = v;
    },
  });

  // The histogram's series for each method, route and status, looked up once: prom-client
  // otherwise checks and hashes the label object on every observation.
  const durationSeries = new Map<string, Map<string, Map<number, { observe(seconds: number): void }>>>();
  const observeDuration = (method: string, route: string, status: number, seconds: number) => {
    let byRoute = durationSeries.get(method);
    if (!byRoute) durationSeries.set(method, (byRoute = new Map()));
    let byStatus = byRoute.get(route);
    if (!byStatus) byRoute.set(route, (byStatus = new Map()));
    let series = byStatus.get(status);
    if (!series) byStatus.set(status, (series = metrics.httpDuration.labels({ method, route, status: String(status) })));
    series.observe(seconds);
  };

  // The request's log line and counters, when its response finishes.
  function onFinish(this: Response) {
    const req = this.req as Request & { _log?: Logger; [STARTED]?: number };
    const started = req[STARTED];
    if (started === undefined) return; // answered before the first middleware (none are, today)
    const ms = performance.now() - started;
    const route = (req.route?.path as string | undefined) ?? 'unmatched';
    const status = this.statusCode;
    stats.recordRequest(status);
    observeDuration(req.method, route, status, ms / 1000);
    if (route === '/health' || route === '/metrics' || !logger.isLevelEnabled('info')) return;
    const duration_ms = Math.round(ms * 10) / 10;
    // The request's child logger when a handler made one; else the same line without building it.
    if (req._log) req._log.info({ method: req.method, path: req.path, route, status, duration_ms }, 'request');
    else logger.info({ correlation_id: req.correlationId, method: req.method, path: req.path, route, status, duration_ms }, 'request');
  }

  // onFinish runs from this app's own response prototype as 'finish' is emitted, before the
  // event's listeners: a listener added per response cost an array on every response (Node
  // already listens), and a copy of it on every emit.
  const emit = app.response.emit;
  app.response.emit = function (this: Response, event: string | symbol) {
    if (event === 'finish') onFinish.call(this);
    return emit.apply(this, arguments as unknown as Parameters<typeof emit>);
  } as typeof emit;

  // First: correlation id, request log, counters; then a GET for a static API route is
  // answered at once (the router would find the same route, after walking its layers).
  app.use((req: Request, res: Response, next: NextFunction) => {
    const given = req.headers['x-correlation-id'];
    req.correlationId = typeof given === 'string' && correlationPattern.test(given) ? given : randomUUID();
    res.setHeader('X-Correlation-ID', req.correlationId);
    (req as Request & { [STARTED]: number })[STARTED] = performance.now();
    if (!api.serve(req, res, next)) next();
  });
  const jsonBody = express.json({ limit: config.BODY_LIMIT });
  // A restore carries a droplet's whole state: more than any API body. Only an admin may
  // make the droplet read one, so the token is checked before the body.
  const restoreBody = express.json({ limit: '512mb' });
  app.use(async (req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next();
    if (req.path !== '/admin/restore') return jsonBody(req, res, next);
    const token = bearerToken(req.header('authorization'));
    if (!token) throw new Unauthorized('missing bearer token');
    assertScope(await verifier.verify(token), 'admin');
    restoreBody(req, res, next);
  });

  // The caller's principal for a protected route: at once for a token verified before (most
  // requests), else the promise of its verification.
  const principalOf = (req: Request): Principal | Promise<Principal> => {
    const header = req.headers.authorization;
    // "Bearer " and a token verified before: the cache compares the token whole, and a
    // verified token has no whitespace, so its form needs no check first.
    if (header?.startsWith('Bearer ')) {
      const known = verifier.verifyCached?.(header.slice(7));
      if (known) return known;
    }
    const token = bearerToken(header);
    if (!token) throw new Unauthorized('missing bearer token');
    return verifier.verifyCached?.(token) ?? verifier.verify(token);
  };
  // The same as a middleware (the Api uses principalOf itself: one handler per route).
  const authenticate = (req: Request, _res: Response, next: NextFunction): Promise<void> | undefined => {
    const p = principalOf(req);
    if (p instanceof Promise)
      return p.then((principal) => {
        req.principal = principal;
        next();
      });
    req.principal = p;
    next();
    return undefined;
  };

  const router = express.Router();
  const api = new Api(router, authenticate, principalOf);

  const health = (): HealthReport => {
    const list = board.list();
    const natsOk = !!bus?.isConnected();
    const all: DependencyStatus[] = [{ name: 'nats', required: true, status: natsOk ? 'ok' : 'down' }];
    if (registry) {
      const s = registry.status();
      all.push({
        name: 'registry',
        required: false,
        status: s.reachable ? 'ok' : 'degraded',
        detail: { registered: s.registered, last_error: s.last_error, last_heartbeat_at: s.last_heartbeat_at },
      });
    }
    all.push(...list);
    const failingRequired = all.some((d) => d.required && d.status === 'down');
    const status = phase !== 'running' ? 'inactive' : failingRequired ? 'error' : 'active';
    return {
      status,
      droplet: opts.name,
      version: opts.version,
      timestamp: new Date().toISOString(),
      uptime_seconds: Math.round(process.uptime()),
      degraded: all.filter((d) => d.status !== 'ok' && d.status !== 'unknown').map((d) => d.name),
      dependencies: all,
    };
  };

  // ---- UDC v1.0 core ----
  let healthCache: { at: number; phase: string; code: number; body: Buffer } | undefined;
  api.get('/health', { scope: 'public', summary: 'Liveness and dependency status (no I/O on the request path)' }, ({ res }) => {
    const now = Date.now();
    let cached = healthCache;
    if (!cached || cached.phase !== phase || now - cached.at >= 250) {
      const h = health();
      cached = healthCache = { at: now, phase, code: h.status === 'active' ? 200 : 503, body: Buffer.from(JSON.stringify(h)) };
    }
    res.statusCode = cached.code;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(cached.body);
  });
  api.get('/capabilities', { scope: 'public', summary: 'What this droplet can do' }, () => ({
    droplet: opts.name,
    version: opts.version,
    udc_version: UDC_VERSION,
    capabilities: opts.capabilities,
    message_actions: Object.keys({ ping: 1, ...(opts.messageHandlers ?? {}) }).sort(),
    endpoints: api.routes.map((r) => `${r.method.toUpperCase()} ${r.path}`),
  }));
  api.get('/state', { summary: 'Process and request statistics' }, () => ({ droplet: opts.name, phase, ...stats.snapshot() }));
  api.get('/dependencies', { summary: 'Declared dependencies with live status' }, () => ({
    dependencies: deps.list().map((d) => ({
      name: d.name,
      type: d.required ? 'required' : 'optional',
      status: d.status === 'ok' ? 'available' : d.status === 'unknown' ? 'unknown' : 'missing',
      checked_at: d.checked_at,
      detail: d.detail,
    })),
  }));
  api.post('/message', { summary: 'Handle a UDC message envelope', body: messageEnvelopeSchema }, async ({ body, principal, req }) => {
    if (body.target !== opts.name)
      throw new InvalidRequest(`message is for '${body.target}', this is '${opts.name}'`, {
        fields: [{ path: 'target', message: `must be '${opts.name}'` }],
      });
    const envelope = completeEnvelope({ ...body, trace_id: body.trace_id ?? req.correlationId });
    dispatcher.authorize(envelope, principal);
    return dispatcher.dispatch(envelope, { transport: 'http', principal });
  });
  api.post(
    '/send',
    { scope: 'write', summary: 'Send a message to another droplet over NATS and return its reply', body: sendRequestSchema },
    // The caller's own token travels with the message: the receiver grants exactly the caller's scope.
    async ({ body, correlationId, req }) =>
      sendMessage(
        ctx.bus,
        opts.name,
        { ...body, trace_id: body.trace_id ?? correlationId },
        logger,
        bearerToken(req.header('authorization')),
      ),
  );

  // ---- UDC v1.0 extended ----
  api.get('/version', { scope: 'public' }, () => ({
    droplet: opts.name,
    version: opts.version,
    udc_version: UDC_VERSION,
    node: process.version,
    started_at: stats.startedAt.toISOString(),
  }));
  api.get('/metrics', { scope: 'public', summary: 'Prometheus metrics' }, async ({ res }) => {
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });
  const ringQuery = z.object({
    level: z.enum(LEVEL_ORDER).optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  });
  api.get('/logs', { summary: 'Recent log lines', query: ringQuery }, ({ query }) => {
    const minLevel = query.level ? LEVEL_ORDER.indexOf(query.level) : 0;
    const since = query.since ? Date.parse(query.since) : 0;
    const entries = logRing.query(
      (e: LogEntry) => LEVEL_ORDER.indexOf(e.level as (typeof LEVEL_ORDER)[number]) >= minLevel && Date.parse(e.time) >= since,
      query.limit,
    );
    return { logs: entries, count: entries.length };
  });
  api.get(
    '/events',
    {
      summary: 'Recent events',
      query: ringQuery.extend({ level: z.enum(['info', 'warn', 'error']).optional(), type: z.string().max(200).optional() }),
    },
    ({ query }) => {
      const order = ['info', 'warn', 'error'];
      const since = query.since ? Date.parse(query.since) : 0;
      const events = eventRing.query(
        (e) =>
          (!query.level || order.indexOf(e.level) >= order.indexOf(query.level)) &&
          Date.parse(e.time) >= since &&
          (!query.type || e.type.startsWith(query.type)),
        query.limit,
      );
      return { events, count: events.length };
    },
  );
  api.get('/proof', { summary: 'sha256 over the last verified action' }, () => {
    const material = JSON.stringify({ droplet: opts.name, action: proof.action, detail: proof.detail ?? null, at: proof.at });
    return {
      droplet: opts.name,
      action: proof.action,
      verified_at: proof.at,
      sha256: createHash('sha256').update(material).digest('hex'),
      material,
    };
  });
  api.post(
    '/reload-config',
    { scope: 'admin', summary: 'Re-read the environment and env file; apply what can change live, name what needs a restart' },
    async () => {
      let next: C;
      try {
        next = parseConfig(opts.configSchema, readEnv());
      } catch (err) {
        if (err instanceof ConfigError)
          throw new InvalidRequest('configuration is invalid; the previous configuration stays in force', {
            fields: err.issues.map((i) => ({ path: i.variable, message: i.problem })),
          });
        throw err;
      }
      const plan = planReload(config, next, liveKeys);
      const serviceLive = plan.live.filter((k) => k !== 'LOG_LEVEL');
      if (serviceLive.length) await opts.liveConfig?.apply(plan.applied, serviceLive);
      config = plan.applied;
      logger.level = config.LOG_LEVEL;
      // Names only: a changed value may be a secret.
      logger.info({ changed: plan.changed, needs_restart: plan.needs_restart }, 'configuration reloaded');
      ctx.recordProof('config.reloaded', { changed: plan.changed });
      return { reloaded: true, changed: plan.changed, needs_restart: plan.needs_restart, applied_at: new Date().toISOString() };
    },
  );
  const backupBuckets = opts.backup?.buckets ?? backupBucketsOf(opts.name);
  api.get('/admin/backup', { scope: 'admin', summary: "Every key of this droplet's buckets, values as stored (sealed stays sealed)" }, () =>
    dumpBuckets(ctx.bus, opts.name, backupBuckets),
  );
  api.post(
    '/admin/restore',
    {
      scope: 'admin',
      summary: 'Put a backup of this droplet into its buckets; a bucket that holds state is refused unless force',
      body: bucketDumpSchema.extend({ force: z.boolean().default(false), dry_run: z.boolean().default(false) }),
    },
    async ({ body, principal }) => {
      if (body.droplet !== opts.name)
        throw new InvalidRequest(`this backup is of '${body.droplet}', this is '${opts.name}'`, {
          fields: [{ path: 'droplet', message: `must be '${opts.name}'` }],
        });
      const result = await restoreBuckets(ctx.bus, body, {
        allowed: backupBuckets,
        force: body.force,
        dryRun: body.dry_run,
        merge: opts.backup?.merge,
        selfMade: opts.backup?.selfMade,
      });
      if (body.dry_run) return { droplet: opts.name, dry_run: true, ...result };
      logger.warn({ by: principal?.sub, buckets: result.buckets, force: body.force }, 'state restored from a backup');
      ctx.recordProof('state.restored', result);
      return { droplet: opts.name, ...result };
    },
  );
  api.post(
    '/shutdown',
    {
      scope: 'admin',
      summary: 'Drain and exit 0',
      body: z
        .object({ delay_seconds: z.number().min(0).max(300).default(0), reason: z.string().max(500).default('requested') })
        .default({ delay_seconds: 0, reason: 'requested' }),
      status: 202,
    },
    ({ body }) => {
      setTimeout(() => void droplet.shutdown(body.reason), body.delay_seconds * 1000).unref();
      return { status: 'shutting_down', delay_seconds: body.delay_seconds, reason: body.reason };
    },
  );
  api.post('/emergency-stop', { scope: 'admin', summary: 'Exit at once' }, ({ res, principal }) => {
    logger.fatal({ by: principal?.sub }, 'emergency stop');
    res.status(200).json({ status: 'stopping' });
    res.on('finish', () => exit(1));
  });

  api.get('/openapi.json', { scope: 'public' }, () =>
    buildOpenApi({ title: opts.name, version: opts.version, description: opts.description }, api.routes),
  );

  opts.routes?.(api, ctx);

  app.use(router);
  app.use('/docs', swaggerUi.serve, swaggerUi.setup(undefined, { swaggerOptions: { url: '/openapi.json' } }));
  app.use('/redoc', redocRouter(opts.name));
  app.use(() => {
    throw new NotFound('no such route');
  });
  app.use(errorMiddleware(logger));

  registry = opts.registry || undefined;

  const droplet: Droplet<C> = {
    app,
    ctx,
    api,
    health,
    async start(startOpts = {}) {
      if (!bus) bus = await Bus.fromConfig(config, opts.name, logger);
      // Known revocations load before the first request is served.
      await revocations?.start(bus, logger);
      await opts.onStart?.(ctx);
      messageSub = serveMessages(bus, opts.name, dispatcher, logger, verifier);
      const port = startOpts.port ?? config.PORT;
      const host = startOpts.host ?? config.HOST;
      server = await new Promise<Server>((resolve, reject) => {
        // Express 5 hands a listen error (EADDRINUSE) to this callback: a taken port is that error, not a null address later.
        const s = app.listen(port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
        s.once('error', reject);
      });
      const addr = server.address() as AddressInfo;
      phase = 'running';
      board.start();
      deps.start();
      if (opts.registry === undefined && config.REGISTRY_KEY) {
        registry = new RegistryClient({
          registryUrl: config.REGISTRY_URL,
          registryKey: config.REGISTRY_KEY,
          self: {
            id: config.DROPLET_ID ?? opts.name,
            name: opts.name,
            url: config.PUBLIC_URL ?? `http://${host}:${addr.port}`,
            kind: 'service',
            capabilities: opts.capabilities,
            version: opts.version,
            health_path: '/health',
            ...(config.DROPLET_DOMAIN ? { domain: config.DROPLET_DOMAIN } : {}),
            ...(config.STEWARD ? { steward: config.STEWARD } : {}),
          },
          heartbeatIntervalS: config.HEARTBEAT_INTERVAL_S,
          // NATS permissions let a droplet publish heartbeats only as its name (registry.heartbeat.<name>):
          // registered under another id (DROPLET_ID / DROPLET_NAME, dotted or not) it heartbeats over HTTP.
          publish:
            (config.DROPLET_ID ?? opts.name) === opts.name
              ? (subject, data) => bus?.isConnected() && bus.publishJson(subject, data)
              : undefined,
          heartbeatPayload: () => ({
            status: health().status,
            metrics: { requests_per_minute: stats.requestsPerMinute(), cpu_percent: stats.cpuPercent },
          }),
          logger,
        });
      }
      registry?.start();
      ctx.recordProof('started', { port: addr.port });
      const url = `http://${host}:${addr.port}`;
      await opts.onListening?.({ url, port: addr.port });
      logger.info({ url }, 'droplet started');
      return { url, port: addr.port };
    },
    async stop(stopOpts = {}) {
      if (phase === 'stopping' || phase === 'stopped') return;
      phase = 'stopping';
      board.stop();
      deps.stop();
      stats.stop();
      if (server) {
        const s = server;
        await new Promise<void>((resolve) => {
          // Keep-alive connections go idle as their in-flight requests finish: close them
          // then, or close() waits for the client to hang up.
          const sweep = setInterval(() => s.closeIdleConnections(), 50);
          const t = setTimeout(() => {
            clearInterval(sweep);
            s.closeAllConnections();
            resolve();
          }, 10_000);
          s.close(() => {
            clearTimeout(t);
            clearInterval(sweep);
            resolve();
          });
          s.closeIdleConnections();
        });
      }
      await registry?.stop({ deregister: stopOpts.deregister ?? true }).catch(() => undefined);
      messageSub?.unsubscribe();
      await opts.onStop?.();
      revocations?.stop();
      if (ownsBus) await bus?.close();
      phase = 'stopped';
    },
    async shutdown(reason, exitCode = 0) {
      logger.info({ reason }, 'shutting down');
      try {
        await droplet.stop();
      } finally {
        exit(exitCode);
      }
    },
    installSignalHandlers() {
      const onSignal = (sig: string) => void droplet.shutdown(`signal ${sig}`);
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    },
  };
  return droplet;
}
