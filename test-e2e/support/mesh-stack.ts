import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDockerEngine, ensureNodeBaseImage } from '@droplet-mesh/docker-testing';
import { freePort, startNatsServer, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { startPebble, type Pebble } from './mesh-pebble.js';
import { startSmtpRecorder, type SmtpRecorder } from './mesh-smtp.js';
import { startDropletProcess, type DropletProcess } from './processes.js';
import { ADMIN_KEY } from './registry-api.js';

export type Docker = Awaited<ReturnType<typeof ensureDockerEngine>>;
export type Scope = 'read' | 'write' | 'admin';

export const DROPLET_NAMES = ['registry', 'multi-cloud-manager', 'proxy-manager', 'deployer', 'health-monitor'] as const;
export type DropletName = (typeof DROPLET_NAMES)[number];
export const MONITOR_IDS = ['m1', 'm2', 'm3'] as const;
export const ALERT_TO = 'ops@example.com';

/**
 * The deployer's default drain: the health monitors re-read a target's record before they
 * declare it down, so a redeploy that moves the app to a new port is not an outage.
 */
export const DRAIN_S = 2;

export interface ApiAnswer<T = any> {
  status: number;
  body: T;
}

/**
 * The whole mesh on loopback: real nats-server (JetStream), pebble + challtestsrv, an SMTP
 * recorder, the Docker Engine, and the five droplets as separate processes (three
 * health-monitor replicas) that register themselves with the registry (REGISTRY_KEY).
 * `start()` may fail half-way; `stop()` always cleans up whatever was started.
 */
export class Mesh {
  readonly runId = randomBytes(3).toString('hex');
  /** Deployer project name; labels (mesh.project) every container and image the deploys make. */
  readonly project = `e2e${this.runId}`;
  readonly instanceName = `mesh-e2e-host-${this.runId}`;
  readonly tmp = mkdtempSync(join(tmpdir(), 'mesh-e2e-'));
  nats!: NatsServerHandle;
  pebble!: Pebble;
  smtp!: SmtpRecorder;
  docker!: Docker;
  nodeImage!: string;
  proxyHttpPort!: number;
  proxyHttpsPort!: number;
  registry!: DropletProcess;
  multiCloud!: DropletProcess;
  proxy!: DropletProcess;
  deployer!: DropletProcess;
  monitors: DropletProcess[] = [];
  private started: DropletProcess[] = [];
  private tokens = new Map<string, string>();

  /** One process per droplet name (the first health-monitor replica stands for its droplet). */
  droplets(): Record<DropletName, DropletProcess> {
    return {
      registry: this.registry,
      'multi-cloud-manager': this.multiCloud,
      'proxy-manager': this.proxy,
      deployer: this.deployer,
      'health-monitor': this.monitors[0],
    };
  }

  /** Every droplet process (all monitor replicas), with the registry id each registers under. */
  processes(): Array<{ id: string; proc: DropletProcess }> {
    return [
      { id: 'registry', proc: this.registry },
      { id: 'multi-cloud-manager', proc: this.multiCloud },
      { id: 'proxy-manager', proc: this.proxy },
      { id: 'deployer', proc: this.deployer },
      ...this.monitors.map((proc, i) => ({ id: `health-monitor-${MONITOR_IDS[i]}`, proc })),
    ];
  }

  async start(): Promise<void> {
    chmodSync(this.tmp, 0o755); // nginx workers (nobody) read the ACME webroot below it
    this.nats = await startNatsServer({ storeDir: join(this.tmp, 'nats') });
    this.smtp = await startSmtpRecorder();
    this.proxyHttpPort = await freePort();
    this.proxyHttpsPort = await freePort();
    this.pebble = await startPebble({ httpPort: this.proxyHttpPort });
    this.docker = await ensureDockerEngine();
    this.nodeImage = await ensureNodeBaseImage(this.docker);

    const registryPort = await freePort();
    const registryUrl = `http://127.0.0.1:${registryPort}`;
    this.registry = this.track(
      await startDropletProcess('registry', {
        PORT: String(registryPort),
        NATS_URL: this.nats.url,
        REGISTRY_ADMIN_KEY: ADMIN_KEY,
        HEARTBEAT_INTERVAL_S: '1',
        LIVENESS_TICK_MS: '200',
        // Every droplet and the test ask for tokens from 127.0.0.1.
        AUTH_RATE_LIMIT_PER_MIN: '1000',
        DATA_DIR: this.dataDir('registry'),
      }),
    );
    const common = async (name: string) => ({
      PORT: String(await freePort()),
      NATS_URL: this.nats.url,
      REGISTRY_URL: registryUrl,
      REGISTRY_KEY: ADMIN_KEY,
      HEARTBEAT_INTERVAL_S: '1',
      DATA_DIR: this.dataDir(name),
    });
    const lo = 30_000 + Math.floor(Math.random() * 150) * 200;
    const launches: Array<Promise<unknown>> = [
      (async () => {
        this.multiCloud = this.track(
          await startDropletProcess('multi-cloud-manager', {
            ...(await common('multi-cloud-manager')),
            ACTION_POLL_INTERVAL_MS: '200',
            ACTION_WAIT_TIMEOUT_S: '60',
          }),
        );
      })(),
      (async () => {
        this.proxy = this.track(
          await startDropletProcess('proxy-manager', {
            ...(await common('proxy-manager')),
            PROXY_HTTP_PORT: String(this.proxyHttpPort),
            PROXY_HTTPS_PORT: String(this.proxyHttpsPort),
            ACME_DIRECTORY_URL: this.pebble.directoryUrl,
            ACME_CA_BUNDLE: this.pebble.apiCaFile,
            ACME_EMAIL: 'ops@example.com',
            UPSTREAM_HEALTH_TIMEOUT_MS: '1000',
          }),
        );
      })(),
      (async () => {
        this.deployer = this.track(
          await startDropletProcess('deployer', {
            ...(await common('deployer')),
            DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64'),
            NODE_BASE_IMAGE: this.nodeImage,
            DEPLOY_PORT_RANGE: `${lo}-${lo + 199}`,
            DRAIN_S: String(DRAIN_S),
            HEALTH_TIMEOUT_S: '30',
            // This mesh proves health-monitor's path (incident, quorum, restart through the deployer);
            // the deployer's own restart on a Docker `die` event is proven in its crash-restart test.
            CRASH_RESTART: 'false',
          }),
        );
      })(),
      ...MONITOR_IDS.map(async (id, i) => {
        const proc = this.track(
          await startDropletProcess(
            'health-monitor',
            {
              ...(await common(`health-monitor-${id}`)),
              DROPLET_ID: `health-monitor-${id}`,
              MONITOR_ID: id,
              MONITORS_PER_TARGET: '3',
              CHECK_INTERVAL_MS: '1000',
              CHECK_TIMEOUT_MS: '2000',
              RECHECK_DELAY_MS: '200',
              FAILS_TO_SUSPECT: '2',
              OKS_TO_RECOVER: '2',
              MEMBER_HEARTBEAT_MS: '500',
              MEMBER_TTL_MS: '3000',
              TARGET_REFRESH_MS: '1000',
              LEASE_TTL_MS: '5000',
              RECOVERY_TIMEOUT_MS: '30000',
              SMTP_URL: this.smtp.url,
              ALERT_EMAIL_TO: ALERT_TO,
              DIGEST_INTERVAL_MIN: '0',
            },
            { name: `health-monitor-${id}` },
          ),
        );
        this.monitors[i] = proc;
      }),
    ];
    const results = await Promise.allSettled(launches);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    await this.prefetchTokens();
  }

  private dataDir(name: string): string {
    const dir = join(this.tmp, name);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    return dir;
  }

  private track(p: DropletProcess): DropletProcess {
    this.started.push(p);
    return p;
  }

  /** Operator tokens from the registry for the scope sets the scenario and the conformance suite use. */
  async prefetchTokens(): Promise<void> {
    for (const scopes of [['read', 'write', 'admin'], ['read'], ['admin'], ['read', 'write'], ['write']] as Scope[][]) {
      const q = scopes.join(',');
      const r = await fetch(`${this.registry.url}/auth/token?droplet_id=operator&scopes=${q}`, {
        method: 'POST',
        headers: { 'x-registry-key': ADMIN_KEY },
      });
      if (!r.ok) throw new Error(`token (${q}): ${r.status} ${await r.text()}`);
      this.tokens.set(q, ((await r.json()) as { token: string }).token);
    }
  }

  /** A registry-issued operator token with exactly these scopes (synchronous: prefetched). */
  token(scopes: Scope[] = ['read', 'write', 'admin']): string {
    const key = (['read', 'write', 'admin'] as Scope[]).filter((s) => scopes.includes(s)).join(',');
    const t = this.tokens.get(key);
    if (!t) throw new Error(`no prefetched token for scopes '${key}'`);
    return t;
  }

  /** JSON over HTTP to a droplet with an operator token. */
  async call<T = any>(target: DropletProcess, method: string, path: string, body?: unknown, scopes?: Scope[]): Promise<ApiAnswer<T>> {
    const r = await fetch(`${target.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token(scopes)}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(120_000),
    });
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON: keep the text */
    }
    return { status: r.status, body: parsed as T };
  }

  /** The last lines every droplet logged, for a failing step's message. */
  dump(lines = 15): string {
    return this.started.map((p) => `--- ${p.name}\n${p.output().trim().split('\n').slice(-lines).join('\n')}`).join('\n');
  }

  async stop(): Promise<void> {
    // Droplets first (proxy-manager stops its nginx), in parallel; each SIGTERM then SIGKILL.
    await Promise.allSettled(this.started.map((p) => p.stop()));
    this.killStrayNginx();
    if (this.docker) await this.removeDockerLeftovers();
    await Promise.allSettled([this.pebble?.stop(), this.smtp?.close(), this.nats?.stop({ removeStore: true })]);
    rmSync(this.tmp, { recursive: true, force: true });
  }

  /** A proxy-manager killed hard leaves its nginx master running: stop it by its pid file. */
  private killStrayNginx(): void {
    const pidFile = join(this.tmp, 'proxy-manager', 'nginx', 'logs', 'nginx.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return;
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      /* already gone */
    }
  }

  /** Containers (mesh.managed=true) and images this run created: the project's deploys and the instance. */
  private async removeDockerLeftovers(): Promise<void> {
    const docker = this.docker;
    const mine = [
      ...(await docker.listContainers({ all: true, filters: { label: ['mesh.managed=true', `mesh.project=${this.project}`] } })),
      ...(await docker.listContainers({ all: true, filters: { label: ['mesh.managed=true'], name: [this.instanceName] } })),
    ];
    await Promise.allSettled(mine.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    const images = await docker.listImages({ filters: { reference: [`mesh-apps/${this.project}-*`] } });
    for (const i of images)
      for (const t of i.RepoTags ?? [])
        await docker
          .getImage(t)
          .remove({ force: true })
          .catch(() => undefined);
  }
}
