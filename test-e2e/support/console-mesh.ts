import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImageFromDir, ensureBusyboxImage, ensureDockerEngine } from '@droplet-mesh/docker-testing';
import { freePort, startNatsServer, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { startDropletProcess, type DropletProcess } from './processes.js';
import { ADMIN_KEY, operatorToken } from './registry-api.js';

export type Docker = Awaited<ReturnType<typeof ensureDockerEngine>>;

/**
 * The mesh the console's end-to-end test drives: real nats-server, the Docker Engine, and
 * every droplet as its own process (registry, multi-cloud-manager, proxy-manager with its
 * nginx, deployer, one health-monitor, the console), registered with the registry as in
 * `npm start`. Lighter than mesh-stack's Mesh (no pebble, no SMTP, one monitor), with fast
 * health checks so an incident opens and resolves within seconds.
 */
export class ConsoleMesh {
  readonly runId = randomBytes(3).toString('hex');
  readonly project = `con${this.runId}`;
  readonly tmp = mkdtempSync(join(tmpdir(), 'console-e2e-'));
  nats!: NatsServerHandle;
  docker!: Docker;
  proxyHttpPort!: number;
  registry!: DropletProcess;
  deployer!: DropletProcess;
  console!: DropletProcess;
  private started: DropletProcess[] = [];

  async start(): Promise<void> {
    chmodSync(this.tmp, 0o755); // nginx workers (nobody) read below it
    this.nats = await startNatsServer({ storeDir: join(this.tmp, 'nats') });
    this.docker = await ensureDockerEngine();
    this.proxyHttpPort = await freePort();
    const registryPort = await freePort();
    const registryUrl = `http://127.0.0.1:${registryPort}`;
    this.registry = this.track(
      await startDropletProcess('registry', {
        PORT: String(registryPort),
        NATS_URL: this.nats.url,
        REGISTRY_ADMIN_KEY: ADMIN_KEY,
        HEARTBEAT_INTERVAL_S: '1',
        LIVENESS_TICK_MS: '200',
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
    const launches = [
      (async () => {
        this.track(
          await startDropletProcess('multi-cloud-manager', { ...(await common('multi-cloud-manager')), LOCAL_PROVIDER_ENABLED: 'false' }),
        );
      })(),
      (async () => {
        this.track(
          await startDropletProcess('proxy-manager', {
            ...(await common('proxy-manager')),
            PROXY_HTTP_PORT: String(this.proxyHttpPort),
            PROXY_HTTPS_PORT: String(await freePort()),
            UPSTREAM_HEALTH_TIMEOUT_MS: '1000',
          }),
        );
      })(),
      (async () => {
        this.deployer = this.track(
          await startDropletProcess('deployer', {
            ...(await common('deployer')),
            DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64'),
            DEPLOY_PORT_RANGE: `${lo}-${lo + 199}`,
            // The monitor re-reads a target's record before declaring it down: a switch to a new port is no outage.
            DRAIN_S: '2',
            HEALTH_TIMEOUT_S: '30',
            // The incident path under test is health-monitor's (detect, restart through the deployer, resolve).
            CRASH_RESTART: 'false',
          }),
        );
      })(),
      (async () => {
        this.track(
          await startDropletProcess('health-monitor', {
            ...(await common('health-monitor')),
            MONITORS_PER_TARGET: '1',
            CHECK_INTERVAL_MS: '500',
            CHECK_TIMEOUT_MS: '1000',
            RECHECK_DELAY_MS: '100',
            FAILS_TO_SUSPECT: '2',
            OKS_TO_RECOVER: '2',
            TARGET_REFRESH_MS: '1000',
            RECOVERY_TIMEOUT_MS: '30000',
            DIGEST_INTERVAL_MIN: '0',
          }),
        );
      })(),
      (async () => {
        this.console = this.track(
          await startDropletProcess('console', { ...(await common('console')), CONSOLE_DISCOVERY_CACHE_MS: '500' }),
        );
      })(),
    ];
    const results = await Promise.allSettled(launches);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  token(): Promise<string> {
    return operatorToken(this.registry.url);
  }

  /** JSON to a droplet with a fresh operator token. */
  async call<T = unknown>(target: DropletProcess, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const r = await fetch(`${target.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${await this.token()}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await r.text();
    return { status: r.status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  /** A tiny web image from local files: busybox httpd on $PORT answering `text` at / and ok at /health. */
  async buildApp(tag: string, text: string): Promise<string> {
    const busybox = await ensureBusyboxImage(this.docker);
    const dir = join(this.tmp, `image-${tag.replace(/[^a-z0-9]/g, '-')}`);
    mkdirSync(join(dir, 'www'), { recursive: true });
    writeFileSync(join(dir, 'www', 'index.html'), text);
    writeFileSync(join(dir, 'www', 'health'), 'ok');
    writeFileSync(
      join(dir, 'Dockerfile'),
      `FROM ${busybox}\nCOPY www /www\nRUN ["/bin/busybox", "chmod", "1777", "/tmp"]\nCMD ["/bin/sh", "-c", "exec httpd -f -p 0.0.0.0:$PORT -h /www"]\n`,
    );
    return buildImageFromDir(this.docker, dir, tag);
  }

  dump(lines = 15): string {
    return this.started.map((p) => `--- ${p.name}\n${p.output().trim().split('\n').slice(-lines).join('\n')}`).join('\n');
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.started.map((p) => p.stop()));
    this.killStrayNginx();
    if (this.docker) {
      const filters = { label: ['mesh.managed=true', `mesh.project=${this.project}`] };
      for (const c of await this.docker.listContainers({ all: true, filters }))
        await this.docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined);
      for (const i of await this.docker.listImages({ filters: { reference: [`mesh-apps/${this.project}-*`] } }))
        for (const t of i.RepoTags ?? [])
          await this.docker
            .getImage(t)
            .remove({ force: true })
            .catch(() => undefined);
    }
    await this.nats?.stop({ removeStore: true }).catch(() => undefined);
    rmSync(this.tmp, { recursive: true, force: true });
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
}
