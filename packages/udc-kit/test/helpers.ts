// Shared fixtures for udc-kit's own tests: an example-like droplet with one route of
// each kind, and streams that swallow or capture the pino output.
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  baseConfigShape,
  createDroplet,
  InvalidRequest,
  NotFound,
  queued,
  reply,
  type Bus,
  type Env,
  type BackupOptions,
  type HealthCheck,
  type LiveConfig,
  type RegistryLink,
} from '../src/index.js';

export { tokenOnlyRegistry } from '../src/testing/index.js';

export const testConfigSchema = z.object({
  ...baseConfigShape,
  PORT: baseConfigShape.PORT.default(0),
  GREETING: z.string().min(1).default('hello'),
});

/** A Writable that drops everything: keeps test output short. */
export function nullStream(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

/** A Writable that keeps every pino line, raw and parsed. */
export function captureStream() {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _e, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) raw.push(line);
      cb();
    },
  });
  return {
    stream,
    raw,
    lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>),
    text: () => raw.join('\n'),
  };
}

export interface TestDropletOptions {
  env: Env;
  name?: string;
  bus?: Bus;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
  healthChecks?: Record<string, HealthCheck>;
  dependencies?: { name: string; required?: boolean }[];
  /** Called with every message the `echo` handler sees (messaging tests count deliveries). */
  onEcho?: (payload: Record<string, unknown>, traceId: string) => void;
  replicaId?: string;
  registry?: RegistryLink;
  /** Called when a GET /slow request starts (shutdown tests wait for it to be in flight). */
  onSlowStart?: () => void;
  liveConfig?: LiveConfig<z.infer<typeof testConfigSchema>>;
  backup?: BackupOptions;
}

/** An example-like droplet: one route of each shape the Api supports, and a few handlers. */
export function createTestDroplet(o: TestDropletOptions) {
  const name = o.name ?? 'testdrop';
  return createDroplet({
    name,
    version: '1.2.3',
    description: 'udc-kit test droplet',
    capabilities: ['echo', 'things'],
    dependencies: o.dependencies,
    configSchema: testConfigSchema,
    env: o.env,
    bus: o.bus,
    exit: o.exit,
    logDestination: o.logDestination ?? nullStream(),
    healthChecks: o.healthChecks,
    registry: o.registry,
    liveConfig: o.liveConfig,
    backup: o.backup,
    routes(api, ctx) {
      api.post(
        '/echo',
        {
          scope: 'write',
          summary: 'Echo',
          body: z.object({ text: z.string().min(1).max(100), count: z.number().int().min(1).max(5).optional() }),
        },
        ({ body }) => ({
          echo: body.text,
          count: body.count ?? 1,
          greeting: ctx.config.GREETING,
        }),
      );
      api.get(
        '/things/:id',
        {
          scope: 'read',
          params: z.object({ id: z.string().regex(/^[a-z]+$/) }),
          query: z.object({ verbose: z.enum(['true', 'false']).optional() }),
        },
        ({ params, query }) => {
          if (params.id === 'missing') throw new NotFound(`no thing ${params.id}`);
          return { id: params.id, verbose: query.verbose === 'true' };
        },
      );
      api.post('/things', { scope: 'write', body: z.object({ name: z.string().min(1) }), status: 201 }, ({ body }) => ({
        created: body.name,
      }));
      api.delete('/things/:id', { scope: 'admin', params: z.object({ id: z.string() }) }, () => undefined);
      api.put('/teapot', { scope: 'write' }, () => reply(418, { short: 'and stout' }, { 'X-Teapot': 'yes' }));
      api.patch('/empty-reply', { scope: 'write' }, () => reply(202, undefined));
      api.get('/boom', { scope: 'read' }, () => {
        throw new Error('kaboom: secret internals at /srv/app.ts:12');
      });
      api.get(
        '/slow',
        { scope: 'read', query: z.object({ ms: z.coerce.number().int().min(0).max(5000).default(300) }) },
        async ({ query }) => {
          o.onSlowStart?.();
          await sleep(query.ms);
          return { slept_ms: query.ms };
        },
      );
      api.post('/login', { scope: 'public', body: z.object({ user: z.string(), password: z.string() }) }, ({ body, log }) => {
        // A careless handler logging its whole body: redaction must still hide the password.
        log.info({ user: body.user, password: body.password, token: 'tok-should-not-appear' }, 'login attempt');
        return { ok: true };
      });
      api.post(
        '/emit',
        {
          scope: 'write',
          body: z.object({
            type: z.string().min(1),
            level: z.enum(['info', 'warn', 'error']).default('info'),
            data: z.unknown().optional(),
          }),
        },
        ({ body }) => {
          ctx.emit(body.type, body.data ?? null, body.level);
          return { emitted: body.type };
        },
      );
      api.post('/verify', { scope: 'write', body: z.object({ action: z.string().min(1), detail: z.unknown().optional() }) }, ({ body }) => {
        ctx.recordProof(body.action, body.detail);
        return { recorded: body.action };
      });
    },
    messageHandlers: {
      echo: (payload, envelope, { log }) => {
        log.info({ replica: o.replicaId }, 'echo handler');
        o.onEcho?.(payload, envelope.trace_id);
        if (typeof payload.text !== 'string') throw new InvalidRequest('payload.text must be a string');
        return { echo: payload.text, replica: o.replicaId ?? null, by: name };
      },
      later: () => queued({ job: 'j-1' }),
      explode: () => {
        throw new Error('handler bug');
      },
      'status.only': { types: ['status'], handle: () => ({ seen: true }) },
    },
  });
}

export type TestDroplet = ReturnType<typeof createTestDroplet>;

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
