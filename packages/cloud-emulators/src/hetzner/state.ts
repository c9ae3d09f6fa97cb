import { randomBytes } from 'node:crypto';
import { EmulatorError } from '../core/errors.js';
import { IpPool } from '../core/ip-pool.js';
import { finishedAt, isDone, type Timed } from '../core/timed.js';
import { locations, serverTypes, systemImages, type HetznerLocation, type HetznerServerType } from './catalog.js';

export type ServerStatus =
  | 'running'
  | 'initializing'
  | 'starting'
  | 'stopping'
  | 'off'
  | 'deleting'
  | 'migrating'
  | 'rebuilding'
  | 'unknown';

export interface HetznerServer {
  id: number;
  name: string;
  status: ServerStatus;
  created: number;
  serverType: HetznerServerType;
  location: HetznerLocation;
  imageId: number;
  labels: Record<string, string>;
  ips: { ipv4: string; ipv6Network: string; ipv6: string; privateIp: string };
  ipv4Id: number;
  ipv6Id: number;
  /** The running action that locks this server (Hetzner answers 423 `locked` meanwhile). */
  lockingActionId?: number;
}

export interface HetznerAction extends Timed {
  id: number;
  command: string;
  resources: { id: number; type: string }[];
  done: boolean;
  effect: () => void;
  /** Whether this action locks its server while it runs. */
  locks: boolean;
}

export interface HetznerImage {
  id: number;
  type: 'system' | 'snapshot';
  status: 'available' | 'creating';
  name: string | null;
  description: string;
  imageSize: number | null;
  diskSize: number;
  created: number;
  createdFrom: { id: number; name: string } | null;
  boundTo: number | null;
  osFlavor: 'ubuntu' | 'debian' | 'rocky' | 'fedora' | 'unknown';
  osVersion: string | null;
  labels: Record<string, string>;
}

export interface ServerCreate {
  name: string;
  server_type: string;
  image: string;
  location?: string;
  labels?: Record<string, string>;
  start_after_create?: boolean;
}

function notFound(kind: string, id: number | string): EmulatorError {
  return new EmulatorError(404, 'not_found', `${kind} with ID '${id}' not found`);
}

/** Everything one Hetzner emulator knows; actions progress with the clock (see `settle`). */
export class HetznerState {
  readonly servers = new Map<number, HetznerServer>();
  readonly actions = new Map<number, HetznerAction>();
  readonly images = new Map<number, HetznerImage>();
  private readonly pending: HetznerAction[] = [];
  private nextServerId = 50_000_001;
  private nextActionId = 900_000_001;
  private nextImageId = 200_000_001;
  private nextIpId = 70_000_001;
  private readonly ips = new IpPool(65);

  constructor(
    private readonly now: () => number,
    private readonly actionDurationMs: number,
  ) {
    for (const img of systemImages) {
      this.images.set(img.id, {
        id: img.id,
        type: 'system',
        status: 'available',
        name: img.name,
        description: img.description,
        imageSize: null,
        diskSize: 5,
        created: Date.parse(img.created),
        createdFrom: null,
        boundTo: null,
        osFlavor: img.os_flavor,
        osVersion: img.os_version,
        labels: {},
      });
    }
  }

  createServer(input: ServerCreate): { server: HetznerServer; action: HetznerAction; nextActions: HetznerAction[] } {
    const serverType = serverTypes.find((t) => t.name === input.server_type || String(t.id) === input.server_type);
    if (!serverType)
      throw new EmulatorError(422, 'invalid_input', `invalid input in field 'server_type'`, {
        fields: [{ name: 'server_type', messages: ['server type not found'] }],
      });
    const image = this.findImage(input.image);
    if (!image)
      throw new EmulatorError(422, 'invalid_input', `invalid input in field 'image'`, {
        fields: [{ name: 'image', messages: ['image not found'] }],
      });
    const location = locations.find((l) => l.name === (input.location ?? 'fsn1') || String(l.id) === input.location);
    if (!location)
      throw new EmulatorError(422, 'invalid_input', `invalid input in field 'location'`, {
        fields: [{ name: 'location', messages: ['location not found'] }],
      });
    if ([...this.servers.values()].some((s) => s.name === input.name)) {
      throw new EmulatorError(409, 'uniqueness_error', 'server name is already used', { fields: [{ name: 'name' }] });
    }
    const server = this.addServer(input.name, serverType, location, image.id, input.labels ?? {}, 'initializing');
    const start = input.start_after_create ?? true;
    const action = this.startAction(server, 'create_server', () => (server.status = start ? 'running' : 'off'));
    const nextActions = start ? [this.recordOnly('start_server', server.id)] : [];
    return { server, action, nextActions };
  }

  seedServer(index: number, labelKeys: string[]): HetznerServer {
    const labels = Object.fromEntries(labelKeys.map((k) => [k, 'true']));
    return this.addServer(
      `seed-${String(index + 1).padStart(4, '0')}`,
      serverTypes[index % serverTypes.length]!,
      locations[index % locations.length]!,
      systemImages[index % systemImages.length]!.id,
      labels,
      'running',
      86_400_000,
    );
  }

  getServer(id: number): HetznerServer {
    const server = this.servers.get(id);
    if (!server) throw notFound('server', id);
    return server;
  }

  /** Power and image actions; a server with a running action answers 423 `locked`. */
  serverAction(id: number, command: 'poweron' | 'poweroff' | 'shutdown' | 'reboot' | 'reset'): HetznerAction {
    const server = this.unlockedServer(id);
    switch (command) {
      case 'poweron':
        if (server.status === 'running') return this.recordOnly('start_server', server.id);
        server.status = 'starting';
        return this.startAction(server, 'start_server', () => (server.status = 'running'));
      case 'poweroff':
        server.status = 'stopping';
        return this.startAction(server, 'stop_server', () => (server.status = 'off'));
      case 'shutdown':
        server.status = 'stopping';
        return this.startAction(server, 'shutdown_server', () => (server.status = 'off'));
      case 'reboot':
        return this.startAction(server, 'reboot_server', () => (server.status = 'running'));
      case 'reset':
        return this.startAction(server, 'reset_server', () => (server.status = 'running'));
    }
  }

  createImage(id: number, description?: string, labels?: Record<string, string>): { image: HetznerImage; action: HetznerAction } {
    const server = this.unlockedServer(id);
    const source = this.images.get(server.imageId);
    const image: HetznerImage = {
      id: this.nextImageId++,
      type: 'snapshot',
      status: 'creating',
      name: null,
      description: description ?? `${server.name}-${new Date(this.now()).toISOString()}`,
      imageSize: null,
      diskSize: server.serverType.disk,
      created: this.now(),
      createdFrom: { id: server.id, name: server.name },
      boundTo: null,
      osFlavor: source?.osFlavor ?? 'unknown',
      osVersion: source?.osVersion ?? null,
      labels: labels ?? {},
    };
    this.images.set(image.id, image);
    const action = this.startAction(server, 'create_image', () => {
      image.status = 'available';
      image.imageSize = Math.round(server.serverType.disk * 0.05 * 100) / 100;
    });
    action.resources.push({ id: image.id, type: 'image' });
    return { image, action };
  }

  deleteServer(id: number): HetznerAction {
    const server = this.unlockedServer(id);
    server.status = 'deleting';
    return this.startAction(server, 'delete_server', () => this.servers.delete(server.id));
  }

  getAction(id: number): HetznerAction {
    const action = this.actions.get(id);
    if (!action) throw notFound('action', id);
    return action;
  }

  findImage(ref: string): HetznerImage | undefined {
    return [...this.images.values()].find((i) => i.status === 'available' && (String(i.id) === ref || i.name === ref));
  }

  settle(now: number): void {
    this.pending.sort((a, b) => finishedAt(a) - finishedAt(b));
    while (this.pending.length && isDone(this.pending[0]!, now)) {
      const action = this.pending.shift()!;
      action.done = true;
      const server = this.servers.get(action.resources[0]!.id);
      if (server && server.lockingActionId === action.id) server.lockingActionId = undefined;
      action.effect();
    }
  }

  private unlockedServer(id: number): HetznerServer {
    const server = this.servers.get(id);
    if (!server || server.status === 'deleting') throw notFound('server', id);
    if (server.lockingActionId !== undefined) throw new EmulatorError(423, 'locked', 'server is locked by a running action', null);
    return server;
  }

  private addServer(
    name: string,
    serverType: HetznerServerType,
    location: HetznerLocation,
    imageId: number,
    labels: Record<string, string>,
    status: ServerStatus,
    ageMs = 0,
  ): HetznerServer {
    const server: HetznerServer = {
      id: this.nextServerId++,
      name,
      status,
      created: this.now() - ageMs,
      serverType,
      location,
      imageId,
      labels: { ...labels },
      ips: this.ips.allocate(),
      ipv4Id: this.nextIpId++,
      ipv6Id: this.nextIpId++,
    };
    this.servers.set(server.id, server);
    return server;
  }

  private startAction(server: HetznerServer, command: string, effect: () => void): HetznerAction {
    const action: HetznerAction = {
      id: this.nextActionId++,
      command,
      resources: [{ id: server.id, type: 'server' }],
      startedAt: this.now(),
      durationMs: this.actionDurationMs,
      done: false,
      effect,
      locks: true,
    };
    this.actions.set(action.id, action);
    this.pending.push(action);
    server.lockingActionId = action.id;
    return action;
  }

  /** An action that is already finished (e.g. `start_server` after create, which the create action covers). */
  private recordOnly(command: string, serverId: number): HetznerAction {
    const action: HetznerAction = {
      id: this.nextActionId++,
      command,
      resources: [{ id: serverId, type: 'server' }],
      startedAt: this.now(),
      durationMs: this.actionDurationMs,
      done: false,
      effect: () => undefined,
      locks: false,
    };
    this.actions.set(action.id, action);
    this.pending.push(action);
    return action;
  }
}

export function rootPassword(): string {
  return randomBytes(12).toString('base64url');
}
