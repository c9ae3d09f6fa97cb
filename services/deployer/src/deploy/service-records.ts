import type { RegistryLink } from '@droplet-mesh/udc-kit';
import type { Service } from '../domain/model.js';
import { replicaRecordId } from '../domain/naming.js';
import type { DeployerDeps } from './deploy-context.js';
import type { DeploymentTracker } from './progress.js';

// As many as a replica's record id can number (`.r<n>`, up to four digits).
const MAX_REPLICA_RECORDS = 9999;

/**
 * Register the web service so the health-monitor checks it (skipped without a registry): one
 * record per replica, so that a replica that hangs is found and restarted alone. The first
 * replica's record is the target itself and carries the domain; the others are
 * `<target>.r<n>`. Records of replicas the release no longer has are removed, all of them for a worker.
 */
export async function registerService(deps: DeployerDeps, t: DeploymentTracker, service: Service): Promise<void> {
  const registry = deps.registry();
  if (!registry) return;
  const containers = t.d.containers;
  try {
    // A web service's containers all have a port; a worker's none, and it has no record: those
    // left from when it was a web service go (health-monitor would check addresses nothing serves).
    if (!containers.some((c) => c.port)) {
      await removeReplicaRecords(registry, t.d.target_id, 0);
      return;
    }
    // Replica n is the n-th of the release's containers, as Deployer.restart and the crash restarter count them.
    for (const [i, c] of containers.entries()) {
      if (!c.port) continue;
      await registry.upsertRecord({
        id: replicaRecordId(t.d.target_id, i),
        kind: 'service',
        url: `http://${c.address}:${c.port}`,
        capabilities: ['app'],
        health_path: service.health_path,
        ...(i === 0 && service.domain ? { domain: service.domain } : {}),
        metadata: {
          project: t.d.project,
          service: t.d.service,
          environment: t.d.environment,
          deployment_id: t.d.id,
          image: t.d.image,
          replica: i + 1,
          replicas: containers.length,
          container: c.name,
        },
      });
    }
    await removeReplicaRecords(registry, t.d.target_id, containers.length);
  } catch (err) {
    t.log(`registry update failed (the deploy stands): ${(err as Error).message}`);
  }
}

/** Remove the records of a target's replicas from the `from`-th on (0: all of them, the target's own too). */
export async function removeReplicaRecords(registry: RegistryLink, target: string, from: number): Promise<number> {
  let removed = 0;
  // Replica records are numbered without gaps: the first one absent ends the list.
  for (let i = from; i < MAX_REPLICA_RECORDS && (await registry.get(replicaRecordId(target, i))); i++) {
    await registry.removeRecord(replicaRecordId(target, i));
    removed++;
  }
  return removed;
}
