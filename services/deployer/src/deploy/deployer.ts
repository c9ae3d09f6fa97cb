import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Subscription } from '@nats-io/transport-node';
import { Conflict, InvalidRequest, NotFound } from '@droplet-mesh/udc-kit';
import { waitHealthy, waitRunning } from '../engine/health-wait.js';
import { FINAL_STATUSES, type Deployment, type DeploymentSource, type PlacedContainer, type Release, type Server } from '../domain/model.js';
import { redactValues } from '../domain/redact.js';
import { SerialQueue } from '../domain/serial-queue.js';
import { targetId } from '../domain/naming.js';
import { withTimeout } from '../domain/step-timeout.js';
import type { DeployerDeps } from './deploy-context.js';
import { runDeployment, type DeployPlan } from './deploy-runner.js';
import { DeploymentTracker } from './progress.js';
import { routeUpsert, upstreamsOf } from './route-switch.js';
import { openSecrets } from './secrets.js';

export const LOCAL_SERVER_ID = 'local';
const ownerSubject = (owner: string) => `deployer.owner.${owner}`;

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

/** The deploy controller: accepts deploys, runs them one per service at a time, recovers after a crash. */
export class Deployer {
  readonly queue = new SerialQueue();
  private inFlight = new Set<PlacedContainer>();
  private ownerSub: Subscription | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private deps: DeployerDeps) {}

  /** Answer liveness for our owner id, make sure the local server exists, and recover interrupted deploys. */
  async start(): Promise<void> {
    this.ownerSub = this.deps.bus.nc.subscribe(ownerSubject(this.deps.ownerId), { callback: (_e, m) => void m.respond('alive') });
    await this.deps.bus.nc.flush();
    await this.deps.stores.servers.create([LOCAL_SERVER_ID], { id: LOCAL_SERVER_ID, docker_host: 'local', address: '127.0.0.1', created_at: new Date().toISOString() });
    await this.recoverInterrupted();
    this.sweepTimer = setInterval(() => void this.recoverInterrupted().catch((err) => this.deps.logger.warn({ err }, 'recovery sweep failed')), this.deps.config.RECOVERY_INTERVAL_S * 1000);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.ownerSub?.unsubscribe();
  }

  /** Deploys run to the end on stop; tests and shutdown wait here (bounded by every step's timeout). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private laneKey(project: string, service: string, environment: string) {
    return `${project}/${service}/${environment}`;
  }

  queuePosition(d: Deployment): number | undefined {
    return this.queue.position(this.laneKey(d.project, d.service, d.environment), d.id);
  }

  async plan(project: string, serviceName: string, environmentName: string): Promise<Omit<DeployPlan, 'uploadPath'>> {
    const { stores } = this.deps;
    if (!(await stores.projects.get(project))) throw new NotFound(`no project '${project}'`);
    const service = await stores.services.get(project, serviceName);
    if (!service) throw new NotFound(`no service '${serviceName}' in project '${project}'`);
    const environment = await stores.environments.get(project, environmentName);
    if (!environment) throw new NotFound(`no environment '${environmentName}' in project '${project}'`);
    const placement = await stores.placements.get(project, serviceName, environmentName);
    const wanted = placement?.servers ?? [{ server_id: LOCAL_SERVER_ID, replicas: service.replicas }];
    const servers: Array<{ server: Server; replicas: number }> = [];
    for (const w of wanted) {
      const server = await stores.servers.get(w.server_id);
      if (!server) throw new InvalidRequest(`placement names server '${w.server_id}', which does not exist`);
      servers.push({ server, replicas: w.replicas });
    }
    return { service, environment, placement: servers };
  }

  async requestDeploy(cmd: DeployCommand): Promise<Accepted> {
    let plan: Omit<DeployPlan, 'uploadPath'>;
    try {
      plan = await this.plan(cmd.project, cmd.service, cmd.environment);
    } catch (err) {
      if (cmd.uploadPath) rmSync(cmd.uploadPath, { force: true });
      throw err;
    }
    const tid = targetId(cmd.project, cmd.service, cmd.environment);
    if (plan.service.domain && tid.length > 63) {
      if (cmd.uploadPath) rmSync(cmd.uploadPath, { force: true });
      throw new InvalidRequest(`route name '${tid}' is longer than the 63 characters proxy-manager accepts: use shorter project/service/environment names`);
    }
    const lane = this.laneKey(cmd.project, cmd.service, cmd.environment);
    if (cmd.queue === false && this.queue.size(lane) > 0) {
      if (cmd.uploadPath) rmSync(cmd.uploadPath, { force: true });
      throw new Conflict(`a deploy of ${lane} is already in progress`, { running: this.queue.ids(lane)[0], queued: this.queue.size(lane) - 1 });
    }
    const id = randomUUID();
    const d: Deployment = {
      id,
      target_id: tid,
      project: cmd.project,
      service: cmd.service,
      environment: cmd.environment,
      service_type: plan.service.type,
      source: cmd.source,
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
    await tracker.save();
    this.deps.emit('deployment.queued', { deployment_id: id, target_id: d.target_id });
    const { position, done } = this.queue.enqueue(lane, id, async () => {
      if (this.stopped) {
        tracker.setStatus('interrupted', 'the deployer stopped before this deploy started');
        await tracker.save();
        return;
      }
      d.started_at = new Date().toISOString();
      tracker.setStatus('running');
      await tracker.save();
      // Refresh the plan: config may have changed while this deploy waited.
      const fresh = await this.plan(cmd.project, cmd.service, cmd.environment).catch(() => plan);
      await runDeployment(this.deps, tracker, { ...fresh, uploadPath: cmd.uploadPath }, this.inFlight);
      this.deps.logger.info({ deployment_id: id, status: d.status, target_id: d.target_id }, 'deployment finished');
      this.deps.emit(`deployment.${d.status}`, { deployment_id: id, target_id: d.target_id, image: d.image, reason: d.reason }, d.status === 'succeeded' ? 'info' : 'warn');
    });
    return { deployment: d, position, done };
  }

  /** Redeploy the exact image (by tag) a past deployment ran. */
  async rollback(deploymentId: string, by: string, opts: { queue?: boolean } = {}): Promise<Accepted> {
    const past = await this.deps.stores.deployments.get(deploymentId);
    if (!past) throw new NotFound(`no deployment '${deploymentId}'`);
    if (!past.image || past.status !== 'succeeded') throw new Conflict(`deployment ${deploymentId} did not produce a running image (status ${past.status})`);
    const info = await this.deps.engines.get((await this.plan(past.project, past.service, past.environment)).placement[0].server).engine.imageInfo(past.image);
    if (!info) throw new Conflict(`image ${past.image} is no longer on the server (only the last ${this.deps.config.KEEP_IMAGES} are kept)`);
    return this.requestDeploy({ project: past.project, service: past.service, environment: past.environment, source: { kind: 'image', image: past.image }, requested_by: by, rollback_of: past.id, queue: opts.queue });
  }

  /** Run in `to` the exact image the current release of `from` runs. */
  async promote(project: string, service: string, from: string, to: string, by: string, opts: { queue?: boolean } = {}): Promise<Accepted> {
    if (from === to) throw new InvalidRequest('promote needs two different environments');
    const release = await this.deps.stores.releases.get(targetId(project, service, from));
    if (!release) throw new NotFound(`nothing is deployed for ${project}/${service} in '${from}'`);
    return this.requestDeploy({ project, service, environment: to, source: { kind: 'image', image: release.image }, requested_by: by, promoted_from: release.deployment_id, queue: opts.queue });
  }

  async release(target: string): Promise<Release> {
    const r = await this.deps.stores.releases.get(target);
    if (!r) throw new NotFound(`nothing is deployed as '${target}'`);
    return r;
  }

  /** Restart a service's current containers one by one and answer when they are healthy again. */
  async restart(target: string): Promise<{ target_id: string; deployment_id: string; containers: Array<{ name: string; port?: number; healthy: boolean }> }> {
    const r = await this.release(target);
    const plan = await this.plan(r.project, r.service, r.environment);
    const timeoutMs = (plan.service.health_timeout_s ?? this.deps.config.HEALTH_TIMEOUT_S) * 1000;
    const out: Array<{ name: string; port?: number; healthy: boolean }> = [];
    for (const c of r.containers) {
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
    this.deps.emit('service.restarted', { target_id: target, deployment_id: r.deployment_id });
    return { target_id: target, deployment_id: r.deployment_id, containers: out };
  }

  /** Set the replica count (placement or service) and roll the current image out at that size. */
  async scale(target: string, replicas: number, by: string): Promise<Accepted> {
    const r = await this.release(target);
    const placement = await this.deps.stores.placements.get(r.project, r.service, r.environment);
    if (placement) {
      await this.deps.stores.placements.put([r.project, r.service, r.environment], { ...placement, servers: placement.servers.map((s) => ({ ...s, replicas })), updated_at: new Date().toISOString() });
    } else {
      const svc = await this.deps.stores.services.get(r.project, r.service);
      if (!svc) throw new NotFound(`no service '${r.service}'`);
      await this.deps.stores.services.put([r.project, r.service], { ...svc, replicas, updated_at: new Date().toISOString() });
    }
    return this.requestDeploy({ project: r.project, service: r.service, environment: r.environment, source: { kind: 'image', image: r.image }, requested_by: by });
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

  private async ownerAlive(owner: string): Promise<boolean> {
    if (owner === this.deps.ownerId) return true;
    try {
      await this.deps.bus.nc.request(ownerSubject(owner), '', { timeout: 1000 });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Deploys whose owner no longer answers were interrupted (kill -9, crash): remove what
   * they started, put the route back on the previous release, mark them `interrupted`.
   */
  async recoverInterrupted(): Promise<string[]> {
    const recovered: string[] = [];
    const open = (await this.deps.stores.deployments.list()).filter((d) => !FINAL_STATUSES.has(d.status));
    const deadOwners = new Map<string, boolean>();
    for (const d of open) {
      if (d.owner === this.deps.ownerId) continue;
      if (!deadOwners.has(d.owner)) deadOwners.set(d.owner, !(await this.ownerAlive(d.owner)));
      if (!deadOwners.get(d.owner)) continue;
      await this.cleanUpInterrupted(d).catch((err) => this.deps.logger.error({ err, deployment_id: d.id }, 'cleanup of interrupted deploy failed'));
      recovered.push(d.id);
    }
    return recovered;
  }

  private async cleanUpInterrupted(d: Deployment): Promise<void> {
    const log = this.deps.logger.child({ deployment_id: d.id });
    const tracker = new DeploymentTracker(d, this.deps.stores, this.deps.bus, this.deps.logger);
    const release = await this.deps.stores.releases.get(d.target_id);
    const servers = new Map<string, Server>();
    for (const s of await this.deps.stores.servers.list()) servers.set(s.id, s);
    const engineFor = (id: string) => {
      const s = servers.get(id);
      return s ? this.deps.engines.get(s).engine : undefined;
    };
    if (release?.deployment_id === d.id) {
      // It died after the release was written: the new version serves; finish removing the old.
      tracker.log('interrupted after the switch: the new version is serving, old containers removed');
      for (const s of servers.values()) {
        const engine = this.deps.engines.get(s).engine;
        const keep = new Set(d.containers.map((c) => c.container_id));
        for (const c of await engine.listManagedContainers({ 'mesh.project': d.project, 'mesh.service': d.service, 'mesh.environment': d.environment }).catch(() => [])) {
          if (!keep.has(c.id)) await engine.remove(c.id);
        }
      }
    } else {
      if (d.route_switched && release) {
        const svc = await this.deps.stores.services.get(d.project, d.service);
        if (svc?.domain) {
          await routeUpsert(this.deps, d.target_id, svc.domain, upstreamsOf(release.containers), svc.health_path);
          tracker.log('route returned to the previous release');
        }
      }
      // What this deploy started, found by label (its record may lag the engine).
      for (const s of servers.values()) {
        const engine = this.deps.engines.get(s).engine;
        for (const c of await engine.listManagedContainers({ 'mesh.deployment': d.id }).catch(() => [])) {
          if (release?.containers.some((r) => r.container_id === c.id)) continue;
          await engine.remove(c.id);
        }
      }
      // A worker deploy stops the old containers first: start them again.
      for (const c of release?.containers ?? []) {
        const engine = engineFor(c.server_id);
        const st = await engine?.inspect(c.container_id);
        if (engine && st && !st.running) await engine.restart(c.container_id).catch(() => undefined);
      }
    }
    tracker.setStatus('interrupted', `the deployer running it (${d.owner.slice(0, 8)}) stopped during step '${d.step ?? 'queued'}'; what it started was cleaned up`);
    await tracker.save();
    log.warn({ step: d.step }, 'interrupted deployment cleaned up');
    this.deps.emit('deployment.interrupted', { deployment_id: d.id, target_id: d.target_id, step: d.step }, 'warn');
  }
}
