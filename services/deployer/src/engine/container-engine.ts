import type Docker from 'dockerode';
import { MANAGED_LABEL } from '../domain/naming.js';
import { confinement, ensureMeshNetwork } from '@droplet-mesh/container-policy';
import type { RegistryAuth } from '../registry/mesh-registry.js';

export interface ImageInfo {
  id: string;
  digest: string;
  tags: string[];
  labels: Record<string, string>;
  created: string;
}

export interface ContainerSpec {
  name: string;
  image: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  cmd?: string[];
  /**
   * The TCP port the app listens on inside its container, published at the same number on
   * the server's bind address only (default: `env.PORT`). None: nothing is published.
   */
  port?: number;
}

/** Where apps on one engine run: the mesh's bridge network, and the host address their ports are published on. */
export interface AppNetwork {
  network: string;
  /** Resolved at each run (a host name may move). */
  bindAddress: () => Promise<string>;
}

export const DEFAULT_APP_NETWORK = 'mesh-apps';

function portOf(spec: ContainerSpec): number | undefined {
  if (spec.port !== undefined) return spec.port;
  const p = Number(spec.env.PORT);
  return Number.isInteger(p) && p > 0 && p < 65536 ? p : undefined;
}

export interface ContainerState {
  id: string;
  name: string;
  running: boolean;
  exitCode?: number;
  labels: Record<string, string>;
}

type LogFn = (line: string) => void;

/** The deployer's view of one Docker Engine; the deployer only touches `mesh.managed=true` objects. */
export interface ContainerEngine {
  ping(): Promise<void>;
  imageInfo(ref: string): Promise<ImageInfo | undefined>;
  /** Pull `ref`; `auth` is the registry's authconfig (a private registry, the mesh registry). */
  pull(ref: string, onLog: LogFn, signal?: AbortSignal, auth?: RegistryAuth): Promise<void>;
  /** Push `ref` (repository:tag) and answer the manifest digest the registry stored (sha256:…). */
  push(ref: string, auth: RegistryAuth | undefined, onLog: LogFn, signal?: AbortSignal): Promise<string>;
  build(
    contextDir: string,
    tag: string,
    opts: { buildargs?: Record<string, string>; labels: Record<string, string> },
    onLog: LogFn,
    signal?: AbortSignal,
  ): Promise<void>;
  tag(ref: string, tag: string): Promise<void>;
  removeImage(ref: string): Promise<void>;
  listManagedImages(labels: Record<string, string>): Promise<ImageInfo[]>;
  exportImage(ref: string): Promise<NodeJS.ReadableStream>;
  importImage(stream: NodeJS.ReadableStream): Promise<void>;
  run(spec: ContainerSpec): Promise<string>;
  inspect(id: string): Promise<ContainerState | undefined>;
  stop(id: string, timeoutS?: number): Promise<void>;
  remove(id: string): Promise<void>;
  restart(id: string, timeoutS?: number): Promise<void>;
  logs(id: string, tail: number): Promise<string[]>;
  listManagedContainers(labels: Record<string, string>): Promise<ContainerState[]>;
}

const labelFilters = (labels: Record<string, string>) => [`${MANAGED_LABEL}=true`, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)];

function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404;
}

type ProgressEntry = { stream?: string; status?: string; progress?: string; error?: string; aux?: { Digest?: string } };

/** Docker's JSON progress stream, line by line, failing on an `error` entry; answers every entry. */
function followProgress(docker: Docker, stream: NodeJS.ReadableStream, onLog: LogFn, signal?: AbortSignal): Promise<ProgressEntry[]> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      (stream as unknown as { destroy?: () => void }).destroy?.();
      reject(signal?.reason ?? new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    docker.modem.followProgress(
      stream,
      (err, res) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) return reject(err);
        const failed = (res as ProgressEntry[]).find((r) => r.error);
        if (failed) return reject(new Error(failed.error));
        resolve(res as ProgressEntry[]);
      },
      (ev: { stream?: string; status?: string; progress?: string; error?: string }) => {
        const line = (ev.stream ?? ev.status ?? ev.error ?? '').trimEnd();
        if (line && !ev.progress) for (const l of line.split('\n')) onLog(l);
      },
    );
  });
}

function toImageInfo(i: Docker.ImageInspectInfo): ImageInfo {
  return {
    id: i.Id,
    digest: i.RepoDigests?.[0] ?? i.Id,
    tags: i.RepoTags ?? [],
    labels: (i.Config?.Labels as Record<string, string> | null) ?? {},
    created: i.Created,
  };
}

export class DockerEngine implements ContainerEngine {
  constructor(
    readonly docker: Docker,
    readonly net: AppNetwork = { network: DEFAULT_APP_NETWORK, bindAddress: async () => '127.0.0.1' },
  ) {}

  async ping(): Promise<void> {
    await this.docker.ping();
  }

  async imageInfo(ref: string): Promise<ImageInfo | undefined> {
    try {
      return toImageInfo(await this.docker.getImage(ref).inspect());
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async pull(ref: string, onLog: LogFn, signal?: AbortSignal, auth?: RegistryAuth): Promise<void> {
    const stream = await this.docker.pull(ref, auth ? { authconfig: auth } : {});
    await followProgress(this.docker, stream, onLog, signal);
  }

  async push(ref: string, auth: RegistryAuth | undefined, onLog: LogFn, signal?: AbortSignal): Promise<string> {
    const stream = await this.docker.getImage(ref).push(auth ? { authconfig: auth } : {});
    const entries = await followProgress(this.docker, stream, onLog, signal);
    const digest = entries.map((e) => e.aux?.Digest).find((d) => d && /^sha256:[a-f0-9]{64}$/.test(d));
    if (!digest) throw new Error(`the registry did not report a digest for ${ref}`);
    return digest;
  }

  async build(
    contextDir: string,
    tag: string,
    opts: { buildargs?: Record<string, string>; labels: Record<string, string> },
    onLog: LogFn,
    signal?: AbortSignal,
  ): Promise<void> {
    // tar is loaded by the first build, not at start (issue 16, idle RSS).
    const { c: createTar } = await import('tar');
    const context = createTar({ cwd: contextDir, portable: true, filter: (p) => !/^(\.\/)?\.git(\/|$)/.test(p) }, ['.']);
    const stream = await this.docker.buildImage(
      context as unknown as NodeJS.ReadableStream,
      {
        t: tag,
        buildargs: opts.buildargs ?? {},
        labels: opts.labels,
        rm: true,
        forcerm: true,
        abortSignal: signal,
      } as Docker.ImageBuildOptions,
    );
    await followProgress(this.docker, stream, onLog, signal);
  }

  async tag(ref: string, tag: string): Promise<void> {
    const i = tag.lastIndexOf(':');
    await this.docker.getImage(ref).tag({ repo: tag.slice(0, i), tag: tag.slice(i + 1) });
  }

  async removeImage(ref: string): Promise<void> {
    try {
      await this.docker.getImage(ref).remove({ noprune: false });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async listManagedImages(labels: Record<string, string>): Promise<ImageInfo[]> {
    const list = await this.docker.listImages({ filters: { label: labelFilters(labels) } });
    return list.map((i) => ({
      id: i.Id,
      digest: i.RepoDigests?.[0] ?? i.Id,
      tags: i.RepoTags ?? [],
      labels: i.Labels ?? {},
      created: new Date(i.Created * 1000).toISOString(),
    }));
  }

  async exportImage(ref: string): Promise<NodeJS.ReadableStream> {
    return this.docker.getImage(ref).get();
  }

  async importImage(stream: NodeJS.ReadableStream): Promise<void> {
    const out = await this.docker.loadImage(stream);
    await followProgress(this.docker, out, () => undefined);
  }

  /**
   * An app container, confined: on the mesh's bridge network (it reaches neither the host's
   * loopback, where NATS and the droplets listen, nor other hosts' services through it),
   * its port published only on the bind address, every capability dropped (an image that
   * says `USER root` keeps a web server's four), no-new-privileges, and user 65534 unless
   * the image names its own.
   */
  async run(spec: ContainerSpec): Promise<string> {
    if (spec.labels[MANAGED_LABEL] !== 'true') throw new Error('refusing to create a container without mesh.managed=true');
    const port = portOf(spec);
    // Independent look-ups, concurrently: each is an engine (or DNS) round trip on the deploy's critical path.
    const [image, , hostIp] = await Promise.all([
      this.docker.getImage(spec.image).inspect(),
      ensureMeshNetwork(this.docker, this.net.network, 'apps', 'APP_NETWORK'),
      port ? this.net.bindAddress() : undefined,
    ]);
    const published = port && hostIp ? { HostIp: hostIp, HostPort: String(port) } : undefined;
    const { user, host } = confinement(this.net.network, image);
    const options: Docker.ContainerCreateOptions = {
      name: spec.name,
      Image: spec.image,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: spec.labels,
      ...(spec.cmd ? { Cmd: spec.cmd } : {}),
      ...(user ? { User: user } : {}),
      ...(port ? { ExposedPorts: { [`${port}/tcp`]: {} } } : {}),
      // Init: an init process forwards SIGTERM, so an app running as PID 1 still stops gracefully.
      HostConfig: {
        ...host,
        ...(published ? { PortBindings: { [`${port}/tcp`]: [published] } } : {}),
        Init: true,
        RestartPolicy: { Name: 'unless-stopped' },
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
      },
    };
    const createAndStart = async () => {
      const c = await this.docker.createContainer(options);
      try {
        await c.start();
      } catch (err) {
        // Not started (the port was taken meanwhile, ...): leave no container behind that nobody records.
        await c.remove({ force: true }).catch(() => undefined);
        throw err;
      }
      return c.id;
    };
    try {
      return await createAndStart();
    } catch (err) {
      // Another process created the network at the same moment (see ensureMeshNetwork): once
      // the duplicate is gone, the name means one network again.
      if (!/is ambiguous/.test((err as Error).message)) throw err;
      await ensureMeshNetwork(this.docker, this.net.network, 'apps', 'APP_NETWORK');
      return createAndStart();
    }
  }

  private async managed(id: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      const info = await this.docker.getContainer(id).inspect();
      return info.Config.Labels?.[MANAGED_LABEL] === 'true' ? info : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async inspect(id: string): Promise<ContainerState | undefined> {
    const info = await this.managed(id);
    if (!info) return undefined;
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      running: info.State.Running,
      exitCode: info.State.Running ? undefined : info.State.ExitCode,
      labels: info.Config.Labels ?? {},
    };
  }

  async stop(id: string, timeoutS = 10): Promise<void> {
    if (!(await this.managed(id))) return;
    try {
      await this.docker.getContainer(id).stop({ t: timeoutS });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code !== 304 && code !== 404) throw err;
    }
  }

  async remove(id: string): Promise<void> {
    if (!(await this.managed(id))) return;
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code !== 404 && code !== 409) throw err;
    }
  }

  async restart(id: string, timeoutS = 10): Promise<void> {
    if (!(await this.managed(id))) throw new Error(`container ${id.slice(0, 12)} is not managed by the deployer`);
    await this.docker.getContainer(id).restart({ t: timeoutS });
  }

  async logs(id: string, tail: number): Promise<string[]> {
    if (!(await this.managed(id))) return [];
    const c = this.docker.getContainer(id);
    const buf = (await c.logs({ stdout: true, stderr: true, tail, follow: false, timestamps: false })) as unknown as Buffer;
    return demux(buf)
      .split('\n')
      .filter((l) => l.length > 0)
      .slice(-tail);
  }

  async listManagedContainers(labels: Record<string, string>): Promise<ContainerState[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: labelFilters(labels) } });
    return list.map((c) => ({ id: c.Id, name: (c.Names[0] ?? '').replace(/^\//, ''), running: c.State === 'running', labels: c.Labels }));
  }
}

/** Container logs come multiplexed (8-byte frame headers) when there is no TTY. */
function demux(buf: Buffer): string {
  if (buf.length < 8 || buf[0] > 2 || buf[1] !== 0) return buf.toString('utf8');
  const chunks: Buffer[] = [];
  let off = 0;
  while (off + 8 <= buf.length) {
    const len = buf.readUInt32BE(off + 4);
    chunks.push(buf.subarray(off + 8, off + 8 + len));
    off += 8 + len;
  }
  return Buffer.concat(chunks).toString('utf8');
}
