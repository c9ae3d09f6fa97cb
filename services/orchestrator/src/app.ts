import { Bus, createDroplet, DependencyUnavailable, parseConfig, type Env, type RegistryLink } from '@droplet-mesh/udc-kit';
import { orchestratorConfigSchema } from './config.js';
import { MeshClient } from './live/mesh-client.js';
import { Orchestrator } from './orchestrator.js';
import { registerStackRoutes } from './routes/stacks.js';
import { BUCKET, Store } from './store.js';

export const ORCHESTRATOR_VERSION = '0.1.0';

export interface OrchestratorDeps {
  env: Env;
  /** A connected bus; without one the orchestrator connects to NATS_URL itself. */
  bus?: Bus;
  /** Default: udc-kit's RegistryClient when REGISTRY_KEY is set. */
  registry?: RegistryLink | false;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
}

/**
 * The orchestrator droplet: stacks (one file describing servers, projects, environments,
 * services and routes) planned against live state and applied through the other droplets'
 * HTTP APIs, with progress in the KV bucket `orchestrator`.
 */
export async function createOrchestratorDroplet(deps: OrchestratorDeps) {
  const config = parseConfig(orchestratorConfigSchema, deps.env);
  const bus = deps.bus ?? (await Bus.fromConfig(config, 'orchestrator'));
  const store = new Store(await bus.kv(BUCKET, { history: 5 }));
  let orchestrator: Orchestrator | undefined;
  const getOrchestrator = () => {
    if (!orchestrator) throw new DependencyUnavailable('the orchestrator is starting');
    return orchestrator;
  };

  const droplet = createDroplet({
    name: 'orchestrator',
    version: ORCHESTRATOR_VERSION,
    description:
      'Declarative stacks: plan, apply, drift, destroy and promote through the deployer, proxy-manager, multi-cloud-manager and health-monitor',
    capabilities: ['stacks', 'plan', 'apply', 'drift', 'promote'],
    dependencies: [
      { name: 'registry', required: false },
      { name: 'deployer', required: false },
      { name: 'proxy-manager', required: false },
      { name: 'multi-cloud-manager', required: false },
      { name: 'health-monitor', required: false },
    ],
    configSchema: orchestratorConfigSchema,
    env: deps.env,
    bus,
    registry: deps.registry,
    exit: deps.exit,
    logDestination: deps.logDestination,
    routes(api, ctx) {
      const mesh = new MeshClient(
        () => ctx.registry,
        {
          deployer: ctx.config.DEPLOYER_URL,
          'proxy-manager': ctx.config.PROXY_MANAGER_URL,
          'multi-cloud-manager': ctx.config.MULTI_CLOUD_MANAGER_URL,
          'health-monitor': ctx.config.HEALTH_MONITOR_URL,
        },
        ctx.config.CALL_TIMEOUT_MS,
        (req) => ctx.send(req),
      );
      orchestrator = new Orchestrator({
        store,
        mesh,
        logger: ctx.logger,
        emit: ctx.emit,
        leaseStaleMs: ctx.config.LEASE_STALE_S * 1000,
        deployTimeoutMs: ctx.config.DEPLOY_TIMEOUT_S * 1000,
        serverTimeoutMs: ctx.config.SERVER_TIMEOUT_S * 1000,
        pollMs: ctx.config.POLL_INTERVAL_MS,
        retryMs: ctx.config.STEP_RETRY_S * 1000,
      });
      registerStackRoutes(api, {
        orchestrator: getOrchestrator,
        applyWaitMaxMs: ctx.config.APPLY_WAIT_MAX_S * 1000,
        pollMs: Math.max(100, ctx.config.POLL_INTERVAL_MS),
      });
    },
    onListening() {
      // After listening: the registry link (and so a token) starts with the HTTP server.
      getOrchestrator().startResuming(config.RESUME_INTERVAL_S * 1000);
      getOrchestrator().startDriftChecks(config.DRIFT_INTERVAL_S * 1000);
      getOrchestrator().startPruning(config.RETENTION_DAYS * 86_400_000);
    },
    async onStop() {
      await orchestrator?.stop();
    },
  });
  return { droplet, config, store, orchestrator: getOrchestrator };
}

export type OrchestratorDroplet = Awaited<ReturnType<typeof createOrchestratorDroplet>>;
