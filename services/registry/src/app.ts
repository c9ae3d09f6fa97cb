import { Bus, createDroplet, createTokenVerifier, parseConfig, RevocationWatcher, type Env } from '@droplet-mesh/udc-kit';
import { AuthFailureLimiter } from './auth-limiter.js';
import { registryConfigSchema } from './config.js';
import { Keyring } from './keyring.js';
import { mergeKeyrings } from './keyring-merge.js';
import { LivenessMonitor } from './liveness-monitor.js';
import { RecordStore } from './record-store.js';
import { registerAuthRoutes } from './routes/auth.js';
import { registerDropletRoutes } from './routes/droplets.js';
import { subscribeHeartbeats } from './heartbeat-subscriber.js';
import { heartbeatMetrics } from './heartbeat-metrics.js';
import { openRevocationBucket, Revoker } from './revoker.js';

export const REGISTRY_VERSION = '0.1.0';

export interface RegistryDeps {
  env: Env;
  bus?: Bus;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
  now?: () => number;
}

/** The registry droplet: records and keys in JetStream KV, liveness from NATS heartbeats. */
export async function createRegistryDroplet(deps: RegistryDeps) {
  const config = parseConfig(registryConfigSchema, deps.env);
  const bus = deps.bus ?? (await Bus.fromConfig(config, 'registry'));
  const [recordsKv, keysKv, revocationsKv] = await Promise.all([
    bus.kv('registry'),
    bus.kv('registry-keys'),
    openRevocationBucket(bus, config.TOKEN_TTL_S),
  ]);
  const now = deps.now ?? Date.now;
  // One list for both verifiers here (the droplet's and the routes'); the droplet starts and stops its watch.
  const revocations = new RevocationWatcher();
  let keyring!: Keyring;
  let store!: RecordStore;
  let liveness!: LivenessMonitor;
  let stopHeartbeats: (() => void) | undefined;

  const droplet = createDroplet({
    name: 'registry',
    version: REGISTRY_VERSION,
    description: 'Droplet registration, heartbeats and liveness, RS256 tokens, JWKS, discovery',
    capabilities: ['registry', 'auth', 'discovery'],
    configSchema: registryConfigSchema,
    env: deps.env,
    bus,
    exit: deps.exit,
    logDestination: deps.logDestination,
    registry: false,
    keyResolver: (kid) => keyring.publicKeyPem(kid),
    revocations,
    // A restore into a new mesh: the ring this registry made at start is joined, not overwritten.
    backup: {
      merge: {
        'registry-keys': { keys: ['keyring'], merge: (_key, incoming, existing) => mergeKeyrings(incoming, existing, new Date(now())) },
      },
    },
    routes(api, ctx) {
      keyring = new Keyring(
        keysKv,
        ctx.config.REGISTRY_ADMIN_KEY,
        ctx.config.TOKEN_TTL_S,
        ctx.logger,
        now,
        ctx.config.KEY_RELOAD_MIN_INTERVAL_MS,
      );
      store = new RecordStore(recordsKv, ctx.logger);
      liveness = new LivenessMonitor(
        store,
        {
          staleAfterMissed: ctx.config.STALE_AFTER_MISSED,
          downAfterMissed: ctx.config.DOWN_AFTER_MISSED,
          tickMs: ctx.config.LIVENESS_TICK_MS,
          defaultIntervalS: ctx.config.HEARTBEAT_INTERVAL_S,
        },
        ctx.emit,
        ctx.logger,
        now,
        heartbeatMetrics(ctx.metrics),
      );
      const callerDeps = {
        adminKey: () => ctx.config.REGISTRY_ADMIN_KEY,
        store,
        verifier: createTokenVerifier({
          issuer: ctx.config.JWT_ISSUER,
          audience: ctx.config.JWT_AUDIENCE,
          keyResolver: (kid) => keyring.publicKeyPem(kid),
          revocations,
        }),
        limiter: new AuthFailureLimiter(ctx.config.AUTH_FAILURE_LIMIT_PER_MIN),
      };
      const revoker = new Revoker(revocationsKv, revocations, ctx.config.TOKEN_TTL_S, now);
      registerAuthRoutes(api, { ...callerDeps, keyring, revoker, ctx });
      registerDropletRoutes(api, { ...callerDeps, liveness, ctx });
    },
    async onStart(ctx) {
      await Promise.all([store.init(), keyring.init()]);
      keyring.assertUsable();
      stopHeartbeats = subscribeHeartbeats(bus, liveness, ctx.logger);
      liveness.start();
    },
    async onListening({ url }) {
      // The registry lists itself, and heartbeats for itself in-process. A second replica
      // (DROPLET_ID=registry-2) lists itself under its own id: discovery returns them all.
      const selfId = config.DROPLET_ID ?? 'registry';
      const self = store.get(selfId);
      const at = new Date(now()).toISOString();
      await store.put({
        ...(self ?? { registered_at: at }),
        id: selfId,
        name: 'registry',
        url: config.PUBLIC_URL ?? url,
        kind: 'service',
        capabilities: ['registry', 'auth', 'discovery'],
        version: REGISTRY_VERSION,
        steward: selfId,
        health_path: '/health',
        heartbeat_interval_s: config.HEARTBEAT_INTERVAL_S,
        status: 'active',
        updated_at: at,
        registered_at: self?.registered_at ?? at,
      });
      await liveness.heartbeat(selfId);
      const beat = setInterval(() => void liveness.heartbeat(selfId), config.HEARTBEAT_INTERVAL_S * 1000);
      beat.unref();
      const prevStop = stopHeartbeats;
      stopHeartbeats = () => {
        clearInterval(beat);
        prevStop?.();
      };
    },
    onStop() {
      liveness?.stop();
      stopHeartbeats?.();
      store?.stop();
      keyring?.stop();
    },
  });
  return { droplet, config, liveness: () => liveness, store: () => store, keyring: () => keyring, revocations };
}
