import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Subscription } from '@nats-io/transport-node';
import { Conflict, InvalidRequest, NotFound } from '@droplet-mesh/udc-kit';
import { CrashRestarter } from '../engine/crash-restarter.js';
import { waitHealthy, waitRunning } from '../engine/health-wait.js';
import {
  FINAL_STATUSES,
  type Deployment,
  type DeploymentSource,
  type PlacedContainer,
  type Release,
  type Server,
} from '../domain/model.js';
import { sealGitSource } from '../domain/git-credentials.js';
import { redactValues } from '../domain/redact.js';
import { parseRecordId, targetId } from '../domain/naming.js';
import { answering, environmentServers, spreadReplicas } from '../domain/placement.js';
import { withTimeout } from '../domain/step-timeout.js';
import { isDigestRef } from '../registry/image-ref.js';
import { inMeshRegistry, meshRegistryOf } from '../registry/mesh-registry.js';
import type { DeployerDeps } from './deploy-context.js';
import { runDeployment, type DeployPlan } from './deploy-runner.js';
import { DeploymentTracker } from './progress.js';
import { ownerSubject, Recovery } from './recovery.js';
import { openSecrets } from './secrets.js';
import { ServiceLanes, type LaneTurn } from './service-lanes.js';

export const LOCAL_SERVER_ID = 'local';
/** How long an environment's server has to answer a ping before a deploy leaves it out. */
const SERVER_PING_MS = 3000;

export interface DeployCommand {
  project: string;
  service: string;
  environment: string;
  source: DeploymentSource;
  uploadPath?: string;
  queue?: boolean;
  auto_rollback?: boolean;
  requested_by: string;
  rollback_of?: string;
  promoted_from?: string;
}

export interface Accepted {
  deployment: Deployment;
  position: number;
  done: Promise<void>;
}

/**
 * The deploy controller: accepts deploys, runs them one per service at a time across every
 * replica (a lane per service in KV), recovers what a dead replica left.
 */
export class Deployer {
  readonly lanes: ServiceLanes;
  private recovery: Recovery;
  /** Restarts released app containers that die unexpectedly (Docker events). */
  private crashes: CrashRestarter | undefined;
  private inFlight = new Set<PlacedContainer>();
  /** This process's deploys, queued or running (what shutdown and tests wait for). */
  private mine = new Set<Promise<void>>();
  private ownerSub: Subscription | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopping = new AbortController();

  constructor(private deps: DeployerDeps) {
    // A half-configured mesh registry stops start-up here, naming the missing variable.
    meshRegistryOf(deps.config);
    this.lanes = new ServiceLanes({
      store: deps.stores.lanes,
      ownerId: deps.ownerId,
      ttlMs: deps.config.DEPLOY_LEASE_TTL_S * 1000,
      logger: deps.logger,
    });
    this.recovery = new Recovery(deps, this.lanes);
    if (deps.config.CRASH_RESTART)
      this.crashes = new CrashRestarter({
        stores: deps.stores,
        masterKey: deps.config.DEPLOYER_MASTER_KEY,
        defaultHost: deps.config.DOCKER_HOST,
        logger: deps.logger,
        emit: deps.emit,
        ownerId: deps.ownerId,
        maxRestarts: deps.config.CRASH_RESTART_MAX_PER_MIN,
      });
  }

  /** Answer liveness for our owner id, make sure the local server exists, and recover interrupted deploys. */
  async start(): Promise<void> {
    this.ownerSub = this.deps.bus.nc.subscribe(ownerSubject(this.deps.ownerId), { callback: (_e, m) => void m.respond('alive') });
    await this.deps.bus.nc.flush();
    await this.ensureLocalServer();
    await this.recoverInterrupted();
    await this.crashes?.start();
    this.sweepTimer = setInterval(
      () => void this.recoverInterrupted().catch((err) => this.deps.logger.warn({ err }, 'recovery sweep failed')),
      this.deps.config.RECOVERY_INTERVAL_S * 1000,
    );
    this.sweepTimer.unref();
  }

  /** The `local` server record, its address following LOCAL_SERVER_ADDRESS (a replica that lost the race leaves it as is). */
  private async ensureLocalServer(): Promise<void> {
    const address = this.deps.config.LOCAL_SERVER_ADDRESS;
    if (
      await this.deps.stores.servers.create([LOCAL_SERVER_ID], {
        id: LOCAL_SERVER_ID,
        docker_host: 'local',
        address,
        created_at: new Date().toISOString(),
      })
    )
      return;
    const current = await this.deps.stores.servers.getWithRevision(LOCAL_SERVER_ID);
    if (current && current.value.address !== address) {
      await this.deps.stores.servers.update([LOCAL_SERVER_ID], { ...current.value, address }, current.revision);
    }
  }

  /** Queued deploys give up their place (marked interrupted); running ones run to the end (see idle). */
  async stop(): Promise<void> {
    this.stopping.abort(new Error('the deployer is stopping'));
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.crashes?.stop();
  }

  /** Stop answering for our owner id: only after our deploys ended, or other replicas would take them over. */
  close(): void {
    this.ownerSub?.unsubscribe();
  }

  /** Deploys run to the end on stop; tests and shutdown wait here (bounded by every step's timeout). */
  async idle(): Promise<void> {
    while (this.mine.size > 0) await Promise.allSettled([...this.mine]);
  }

  /** 0 = running (or next), n = n deploys ahead; undefined once over. Read from KV, so the same on every replica. */
  async queuePosition(d: Deployment): Promise<number | undefined> {
    if (FINAL_STATUSES.has(d.status)) return undefined;
    return this.lanes.position(d.target_id, d.id);
  }

  async plan(project: string, serviceName: string, environmentName: string): Promise<Omit<DeployPlan, 'uploadPath'>> {
    const { stores } = this.deps;
    if (!(await stores.projects.get(project))) throw new NotFound(`no project '${project}'`);
    const service = await stores.services.get(project, serviceName);
    if (!service) throw new NotFound(`no service '${serviceName}' in project '${project}'`);
    const environment = await stores.environments.get(project, environmentName);
    if (!environment) throw new NotFound(`no environment '${environmentName}' in project '${project}'`);
    const placement = await stores.placements.get(project, serviceName, environmentName);
    // No explicit placement: spread over the servers assigned to the environment, else the local server.
    // A lost server is left out of the spread while another of the environment answers.
    const { up: pool, down } = placement
      ? { up: [], down: [] }
      : await answering(
          environmentServers(await stores.servers.list(), project, environmentName),
          (s) => this.deps.engines.get(s).engine.ping(),
          SERVER_PING_MS,
        );
    if (down.length > 0)
      this.deps.logger.warn(
        { project, service: serviceName, environment: environmentName, down },
        'servers left out: their engine does not answer',
      );
    const wanted =
      placement?.servers ??
      (pool.length > 0
        ? spreadReplicas(
            service.replicas,
            pool.map((s) => s.id),
            targetId(project, serviceName, environmentName),
          )
        : [{ server_id: LOCAL_SERVER_ID, replicas: service.replicas }]);
    const servers: Array<{ server: Server; replicas: number }> = [];
    for (const w of wanted) {
      const server = await stores.servers.get(w.server_id);
      if (!server) throw new InvalidRequest(`placement names server '${w.server_id}', which does not exist`);
      servers.push({ server, replicas: w.replicas });
    }
    return { service, environment, placement: servers, ...(down.length > 0 ? { left_out: down } : {}) };
  }

  async requestDeploy(cmd: DeployCommand): Promise<Accepted> {
    const discardUpload = () => cmd.uploadPath && rmSync(cmd.uploadPath, { force: true });
    let plan: Omit<DeployPlan, 'uploadPath'>;
    try {
      plan = await this.plan(cmd.project, cmd.service, cmd.environment);
    } catch (err) {
      discardUpload();
      throw err;
    }
    const tid = targetId(cmd.project, cmd.service, cmd.environment);
    if (plan.service.domain && tid.length > 63) {
      discardUpload();
      throw new InvalidRequest(
        `route name '${tid}' is longer than the 63 characters proxy-manager accepts: use shorter project/service/environment names`,
      );
    }
    const id = randomUUID();
    const { position, queue } = await this.lanes.enqueue(tid, id).catch(async (err: unknown) => {
      // NATS failed mid-way (the caller gets 503 and retries): an entry left in the lane would
      // hold every later deploy of the service behind a deployment that never runs.
      await this.lanes.leave(tid, id).catch((e) => this.deps.logger.warn({ err: e, deployment_id: id }, 'could not leave the lane'));
      discardUpload();
      throw err;
    });
    if (cmd.queue === false && position > 0) {
      await this.lanes.leave(tid, id);
      discardUpload();
      throw new Conflict(`a deploy of ${cmd.project}/${cmd.service}/${cmd.environment} is already in progress`, {
        running: queue[0].deployment_id,
        queued: position - 1,
      });
    }
    // Git credentials (URL userinfo, a deploy key) are sealed before anything is stored.
    const source: DeploymentSource =
      cmd.source.kind === 'git' ? { kind: 'git', ...sealGitSource(this.deps.config.DEPLOYER_MASTER_KEY, cmd.source) } : cmd.source;
    const d: Deployment = {
      id,
      target_id: tid,
      project: cmd.project,
      service: cmd.service,
      environment: cmd.environment,
      service_type: plan.service.type,
      source,
      status: 'queued',
      percent: 0,
      steps: [],
      containers: [],
      route_switched: false,
      auto_rollback: cmd.auto_rollback ?? plan.environment.auto_rollback ?? plan.service.auto_rollback,
      requested_by: cmd.requested_by,
      owner: this.deps.ownerId,
      created_at: new Date().toISOString(),
      events: [],
      ...(cmd.rollback_of ? { rollback_of: cmd.rollback_of } : {}),
      ...(cmd.promoted_from ? { promoted_from: cmd.promoted_from } : {}),
    };
    const tracker = new DeploymentTracker(d, this.deps.stores, this.deps.bus, this.deps.logger);
    tracker.setStatus('queued');
    tracker.log(position > 0 ? `queued behind ${position} deploy(s) of this service` : 'queued');
    await tracker.save();
    this.deps.emit('deployment.queued', { deployment_id: id, target_id: d.target_id, position });
    const done = this.runInTurn(tracker, cmd, plan);
    this.mine.add(done);
    void done.catch(() => undefined).finally(() => this.mine.delete(done));
    return { deployment: d, position, done };
  }

  /** Wait for the head of the lane and the service lease, run, then make way for the next. */
  private async runInTurn(tracker: DeploymentTracker, cmd: DeployCommand, plan: Omit<DeployPlan, 'uploadPath'>): Promise<void> {
    const d = tracker.d;
    let turn: LaneTurn;
    try {
      turn = await this.lanes.waitTurn(
        d.target_id,
        d.id,
        this.stopping.signal,
        async () => void (await this.recovery.recoverLane(d.target_id)),
      );
    } catch (err) {
      if (cmd.uploadPath) rmSync(cmd.uploadPath, { force: true });
      const now = await this.deps.stores.deployments.get(d.id);
      if (now && FINAL_STATUSES.has(now.status)) return; // another replica settled it
      tracker.setStatus(
        'interrupted',
        this.stopping.signal.aborted
          ? 'the deployer stopped before this deploy started'
          : `could not wait for its turn: ${(err as Error).message}`,
      );
      await tracker.save();
      await this.lanes
        .leave(d.target_id, d.id)
        .catch((e) => this.deps.logger.warn({ err: e, deployment_id: d.id }, 'could not leave the lane'));
      return;
    }
    try {
      d.started_at = new Date().toISOString();
      tracker.setStatus('running');
      await tracker.save();
      // Refresh the plan: config may have changed while this deploy waited.
      const fresh = await this.plan(cmd.project, cmd.service, cmd.environment).catch(() => plan);
      await runDeployment(this.deps, tracker, { ...fresh, uploadPath: cmd.uploadPath }, this.inFlight, turn.lost);
      this.deps.logger.info({ deployment_id: d.id, status: d.status, target_id: d.target_id }, 'deployment finished');
      this.deps.emit(
        `deployment.${d.status}`,
        { deployment_id: d.id, target_id: d.target_id, image: d.image, reason: d.reason },
        d.status === 'succeeded' ? 'info' : 'warn',
      );
    } finally {
      await this.lanes
        .leave(d.target_id, d.id)
        .catch((err) => this.deps.logger.warn({ err, deployment_id: d.id }, 'could not leave the lane'));
      await turn.release().catch((err) => this.deps.logger.warn({ err, deployment_id: d.id }, 'could not release the service lease'));
    }
  }

  /**
   * Redeploy the exact image a past deployment ran: by its digest in the mesh registry when
   * it went through one (every server pulls it, even after local images were cleaned up),
   * else by its local tag.
   */
  async rollback(deploymentId: string, by: string, opts: { queue?: boolean } = {}): Promise<Accepted> {
    const past = await this.deps.stores.deployments.get(deploymentId);
    if (!past) throw new NotFound(`no deployment '${deploymentId}'`);
    if (!past.image || past.status !== 'succeeded')
      throw new Conflict(`deployment ${deploymentId} did not produce a running image (status ${past.status})`);
    const registry = meshRegistryOf(this.deps.config);
    if (past.digest && isDigestRef(past.digest) && inMeshRegistry(registry, past.digest))
      return this.requestDeploy({
        project: past.project,
        service: past.service,
        environment: past.environment,
        source: { kind: 'image', image: past.digest },
        requested_by: by,
        rollback_of: past.id,
        queue: opts.queue,
      });
    const info = await this.deps.engines
      .get((await this.plan(past.project, past.service, past.environment)).placement[0].server)
      .engine.imageInfo(past.image);
    if (!info)
      throw new Conflict(`image ${past.image} is no longer on the server (only the last ${this.deps.config.KEEP_IMAGES} are kept)`);
    return this.requestDeploy({
      project: past.project,
      service: past.service,
      environment: past.environment,
      source: { kind: 'image', image: past.image },
      requested_by: by,
      rollback_of: past.id,
      queue: opts.queue,
    });
  }

  /** Run in `to` the exact image the current release of `from` runs. */
  async promote(project: string, service: string, from: string, to: string, by: string, opts: { queue?: boolean } = {}): Promise<Accepted> {
    if (from === to) throw new InvalidRequest('promote needs two different environments');
    const release = await this.deps.stores.releases.get(targetId(project, service, from));
    if (!release) throw new NotFound(`nothing is deployed for ${project}/${service} in '${from}'`);
    // Through the mesh registry, the target's servers pull the release's digest (they may never have built it).
    const digest = (await this.deps.stores.deployments.get(release.deployment_id))?.digest;
    const viaRegistry = !!digest && isDigestRef(digest) && inMeshRegistry(meshRegistryOf(this.deps.config), digest);
    return this.requestDeploy({
      project,
      service,
      environment: to,
      source: { kind: 'image', image: viaRegistry ? digest : release.image },
      requested_by: by,
      promoted_from: release.deployment_id,
      queue: opts.queue,
    });
  }

  async release(target: string): Promise<Release> {
    const r = await this.deps.stores.releases.get(target);
    if (!r) throw new NotFound(`nothing is deployed as '${target}'`);
    return r;
  }

  /**
   * Restart a service's current containers one by one and answer when they are healthy again.
   * `<target>.r<n>` (a replica's registry record, what health-monitor checks) restarts that
   * replica alone.
   */
  async restart(
    id: string,
  ): Promise<{ target_id: string; deployment_id: string; containers: Array<{ name: string; port?: number; healthy: boolean }> }> {
    const { target, index } = parseRecordId(id);
    const r = await this.release(target);
    const replica = id === target ? undefined : r.containers[index];
    if (id !== target && !replica) throw new NotFound(`${target} runs ${r.containers.length} replicas: there is no '${id}'`);
    const plan = await this.plan(r.project, r.service, r.environment);
    const timeoutMs = (plan.service.health_timeout_s ?? this.deps.config.HEALTH_TIMEOUT_S) * 1000;
    const out: Array<{ name: string; port?: number; healthy: boolean }> = [];
    for (const c of replica ? [replica] : r.containers) {
      const server = await this.deps.stores.servers.get(c.server_id);
      if (!server) throw new Conflict(`server '${c.server_id}' is gone`);
      const engine = this.deps.engines.get(server).engine;
      await engine.restart(c.container_id, 10);
      await withTimeout('restart', timeoutMs, (signal) =>
        plan.service.type === 'web' && c.port
          ? waitHealthy(engine, [{ containerId: c.container_id, url: `http://${c.address}:${c.port}${plan.service.health_path}` }], signal)
          : waitRunning(engine, [c.container_id], 1000, signal),
      );
      out.push({ name: c.name, port: c.port, healthy: true });
    }
    this.deps.emit('service.restarted', { target_id: target, record_id: id, deployment_id: r.deployment_id });
    return { target_id: target, deployment_id: r.deployment_id, containers: out };
  }

  /** Set the replica count (placement or service) and roll the current image out at that size. */
  async scale(target: string, replicas: number, by: string): Promise<Accepted> {
    const r = await this.release(target);
    const placement = await this.deps.stores.placements.get(r.project, r.service, r.environment);
    if (placement) {
      await this.deps.stores.placements.put([r.project, r.service, r.environment], {
        ...placement,
        servers: placement.servers.map((s) => ({ ...s, replicas })),
        updated_at: new Date().toISOString(),
      });
    } else {
      const svc = await this.deps.stores.services.get(r.project, r.service);
      if (!svc) throw new NotFound(`no service '${r.service}'`);
      await this.deps.stores.services.put([r.project, r.service], { ...svc, replicas, updated_at: new Date().toISOString() });
    }
    return this.requestDeploy({
      project: r.project,
      service: r.service,
      environment: r.environment,
      source: { kind: 'image', image: r.image },
      requested_by: by,
    });
  }

  /** The tail of each current container's log, with secret values masked. */
  async logs(target: string, tail: number): Promise<Array<{ container: string; lines: string[] }>> {
    const r = await this.release(target);
    const secrets = Object.values(await openSecrets(this.deps.stores, this.deps.config.DEPLOYER_MASTER_KEY, r.project, r.environment));
    const out: Array<{ container: string; lines: string[] }> = [];
    for (const c of r.containers) {
      const server = await this.deps.stores.servers.get(c.server_id);
      const lines = server ? await this.deps.engines.get(server).engine.logs(c.container_id, tail) : [];
      out.push({ container: c.name, lines: lines.map((l) => redactValues(l, secrets)) });
    }
    return out;
  }

  /** Recover what dead replicas left (also run at start and every RECOVERY_INTERVAL_S). */
  recoverInterrupted(): Promise<string[]> {
    return this.recovery.sweep();
  }
}
