import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESH_DROPLETS, natsPasswordVariable } from '@droplet-mesh/udc-kit';
import { freePort, waitFor } from '@droplet-mesh/udc-kit/testing';
import type { ComposeImages, Docker } from './compose-images.js';
import { REPO } from './processes.js';

// One docker-compose project of the repo's docker-compose.yml with its own generated
// .env, high loopback ports and a unique project name, torn down with `down -v`.

export const COMPOSE_SERVICES = [
  'nats',
  'registry',
  'multi-cloud-manager',
  'proxy-manager',
  'deployer',
  'health-monitor',
  'console',
  'orchestrator',
] as const;
export type ComposeService = (typeof COMPOSE_SERVICES)[number];

const PROJECT_PREFIX = 'meshcompose';
const PROJECT_LABEL = 'com.docker.compose.project';
const SERVICE_LABEL = 'com.docker.compose.service';

export type ContainerInspect = Awaited<ReturnType<ReturnType<Docker['getContainer']>['inspect']>>;

export interface PublishedPorts {
  registry: number;
  'multi-cloud-manager': number;
  'proxy-manager': number;
  deployer: number;
  'health-monitor': number;
  console: number;
  orchestrator: number;
  proxyHttp: number;
  proxyHttps: number;
}

export interface ComposeResult {
  code: number;
  output: string;
}

export class ComposeStack {
  readonly project = `${PROJECT_PREFIX}${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'mesh-compose-'));
  readonly envFile = join(this.dir, '.env');

  private constructor(
    private docker: Docker,
    readonly ports: PublishedPorts,
    readonly env: Record<string, string>,
  ) {
    writeFileSync(
      this.envFile,
      `${Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')}\n`,
      { mode: 0o600 },
    );
  }

  /** Writes the .env of a new project: secrets, images, free loopback ports, fast healthchecks. */
  static async create(docker: Docker, images: ComposeImages, extraEnv: Record<string, string> = {}): Promise<ComposeStack> {
    const ports: PublishedPorts = {
      registry: await freePort(),
      'multi-cloud-manager': await freePort(),
      'proxy-manager': await freePort(),
      deployer: await freePort(),
      'health-monitor': await freePort(),
      console: await freePort(),
      orchestrator: await freePort(),
      proxyHttp: await freePort(),
      proxyHttps: await freePort(),
    };
    const env: Record<string, string> = {
      MESH_IMAGE_REPO: images.repo,
      MESH_IMAGE_TAG: images.tag,
      NATS_IMAGE: images.natsImage,
      // One NATS user per droplet. Letters and digits, starting with a letter: nats.conf reads each as a bare token.
      ...Object.fromEntries(MESH_DROPLETS.map((name) => [natsPasswordVariable(name), `p${randomBytes(16).toString('hex')}`])),
      REGISTRY_ADMIN_KEY: `admin-${randomBytes(16).toString('hex')}`,
      DEPLOYER_MASTER_KEY: randomBytes(32).toString('hex'),
      CERT_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      DOCKER_GID: String(statSync('/var/run/docker.sock').gid),
      NODE_BASE_IMAGE: images.nodeBaseImage,
      API_PUBLISH_ADDRESS: '127.0.0.1',
      PROXY_PUBLISH_ADDRESS: '127.0.0.1',
      REGISTRY_PUBLISHED_PORT: String(ports.registry),
      MULTI_CLOUD_MANAGER_PUBLISHED_PORT: String(ports['multi-cloud-manager']),
      PROXY_MANAGER_PUBLISHED_PORT: String(ports['proxy-manager']),
      DEPLOYER_PUBLISHED_PORT: String(ports.deployer),
      HEALTH_MONITOR_PUBLISHED_PORT: String(ports['health-monitor']),
      CONSOLE_PUBLISHED_PORT: String(ports.console),
      ORCHESTRATOR_PUBLISHED_PORT: String(ports.orchestrator),
      PROXY_PUBLISHED_HTTP_PORT: String(ports.proxyHttp),
      PROXY_PUBLISHED_HTTPS_PORT: String(ports.proxyHttps),
      HEALTHCHECK_INTERVAL: '1s',
      ...extraEnv,
    };
    return new ComposeStack(docker, ports, env);
  }

  get adminKey(): string {
    return this.env.REGISTRY_ADMIN_KEY;
  }

  url(service: Exclude<keyof PublishedPorts, 'proxyHttp' | 'proxyHttps'>): string {
    return `http://127.0.0.1:${this.ports[service]}`;
  }

  /** `docker-compose -p <project> -f docker-compose.yml --env-file <.env> <args>`, with a clean environment. */
  compose(args: string[], timeoutMs = 180_000): Promise<ComposeResult> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    };
    return new Promise((resolve) => {
      execFile(
        'docker-compose',
        ['-p', this.project, '-f', join(REPO, 'docker-compose.yml'), '--env-file', this.envFile, ...args],
        { cwd: REPO, env, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ code, output: `${stdout}${stderr}` });
        },
      );
    });
  }

  async up(services: string[] = []): Promise<void> {
    const r = await this.compose(['up', '-d', '--no-build', ...services], 10 * 60_000);
    if (r.code !== 0) throw new Error(`docker-compose up failed (${r.code}):\n${r.output.slice(-4000)}\n${await this.logs(40)}`);
  }

  /** Last lines of every service's log, for failure messages. */
  async logs(tail = 30): Promise<string> {
    return (await this.compose(['logs', '--no-color', '--tail', String(tail)], 60_000)).output.slice(-12_000);
  }

  async containers(): Promise<Array<{ service: string; id: string }>> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${PROJECT_LABEL}=${this.project}`] } });
    return list.map((c) => ({ service: c.Labels[SERVICE_LABEL], id: c.Id }));
  }

  async inspect(service: ComposeService): Promise<ContainerInspect> {
    const c = (await this.containers()).find((x) => x.service === service);
    if (!c) throw new Error(`no container for ${service} in ${this.project}`);
    return this.docker.getContainer(c.id).inspect();
  }

  /** service → Docker health status ('starting' | 'healthy' | 'unhealthy' | 'none' | 'missing'). */
  async health(): Promise<Record<string, string>> {
    const out: Record<string, string> = Object.fromEntries(COMPOSE_SERVICES.map((s) => [s, 'missing']));
    for (const c of await this.containers()) {
      const info = await this.docker.getContainer(c.id).inspect();
      out[c.service] = info.State.Running ? (info.State.Health?.Status ?? 'none') : `not running (${info.State.Status})`;
    }
    return out;
  }

  async waitHealthy(timeoutMs: number): Promise<void> {
    try {
      await waitFor(
        'every compose service healthy',
        async () => Object.values(await this.health()).every((s) => s === 'healthy'),
        timeoutMs,
        500,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(await this.health())}\n${await this.logs()}`);
    }
  }

  /** Always safe to call: removes containers, network and named volumes, then the .env. */
  async down(): Promise<void> {
    const r = await this.compose(['down', '-v', '--remove-orphans', '-t', '10'], 180_000);
    rmSync(this.dir, { recursive: true, force: true });
    if (r.code !== 0) throw new Error(`docker-compose down failed (${r.code}): ${r.output.slice(-2000)}`);
  }
}

/**
 * Removes what earlier runs left behind when they were killed before `down` (containers
 * restart unless stopped): projects of this suite older than an hour.
 */
export async function removeStaleComposeProjects(docker: Docker, olderThanMs = 3600_000): Promise<string[]> {
  const containers = await docker.listContainers({ all: true, filters: { label: [PROJECT_LABEL] } });
  const stale = new Set(
    containers
      .filter((c) => c.Labels[PROJECT_LABEL]?.startsWith(PROJECT_PREFIX) && Date.now() - c.Created * 1000 > olderThanMs)
      .map((c) => c.Labels[PROJECT_LABEL]),
  );
  for (const project of stale) {
    const filters = { label: [`${PROJECT_LABEL}=${project}`] };
    for (const c of await docker.listContainers({ all: true, filters }))
      await docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined);
    for (const n of await docker.listNetworks({ filters }))
      await docker
        .getNetwork(n.Id)
        .remove()
        .catch(() => undefined);
    const { Volumes } = await docker.listVolumes({ filters });
    for (const v of Volumes ?? [])
      await docker
        .getVolume(v.Name)
        .remove()
        .catch(() => undefined);
  }
  return [...stale];
}
