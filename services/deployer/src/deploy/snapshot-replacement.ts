// `on_server_loss: replace_from_snapshot`: a lost cloud server is replaced by a new machine
// made from its instance's newest snapshot (same provider, region and size), provisioned like
// any server (a fresh engine certificate and one-time token in its user_data, so nothing the
// snapshot kept of the old machine's keys is trusted), and once it reports ready the lost
// server is drained (replaced_by) and the services moved off it are redeployed, so their
// spread takes the replacement in the lost one's place. The replicas were already moved to
// the environment's other servers meanwhile (serving matters more than placement: see
// server-replacement.ts); without a snapshot, or when the replacement fails or never reports,
// they stay there (the `move` policy) and the incident's timeline says why.
import type { DropletContext, Logger } from '@droplet-mesh/udc-kit';
import type { PendingServer } from '../domain/provisioning.js';
import type { Stores } from '../store/stores.js';
import type { Deployer } from './deployer.js';
import { redeployRelease, type MoveResult } from './redeploy-release.js';

export interface ReplacementRequest {
  id: string;
  environments?: string[];
  provider: 'local' | 'digitalocean' | 'hetzner' | 'vultr';
  region: string;
  size: string;
  /** The snapshot's id at the provider. */
  image: string;
}

export interface SnapshotReplacementDeps {
  stores: Stores;
  deployer: () => Deployer;
  send: DropletContext['send'];
  /** Starts provisioning (routes/servers.ts provisionReplacement); throws with the reason it cannot. */
  provision: (r: ReplacementRequest) => Promise<unknown>;
  /** The provisioning record of a server (`provision.<id>`). */
  pending: (id: string) => Promise<PendingServer | undefined>;
  /** A step on the lost server's incident timeline (health-monitor's `incident.note`). */
  note: (serverId: string, event: string, detail: Record<string, unknown>) => Promise<void>;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  logger: Logger;
  /** How long the replacement has to be created and report ready (the provisioner fails it itself after PROVISION_TIMEOUT_S). */
  waitMs: number;
  pollMs?: number;
}

export type ReplacementOutcome =
  | {
      replaced: true;
      replacement_id: string;
      snapshot_id: string;
      deployments: Array<{ target_id: string; deployment_id?: string; skipped?: string }>;
    }
  | { replaced: false; reason: string };

interface Snapshot {
  id: string;
  name?: string;
  created_at?: string | null;
}
interface LooseServer {
  id: string;
  instance_id?: string;
  environments?: string[];
  max_replicas?: number;
  draining?: boolean;
  replaced_by?: string;
}

const PROVIDERS = new Set(['local', 'digitalocean', 'hetzner', 'vultr']);

/** `<id>-r<n>`, the first n free: sorted next to the lost server, so the spread keeps its place. */
export function replacementId(lostId: string, taken: Set<string>): string {
  const base = lostId.replace(/-r\d+$/, '').slice(0, 58);
  for (let n = 1; ; n++) {
    const id = `${base}-r${n}`;
    if (!taken.has(id)) return id;
  }
}

export class SnapshotReplacement {
  constructor(private readonly d: SnapshotReplacementDeps) {}

  /** Replace `lostId` and move `targets` (releases moved off it) onto the replacement. */
  async replace(lostId: string, targets: string[], by: string): Promise<ReplacementOutcome> {
    const fail = async (reason: string): Promise<ReplacementOutcome> => {
      await this.note(lostId, 'replacement.failed', {
        reason,
        fallback: 'move',
        replicas: "they stay on the environment's other servers (the move policy)",
      });
      this.d.emit('server.replacement_failed', { server_id: lostId, reason }, 'warn');
      this.d.logger.warn({ server_id: lostId, reason }, 'no replacement from a snapshot; the move stands');
      return { replaced: false, reason };
    };
    const lost = (await this.d.stores.servers.get(lostId)) as LooseServer | undefined;
    if (!lost) return fail(`server '${lostId}' is no longer registered`);
    if (lost.replaced_by) return { replaced: false, reason: `already replaced by ${lost.replaced_by}` };
    const m = /^([a-z]+):(.+)$/.exec(lost.instance_id ?? '');
    if (!m || !PROVIDERS.has(m[1]))
      return fail(`server '${lostId}' has no cloud instance (instance_id): there is nothing to take a snapshot of`);
    const [, provider, instanceId] = m;
    let found: { instance?: { region?: string | null; size?: string | null } | null; snapshots?: Snapshot[] };
    try {
      const reply = await this.d.send({
        target: 'multi-cloud-manager',
        message_type: 'query',
        payload: { action: 'server.snapshots', provider, instance_id: instanceId },
        timeout_ms: 30_000,
        retry_count: 1,
      });
      if (reply.result !== 'success')
        return fail(`multi-cloud-manager could not list the snapshots: ${reply.error?.message ?? reply.result}`);
      found = (reply.data ?? {}) as typeof found;
    } catch (err) {
      return fail(`multi-cloud-manager could not be asked for the snapshots: ${(err as Error).message}`);
    }
    const snapshot = found.snapshots?.[0];
    if (!snapshot) return fail(`no snapshot of instance ${lost.instance_id} at ${provider}`);
    // Where it ran: the provider's answer, else what its own provisioning recorded.
    const record = await this.d.pending(lostId);
    const region = found.instance?.region ?? record?.region;
    const size = found.instance?.size ?? record?.size;
    if (!region || !size) return fail(`the region and size of instance ${lost.instance_id} are unknown (the provider no longer has it)`);
    const taken = new Set([...(await this.d.stores.servers.list()).map((s) => s.id)]);
    for (;;) {
      const id = replacementId(lostId, taken);
      const p = await this.d.pending(id);
      if (!p || p.status === 'failed') break;
      // The same loss told again later (a claim lasts 2 min) while its replacement is on its way.
      if (p.status !== 'ready') {
        this.d.logger.info({ server_id: lostId, replacement_id: id }, 'a replacement is already being provisioned');
        return { replaced: false, reason: `replacement ${id} is already being provisioned` };
      }
      taken.add(id);
    }
    const id = replacementId(lostId, taken);
    await this.note(lostId, 'replacement.provisioning', {
      replacement_id: id,
      provider,
      region,
      size,
      snapshot: {
        id: snapshot.id,
        ...(snapshot.name ? { name: snapshot.name } : {}),
        ...(snapshot.created_at ? { created_at: snapshot.created_at } : {}),
      },
    });
    this.d.emit('server.replacement_provisioning', { server_id: lostId, replacement_id: id, snapshot_id: snapshot.id });
    try {
      await this.d.provision({
        id,
        ...(lost.environments ? { environments: lost.environments } : {}),
        provider: provider as ReplacementRequest['provider'],
        region,
        size,
        image: snapshot.id,
      });
    } catch (err) {
      return fail(`the replacement ${id} could not be provisioned: ${(err as Error).message}`);
    }
    const settled = await this.untilSettled(id);
    if (settled.status !== 'ready') return fail(`the replacement ${id} failed: ${settled.reason}`);
    await this.takeOver(lostId, lost, id);
    await this.note(lostId, 'replacement.ready', { replacement_id: id, ...(settled.address ? { address: settled.address } : {}) });
    this.d.emit('server.replaced', { server_id: lostId, replacement_id: id, snapshot_id: snapshot.id });
    const deployments = await this.moveOnto(lostId, id, targets, by);
    return { replaced: true, replacement_id: id, snapshot_id: snapshot.id, deployments };
  }

  private async note(serverId: string, event: string, detail: Record<string, unknown>): Promise<void> {
    try {
      await this.d.note(serverId, event, detail);
    } catch (err) {
      this.d.logger.warn({ server_id: serverId, event, reason: (err as Error).message }, 'could not record on the incident');
    }
  }

  /** Until the replacement is registered (its report came) or its provisioning failed, within waitMs. */
  private async untilSettled(id: string): Promise<{ status: 'ready' | 'failed'; reason?: string; address?: string }> {
    const deadline = Date.now() + this.d.waitMs;
    for (;;) {
      const p = await this.d.pending(id).catch(() => undefined);
      if (p?.status === 'ready' && (await this.d.stores.servers.get(id)))
        return { status: 'ready', ...(p.address ? { address: p.address } : {}) };
      if (p?.status === 'failed') return { status: 'failed', reason: p.reason ?? 'see its provisioning steps' };
      if (Date.now() >= deadline) return { status: 'failed', reason: `not ready within ${Math.round(this.d.waitMs / 1000)} s` };
      await new Promise((r) => setTimeout(r, this.d.pollMs ?? 500));
    }
  }

  /** The lost server leaves every spread (drained, replaced_by); the replacement takes its max_replicas. */
  private async takeOver(lostId: string, lost: LooseServer, id: string): Promise<void> {
    const servers = this.d.stores.servers as unknown as {
      getWithRevision(id: string): Promise<{ value: LooseServer; revision: number } | undefined>;
      update(key: string[], value: LooseServer, revision: number): Promise<boolean>;
    };
    const patch = async (key: string, change: (s: LooseServer) => LooseServer) => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const cur = await servers.getWithRevision(key);
        if (!cur || (await servers.update([key], change(cur.value), cur.revision))) return;
      }
    };
    await patch(lostId, (s) => ({ ...s, draining: true, replaced_by: id }));
    if (lost.max_replicas) await patch(id, (s) => ({ ...s, max_replicas: lost.max_replicas }));
  }

  /** Redeploy what moved off the lost server: the spread now has the replacement in its place. */
  private async moveOnto(lostId: string, id: string, targets: string[], by: string) {
    const want = new Set(targets);
    const out: MoveResult[] = [];
    const running: Array<Promise<unknown>> = [];
    for (const r of await this.d.stores.releases.list()) {
      if (!want.has(r.target_id)) continue;
      const { move, done } = await redeployRelease(this.d.deployer(), r, by);
      out.push(move);
      if (done) running.push(done);
    }
    await this.note(lostId, 'replicas.moving', { onto: id, moves: out });
    await Promise.all(running);
    const outcomes = [];
    for (const m of out) {
      if (!m.deployment_id) continue;
      const dep = await this.d.stores.deployments.get(m.deployment_id);
      outcomes.push({
        target_id: m.target_id,
        deployment_id: m.deployment_id,
        status: dep?.status,
        ...(dep?.reason ? { reason: dep.reason } : {}),
        servers: [...new Set((dep?.containers ?? []).map((c) => c.server_id))],
      });
    }
    await this.note(lostId, 'replicas.moved', { onto: id, deployments: outcomes });
    return out;
  }
}
