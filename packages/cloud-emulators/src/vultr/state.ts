import { randomBytes, randomUUID } from 'node:crypto';
import { EmulatorError } from '../core/errors.js';
import { IpPool } from '../core/ip-pool.js';
import { isDone, type Timed } from '../core/timed.js';
import { operatingSystems, plans, vultrRegions, type VultrPlan } from './catalog.js';

export interface VultrInstance {
  id: string;
  label: string;
  hostname: string;
  plan: VultrPlan;
  region: string;
  osId: number;
  tags: string[];
  createdAt: number;
  status: 'pending' | 'active' | 'suspended' | 'resizing';
  powerStatus: 'running' | 'stopped';
  serverStatus: 'none' | 'locked' | 'installingbooting' | 'ok';
  ipv6: boolean;
  ips?: { ipv4: string; ipv6Network: string; ipv6: string; privateIp: string };
  /** Vultr has no action resource: a power change shows up in the instance once it has happened. */
  transition?: Timed & { effect: () => void };
}

export interface VultrSnapshot extends Timed {
  id: string;
  description: string;
  osId: number;
  size: number;
  createdAt: number;
}

export interface InstanceCreate {
  region: string;
  plan: string;
  os_id?: number;
  snapshot_id?: string;
  label?: string;
  hostname?: string;
  tags?: string[];
  tag?: string;
  enable_ipv6?: boolean;
}

const notFound = () => new EmulatorError(404, 'not_found', 'Invalid instance-id.');

/** Everything one Vultr emulator knows; transitions happen with the clock (see `settle`). */
export class VultrState {
  readonly instances = new Map<string, VultrInstance>();
  readonly snapshots = new Map<string, VultrSnapshot>();
  private readonly ips = new IpPool(66);

  constructor(
    private readonly now: () => number,
    private readonly actionDurationMs: number,
  ) {}

  createInstance(input: InstanceCreate): { instance: VultrInstance; defaultPassword: string } {
    const plan = plans.find((p) => p.id === input.plan);
    if (!plan) throw new EmulatorError(400, 'invalid_input', 'Invalid plan chosen.');
    if (!vultrRegions.some((r) => r.id === input.region)) throw new EmulatorError(400, 'invalid_input', 'Invalid region chosen.');
    let osId: number;
    if (input.snapshot_id !== undefined) {
      const snapshot = this.snapshots.get(input.snapshot_id);
      if (!snapshot) throw new EmulatorError(400, 'invalid_input', 'Invalid snapshot_id.');
      osId = snapshot.osId;
    } else {
      if (input.os_id === undefined)
        throw new EmulatorError(400, 'invalid_input', 'You must provide one of: os_id, iso_id, snapshot_id, app_id, image_id.');
      if (!operatingSystems.some((o) => o.id === input.os_id)) throw new EmulatorError(400, 'invalid_input', 'Invalid operating system.');
      osId = input.os_id;
    }
    const instance: VultrInstance = {
      id: randomUUID(),
      label: input.label ?? '',
      hostname: input.hostname ?? input.label ?? 'vultr-guest',
      plan,
      region: input.region,
      osId,
      tags: [...new Set([...(input.tags ?? []), ...(input.tag ? [input.tag] : [])])],
      createdAt: this.now(),
      status: 'pending',
      powerStatus: 'stopped',
      serverStatus: 'none',
      ipv6: input.enable_ipv6 ?? false,
    };
    instance.transition = {
      startedAt: this.now(),
      durationMs: this.actionDurationMs,
      effect: () => {
        instance.status = 'active';
        instance.powerStatus = 'running';
        instance.serverStatus = 'ok';
        instance.ips = this.ips.allocate();
      },
    };
    this.instances.set(instance.id, instance);
    return { instance, defaultPassword: randomBytes(12).toString('base64url') };
  }

  seedInstance(index: number, tags: string[]): VultrInstance {
    const instance: VultrInstance = {
      id: randomUUID(),
      label: `seed-${String(index + 1).padStart(4, '0')}`,
      hostname: `seed-${index + 1}`,
      plan: plans[index % plans.length]!,
      region: vultrRegions[index % vultrRegions.length]!.id,
      osId: operatingSystems[index % operatingSystems.length]!.id,
      tags: [...tags],
      createdAt: this.now() - 86_400_000,
      status: 'active',
      powerStatus: 'running',
      serverStatus: 'ok',
      ipv6: true,
      ips: this.ips.allocate(),
    };
    this.instances.set(instance.id, instance);
    return instance;
  }

  getInstance(id: string): VultrInstance {
    const instance = this.instances.get(id);
    if (!instance) throw notFound();
    return instance;
  }

  deleteInstance(id: string): void {
    this.getInstance(id);
    this.instances.delete(id);
  }

  /** start / halt / reboot: the instance reaches the new power state after the action duration. */
  power(id: string, kind: 'start' | 'halt' | 'reboot'): void {
    const instance = this.getInstance(id);
    if (instance.status === 'pending')
      throw new EmulatorError(400, 'invalid_input', 'Unable to change power state: server is still installing.');
    const target = kind === 'halt' ? 'stopped' : 'running';
    if (kind === 'reboot') instance.serverStatus = 'installingbooting';
    instance.transition = {
      startedAt: this.now(),
      durationMs: this.actionDurationMs,
      effect: () => {
        instance.powerStatus = target;
        instance.serverStatus = 'ok';
      },
    };
  }

  createSnapshot(instanceId: string, description?: string): VultrSnapshot {
    const instance = this.instances.get(instanceId);
    if (!instance) throw new EmulatorError(400, 'invalid_input', 'Invalid instance_id.');
    const snapshot: VultrSnapshot = {
      id: randomUUID(),
      description: description ?? '',
      osId: instance.osId,
      size: Math.round((instance.plan.disk * 1024 ** 3) / 10),
      createdAt: this.now(),
      startedAt: this.now(),
      durationMs: this.actionDurationMs,
    };
    this.snapshots.set(snapshot.id, snapshot);
    return snapshot;
  }

  settle(now: number): void {
    for (const instance of this.instances.values()) {
      if (instance.transition && isDone(instance.transition, now)) {
        const { effect } = instance.transition;
        instance.transition = undefined;
        effect();
      }
    }
  }
}
