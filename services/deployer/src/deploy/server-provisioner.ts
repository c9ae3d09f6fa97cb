// One call provisions a server: the deployer issues its engine certificate and one-time token
// (a pending record), asks multi-cloud-manager to create the machine with them (the cloud-init
// user_data, or a local engine), and waits for the machine's ready report (the /ready route
// registers it). Every step is recorded on the pending record and emitted as
// `server.provisioning`; a machine that never reports fails with the reason and is deleted.
import { isIP } from 'node:net';
import type { DropletContext, Logger } from '@droplet-mesh/udc-kit';
import { isOpen, type PendingServer, type ProvisionStatus } from '../domain/provisioning.js';
import type { KvCollection } from '../store/kv-collection.js';

export interface ProvisionMaterial {
  server_id: string;
  engine_port: number;
  ca: string;
  cert: string;
  key: string;
  callback_token: string;
  callback_path: string;
}

export interface MachineRequest {
  provider: string;
  region: string;
  size: string;
  image?: string;
  /** Base URL the machine reports to. */
  deployerUrl: string;
  allowFrom: string[];
  appPorts: [number, number];
  /** The mesh image registry and its CA, trusted by the new server's engine. */
  meshRegistry?: { host: string; ca: string };
  /** How long the machine has to report (default: the provisioner's). */
  reportTimeoutMs?: number;
}

export interface ServerProvisionerDeps {
  pendings: () => Promise<KvCollection<PendingServer>>;
  send: DropletContext['send'];
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  logger: Logger;
  createTimeoutMs: number;
  reportTimeoutMs: number;
  /** Give an already registered server its instance (`provider:id`) when it has none. */
  attachInstance: (serverId: string, instanceRef: string) => Promise<void>;
}

/** The mesh addresses a new server opens its ports to: configured, else the deployer URL's host. */
export function allowFromFor(configured: string[], deployerUrl: string): string[] {
  if (configured.length > 0) return configured;
  const host = new URL(deployerUrl).hostname.replace(/^\[|\]$/g, '');
  return isIP(host) ? [host] : [];
}

export class ServerProvisioner {
  private timers = new Map<string, NodeJS.Timeout>();
  constructor(private readonly d: ServerProvisionerDeps) {}

  /** Record a step (compare-and-set; a record that left the open states is not touched). */
  async step(id: string, status: ProvisionStatus, message: string, extra: Partial<PendingServer> = {}): Promise<PendingServer | undefined> {
    const store = await this.d.pendings();
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await store.getWithRevision(id);
      if (!cur || !isOpen(cur.value.status)) return undefined;
      const at = new Date().toISOString();
      const next: PendingServer = {
        ...cur.value,
        ...extra,
        status,
        updated_at: at,
        steps: [...(cur.value.steps ?? []), { at, status, message }].slice(-20),
      };
      if (await store.update([id], next, cur.revision)) {
        this.d.emit('server.provisioning', { server_id: id, status, message }, status === 'failed' ? 'warn' : 'info');
        if (status === 'failed') this.d.logger.warn({ server_id: id, reason: message }, 'server provisioning failed');
        return next;
      }
    }
    return undefined;
  }

  /** Ask multi-cloud-manager for the machine, in the background; the caller answers 202 meanwhile. */
  launch(material: ProvisionMaterial, m: MachineRequest): Promise<void> {
    const id = material.server_id;
    return this.create(material, m).catch(async (err) => {
      await this.fail(id, `multi-cloud-manager could not be asked for the machine: ${(err as Error).message}`);
    });
  }

  private async create(material: ProvisionMaterial, m: MachineRequest): Promise<void> {
    const id = material.server_id;
    const reply = await this.d.send({
      target: 'multi-cloud-manager',
      message_type: 'command',
      payload: {
        action: 'server.create',
        provider: m.provider,
        region: m.region,
        size: m.size,
        name: id,
        ...(m.image ? { image: m.image } : {}),
        provision: material,
        deployer_url: m.deployerUrl,
        allow_from: m.allowFrom.length > 0 ? m.allowFrom : ['127.0.0.1'],
        app_ports: m.appPorts,
        ...(m.meshRegistry ? { mesh_registry: m.meshRegistry } : {}),
      },
      timeout_ms: this.d.createTimeoutMs,
      retry_count: 0,
    });
    if (reply.result !== 'success') {
      await this.fail(id, `multi-cloud-manager did not create the machine: ${reply.error?.message ?? reply.result}`);
      return;
    }
    const instance = (reply.data as { instance?: { id?: string; provider_id?: string; ipv4?: string | null } } | undefined)?.instance;
    const instanceId = instance?.provider_id;
    const reportMs = m.reportTimeoutMs ?? this.d.reportTimeoutMs;
    const next = await this.step(
      id,
      'waiting_for_callback',
      `instance ${instance?.id ?? '?'} created${instance?.ipv4 ? ` at ${instance.ipv4}` : ''}; waiting for its ready report (up to ${Math.round(reportMs / 1000)} s)`,
      instanceId ? { instance_id: instanceId } : {},
    );
    if (!next) {
      // It reported ready before this answer came (the local provider is that fast), or it failed meanwhile.
      const cur = await (await this.d.pendings()).get(id);
      if (cur && instanceId && !cur.instance_id) {
        // Note it on the record first, then on the server: the ready report registers the server
        // before it reads the record again, so one of the two sees the other's write.
        await this.annotate(id, { instance_id: instanceId });
        await this.d.attachInstance(id, `${m.provider}:${instanceId}`);
      }
      return;
    }
    const timer = setTimeout(() => void this.timeout(id, m.provider, reportMs), reportMs);
    timer.unref();
    this.timers.set(id, timer);
  }

  private async annotate(id: string, extra: Partial<PendingServer>): Promise<void> {
    const store = await this.d.pendings();
    const cur = await store.getWithRevision(id);
    if (cur) await store.update([id], { ...cur.value, ...extra }, cur.revision);
  }

  private async timeout(id: string, provider: string, reportMs: number): Promise<void> {
    this.timers.delete(id);
    const why =
      provider === 'local'
        ? 'the local engine did not report'
        : 'the machine never ran its user_data or its report could not reach the deployer (an emulated cloud creates the instance but boots nothing)';
    const failed = await this.fail(id, `no ready report within ${Math.round(reportMs / 1000)} s: ${why}; the instance is deleted`);
    if (failed?.instance_id && failed.provider) await this.deleteInstance(id, failed.provider, failed.instance_id);
  }

  /**
   * Provisionings whose time ran out without this process's timer (the deployer restarted,
   * or another replica started them) fail the same way, and their instance is deleted. The
   * compare-and-set in `step` makes one replica do it.
   */
  async sweep(now = Date.now()): Promise<number> {
    let n = 0;
    for (const p of await (await this.d.pendings()).list()) {
      if (!p.provider || (p.status !== 'creating_instance' && p.status !== 'waiting_for_callback')) continue;
      if (Date.parse(p.expires_at) > now || this.timers.has(p.id)) continue;
      const failed = await this.fail(
        p.id,
        `no ready report by ${p.expires_at}: the machine never reported (found after a deployer restart); the instance is deleted`,
      );
      if (failed?.instance_id) await this.deleteInstance(p.id, p.provider, failed.instance_id);
      if (failed) n++;
    }
    return n;
  }

  async fail(id: string, reason: string): Promise<PendingServer | undefined> {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    return this.step(id, 'failed', reason, { reason });
  }

  /** The machine reported and was registered. */
  ready(id: string): void {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
  }

  async deleteInstance(id: string, provider: string, instanceId: string): Promise<void> {
    try {
      const reply = await this.d.send({
        target: 'multi-cloud-manager',
        message_type: 'command',
        payload: { action: 'server.delete', provider, instance_id: instanceId },
        timeout_ms: 60_000,
        retry_count: 1,
      });
      if (reply.result !== 'success') throw new Error(reply.error?.message ?? reply.result);
      this.d.emit('server.instance_deleted', { server_id: id, provider, instance_id: instanceId });
    } catch (err) {
      this.d.logger.warn({ server_id: id, instance_id: instanceId, reason: (err as Error).message }, 'could not delete the instance');
      this.d.emit('server.instance_delete_failed', { server_id: id, provider, instance_id: instanceId }, 'warn');
    }
  }

  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
