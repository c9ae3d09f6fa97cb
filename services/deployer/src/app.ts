import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Bus, createDroplet, DependencyUnavailable, parseConfig, type Env, type RegistryLink } from '@droplet-mesh/udc-kit';
import { deployerConfigSchema } from './config.js';
import { Deployer } from './deploy/deployer.js';
import { EnginePool } from './engine/engine-pool.js';
import { followServerDown, SERVER_TARGET_PREFIX, ServerReplacement, type MoveClaim } from './deploy/server-replacement.js';
import { KvCollection } from './store/kv-collection.js';
import { SERVER_LOSS_PREFIX, type ServerLossPolicy } from './deploy/server-loss-policy.js';
import { SnapshotReplacement } from './deploy/snapshot-replacement.js';
import { PROVISION_PREFIX, type PendingServer } from './domain/provisioning.js';
import { createMessageHandlers } from './messages.js';
import { serverMessageHandlers } from './server-messages.js';
import { loadOrCreateMeshCa, type MeshCa } from './domain/mesh-ca.js';
import { registerDeployConfigRoutes } from './routes/deploy-configs.js';
import { registerDeploymentRoutes } from './routes/deployments.js';
import { registerEnvironmentRoutes } from './routes/environments.js';
import { registerInfraAliasRoutes } from './routes/infra-aliases.js';
import { registerProjectRoutes } from './routes/projects.js';
import type { RouteDeps } from './routes/route-deps.js';
import { registerSecretRoutes } from './routes/secrets.js';
import { provisionerOf, provisionReplacement, registerServerRoutes } from './routes/servers.js';
import { registerServiceOpsRoutes } from './routes/service-ops.js';
import { registerServiceRoutes } from './routes/services.js';
import { registerUndeployRoutes } from './routes/undeploy.js';
import { registerRegistryRoutes } from './routes/registries.js';
import { registerProjectRegistryRoutes } from './routes/project-registries.js';
import { createStores, type Stores } from './store/stores.js';

export const DEPLOYER_VERSION = '0.1.0';

export interface DeployerDropletDeps {
  env: Env;
  /** A connected bus; without one the deployer connects to NATS_URL itself. */
  bus?: Bus;
  /** Default: udc-kit's RegistryClient when REGISTRY_KEY is set. */
  registry?: RegistryLink | false;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
}

/**
 * The deployer droplet. Async because the routes need the JetStream KV bucket: it
 * connects to NATS (or takes the given bus) before building the app.
 */
export async function createDeployerDroplet(deps: DeployerDropletDeps) {
  const config = parseConfig(deployerConfigSchema, deps.env);
  const ownsBus = !deps.bus;
  const bus = deps.bus ?? (await Bus.fromConfig(config, 'deployer'));
  const kv = await bus.kv(config.KV_BUCKET, { history: 3 });
  const stores: Stores = createStores(kv);
  let caLoading: Promise<MeshCa> | undefined;
  const meshCa = () => {
    caLoading ??= loadOrCreateMeshCa(kv, config.DEPLOYER_MASTER_KEY).catch((err) => {
      caLoading = undefined;
      throw err;
    });
    return caLoading;
  };
  let replacement: ServerReplacement | undefined;
  let unfollow: (() => void) | undefined;
  let routeDeps: RouteDeps | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  const getReplacement = () => {
    if (!replacement) throw new DependencyUnavailable('the deployer is starting');
    return replacement;
  };
  mkdirSync(join(config.DATA_DIR, 'uploads'), { recursive: true });
  let deployer: Deployer | undefined;
  const getDeployer = () => {
    if (!deployer) throw new DependencyUnavailable('the deployer is starting');
    return deployer;
  };

  const droplet = createDroplet({
    name: 'deployer',
    version: DEPLOYER_VERSION,
    description: 'Heroku-style deploys of containers onto servers, with history, rollback and zero downtime',
    capabilities: ['deploy', 'rollback', 'promote', 'restart', 'scale', 'secrets', 'servers'],
    dependencies: [
      { name: 'proxy-manager', required: false },
      { name: 'registry', required: false },
    ],
    configSchema: deployerConfigSchema,
    env: deps.env,
    bus,
    registry: deps.registry,
    exit: deps.exit,
    logDestination: deps.logDestination,
    // A fresh deployer has written its local server and migration markers: a restore may overwrite them.
    backup: { buckets: [config.KV_BUCKET], selfMade: { [config.KV_BUCKET]: /^(server\.local|migration\..+)$/ } },
    routes(api, ctx) {
      const rd: RouteDeps = { ctx, stores: () => stores, deployer: getDeployer, engines: () => engines, replacement: getReplacement };
      routeDeps = rd;
      registerProjectRoutes(api, rd);
      registerServiceRoutes(api, rd);
      registerEnvironmentRoutes(api, rd);
      registerSecretRoutes(api, rd);
      registerServerRoutes(api, rd);
      registerDeployConfigRoutes(api, rd);
      registerDeploymentRoutes(api, rd);
      registerServiceOpsRoutes(api, rd);
      registerInfraAliasRoutes(api, rd);
      registerUndeployRoutes(api, rd);
      registerRegistryRoutes(api, rd);
      registerProjectRegistryRoutes(api, rd);
    },
    messageHandlers: { ...createMessageHandlers(getDeployer, () => stores), ...serverMessageHandlers(() => stores, meshCa) },
    healthChecks: {
      docker: {
        required: true,
        intervalMs: 10_000,
        check: async () => {
          const local = await stores.servers.get('local');
          if (!local || !deployer) return { ok: false, detail: 'starting' };
          try {
            await engines.get(local).engine.ping();
          } catch (err) {
            const where = config.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
            return {
              ok: false,
              detail: `no Docker Engine answers at ${where} (${(err as Error).message}); fix: start dockerd (npm start does as root) or set DOCKER_HOST`,
            };
          }
          return { ok: true };
        },
      },
    },
    async onStop() {
      await deployer?.stop();
      // Running deploys get a bounded chance to finish; any left are found interrupted at the next start.
      await Promise.race([deployer?.idle(), new Promise((r) => setTimeout(r, 30_000).unref())]);
      deployer?.close();
    },
  });

  const engines = new EnginePool(config.DEPLOYER_MASTER_KEY, config.DOCKER_HOST, undefined, {
    network: config.APP_NETWORK,
    bindAddress: config.APP_BIND_ADDRESS,
  });
  const ctx = droplet.ctx;
  const created = new Deployer({
    config,
    stores,
    bus,
    engines,
    logger: ctx.logger,
    ownerId: randomUUID(),
    send: (req) => ctx.send(req),
    registry: () => ctx.registry,
    emit: (type, data, level) => ctx.emit(type, data, level),
  });

  const start = droplet.start.bind(droplet);
  const stop = droplet.stop.bind(droplet);
  return Object.assign(droplet, {
    deployer: created,
    stores,
    async start(opts?: { port?: number; host?: string }) {
      await created.start();
      deployer = created;
      const note = async (serverId: string, event: string, detail: Record<string, unknown>) => {
        const reply = await ctx.send({
          target: 'health-monitor',
          message_type: 'command',
          payload: { action: 'incident.note', target_id: `${SERVER_TARGET_PREFIX}${serverId}`, event, detail },
          timeout_ms: 5000,
          retry_count: 1,
        });
        if (reply.result !== 'success') throw new Error(reply.error?.message ?? reply.result);
      };
      const pendings = new KvCollection<PendingServer>(kv, PROVISION_PREFIX);
      replacement = new ServerReplacement({
        stores,
        deployer: getDeployer,
        claims: new KvCollection<MoveClaim>(kv, 'server-move'),
        policies: new KvCollection<ServerLossPolicy>(kv, SERVER_LOSS_PREFIX),
        emit: (type, data, level) => ctx.emit(type, data, level),
        logger: ctx.logger,
        note,
        snapshots: new SnapshotReplacement({
          stores,
          deployer: getDeployer,
          send: (req) => ctx.send(req),
          provision: (r) => {
            if (!routeDeps) throw new DependencyUnavailable('the deployer is starting');
            return provisionReplacement(routeDeps, r);
          },
          pending: (id) => pendings.get(id),
          note,
          emit: (type, data, level) => ctx.emit(type, data, level),
          logger: ctx.logger,
          // The provisioner fails a machine that never reports; this bounds the wait beyond that.
          waitMs: (config.PROVISION_CREATE_TIMEOUT_S + config.PROVISION_TIMEOUT_S) * 1000 + 15_000,
        }),
      });
      unfollow = followServerDown(bus.nc, replacement, ctx.logger);
      // Provisionings that outlived their timer (a restart) fail and their instance is deleted.
      const sweep = () =>
        routeDeps &&
        void provisionerOf(routeDeps)
          .sweep()
          .catch((err) => ctx.logger.warn({ err }, 'could not sweep expired provisionings'));
      sweep();
      sweeper = setInterval(sweep, 60_000);
      sweeper.unref();
      return start(opts);
    },
    async stop(opts?: { deregister?: boolean }) {
      unfollow?.();
      clearInterval(sweeper);
      if (routeDeps) provisionerOf(routeDeps).close();
      await stop(opts);
      if (ownsBus) await bus.close();
    },
  });
}
export type DeployerDroplet = Awaited<ReturnType<typeof createDeployerDroplet>>;
