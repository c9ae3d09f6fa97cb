import { RevisionAges } from '@droplet-mesh/udc-kit';
import { FINAL_STATUSES, type Deployment, type PlacedContainer, type Release, type Server, type Service } from '../domain/model.js';
import type { HeldLease } from '../store/lane-store.js';
import type { DeployerDeps } from './deploy-context.js';
import { commitRelease } from './deploy-runner.js';
import { registerService } from './service-records.js';
import { DeploymentTracker } from './progress.js';
import { routeUpsert, upstreamsOf } from './route-switch.js';
import type { ServiceLanes } from './service-lanes.js';

export const ownerSubject = (owner: string) => `deployer.owner.${owner}`;
/** The open-deployment index was built from the history (once per bucket). */
const OPEN_INDEX_MIGRATION = 'open-deployment-index';
/** An index entry whose record never appeared (its deployer died between the two writes) is dropped after this. */
const ORPHAN_ENTRY_MS = 60_000;

type Alive = (owner: string) => Promise<boolean>;

/**
 * Deploys whose deployer died (kill -9, crash, lost its lease): remove what they started,
 * put the route back on the previous release, mark them `interrupted`, and take them out
 * of their service's lane so the next deploy can run. Any replica may do this; the
 * service lease makes sure only one does, and never while a live deploy runs.
 */
export class Recovery {
  private indexReady = false;
  /** How long this replica has seen each orphan entry (monotonic): its created_at is another machine's clock. */
  private orphansSeen = new RevisionAges();

  constructor(
    private deps: DeployerDeps,
    private lanes: ServiceLanes,
  ) {}

  /**
   * Deployments recorded before the open index existed: the history is read once, its
   * unfinished ones indexed, and a marker says it was done (any replica may do it; idempotent).
   */
  private async ensureOpenIndex(): Promise<void> {
    if (this.indexReady) return;
    const { stores } = this.deps;
    if (!(await stores.migrations.get(OPEN_INDEX_MIGRATION))) {
      for (const d of await stores.deployments.list()) {
        if (FINAL_STATUSES.has(d.status)) continue;
        await stores.openDeployments.put([d.id], { id: d.id, target_id: d.target_id, owner: d.owner, created_at: d.created_at });
      }
      await stores.migrations.put([OPEN_INDEX_MIGRATION], { done_at: new Date().toISOString(), by: this.deps.ownerId });
      this.deps.logger.info('deployment history indexed: recovery now reads only unfinished deployments');
    }
    this.indexReady = true;
  }

  /** Other replicas' unfinished deployments, from the open index (never the whole history). */
  private async openDeployments(): Promise<Deployment[]> {
    await this.ensureOpenIndex();
    const { stores } = this.deps;
    const out: Deployment[] = [];
    for (const entry of await stores.openDeployments.list()) {
      if (entry.owner === this.deps.ownerId) continue;
      const d = await stores.deployments.get(entry.id);
      if (d && !FINAL_STATUSES.has(d.status)) {
        out.push(d);
        continue;
      }
      // Over, or never recorded: the entry outlived its deployment.
      if (d || this.orphansSeen.observe(entry.id, 0) > ORPHAN_ENTRY_MS) {
        await stores.openDeployments.purge(entry.id);
        this.orphansSeen.forget(entry.id);
      }
    }
    return out;
  }

  /** Liveness of deployer replicas, asked once per owner per pass. */
  aliveCheck(): Alive {
    const seen = new Map<string, Promise<boolean>>();
    return (owner) => {
      if (owner === this.deps.ownerId) return Promise.resolve(true);
      let p = seen.get(owner);
      if (!p) {
        p = this.deps.bus.nc.request(ownerSubject(owner), '', { timeout: 1000 }).then(
          () => true,
          () => false,
        );
        seen.set(owner, p);
      }
      return p;
    };
  }

  /** Every lane and every open deployment: recover what a dead replica left. */
  async sweep(): Promise<string[]> {
    const alive = this.aliveCheck();
    const open = (await this.openDeployments()).filter((d) => d.owner !== this.deps.ownerId);
    const targets = new Set([...open.map((d) => d.target_id), ...(await this.lanes.targets())]);
    const recovered: string[] = [];
    for (const t of targets)
      recovered.push(
        ...(await this.recoverLane(
          t,
          alive,
          open.filter((d) => d.target_id === t),
        )),
      );
    return recovered;
  }

  /** One service's lane: queue entries and lease of dead owners, plus the given open deployments. */
  async recoverLane(target: string, alive: Alive = this.aliveCheck(), open: Deployment[] = []): Promise<string[]> {
    const lease = await this.lanes.lease(target);
    const staleLease = lease && (await this.lanes.isStale(lease, alive)) ? lease : undefined;
    const suspects = new Map<string, Deployment | undefined>();
    for (const e of await this.lanes.queue(target)) if (!(await alive(e.owner))) suspects.set(e.deployment_id, undefined);
    if (staleLease) suspects.set(staleLease.value.deployment_id, undefined);
    for (const d of open) if (!(await alive(d.owner))) suspects.set(d.id, d);
    const recovered: string[] = [];
    for (const [id, known] of suspects) {
      const d = known ?? (await this.deps.stores.deployments.get(id));
      if (!d || FINAL_STATUSES.has(d.status)) {
        // Its deployer died after recording the end, before leaving the lane.
        await this.lanes.leave(target, id);
        if (staleLease?.value.deployment_id === id) await this.lanes.releaseStale(staleLease);
        continue;
      }
      const done = await this.recoverDeployment(d, lease, staleLease).catch((err) => {
        this.deps.logger.error({ err, deployment_id: d.id }, 'cleanup of interrupted deploy failed');
        return false;
      });
      if (done) recovered.push(d.id);
    }
    return recovered;
  }

  /** `lease` is the service's lease as read; `staleLease` the same when it may be taken over. */
  private async recoverDeployment(d: Deployment, lease: HeldLease | undefined, staleLease: HeldLease | undefined): Promise<boolean> {
    const target = d.target_id;
    if (lease?.value.deployment_id !== d.id && d.status === 'queued') {
      // It never started (the lease was never its own): nothing to clean up.
      await this.markInterrupted(d, `the deployer that queued it (${d.owner.slice(0, 8)}) stopped before this deploy started`);
      await this.lanes.leave(target, d.id);
      return true;
    }
    // It was changing the service: clean up under the lease, taken over from the dead owner.
    const turn =
      lease?.value.deployment_id === d.id
        ? staleLease && (await this.lanes.hold(target, d.id, staleLease))
        : lease
          ? undefined // someone else's deploy holds the service: try again on a later pass
          : await this.lanes.hold(target, d.id);
    if (!turn) return false;
    try {
      await this.cleanUp(d);
    } finally {
      await this.lanes.leave(target, d.id);
      await turn.release();
    }
    return true;
  }

  private async markInterrupted(d: Deployment, reason: string): Promise<void> {
    const tracker = new DeploymentTracker(d, this.deps.stores, this.deps.bus, this.deps.logger);
    tracker.setStatus('interrupted', reason);
    await tracker.save();
    this.deps.emit('deployment.interrupted', { deployment_id: d.id, target_id: d.target_id, step: d.step }, 'warn');
  }

  /** Remove every managed container of the deployment's service that is not in `keep`, on every server. */
  private async removeAllBut(d: Deployment, servers: Map<string, Server>, keep: Set<string>): Promise<void> {
    for (const s of servers.values()) {
      const engine = this.deps.engines.get(s).engine;
      for (const c of await engine
        .listManagedContainers({ 'mesh.project': d.project, 'mesh.service': d.service, 'mesh.environment': d.environment })
        .catch(() => [])) {
        if (!keep.has(c.id)) await engine.remove(c.id);
      }
    }
  }

  /**
   * The route may point at `d`'s containers (its deployer asked for the switch, then
   * died): leave one working version serving. The previous release takes the route back
   * when proxy-manager finds it healthy; else the new version keeps it when healthy;
   * else nothing is touched. (Every route request is health-checked by proxy-manager.)
   */
  private async settleRoute(d: Deployment, svc: Service & { domain: string }, release: Release | undefined, t: DeploymentTracker) {
    const upsert = (containers: PlacedContainer[]) =>
      routeUpsert(this.deps, d.target_id, svc.domain, upstreamsOf(containers), svc.health_path, svc.https).then(
        () => true,
        (err: Error) => {
          t.log(`route request refused: ${err.message}`);
          return false;
        },
      );
    if (release && (await upsert(release.containers))) {
      t.log('route returned to the previous release');
      return 'previous' as const;
    }
    if (d.containers.length > 0 && (await upsert(d.containers))) {
      t.log(release ? 'the previous release could not take the route back: the new version keeps it' : 'the new version keeps the route');
      return 'new' as const;
    }
    return 'none' as const;
  }

  private async finish(d: Deployment, t: DeploymentTracker, reason: string): Promise<void> {
    t.setStatus('interrupted', `the deployer running it (${d.owner.slice(0, 8)}) stopped during step '${d.step ?? 'queued'}'; ${reason}`);
    await t.save();
    this.deps.logger.warn({ deployment_id: d.id, step: d.step }, 'interrupted deployment cleaned up');
    this.deps.emit('deployment.interrupted', { deployment_id: d.id, target_id: d.target_id, step: d.step }, 'warn');
  }

  private async cleanUp(d: Deployment): Promise<void> {
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
      await this.removeAllBut(d, servers, new Set(d.containers.map((c) => c.container_id)));
      return this.finish(d, tracker, 'the new version serves; the old containers were removed');
    }
    const svc = await this.deps.stores.services.get(d.project, d.service);
    if ((d.route_switched || d.route_switch_requested_at) && svc?.domain) {
      const serving = await this.settleRoute(d, { ...svc, domain: svc.domain }, release, tracker);
      if (serving === 'new') {
        // Roll forward: the route stays on the new containers, so they become the release.
        d.route_switched = true;
        await commitRelease(this.deps, tracker, release);
        await registerService(this.deps, tracker, svc);
        await this.removeAllBut(d, servers, new Set(d.containers.map((c) => c.container_id)));
        return this.finish(
          d,
          tracker,
          release
            ? 'the route already pointed at the new version and the previous one could not take it back: the new version was kept serving'
            : 'the route already pointed at the new version (there was no previous one): it was kept serving',
        );
      }
      if (serving === 'none') {
        // Neither version is healthy enough for proxy-manager: removing either could only make it worse.
        return this.finish(
          d,
          tracker,
          'neither version passed the health check for the route: the route and the containers were left as they were (the next deploy replaces them)',
        );
      }
      d.route_switched = false;
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
    return this.finish(d, tracker, 'what it started was cleaned up');
  }
}
