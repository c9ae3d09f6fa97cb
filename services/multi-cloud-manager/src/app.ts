import type Docker from 'dockerode';
import { askDeployer } from './domain/server-usage-guard.js';
import { createDroplet, parseConfig, type Bus, type DropletContext, type Env, type RegistryLink } from '@droplet-mesh/udc-kit';
import { configSchema, type Config } from './config.js';
import { CatalogCache } from './domain/catalog-cache.js';
import { Fleet } from './domain/fleet.js';
import { HostRegistry } from './domain/host-registry.js';
import { KvIdempotencyStore } from './domain/idempotency-store.js';
import { LifecycleWatcher } from './domain/lifecycle-watcher.js';
import { messageHandlers } from './messages.js';
import { ServerProvisioning } from './domain/server-provisioning.js';
import { LocalServers } from './providers/local/local-servers.js';
import { ProviderSet } from './providers/provider-set.js';
import { registerCatalogRoutes } from './routes/catalog.js';
import { registerInstanceRoutes } from './routes/instances.js';
import { registerLegacyAliasRoutes } from './routes/legacy-aliases.js';
import { registerMultiRoutes } from './routes/multi.js';
import { registerSnapshotRoutes } from './routes/snapshots.js';

export const DROPLET_NAME = 'multi-cloud-manager';
export const IDEMPOTENCY_BUCKET = 'mcm-idempotency';
/** Settings /reload-config applies live (the providers are rebuilt from them). */
const LIVE_SETTINGS = [
  'DO_TOKEN',
  'HETZNER_TOKEN',
  'VULTR_TOKEN',
  'DO_API_URL',
  'HETZNER_API_URL',
  'VULTR_API_URL',
  'PROVIDER_TIMEOUT_MS',
  'PROVIDER_MAX_PAGES',
  'VULTR_MAX_RPS',
] as const;

export interface MultiCloudDeps {
  env: Env;
  bus?: Bus;
  /** Default: a registry client when REGISTRY_KEY is set (udc-kit); `false` for none. */
  registry?: RegistryLink | false;
  /** The Docker Engine of the local provider (default: DOCKER_HOST or the local socket). */
  docker?: Docker;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
}

function buildFleet(ctx: DropletContext<Config>, providers: ProviderSet): Fleet {
  const c = ctx.config;
  const settings = {
    listTimeoutMs: c.PROVIDER_LIST_TIMEOUT_MS,
    pollIntervalMs: c.ACTION_POLL_INTERVAL_MS,
    waitTimeoutMs: c.ACTION_WAIT_TIMEOUT_S * 1000,
  };
  return new Fleet({
    providers,
    catalog: new CatalogCache(c.CATALOG_TTL_S),
    // Shared by every replica through JetStream KV, so a retried create is caught wherever it lands.
    idempotency: new KvIdempotencyStore(() => ctx.bus.kv(IDEMPOTENCY_BUCKET, { ttlMs: c.IDEMPOTENCY_TTL_S * 1000, history: 1 })),
    hosts: new HostRegistry(() => ctx.registry, ctx.logger),
    watcher: new LifecycleWatcher({ intervalMs: settings.pollIntervalMs, timeoutMs: settings.waitTimeoutMs }, ctx.logger),
    emit: (type, data) => ctx.emit(type, data),
    logger: ctx.logger,
    settings,
    serverUsage: askDeployer((req) => ctx.send(req)),
  });
}

/** multi-cloud-manager: one API over DigitalOcean, Hetzner Cloud, Vultr and the local Docker Engine. */
export function createMultiCloudDroplet(deps: MultiCloudDeps) {
  const config = parseConfig(configSchema, deps.env);
  let providers: ProviderSet | undefined;
  let fleet: Fleet | undefined;
  const theFleet = () => {
    if (!fleet) throw new Error('fleet not built');
    return fleet;
  };
  let servers: ServerProvisioning | undefined;
  let localServers: LocalServers | undefined;
  const theServers = () => {
    if (!servers) throw new Error('server provisioning not built');
    return servers;
  };
  const droplet = createDroplet<Config>({
    name: DROPLET_NAME,
    version: '0.1.0',
    description: 'One API over DigitalOcean, Hetzner Cloud, Vultr and a local Docker provider',
    capabilities: [
      'instances',
      'multi-cloud',
      'catalog',
      'snapshots',
      'provider.digitalocean',
      'provider.hetzner',
      'provider.vultr',
      'provider.local',
    ],
    dependencies: [{ name: 'registry', required: false }],
    // New tokens or API URLs in the env file rebuild the providers; calls already running finish on the old ones.
    liveConfig: {
      keys: LIVE_SETTINGS,
      async apply(next) {
        await providers?.replaceWith(ProviderSet.fromConfig(next, { logger: droplet.ctx.logger, docker: deps.docker }));
      },
    },
    configSchema,
    env: deps.env,
    bus: deps.bus,
    registry: deps.registry,
    exit: deps.exit,
    logDestination: deps.logDestination,
    healthChecks: config.LOCAL_PROVIDER_ENABLED
      ? {
          'docker-engine': {
            required: false,
            intervalMs: 30_000,
            check: async () => {
              if (providers?.has('local')) await providers.get('local').ping();
              return { ok: true };
            },
          },
        }
      : {},
    routes(api, ctx) {
      providers = ProviderSet.fromConfig(ctx.config, { logger: ctx.logger, docker: deps.docker });
      fleet = buildFleet(ctx, providers);
      localServers = new LocalServers({
        logger: ctx.logger,
        onReportFailed: (server_id, reason) => ctx.emit('server.report_failed', { server_id, reason }),
      });
      servers = new ServerProvisioning(
        theFleet,
        localServers,
        new HostRegistry(() => ctx.registry, ctx.logger),
        ctx.config.LOCAL_PROVIDER_ENABLED,
      );
      const routeDeps = { fleet, providers };
      registerInstanceRoutes(api, routeDeps);
      registerCatalogRoutes(api, routeDeps);
      registerSnapshotRoutes(api, routeDeps);
      registerMultiRoutes(api, routeDeps);
      registerLegacyAliasRoutes(api, routeDeps);
    },
    messageHandlers: messageHandlers(theFleet, theServers),
    async onStop() {
      fleet?.stop();
      await localServers?.close();
      await providers?.close();
    },
  });
  return Object.assign(droplet, { fleet: theFleet, servers: theServers });
}
