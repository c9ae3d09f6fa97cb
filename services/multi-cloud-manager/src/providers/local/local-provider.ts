import type Docker from 'dockerode';
import { InvalidRequest } from '@droplet-mesh/udc-kit';
import type {
  CallOptions,
  CloudProvider,
  CreateInstanceInput,
  CreateResult,
  Image,
  Instance,
  PowerAction,
  ProviderAction,
  Region,
  Snapshot,
  SnapshotResult,
} from '../cloud-provider.js';
import { isNotModified, mapDockerError } from './docker-errors.js';
import { containerLabels, fromContainerInfo, fromContainerInspect, LABEL_SNAPSHOT_OF, LOCAL_SIZES } from './local-mapping.js';

function containerId(id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id))
    throw new InvalidRequest(`local instance ids are container ids or names, got '${id.slice(0, 40)}'`, {
      fields: [{ path: 'id', message: 'must be a container id' }],
    });
  return id;
}

/**
 * Instances as containers on the local Docker Engine: works with no cloud token and is
 * what a fresh `npm start` shows. Power maps to start/stop/restart; sizes to CPU and
 * memory limits; images are the engine's local images; the region is `local`.
 */
export class LocalDockerProvider implements CloudProvider {
  readonly name = 'local' as const;
  readonly currency = 'USD';
  constructor(private readonly docker: Docker) {}

  private async guard<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapDockerError(err, operation);
    }
  }

  list(_opts?: CallOptions): Promise<Instance[]> {
    return this.guard('list', async () => (await this.docker.listContainers({ all: true })).map(fromContainerInfo));
  }

  get(id: string): Promise<Instance> {
    return this.guard('get', async () => fromContainerInspect(await this.docker.getContainer(containerId(id)).inspect()));
  }

  async create(input: CreateInstanceInput): Promise<CreateResult> {
    const size = LOCAL_SIZES.find((s) => s.slug === input.size);
    if (!size)
      throw new InvalidRequest(`local has no size '${input.size}'`, {
        fields: [{ path: 'size', message: `one of ${LOCAL_SIZES.map((s) => s.slug).join(', ')}` }],
      });
    if (input.region !== 'local')
      throw new InvalidRequest(`local has only the region 'local'`, { fields: [{ path: 'region', message: "must be 'local'" }] });
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(input.name))
      throw new InvalidRequest('a local instance name must be a container name ([A-Za-z0-9_.-])', {
        fields: [{ path: 'name', message: 'not a valid container name' }],
      });
    return this.guard('create', async () => {
      try {
        await this.docker.getImage(input.image).inspect();
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404)
          throw new InvalidRequest(`image '${input.image}' is not on the local engine`, {
            fields: [{ path: 'image', message: 'no such local image' }],
          });
        throw err;
      }
      const container = await this.docker.createContainer({
        name: input.name,
        Image: input.image,
        ...(input.command?.length ? { Cmd: input.command } : {}),
        Labels: containerLabels(input.tags, input.labels, size.slug),
        HostConfig: {
          NetworkMode: 'host',
          NanoCpus: size.vcpus * 1e9,
          Memory: size.memory_mb * 1024 * 1024,
          RestartPolicy: { Name: 'unless-stopped' },
        },
      });
      await container.start();
      return { instance: fromContainerInspect(await container.inspect()), action: null };
    });
  }

  delete(id: string): Promise<ProviderAction | null> {
    return this.guard('delete', async () => {
      await this.docker.getContainer(containerId(id)).remove({ force: true });
      return null;
    });
  }

  power(id: string, action: PowerAction): Promise<ProviderAction> {
    const c = this.docker.getContainer(containerId(id));
    const started_at = new Date().toISOString();
    return this.guard(action, async () => {
      try {
        if (action === 'power_on') await c.start();
        else if (action === 'power_off') await c.stop({ t: 0 });
        else if (action === 'shutdown') await c.stop({ t: 10 });
        else await c.restart({ t: 5 });
      } catch (err) {
        if (!isNotModified(err)) throw err;
      }
      // The engine finishes these before answering, so the action is already done.
      return {
        id: `${id}:${action}:${Date.now()}`,
        provider: this.name,
        type: action,
        status: 'completed',
        raw_status: 'done',
        resource_id: id,
        started_at,
        completed_at: new Date().toISOString(),
      };
    });
  }

  async getAction(action: ProviderAction): Promise<ProviderAction> {
    return action;
  }

  async sizes() {
    return LOCAL_SIZES;
  }

  images(): Promise<Image[]> {
    return this.guard('images', async () =>
      (await this.docker.listImages()).flatMap((i) =>
        (i.RepoTags ?? [])
          .filter((t) => t !== '<none>:<none>')
          .map((t) => ({
            provider: 'local' as const,
            id: i.Id,
            slug: t,
            name: t,
            distribution: null,
            type: i.Labels?.[LABEL_SNAPSHOT_OF] ? 'snapshot' : 'image',
          })),
      ),
    );
  }

  async regions(): Promise<Region[]> {
    return [{ provider: 'local', slug: 'local', name: 'Local Docker Engine', available: true, country: null }];
  }

  snapshots(): Promise<Snapshot[]> {
    return this.guard('snapshots', async () =>
      (await this.docker.listImages({ filters: JSON.stringify({ label: [LABEL_SNAPSHOT_OF] }) } as Docker.ListImagesOptions)).map((i) => ({
        provider: 'local' as const,
        id: i.Id,
        name: i.RepoTags?.[0] ?? i.Id,
        resource_id: i.Labels?.[LABEL_SNAPSHOT_OF] ?? null,
        created_at: new Date(i.Created * 1000).toISOString(),
        size_gb: Math.round((i.Size / 1024 ** 3) * 1000) / 1000,
        status: 'available',
      })),
    );
  }

  createSnapshot(id: string, name: string): Promise<SnapshotResult> {
    const repo = `mesh-snapshot/${
      name
        .toLowerCase()
        .replace(/[^a-z0-9._-]+/g, '-')
        .replace(/^[^a-z0-9]+/, '') || 'snapshot'
    }`;
    const tag = String(Date.now());
    return this.guard('snapshot', async () => {
      const c = this.docker.getContainer(containerId(id));
      const { Id } = await c.inspect();
      await c.commit({ repo, tag, changes: `LABEL ${LABEL_SNAPSHOT_OF}=${Id}` });
      const info = await this.docker.getImage(`${repo}:${tag}`).inspect();
      return {
        snapshot: {
          provider: this.name,
          id: info.Id,
          name: `${repo}:${tag}`,
          resource_id: Id,
          created_at: info.Created,
          size_gb: Math.round((info.Size / 1024 ** 3) * 1000) / 1000,
          status: 'available',
        },
        action: null,
      };
    });
  }

  ping(): Promise<void> {
    return this.guard('ping', async () => {
      await this.docker.ping();
    });
  }
}
