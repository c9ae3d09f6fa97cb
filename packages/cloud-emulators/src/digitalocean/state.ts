import { randomUUID } from 'node:crypto';
import { EmulatorError } from '../core/errors.js';
import { IpPool } from '../core/ip-pool.js';
import { finishedAt, isDone, type Timed } from '../core/timed.js';
import { distributionImages, regions, sizes, type DoImage } from './catalog.js';

export type DropletStatus = 'new' | 'active' | 'off' | 'archive';

export interface Droplet {
  id: number;
  name: string;
  sizeSlug: string;
  regionSlug: string;
  image: DoImage;
  tags: string[];
  createdAt: number;
  status: DropletStatus;
  ipv6: boolean;
  networks?: { ipv4: string; ipv6: string; privateIp: string };
  snapshotIds: number[];
  vpcUuid: string;
  /** The action in progress on this droplet: DigitalOcean allows one at a time. */
  pendingActionId?: number;
}

export interface DoAction extends Timed {
  id: number;
  type: string;
  resourceId: number;
  regionSlug: string;
  completed: boolean;
  /** Applied once, when the action completes. */
  effect: () => void;
}

export interface DoSnapshot {
  id: number;
  name: string;
  createdAt: number;
  regionSlug: string;
  minDiskSize: number;
  sizeGigabytes: number;
  dropletId: number;
}

export interface DropletCreate {
  name: string;
  region?: string;
  size: string;
  image: string | number;
  tags?: string[];
  ipv6?: boolean;
}

/** Everything one DigitalOcean emulator knows; actions progress with the clock (see `settle`). */
export class DigitalOceanState {
  readonly droplets = new Map<number, Droplet>();
  readonly actions = new Map<number, DoAction>();
  readonly snapshots = new Map<number, DoSnapshot>();
  private readonly pending: DoAction[] = [];
  private nextDropletId = 400_000_001;
  private nextActionId = 2_000_000_001;
  private nextSnapshotId = 170_000_001;
  private readonly ips = new IpPool(64);
  private readonly vpcUuid = randomUUID();

  constructor(
    private readonly now: () => number,
    private readonly actionDurationMs: number,
  ) {}

  createDroplet(input: DropletCreate): { droplet: Droplet; action: DoAction } {
    const size = sizes.find((s) => s.slug === input.size);
    if (!size) throw new EmulatorError(422, 'unprocessable_entity', `You specified an invalid size for Droplet creation.`);
    const regionSlug = input.region ?? 'nyc3';
    if (!regions.some((r) => r.slug === regionSlug))
      throw new EmulatorError(422, 'unprocessable_entity', 'You specified an invalid region for Droplet creation.');
    const image = this.findImage(input.image);
    if (!image) throw new EmulatorError(422, 'unprocessable_entity', 'You specified an invalid image for Droplet creation.');
    const droplet: Droplet = {
      id: this.nextDropletId++,
      name: input.name,
      sizeSlug: size.slug,
      regionSlug,
      image,
      tags: [...new Set(input.tags ?? [])],
      createdAt: this.now(),
      status: 'new',
      ipv6: input.ipv6 ?? false,
      snapshotIds: [],
      vpcUuid: this.vpcUuid,
    };
    this.droplets.set(droplet.id, droplet);
    const action = this.startAction(droplet, 'create', () => {
      droplet.status = 'active';
      droplet.networks = this.ips.allocate();
    });
    return { droplet, action };
  }

  /** A droplet that is already active, for seeding lists. */
  seedDroplet(index: number, tags: string[]): Droplet {
    const droplet: Droplet = {
      id: this.nextDropletId++,
      name: `seed-${String(index + 1).padStart(4, '0')}`,
      sizeSlug: sizes[index % sizes.length]!.slug,
      regionSlug: regions[index % regions.length]!.slug,
      image: distributionImages[index % distributionImages.length]!,
      tags: [...tags],
      createdAt: this.now() - 86_400_000,
      status: 'active',
      ipv6: true,
      networks: this.ips.allocate(),
      snapshotIds: [],
      vpcUuid: this.vpcUuid,
    };
    this.droplets.set(droplet.id, droplet);
    return droplet;
  }

  getDroplet(id: number): Droplet {
    const droplet = this.droplets.get(id);
    if (!droplet) throw new EmulatorError(404, 'not_found', 'The resource you were accessing could not be found.');
    return droplet;
  }

  deleteDroplet(id: number): void {
    this.getDroplet(id);
    this.droplets.delete(id);
  }

  deleteByTag(tag: string): void {
    for (const droplet of [...this.droplets.values()]) if (droplet.tags.includes(tag)) this.droplets.delete(droplet.id);
  }

  /** A droplet action (power_on, power_off, shutdown, reboot, power_cycle, snapshot), refused as DigitalOcean does. */
  dropletAction(id: number, type: string, snapshotName?: string): DoAction {
    const droplet = this.getDroplet(id);
    if (droplet.pendingActionId !== undefined) throw new EmulatorError(422, 'unprocessable_entity', 'Droplet already has a pending event.');
    switch (type) {
      case 'power_on':
        if (droplet.status === 'active') throw new EmulatorError(422, 'unprocessable_entity', 'Droplet is already powered on.');
        return this.startAction(droplet, type, () => (droplet.status = 'active'));
      case 'power_off':
      case 'shutdown':
        if (droplet.status === 'off') throw new EmulatorError(422, 'unprocessable_entity', 'Droplet is already powered off.');
        return this.startAction(droplet, type, () => (droplet.status = 'off'));
      case 'reboot':
      case 'power_cycle':
        return this.startAction(droplet, type, () => (droplet.status = 'active'));
      case 'snapshot':
        return this.startAction(droplet, type, () => this.takeSnapshot(droplet, snapshotName));
      default:
        throw new EmulatorError(422, 'unprocessable_entity', `The emulator does not support the '${type}' action.`);
    }
  }

  getAction(id: number): DoAction {
    const action = this.actions.get(id);
    if (!action) throw new EmulatorError(404, 'not_found', 'The resource you were accessing could not be found.');
    return action;
  }

  findImage(ref: string | number): DoImage | undefined {
    const all = [...distributionImages, ...this.snapshotImages()];
    return all.find((i) => i.id === Number(ref) || (i.slug !== null && i.slug === ref));
  }

  snapshotImages(): DoImage[] {
    return [...this.snapshots.values()].map((s) => ({
      id: s.id,
      slug: null,
      name: s.name,
      distribution: 'Unknown',
      type: 'snapshot',
      min_disk_size: s.minDiskSize,
      size_gigabytes: s.sizeGigabytes,
      created_at: new Date(s.createdAt).toISOString(),
      description: '',
    }));
  }

  /** Completes every action whose time has come, oldest first. */
  settle(now: number): void {
    this.pending.sort((a, b) => finishedAt(a) - finishedAt(b));
    while (this.pending.length && isDone(this.pending[0]!, now)) {
      const action = this.pending.shift()!;
      action.completed = true;
      const droplet = this.droplets.get(action.resourceId);
      if (droplet) {
        if (droplet.pendingActionId === action.id) droplet.pendingActionId = undefined;
        action.effect();
      }
    }
  }

  private startAction(droplet: Droplet, type: string, effect: () => void): DoAction {
    const action: DoAction = {
      id: this.nextActionId++,
      type,
      resourceId: droplet.id,
      regionSlug: droplet.regionSlug,
      startedAt: this.now(),
      durationMs: this.actionDurationMs,
      completed: false,
      effect,
    };
    this.actions.set(action.id, action);
    this.pending.push(action);
    droplet.pendingActionId = action.id;
    return action;
  }

  private takeSnapshot(droplet: Droplet, name?: string): void {
    const size = sizes.find((s) => s.slug === droplet.sizeSlug)!;
    const snapshot: DoSnapshot = {
      id: this.nextSnapshotId++,
      name: name ?? `${droplet.name}-${new Date(this.now()).toISOString()}`,
      createdAt: this.now(),
      regionSlug: droplet.regionSlug,
      minDiskSize: size.disk,
      sizeGigabytes: Math.round(size.disk * 0.1 * 100) / 100,
      dropletId: droplet.id,
    };
    this.snapshots.set(snapshot.id, snapshot);
    droplet.snapshotIds.push(snapshot.id);
  }
}
