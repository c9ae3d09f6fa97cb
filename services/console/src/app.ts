import { createDroplet, NotFound, type Bus, type Env, type RegistryLink } from '@droplet-mesh/udc-kit';
import { consoleConfigSchema, type ConsoleConfig } from './config.js';
import { Discovery } from './discovery.js';
import { forward, parseForwardUrl } from './forward.js';
import { LiveHub } from './live.js';
import { assertCsrf, isStateChanging, registerSessionRoutes, requireSession } from './session-routes.js';
import { loadSessionSecret } from './session-secret.js';
import { SessionSealer } from './session-seal.js';
import { SESSION_BUCKET_MAX_AGE_MS, SessionStore } from './sessions.js';
import { defaultWebDir, WebAssets } from './web-assets.js';

export { consoleConfigSchema, type ConsoleConfig } from './config.js';
export const CONSOLE_VERSION = '0.1.0';

export interface ConsoleDeps {
  env: Env;
  bus?: Bus;
  registry?: RegistryLink | false;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
  /** Clock for session expiry (tests move it). */
  now?: () => number;
}

/**
 * The console droplet: the web app, and a backend-for-frontend that holds each operator's
 * token in a server-side session and forwards `/api/<droplet>/<path>` to droplets it finds
 * through the registry.
 */
export function createConsoleDroplet(deps: ConsoleDeps) {
  const now = deps.now ?? Date.now;
  let sessions!: SessionStore;
  let live!: LiveHub;
  let web!: WebAssets;

  const droplet = createDroplet<ConsoleConfig>({
    name: 'console',
    version: CONSOLE_VERSION,
    description: 'The mesh in one browser page: web app and backend-for-frontend',
    capabilities: ['console', 'console.bff'],
    dependencies: [{ name: 'registry', required: false }],
    configSchema: consoleConfigSchema,
    env: deps.env,
    bus: deps.bus,
    registry: deps.registry,
    exit: deps.exit,
    logDestination: deps.logDestination,
    routes(api, ctx) {
      const config = () => ctx.config;
      sessions = new SessionStore({ maxSessions: ctx.config.CONSOLE_MAX_SESSIONS, now, logger: ctx.logger });
      live = new LiveHub({
        logger: ctx.logger,
        maxStreamsPerSession: () => ctx.config.CONSOLE_MAX_STREAMS_PER_SESSION,
        backfill: () => ctx.config.CONSOLE_EVENT_BACKFILL,
      });
      web = new WebAssets(ctx.config.CONSOLE_WEB_DIR ?? defaultWebDir());
      if (!web.available) ctx.logger.warn({ dir: web.dir }, 'web app not built: run `pnpm --filter @droplet-mesh/console build`');
      const discovery = new Discovery({
        registryUrl: () => ctx.config.REGISTRY_URL,
        cacheMs: () => ctx.config.CONSOLE_DISCOVERY_CACHE_MS,
        selfId: () => ctx.config.DROPLET_ID ?? 'console',
        now,
      });

      const page = ({ req, res }: { req: import('express').Request; res: import('express').Response }) => {
        if (!web.send(req, res, '/index.html')) {
          res.status(503).type('text/plain').send('The console web app is not built: run `pnpm --filter @droplet-mesh/console build`.\n');
        }
      };
      api.get('/', { scope: 'public', summary: 'The web app' }, page);
      api.get('/assets/*file', { scope: 'public', summary: 'Web app assets' }, ({ req, res }) => {
        if (!web.send(req, res, req.path)) throw new NotFound('no such asset');
      });
      api.get('/favicon.svg', { scope: 'public', summary: 'Icon' }, ({ req, res }) => {
        if (!web.send(req, res, req.path)) throw new NotFound('no such asset');
      });

      registerSessionRoutes(api, { sessions, config, now });

      api.get(
        '/live',
        { scope: 'public', summary: "Server-sent events: every droplet's events as they happen (session cookie)" },
        async ({ req, res }) => live.serve(req, res, await requireSession(req, sessions)),
      );

      const handler = async ({ req, res }: { req: import('express').Request; res: import('express').Response }) => {
        const session = await requireSession(req, sessions);
        if (isStateChanging(req)) assertCsrf(req, session);
        const target = parseForwardUrl(req.originalUrl);
        // The console's own row on the overview: its health from here (it never forwards to itself).
        if (target.droplet === (ctx.config.DROPLET_ID ?? 'console') && target.pathAndQuery === '/health' && req.method === 'GET') {
          const h = droplet.health();
          res.status(h.status === 'active' ? 200 : 503).setHeader('Cache-Control', 'no-store');
          return h;
        }
        const baseUrl = await discovery.resolve(target.droplet, session.token);
        await forward(req, res, { session, baseUrl, target, timeoutMs: ctx.config.CONSOLE_FORWARD_TIMEOUT_MS });
      };
      const summary = 'Forwarded to the droplet with the session token (session cookie; X-CSRF-Token on changes)';
      for (const path of ['/api/:droplet', '/api/:droplet/*path']) {
        api.get(path, { scope: 'public', summary }, handler);
        api.post(path, { scope: 'public', summary }, handler);
        api.put(path, { scope: 'public', summary }, handler);
        api.patch(path, { scope: 'public', summary }, handler);
        api.delete(path, { scope: 'public', summary }, handler);
      }
    },
    async onStart(ctx) {
      const { secret, source, file } = loadSessionSecret({ secret: ctx.config.CONSOLE_SESSION_SECRET, dataDir: ctx.config.DATA_DIR });
      ctx.logger.info({ source, file }, 'console session secret loaded');
      const kv = await ctx.bus.kv(ctx.config.CONSOLE_SESSION_BUCKET, { history: 1, ttlMs: SESSION_BUCKET_MAX_AGE_MS });
      await sessions.attach(kv, new SessionSealer(secret));
      live.attach(ctx.bus);
      sessions.start();
    },
    onStop() {
      live?.stop();
      sessions?.stop();
    },
  });
  return {
    droplet,
    sessions: () => sessions,
    live: () => live,
    web: () => web,
  };
}
