import type Docker from 'dockerode';
import { Conflict, Forbidden, InvalidRequest } from '@droplet-mesh/udc-kit';
import type {
  CallOptions,
  CloudProvider,
  CreateInstanceInput,
  CreateOptions,
  CreateResult,
  Image,
  Instance,
  PowerAction,
  ProviderAction,
  Region,
  Snapshot,
  SnapshotResult,
} from '../cloud-provider.js';
import { confinement, ensureMeshNetwork } from '@droplet-mesh/container-policy';
import { isNotModified, mapDockerError } from './docker-errors.js';
import {
  containerLabels,
  fromContainerInfo,
  fromContainerInspect,
  isLocalInstance,
  LABEL_SNAPSHOT_CATALOG,
  LABEL_SNAPSHOT_OF,
  LOCAL_SIZES,
} from './local-mapping.js';

export interface LocalProviderOptions {
  /** The mesh's bridge network instances run on. */
  network: string;
  /** Image references a caller without `admin` may create from (besides snapshots of mesh instances). */
  catalogImages: string[];
}

export const DEFAULT_LOCAL_OPTIONS: LocalProviderOptions = { network: 'mesh-instances', catalogImages: [] };

function containerId(id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id))
    throw new InvalidRequest(`local instance ids are container ids or names, got '${id.slice(0, 40)}'`, {
      fields: [{ path: 'id', message: 'must be a container id' }],
    });
  return id;
}

/** `KEY=VALUE` lines as a map (a line without `=` is a key with no value). */
function envMap(env: string[] | null | undefined): Map<string, string> {
  return new Map((env ?? []).map((l) => (l.includes('=') ? [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] : [l, ''])));
}

/** A Dockerfile string literal. */
const quoted = (v: string) => `"${v.replace(/[\\"$]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"`;

/**
 * Instances as containers on the local Docker Engine: works with no cloud token and is
 * what a fresh `npm start` shows. Power maps to start/stop/restart; sizes to CPU and
 * memory limits; the region is `local`. The engine also runs the mesh's droplets and
 * deployed apps, so only containers this provider created count as managed (the Fleet
 * hides the rest from callers without `admin`), instances run unprivileged on the
 * mesh's own bridge network, and the image catalog is what the operator listed.
 */
export class LocalDockerProvider implements CloudProvider {
  readonly name = 'local' as const;
  readonly currency = 'USD';
  readonly guardsUnmanaged = true;
  private readonly opts: LocalProviderOptions;
  constructor(
    private readonly docker: Docker,
    opts: Partial<LocalProviderOptions> = {},
  ) {
    this.opts = { ...DEFAULT_LOCAL_OPTIONS, ...opts };
  }

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

  async create(input: CreateInstanceInput, opts: CreateOptions = {}): Promise<CreateResult> {
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
      let image: Docker.ImageInspectInfo;
      try {
        image = await this.docker.getImage(input.image).inspect();
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404)
          throw new InvalidRequest(`image '${input.image}' is not on the local engine`, {
            fields: [{ path: 'image', message: 'no such local image' }],
          });
        throw err;
      }
      if (!opts.anyImage && !(await this.catalog()).some((i) => i.id === image.Id))
        throw new Forbidden(
          `image '${input.image}' is not in the local catalog (GET /catalog/images?provider=local); any other local image needs the 'admin' scope`,
          { required_scope: 'admin', image: input.image, fields: [{ path: 'image', message: 'not in the local catalog' }] },
        );
      await ensureMeshNetwork(this.docker, this.opts.network, 'local-instances', 'LOCAL_NETWORK');
      const confined = confinement(this.opts.network, image);
      const container = await this.docker.createContainer({
        name: input.name,
        // The resolved image: the one checked above, even if the tag moves meanwhile.
        Image: image.Id,
        ...(input.command?.length ? { Cmd: input.command } : {}),
        ...(confined.user ? { User: confined.user } : {}),
        Labels: containerLabels(input.tags, input.labels, size.slug),
        HostConfig: {
          ...confined.host,
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

  /**
   * The catalog: the configured images that are on the engine, and snapshots of the
   * mesh's own instances. Not every local image: the engine also holds the droplets' and
   * apps' images, and snapshots of other containers.
   */
  images(): Promise<Image[]> {
    return this.guard('images', () => this.catalog());
  }

  private async catalog(): Promise<Image[]> {
    const configured = await Promise.all(
      this.opts.catalogImages.map(async (ref): Promise<Image | undefined> => {
        try {
          const i = await this.docker.getImage(ref).inspect();
          return { provider: 'local', id: i.Id, slug: ref, name: ref, distribution: null, type: 'image' };
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode === 404) return undefined;
          throw err;
        }
      }),
    );
    const snapshots = await this.docker.listImages({
      filters: JSON.stringify({ label: [LABEL_SNAPSHOT_OF, `${LABEL_SNAPSHOT_CATALOG}=true`] }),
    } as Docker.ListImagesOptions);
    return [
      ...configured.filter((i): i is Image => !!i),
      ...snapshots.flatMap((i) =>
        (i.RepoTags ?? [])
          .filter((t) => t !== '<none>:<none>')
          .map((t) => ({ provider: 'local' as const, id: i.Id, slug: t, name: t, distribution: null, type: 'snapshot' })),
      ),
    ];
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
      const source = await c.inspect();
      const { Id } = source;
      // A snapshot keeps the image's environment, not what the container was started with
      // (keys and passwords of whoever ran it). Only a mesh instance's snapshot joins the catalog.
      const imageEnv = envMap(
        await this.docker
          .getImage(source.Image)
          .inspect()
          .then(
            (i) => i.Config?.Env,
            () => [],
          ),
      );
      const env = [...envMap(source.Config.Env)].filter(([k, v]) => imageEnv.get(k) !== v);
      const odd = env.find(([k]) => !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k));
      if (odd) throw new Conflict(`cannot snapshot ${id}: its environment has a variable the snapshot could not leave out`);
      const changes = [
        `LABEL ${LABEL_SNAPSHOT_OF}=${Id} ${LABEL_SNAPSHOT_CATALOG}=${isLocalInstance(source.Config.Labels)}`,
        ...env.map(([k]) => `ENV ${k}=${quoted(imageEnv.get(k) ?? '')}`),
      ];
      await c.commit({ repo, tag, changes });
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
