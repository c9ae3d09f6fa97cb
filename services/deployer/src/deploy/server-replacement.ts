// Moving a server's replicas elsewhere: when health-monitor declares a server down (it opens
// an incident for `server-engine-<id>`), or an operator drains it, every release with a container there is
// redeployed with the image it runs. The redeploy's plan leaves out the server (a drained one
// is out of its environment's spread; a lost one does not answer its ping), so the replicas
// land on the environment's other servers and the route switches to them with the usual
// zero-downtime deploy. One deployer replica claims each move (compare-and-set in KV). An
// environment with no other server that answers keeps the lost one: that redeploy fails and
// says so (its deployment, listed in `server.replicas_moved`).
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@droplet-mesh/udc-kit';
import type { Deployer } from './deployer.js';
import { redeployRelease, type MoveResult } from './redeploy-release.js';
import { DEFAULT_SERVER_LOSS, type ServerLossPolicy } from './server-loss-policy.js';
import { roomForMove, type CapacityServer, type RoomVerdict } from './server-capacity.js';
import type { Stores } from '../store/stores.js';
import type { KvCollection } from '../store/kv-collection.js';
import type { SnapshotReplacement } from './snapshot-replacement.js';

export interface MoveClaim {
  server_id: string;
  reason: string;
  claimed_at: string;
  /** Services moved off it (what a move-back redeploys). */
  moved?: string[];
}

export interface ServerReplacementDeps {
  stores: Stores;
  deployer: () => Deployer;
  claims: KvCollection<MoveClaim>;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  logger: Logger;
  /** Each environment's `on_server_loss` (default move). */
  policies?: KvCollection<ServerLossPolicy>;
  /** A step on the lost server's incident timeline (health-monitor's `incident.note`). */
  note?: (serverId: string, event: string, detail: Record<string, unknown>) => Promise<void>;
  /** `replace_from_snapshot`: a replacement from the lost instance's newest snapshot. */
  snapshots?: SnapshotReplacement;
}

export interface RemovalOutcome {
  removed: boolean;
  /** Services that still have a replica on the server. */
  still_running: string[];
  reason?: string;
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
    // A loss told again later: what moved the first time is still to be moved back.
    return this.d.claims.update([serverId], { ...claim, ...(cur.value.moved ? { moved: cur.value.moved } : {}) }, cur.revision);
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
    return (await this.redeployOff(serverId, reason, by)).moves;
  }

  /**
   * Removing a server: drain it (its replicas redeployed elsewhere, one deployment each),
   * then, once every one of those deployments has finished, remove its record, unless a
   * service still runs there (a failed move, an explicit placement): then it stays, drained,
   * with the reason. `finished` says how it ended; the record's `removal` shows it meanwhile.
   */
  async drainAndRemove(serverId: string, by: string): Promise<{ moves: MoveResult[]; finished: Promise<RemovalOutcome> }> {
    const { moves, running } = await this.redeployOff(serverId, 'drain', by);
    const finished = Promise.all(running).then(() => this.removeIfEmpty(serverId));
    return { moves, finished };
  }

  private async removeIfEmpty(serverId: string): Promise<RemovalOutcome> {
    const { stores } = this.d;
    const still = (await stores.releases.list()).filter((r) => r.containers.some((c) => c.server_id === serverId)).map((r) => r.target_id);
    if (still.length === 0) {
      await stores.servers.delete(serverId);
      this.d.emit('server.removed', { server_id: serverId });
      return { removed: true, still_running: [] };
    }
    const reason = `still runs ${still.join(', ')} after the drain (a move failed or an explicit placement names this server)`;
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await stores.servers.getWithRevision(serverId);
      if (!cur) break;
      const next = { ...cur.value, removal: { status: 'failed', reason, at: new Date().toISOString() } };
      if (await stores.servers.update([serverId], next, cur.revision)) break;
    }
    this.d.emit('server.removal_failed', { server_id: serverId, still_running: still }, 'warn');
    return { removed: false, still_running: still, reason };
  }

  private async redeployOff(
    serverId: string,
    reason: 'down' | 'drain',
    by: string,
  ): Promise<{ moves: MoveResult[]; running: Array<Promise<unknown>> }> {
    const { stores } = this.d;
    const all = await stores.releases.list();
    const releases = all.filter((r) => r.containers.some((c) => c.server_id === serverId));
    const servers = (await stores.servers.list()) as CapacityServer[];
    const out: MoveResult[] = [];
    const running: Array<Promise<unknown>> = [];
    const noRoom: Array<{ target_id: string } & RoomVerdict> = [];
    /** Releases whose environment replaces a lost server from its snapshot (moved now all the same). */
    const toReplace: string[] = [];
    for (const r of releases) {
      const placement = await stores.placements.get(r.project, r.service, r.environment);
      if (placement?.servers.some((s) => s.server_id === serverId)) {
        out.push({ target_id: r.target_id, skipped: 'its explicit placement names this server: change the placement to move it' });
        continue;
      }
      if (reason === 'down') {
        const policy = (await this.d.policies?.get(r.project, r.environment))?.on_server_loss ?? DEFAULT_SERVER_LOSS;
        if (policy === 'none') {
          out.push({ target_id: r.target_id, skipped: `the on_server_loss policy of ${r.project}/${r.environment} is none: not moved` });
          continue;
        }
        if (policy === 'replace_from_snapshot') toReplace.push(r.target_id);
      }
      // Without an explicit placement it goes to the environment's other servers: only when they have room.
      const room = placement ? undefined : roomForMove(r, serverId, servers, all);
      if (room && !room.ok) {
        out.push({ target_id: r.target_id, skipped: room.reason });
        noRoom.push({ target_id: r.target_id, ...room });
        continue;
      }
      const { move, done } = await redeployRelease(this.d.deployer(), r, by);
      out.push(move);
      if (done) running.push(done);
    }
    this.d.emit('server.replicas_moved', { server_id: serverId, reason, moves: out }, out.some((m) => m.skipped) ? 'warn' : 'info');
    if (reason === 'down') await this.remember(serverId, out);
    this.d.logger.info({ server_id: serverId, reason, moves: out }, 'moving replicas off a server');
    if (reason === 'down' && this.d.note) void this.recordOnIncident(serverId, out, running, noRoom);
    // Serving first: the move above runs now; the replacement takes its replicas once it is ready.
    if (reason === 'down' && toReplace.length > 0 && this.d.snapshots)
      void this.d.snapshots
        .replace(serverId, toReplace, by)
        .catch((err) => this.d.logger.warn({ server_id: serverId, reason: (err as Error).message }, 'replacing a lost server failed'));
    return { moves: out, running };
  }

  /** What moved off a lost server, kept on its claim for a later move-back. */
  private async remember(serverId: string, moves: MoveResult[]): Promise<void> {
    const cur = await this.d.claims.getWithRevision(serverId);
    const moved = [...new Set([...(cur?.value.moved ?? []), ...moves.filter((m) => m.deployment_id).map((m) => m.target_id)])];
    if (cur) await this.d.claims.update([serverId], { ...cur.value, moved }, cur.revision);
  }

  /**
   * Move back onto a recovered server (its engine answers again: the caller checked) the
   * services moved off it when it was lost: each is redeployed, so its environment's spread
   * includes the server again. Answers once the deploys are queued.
   */
  async moveBack(serverId: string, by: string): Promise<MoveResult[]> {
    const claim = await this.d.claims.get(serverId);
    const moved = new Set(claim?.moved ?? []);
    const out: MoveResult[] = [];
    const running: Array<Promise<unknown>> = [];
    for (const r of await this.d.stores.releases.list()) {
      if (!moved.has(r.target_id)) continue;
      if (r.containers.some((c) => c.server_id === serverId)) {
        out.push({ target_id: r.target_id, skipped: 'it already runs there' });
        continue;
      }
      const { move, done } = await redeployRelease(this.d.deployer(), r, by);
      out.push(move);
      if (done) running.push(done);
    }
    // The loss is over: a later loss of this server moves again.
    await this.d.claims.delete(serverId);
    this.d.emit('server.replicas_moved_back', { server_id: serverId, moves: out });
    if (this.d.note) void Promise.all(running).then(() => this.noteSafely(serverId, 'replicas.moved_back', { moves: out }));
    return out;
  }

  /** How the move went, on the incident's timeline: when it starts, then each deployment's outcome. */
  private async recordOnIncident(
    serverId: string,
    moves: MoveResult[],
    running: Array<Promise<unknown>>,
    noRoom: Array<{ target_id: string } & RoomVerdict> = [],
  ): Promise<void> {
    await this.noteSafely(serverId, 'replicas.moving', { moves });
    // Said on its own: these replicas stay lost until there is room (not a failed redeploy).
    for (const n of noRoom)
      await this.noteSafely(serverId, 'replicas.no_capacity', {
        target_id: n.target_id,
        needed: n.needed,
        servers: n.servers,
        reason: n.reason,
      });
    await Promise.all(running);
    const outcomes = [];
    for (const m of moves) {
      if (!m.deployment_id) continue;
      const d = await this.d.stores.deployments.get(m.deployment_id);
      outcomes.push({
        target_id: m.target_id,
        deployment_id: m.deployment_id,
        status: d?.status,
        ...(d?.reason ? { reason: d.reason } : {}),
        servers: [...new Set((d?.containers ?? []).map((c) => c.server_id))],
      });
    }
    await this.noteSafely(serverId, 'replicas.moved', { deployments: outcomes });
  }

  private async noteSafely(serverId: string, event: string, detail: Record<string, unknown>): Promise<void> {
    try {
      await this.d.note?.(serverId, event, detail);
    } catch (err) {
      this.d.logger.warn({ server_id: serverId, event, reason: (err as Error).message }, 'could not record on the incident');
    }
  }
}

/** health-monitor's incidents: one opens when its quorum declares a target down. */
export const INCIDENT_OPENED_SUBJECT = 'udc.health-monitor.events.incident.opened';
/** The target id health-monitor gives a server's engine (targets/server-engines.ts there). */
export const SERVER_TARGET_PREFIX = 'server-engine-';
/** A server declared down by other means (an operator's tool, a test). */
export const SERVER_DOWN_SUBJECT = 'udc.health-monitor.events.server.down';

/** The server a `server.down` event or an engine's incident is about. */
export function downServerOf(subject: string, data: unknown): string | undefined {
  const d = (data ?? {}) as { server_id?: unknown; target_id?: unknown };
  const id =
    subject === SERVER_DOWN_SUBJECT
      ? d.server_id
      : typeof d.target_id === 'string' && d.target_id.startsWith(SERVER_TARGET_PREFIX)
        ? d.target_id.slice(SERVER_TARGET_PREFIX.length)
        : undefined;
  return typeof id === 'string' && /^[a-z0-9][a-z0-9-]{0,62}$/.test(id) ? id : undefined;
}

/** Move replicas off every server health-monitor declares down; returns the unsubscribe. */
export function followServerDown(nc: NatsConnection, replacement: ServerReplacement, logger: Logger): () => void {
  const subs = [INCIDENT_OPENED_SUBJECT, SERVER_DOWN_SUBJECT].map((subject) =>
    nc.subscribe(subject, {
      callback: (err, m) => {
        if (err) return;
        let serverId: string | undefined;
        try {
          serverId = downServerOf(m.subject, m.json());
        } catch {
          return;
        }
        if (!serverId) return;
        void replacement
          .moveOff(serverId, 'down', 'health-monitor')
          .catch((e) => logger.warn({ server_id: serverId, reason: (e as Error).message }, 'could not move replicas off a lost server'));
      },
    }),
  );
  return () => {
    for (const s of subs) s.unsubscribe();
  };
}
