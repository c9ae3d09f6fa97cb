import { randomUUID } from 'node:crypto';
import { Conflict, DependencyUnavailable } from '@droplet-mesh/udc-kit';
import type { Release, Server } from '../domain/model.js';
import { MANAGED_LABEL } from '../domain/naming.js';
import type { EnginePool } from '../engine/engine-pool.js';
import type { Stores } from '../store/stores.js';
import type { DeployerDeps } from './deploy-context.js';
import type { ServiceLanes } from './service-lanes.js';
import { removeReplicaRecords } from './service-records.js';

export type UndeployDeps = Pick<DeployerDeps, 'send' | 'registry' | 'emit' | 'logger'> & {
  stores: Stores;
  engines: EnginePool;
  lanes: ServiceLanes;
};

export interface UndeployResult {
  target_id: string;
  project: string;
  service: string;
  environment: string;
  deployment_id: string;
  image: string;
  containers_removed: string[];
  route: 'deleted' | 'absent' | 'none';
  registry: 'removed' | 'absent' | 'skipped';
  history_kept: true;
}

/** The route of a web service that has a domain goes first, so nginx stops sending traffic before the containers go. */
async function deleteRoute(deps: UndeployDeps, target: string): Promise<'deleted' | 'absent'> {
  const reply = await deps.send({
    target: 'proxy-manager',
    message_type: 'command',
    payload: { action: 'route.delete', name: target },
    timeout_ms: 20_000,
    retry_count: 1,
  });
  if (reply.result === 'success') return 'deleted';
  if (reply.error?.code === 'NOT_FOUND') return 'absent';
  throw new DependencyUnavailable(
    `proxy-manager did not delete the route '${target}': ${reply.error?.message ?? reply.result}; nothing was undeployed`,
    { code: reply.error?.code },
  );
}

/** Every managed container of the service in that environment on `servers`, release or not (a drain left behind, a failed deploy). */
async function removeContainers(deps: UndeployDeps, r: Release, servers: Server[]): Promise<string[]> {
  const removed: string[] = [];
  for (const server of servers) {
    const { engine } = deps.engines.get(server);
    const found = await engine.listManagedContainers({
      [MANAGED_LABEL]: 'true',
      'mesh.project': r.project,
      'mesh.service': r.service,
      'mesh.environment': r.environment,
    });
    for (const c of found) {
      await engine.stop(c.id, 10);
      await engine.remove(c.id);
      removed.push(c.name);
    }
  }
  return removed;
}

/**
 * Take a service out of an environment: its route (proxy-manager `route.delete`), its
 * containers on every server, its registry record, its release. The deployment history
 * stays. Runs under the service's lane lease, like a deploy: refused with 409 while a
 * deploy of it is running or queued.
 */
export async function undeploy(deps: UndeployDeps, target: string, by: string): Promise<UndeployResult> {
  const release = await deps.stores.releases.get(target);
  if (!release) throw new Conflict(`nothing is deployed as '${target}'`);
  const ticket = randomUUID();
  const { position, queue } = await deps.lanes.enqueue(target, ticket);
  if (position > 0 || (await deps.lanes.lease(target))) {
    await deps.lanes.leave(target, ticket);
    throw new Conflict(`a deploy of ${target} is in progress: undeploy once it is over`, {
      running: queue[0]?.deployment_id,
      queued: Math.max(0, position - 1),
    });
  }
  const turn = await deps.lanes.hold(target, ticket);
  if (!turn) {
    await deps.lanes.leave(target, ticket);
    throw new Conflict(`a deploy of ${target} just started: undeploy once it is over`);
  }
  try {
    // Read again under the lease: a deploy may have replaced it in between.
    const r = (await deps.stores.releases.get(target)) ?? release;
    const service = await deps.stores.services.get(r.project, r.service);
    const route = service?.domain ? await deleteRoute(deps, target) : 'none';
    turn.lost.throwIfAborted();
    const serverIds = new Set(r.containers.map((c) => c.server_id));
    const placement = await deps.stores.placements.get(r.project, r.service, r.environment);
    for (const s of placement?.servers ?? []) serverIds.add(s.server_id);
    const servers: Server[] = [];
    for (const id of serverIds) {
      const s = await deps.stores.servers.get(id);
      if (s) servers.push(s);
    }
    const containers = await removeContainers(deps, r, servers);
    let registry: UndeployResult['registry'] = 'skipped';
    const link = deps.registry();
    if (link) {
      try {
        registry = (await removeReplicaRecords(link, target, 0)) > 0 ? 'removed' : 'absent';
      } catch (err) {
        deps.logger.warn({ err, target_id: target }, 'registry record not removed (the undeploy stands)');
        registry = 'skipped';
      }
    }
    await deps.stores.releases.delete(target);
    const result: UndeployResult = {
      target_id: target,
      project: r.project,
      service: r.service,
      environment: r.environment,
      deployment_id: r.deployment_id,
      image: r.image,
      containers_removed: containers,
      route,
      registry,
      history_kept: true,
    };
    deps.logger.info({ ...result, by, action: 'undeploy' }, 'service undeployed');
    deps.emit('service.undeployed', { ...result, by });
    return result;
  } finally {
    await deps.lanes.leave(target, ticket).catch((err) => deps.logger.warn({ err, target_id: target }, 'could not leave the lane'));
    await turn.release().catch((err) => deps.logger.warn({ err, target_id: target }, 'could not release the service lease'));
  }
}
