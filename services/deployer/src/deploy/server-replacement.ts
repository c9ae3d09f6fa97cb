// Moving a server's replicas elsewhere: when health-monitor declares a server down (its
// `server.down` event), or an operator drains it, every release with a container there is
// redeployed with the image it runs. The redeploy's plan leaves out the server (a drained one
// is out of its environment's spread; a lost one does not answer its ping), so the replicas
// land on the environment's other servers and the route switches to them with the usual
// zero-downtime deploy. One deployer replica claims each move (compare-and-set in KV).
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@droplet-mesh/udc-kit';
import type { Deployer } from './deployer.js';
import type { Stores } from '../store/stores.js';
import type { KvCollection } from '../store/kv-collection.js';

export interface MoveClaim {
  server_id: string;
  reason: string;
  claimed_at: string;
}

export interface MoveResult {
  target_id: string;
  deployment_id?: string;
  /** Why this release was not moved. */
  skipped?: string;
}

export interface ServerReplacementDeps {
  stores: Stores;
  deployer: () => Deployer;
  claims: KvCollection<MoveClaim>;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  logger: Logger;
}

/** A claim is kept this long: health-monitor's repeated `server.down` for one loss moves once. */
const CLAIM_STALE_MS = 2 * 60_000;

export class ServerReplacement {
  constructor(private readonly d: ServerReplacementDeps) {}

  /** Claim the move of `serverId`'s replicas; false when another replica holds it. */
  private async claim(serverId: string, reason: string): Promise<boolean> {
    const claim: MoveClaim = { server_id: serverId, reason, claimed_at: new Date().toISOString() };
    if (await this.d.claims.create([serverId], claim)) return true;
    const cur = await this.d.claims.getWithRevision(serverId);
    if (!cur) return this.d.claims.create([serverId], claim);
    if (Date.now() - Date.parse(cur.value.claimed_at) < CLAIM_STALE_MS) return false;
    return this.d.claims.update([serverId], claim, cur.revision);
  }

  /**
   * Redeploy every release that has a container on `serverId`, leaving that server out.
   * Answers once the deploys are queued (each is a normal deployment to follow).
   */
  async moveOff(serverId: string, reason: 'down' | 'drain', by: string): Promise<MoveResult[]> {
    // A drain is an operator's explicit request: always acted on. A loss is claimed by one replica.
    if (reason === 'down' && !(await this.claim(serverId, reason))) {
      this.d.logger.info({ server_id: serverId, reason }, 'another deployer replica is moving this server off');
      return [];
    }
    const { stores } = this.d;
    const releases = (await stores.releases.list()).filter((r) => r.containers.some((c) => c.server_id === serverId));
    const out: MoveResult[] = [];
    for (const r of releases) {
      const placement = await stores.placements.get(r.project, r.service, r.environment);
      if (placement?.servers.some((s) => s.server_id === serverId)) {
        out.push({ target_id: r.target_id, skipped: 'its explicit placement names this server: change the placement to move it' });
        continue;
      }
      try {
        const { deployment } = await this.d.deployer().requestDeploy({
          project: r.project,
          service: r.service,
          environment: r.environment,
          source: { kind: 'image', image: r.image },
          requested_by: by,
        });
        out.push({ target_id: r.target_id, deployment_id: deployment.id });
      } catch (err) {
        out.push({ target_id: r.target_id, skipped: (err as Error).message });
      }
    }
    this.d.emit('server.replicas_moved', { server_id: serverId, reason, moves: out }, out.some((m) => m.skipped) ? 'warn' : 'info');
    this.d.logger.info({ server_id: serverId, reason, moves: out }, 'moving replicas off a server');
    return out;
  }
}

/** The event health-monitor emits when a server's engine is declared down (its quorum agreed). */
export const SERVER_DOWN_SUBJECT = 'udc.health-monitor.events.server.down';

/** Move replicas off every server health-monitor declares down; returns the unsubscribe. */
export function followServerDown(nc: NatsConnection, replacement: ServerReplacement, logger: Logger): () => void {
  const sub = nc.subscribe(SERVER_DOWN_SUBJECT, {
    callback: (err, m) => {
      if (err) return;
      let serverId: unknown;
      try {
        serverId = (m.json() as { server_id?: unknown }).server_id;
      } catch {
        return;
      }
      if (typeof serverId !== 'string' || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(serverId)) return;
      void replacement
        .moveOff(serverId, 'down', 'health-monitor')
        .catch((e) => logger.warn({ server_id: serverId, reason: (e as Error).message }, 'could not move replicas off a lost server'));
    },
  });
  return () => sub.unsubscribe();
}
