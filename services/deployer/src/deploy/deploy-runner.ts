import { rmSync } from 'node:fs';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { EngineHandle } from '../engine/engine-pool.js';
import { waitHealthy, waitRunning } from '../engine/health-wait.js';
import { authSecrets, openGitAuth } from '../domain/git-credentials.js';
import { tagsToRemove } from '../domain/image-retention.js';
import type { Environment, PlacedContainer, Release, Server, Service } from '../domain/model.js';
import { containerName, deployTag, imageBaseOf, meshLabels } from '../domain/naming.js';
import { allocatePort } from '../domain/port-allocator.js';
import { StepTimeout, withTimeout } from '../domain/step-timeout.js';
import { distributeImage } from '../registry/image-transport.js';
import { meshRegistryOf, meshRepository } from '../registry/mesh-registry.js';
import { pullAccess } from '../registry/pull-auth.js';
import type { DeployerDeps } from './deploy-context.js';
import { produceImage } from './image-builder.js';
import type { DeploymentTracker } from './progress.js';
import { registerService } from './service-records.js';
import { routeUpsert, upstreamsOf } from './route-switch.js';
import { openSecrets } from './secrets.js';

export interface DeployPlan {
  service: Service;
  environment: Environment;
  /** Target servers with replica counts. */
  placement: Array<{ server: Server; replicas: number }>;
  /** Servers of the environment left out because their engine did not answer. */
  left_out?: Array<{ id: string; reason: string }>;
  uploadPath?: string;
}

class StepFailure extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly lastLogLines?: string[],
  ) {
    super(message);
  }
}

/** Ports held by running releases and by deploys this process has in flight. */
async function takenPorts(deps: DeployerDeps, serverId: string, inFlight: Iterable<PlacedContainer>): Promise<Set<number>> {
  const taken = new Set<number>();
  for (const r of await deps.stores.releases.list())
    for (const c of r.containers) if (c.server_id === serverId && c.port) taken.add(c.port);
  for (const c of inFlight) if (c.server_id === serverId && c.port) taken.add(c.port);
  return taken;
}

/**
 * Test-only: with DEPLOYER_TEST_PAUSE_AFTER_ROUTE_SWITCH=1 the process stops right after
 * proxy-manager applied a route, before anything else is recorded, and says so on stdout
 * (a kill -9 test kills it there). Never set outside tests.
 */
async function testPauseAfterRouteSwitch(): Promise<void> {
  if (process.env.DEPLOYER_TEST_PAUSE_AFTER_ROUTE_SWITCH !== '1') return;
  process.stdout.write('TEST HOOK: paused after the route switch\n');
  await new Promise<never>(() => undefined);
}

const commandOf = (s: Service) =>
  s.command === undefined ? undefined : typeof s.command === 'string' ? ['/bin/sh', '-c', s.command] : s.command;

/**
 * One deployment, step by step. Every step has a deadline; a failure before the route
 * switch removes what this deploy started and leaves the previous version serving.
 */
export async function runDeployment(
  deps: DeployerDeps,
  t: DeploymentTracker,
  plan: DeployPlan,
  inFlight: Set<PlacedContainer>,
  leaseLost?: AbortSignal,
): Promise<void> {
  const d = t.d;
  const { service, environment } = plan;
  const cfg = deps.config;
  const previous = await deps.stores.releases.get(d.target_id);
  // The plan's servers, and those the previous release ran on (a worker's old containers may be on a server no longer placed on).
  const known = new Map(plan.placement.map((p) => [p.server.id, p.server]));
  for (const c of previous?.containers ?? [])
    if (!known.has(c.server_id)) {
      const s = await deps.stores.servers.get(c.server_id);
      if (s) known.set(s.id, s);
    }
  const engineOf = (serverId: string): EngineHandle => {
    const server = known.get(serverId);
    if (!server) throw new Error(`server '${serverId}' no longer exists`);
    return deps.engines.get(server);
  };
  d.previous_deployment_id = previous?.deployment_id;
  const stepMs = cfg.STEP_TIMEOUT_S * 1000;
  for (const s of plan.left_out ?? []) t.log(`server ${s.id} left out: its engine does not answer (${s.reason})`);

  const step = async <T>(name: string, percent: number, ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const rec = t.startStep(name);
    await t.save();
    try {
      const out = await withTimeout(name, ms, fn, leaseLost);
      t.endStep(rec, 'succeeded', percent);
      await t.save();
      return out;
    } catch (err) {
      const msg =
        err instanceof StepTimeout || err instanceof StepFailure ? err.message : `step '${name}' failed: ${(err as Error).message}`;
      t.endStep(rec, 'failed', percent, msg);
      throw err instanceof StepFailure ? err : new StepFailure(name, msg);
    }
  };

  const removeNew = async () => {
    for (const c of d.containers) {
      await engineOf(c.server_id)
        .engine.remove(c.container_id)
        .catch((err) => deps.logger.warn({ err, container: c.name }, 'could not remove container'));
      inFlight.delete(c);
    }
  };

  try {
    const secrets = await openSecrets(deps.stores, cfg.DEPLOYER_MASTER_KEY, d.project, d.environment);
    const gitAuth = d.source.kind === 'git' ? openGitAuth(cfg.DEPLOYER_MASTER_KEY, d.source) : undefined;
    t.hideValues([...Object.values(secrets), ...authSecrets(gitAuth)]);
    const labels = meshLabels(d);
    const registry = meshRegistryOf(cfg);
    // With a mesh registry the deploy tag lives in the registry's repository: removing the tag
    // (image retention) then also drops the digest reference a pull leaves, and the image goes.
    const localBase = imageBaseOf(d.project, d.service, service.image_base);
    const imageBase = registry ? meshRepository(registry, localBase) : localBase;
    const tag = deployTag(imageBase, d.id);
    const [first, ...others] = plan.placement;
    const access = pullAccess(cfg, deps.stores, d.project);
    // Registry passwords are masked in this deploy's log like secrets.
    const pullAuth = async (ref: string) => {
      const auth = await access.authFor(ref);
      if (auth) t.hideValues([auth.password]);
      return auth;
    };

    // 1. Image: resolved or built once, then pushed to the mesh registry (or copied) for the other servers.
    await step('image', 45, stepMs, async (signal) => {
      const info = await produceImage({
        engine: engineOf(first.server.id).engine,
        source: d.source,
        gitAuth,
        uploadPath: plan.uploadPath,
        tag,
        labels,
        baseImages: { node: cfg.NODE_BASE_IMAGE, python: cfg.PYTHON_BASE_IMAGE },
        uploadLimits: { maxBytes: cfg.UPLOAD_LIMIT_MB * 1024 * 1024 * 4, maxEntries: 50_000 },
        log: (l) => t.log(l),
        signal,
        pullAuth,
        mustPull: access.mustPull,
        missingAuthHint: access.missingHint,
      });
      d.image = tag;
      d.image_id = info.id;
      d.digest = info.digest;
      t.log(`image ${tag} (${info.id})`);
    });
    if (plan.uploadPath) rmSync(plan.uploadPath, { force: true });
    if (others.length > 0 || registry) {
      await step('distribute', 55, stepMs, async (signal) => {
        const out = await distributeImage({
          tag,
          builder: { serverId: first.server.id, engine: engineOf(first.server.id).engine },
          others: others.map((p) => ({ serverId: p.server.id, engine: engineOf(p.server.id).engine })),
          registry,
          // A rollback or promotion of an image the mesh registry holds: pulled by that digest, not pushed again.
          knownDigest: d.source.kind === 'image' ? d.source.image : undefined,
          log: (l) => t.log(l),
          signal,
        });
        // The record keeps what every server runs: the registry digest (what a rollback pulls).
        if (out.digestRef) d.digest = out.digestRef;
      });
    }

    const env = {
      ...environment.env,
      ...service.env,
      ...secrets,
      MESH_PROJECT: d.project,
      MESH_SERVICE: d.service,
      MESH_ENVIRONMENT: d.environment,
      MESH_DEPLOYMENT_ID: d.id,
    };
    const healthMs = (service.health_timeout_s ?? cfg.HEALTH_TIMEOUT_S) * 1000;

    const startContainers = async (signal: AbortSignal) => {
      // Ports are chosen one by one (each choice sees the ones before it); the engine's own
      // start (most of this step: ~1 s on a bridge network) then runs for all replicas at once.
      const started: (PlacedContainer | undefined)[] = [];
      const starting: Promise<void>[] = [];
      const reserved: { server_id: string; port?: number }[] = [];
      let planning: { error: unknown } | undefined;
      try {
        for (const p of plan.placement) {
          const h = engineOf(p.server.id);
          for (let replica = 0; replica < p.replicas; replica++) {
            if (signal.aborted) throw signal.reason;
            let port: number | undefined;
            if (service.type === 'web') {
              const taken = await takenPorts(deps, p.server.id, inFlight);
              for (const r of reserved) if (r.server_id === p.server.id && r.port) taken.add(r.port);
              port = await allocatePort({
                key: `${d.project}/${d.environment}/${d.service}/${d.slot}/${replica}`,
                range: cfg.DEPLOY_PORT_RANGE,
                taken,
                isFree: h.isPortFree,
              });
              reserved.push({ server_id: p.server.id, port });
            }
            const name = containerName(d.target_id, d.id, replica);
            const index = started.length;
            started.push(undefined);
            starting.push(
              h.engine
                .run({ name, image: tag, env: port ? { ...env, PORT: String(port) } : env, labels, cmd: commandOf(service) })
                .then((id) => {
                  const placed: PlacedContainer = {
                    server_id: p.server.id,
                    container_id: id,
                    name,
                    port,
                    replica,
                    address: p.server.address,
                  };
                  started[index] = placed;
                  // Recorded at once: a step deadline that passes meanwhile still removes it.
                  d.containers.push(placed);
                  inFlight.add(placed);
                  t.log(`started ${name}${port ? ` on port ${port}` : ''} on server ${p.server.id}`);
                }),
            );
          }
        }
      } catch (error) {
        planning = { error };
      }
      const settled = await Promise.allSettled(starting);
      // Placement order again (they finished in any order).
      const mine = new Set(started);
      const others = d.containers.filter((c) => !mine.has(c));
      d.containers.splice(0, d.containers.length, ...others, ...started.filter((c): c is PlacedContainer => c !== undefined));
      await t.save();
      if (planning) throw planning.error;
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    };

    const lastLines = () => containerLogTail(deps, t, plan);

    if (service.type === 'worker') {
      await runWorker(deps, t, service, previous, step, startContainers, lastLines, removeNew, engineOf);
      return;
    }

    d.slot = previous?.slot === 'blue' ? 'green' : 'blue';
    // 2. New containers beside the old ones, on fresh ports.
    await step('start', 60, 120_000, startContainers);
    await step('health', 75, healthMs, async (signal) => {
      try {
        for (const c of d.containers) {
          await waitHealthy(
            engineOf(c.server_id).engine,
            [{ containerId: c.container_id, url: `http://${c.address}:${c.port}${service.health_path}` }],
            signal,
          );
        }
        t.log(`healthy: ${service.health_path} answers on ${d.containers.map((c) => c.port).join(', ')}`);
      } catch (err) {
        const lines = await lastLines();
        const reason =
          err instanceof StepTimeout
            ? `health check timed out after ${Math.round(healthMs / 1000)} s (${service.health_path})`
            : (err as Error).message;
        throw new StepFailure('health', `step 'health' failed: ${reason}`, lines);
      }
    });

    // 3. The route: only after the new version is healthy.
    if (service.domain) {
      await step('switch', 85, 30_000, async () => {
        // The intent first: a deployer killed from here on leaves a record saying the
        // route may already point at these containers, so recovery never removes them blindly.
        d.route_switch_requested_at = new Date().toISOString();
        await t.save();
        await routeUpsert(deps, d.target_id, service.domain!, upstreamsOf(d.containers), service.health_path, service.https);
        await testPauseAfterRouteSwitch();
        d.route_switched = true;
        t.log(
          `route ${service.domain} now points at ${upstreamsOf(d.containers)
            .map((u) => `${u.host}:${u.port}`)
            .join(', ')}`,
        );
      });
      const verified = await step('verify', 88, Math.max(5_000, Math.min(healthMs, 15_000)), async (signal) => {
        for (const c of d.containers)
          await waitHealthy(
            engineOf(c.server_id).engine,
            [{ containerId: c.container_id, url: `http://${c.address}:${c.port}${service.health_path}` }],
            signal,
          );
        return true;
      }).catch(async (err: StepFailure) => {
        if (!d.auto_rollback || !previous) throw err;
        t.log('the new version failed after the switch: auto_rollback returns the route to the previous version');
        await routeUpsert(deps, d.target_id, service.domain!, upstreamsOf(previous.containers), service.health_path, service.https);
        d.route_switched = false;
        // The new containers' last words, read before they are removed.
        d.last_log_lines = await lastLines().catch(() => []);
        await removeNew();
        t.setStatus('rolled_back', err.message);
        await t.save();
        return false;
      });
      if (!verified) return;
    }

    // 4. The new release is current; the old containers drain and stop.
    leaseLost?.throwIfAborted();
    await commitRelease(deps, t, previous);
    await registerService(deps, t, service);
    await step('drain', 95, ((service.drain_s ?? cfg.DRAIN_S) + 60) * 1000, async () => {
      const drainMs = (service.drain_s ?? cfg.DRAIN_S) * 1000;
      if (previous && drainMs > 0) await new Promise((r) => setTimeout(r, drainMs));
      await removeOthers(deps, plan, d.containers);
      await removeOffPlan(deps, t, plan, previous);
    });
    for (const c of d.containers) inFlight.delete(c);
    await step('cleanup', 99, 60_000, () => cleanImages(deps, plan, imageBase));
    t.setStatus('succeeded');
    await t.save();
  } catch (err) {
    const f = err instanceof StepFailure ? err : new StepFailure(d.step ?? 'deploy', (err as Error).message);
    d.last_log_lines = f.lastLogLines ?? d.last_log_lines ?? (await containerLogTail(deps, t, plan));
    // A route request that failed may still have been applied: the route goes back to the
    // previous release before the new containers go; if it cannot, they stay (the next deploy removes them).
    let keepNew = d.route_switched;
    if (!d.route_switched && d.route_switch_requested_at && service.domain) {
      if (!previous) keepNew = false;
      else
        keepNew = await routeUpsert(
          deps,
          d.target_id,
          service.domain,
          upstreamsOf(previous.containers),
          service.health_path,
          service.https,
        ).then(
          () => {
            t.log('route returned to the previous release');
            return false;
          },
          (e: Error) => {
            t.log(`the previous release could not take the route back (${e.message}): the new containers are kept`);
            return true;
          },
        );
    }
    if (!keepNew) await removeNew();
    for (const c of d.containers) inFlight.delete(c);
    if (plan.uploadPath) rmSync(plan.uploadPath, { force: true });
    t.setStatus('failed', f.message);
    await t.save();
  }
}

/** The last lines the new containers logged (secret values masked), for a failed deploy's record. */
async function containerLogTail(deps: DeployerDeps, t: DeploymentTracker, plan: DeployPlan): Promise<string[]> {
  const lines: string[] = [];
  for (const c of t.d.containers) {
    const p = plan.placement.find((x) => x.server.id === c.server_id);
    if (!p) continue;
    const got = await deps.engines
      .get(p.server)
      .engine.logs(c.container_id, 20)
      .catch(() => [] as string[]);
    lines.push(...got.map((l) => `${c.name}: ${t.redact(l)}`));
  }
  return lines.slice(-40);
}

type StepFn = <T>(name: string, percent: number, ms: number, fn: (signal: AbortSignal) => Promise<T>) => Promise<T>;

/** Workers: stop the old, start the new; on failure the old ones start again. No route. */
async function runWorker(
  deps: DeployerDeps,
  t: DeploymentTracker,
  service: Service,
  previous: Release | undefined,
  step: StepFn,
  startContainers: (signal: AbortSignal) => Promise<void>,
  lastLines: () => Promise<string[]>,
  removeNew: () => Promise<void>,
  engineOf: (serverId: string) => EngineHandle,
): Promise<void> {
  const old = previous?.containers ?? [];
  await step('stop-old', 55, 120_000, async () => {
    for (const c of old) await engineOf(c.server_id).engine.stop(c.container_id, 10);
  });
  try {
    await step('start', 70, 120_000, startContainers);
    await step('running', 90, 60_000, async (signal) => {
      // Each server's containers on their own engine.
      for (const sid of new Set(t.d.containers.map((c) => c.server_id)))
        await waitRunning(
          engineOf(sid).engine,
          t.d.containers.filter((c) => c.server_id === sid).map((c) => c.container_id),
          2_000,
          signal,
        );
    });
  } catch (err) {
    t.d.last_log_lines = await lastLines();
    await removeNew();
    for (const c of old)
      await engineOf(c.server_id)
        .engine.restart(c.container_id)
        .catch(() => undefined);
    t.log('the previous worker containers were started again');
    throw err;
  }
  await commitRelease(deps, t, previous);
  await registerService(deps, t, service);
  await step('remove-old', 95, 60_000, async () => {
    for (const c of old) await engineOf(c.server_id).engine.remove(c.container_id);
  });
  t.setStatus('succeeded');
  await t.save();
}

export async function commitRelease(deps: DeployerDeps, t: DeploymentTracker, previous: Release | undefined): Promise<void> {
  const d = t.d;
  await deps.stores.releases.put([d.target_id], {
    target_id: d.target_id,
    project: d.project,
    service: d.service,
    environment: d.environment,
    deployment_id: d.id,
    image: d.image!,
    slot: d.slot ?? (previous?.slot === 'blue' ? 'green' : 'blue'),
    containers: d.containers,
    updated_at: new Date().toISOString(),
  });
  deps.emit('deployment.released', {
    deployment_id: d.id,
    target_id: d.target_id,
    image: d.image,
    previous_deployment_id: previous?.deployment_id,
  });
}

/** Every managed container of this project/service/environment on the placement's servers that is not in `keep`. */
export async function removeOthers(deps: DeployerDeps, plan: DeployPlan, keep: PlacedContainer[]): Promise<void> {
  const keepIds = new Set(keep.map((c) => c.container_id));
  for (const p of plan.placement) {
    const engine: ContainerEngine = deps.engines.get(p.server).engine;
    const list = await engine.listManagedContainers({
      'mesh.project': plan.service.project,
      'mesh.service': plan.service.name,
      'mesh.environment': plan.environment.name,
    });
    for (const c of list) {
      if (keepIds.has(c.id)) continue;
      await engine.stop(c.id, 10);
      await engine.remove(c.id);
    }
  }
}

/**
 * The previous release's containers on servers this deploy no longer places on (a server
 * left the environment or the placement changed): stopped and removed, so nothing is left
 * running unrouted. A server that cannot be reached is logged, not fatal: the new release stands.
 */
async function removeOffPlan(deps: DeployerDeps, t: DeploymentTracker, plan: DeployPlan, previous: Release | undefined): Promise<void> {
  const placed = new Set(plan.placement.map((p) => p.server.id));
  const remove = async (c: PlacedContainer) => {
    const server = await deps.stores.servers.get(c.server_id);
    if (!server) return;
    const engine = deps.engines.get(server).engine;
    await engine.stop(c.container_id, 10);
    await engine.remove(c.container_id);
    t.log(`removed ${c.name} from server ${c.server_id} (no longer placed there)`);
  };
  // In parallel and bounded: a lost server must not hold the deploy (its containers are logged, not fatal).
  await Promise.all(
    (previous?.containers ?? [])
      .filter((c) => !placed.has(c.server_id))
      .map((c) =>
        withTimeout(`remove ${c.name}`, 30_000, () => remove(c)).catch((err: Error) =>
          t.log(`could not remove ${c.name} from server ${c.server_id}: ${err.message}`),
        ),
      ),
  );
}

/** Keep the last KEEP_IMAGES deploy images of a service; never one a release still uses. */
async function cleanImages(deps: DeployerDeps, plan: DeployPlan, imageBase: string): Promise<void> {
  const inUse = new Set((await deps.stores.releases.list()).map((r) => r.image));
  const deployments = (await deps.stores.deployments.list()).filter(
    (x) => x.project === plan.service.project && x.service === plan.service.name && x.image?.startsWith(`${imageBase}:`),
  );
  const tags = [...new Map(deployments.map((x) => [x.image!, { tag: x.image!, created_at: x.created_at }])).values()];
  const drop = tagsToRemove(tags, deps.config.KEEP_IMAGES, inUse);
  for (const p of plan.placement) {
    const engine = deps.engines.get(p.server).engine;
    const managed = new Set(
      (await engine.listManagedImages({ 'mesh.project': plan.service.project, 'mesh.service': plan.service.name })).flatMap((i) => i.tags),
    );
    for (const tag of drop) if (managed.has(tag)) await engine.removeImage(tag).catch(() => undefined);
  }
}
