import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { freePort, waitFor } from '@droplet-mesh/udc-kit/testing';
import { REPO } from './processes.js';

/** Every droplet npm start runs (those built: the console and orchestrator may be absent). */
export const MESH_DROPLETS = [
  'registry',
  'multi-cloud-manager',
  'proxy-manager',
  'deployer',
  'health-monitor',
  'console',
  'orchestrator',
].filter((name) => existsSync(join(REPO, 'services', name, 'dist', 'main.js')));
const portVariable = (name: string) => `${name.toUpperCase().replace(/-/g, '_')}_PORT`;

/** `npm start` (scripts/start-mesh.mjs) as a user runs it, on free ports and its own DATA_DIR. */
export class NpmStart {
  private out = '';
  readonly proc: ChildProcess;
  private constructor(
    readonly dataDir: string,
    readonly ports: Record<string, number>,
    env: Record<string, string>,
  ) {
    this.proc = spawn(process.execPath, [join(REPO, 'scripts', 'start-mesh.mjs')], {
      cwd: REPO,
      env: { ...process.env, ...env, MESH_SKIP_SETUP: '1', DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d: Buffer) => {
      this.out = (this.out + String(d)).slice(-100_000);
    };
    this.proc.stdout!.on('data', keep);
    this.proc.stderr!.on('data', keep);
  }

  static async create(extraEnv: Record<string, string> = {}, dataDir?: string): Promise<NpmStart> {
    // MESH_REPLICAS / NATS_CLUSTER use each port and the next ones (replica i on port+i-1): free blocks.
    const width = Math.max(Number(extraEnv.MESH_REPLICAS ?? 1), Number(extraEnv.NATS_CLUSTER ?? 1));
    const taken = new Set<number>();
    const port = () => (width > 1 ? freePortBlock(width, taken) : freePort());
    const ports: Record<string, number> = {
      NATS_PORT: await port(),
      PROXY_HTTP_PORT: await port(),
      PROXY_HTTPS_PORT: await port(),
      // The mesh image registry npm start runs (5050 by default: two meshes at once would meet there).
      MESH_REGISTRY_PORT: await port(),
    };
    if (extraEnv.NATS_CLUSTER) ports.NATS_CLUSTER_PORT = await port();
    for (const d of MESH_DROPLETS) ports[portVariable(d)] = await port();
    const env = Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)]));
    return new NpmStart(dataDir ?? mkdtempSync(join(tmpdir(), 'mesh-start-')), ports, {
      ...env,
      REGISTRY_URL: `http://127.0.0.1:${ports.REGISTRY_PORT}`,
      LOG_LEVEL: 'info',
      ...extraEnv,
    });
  }

  output(): string {
    return this.out;
  }

  url(droplet: string): string {
    return `http://127.0.0.1:${this.ports[portVariable(droplet)]}`;
  }

  exited(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /** Waits for the line that ends start-up, and returns the operator token it printed. */
  async ready(timeoutMs = 90_000): Promise<string> {
    await waitFor(
      'npm start to print its operator token',
      () => {
        if (this.exited()) throw new Error(`npm start exited (${this.proc.exitCode}): ${this.out.slice(-3000)}`);
        return this.out.includes('Ctrl-C stops everything');
      },
      timeoutMs,
      100,
    );
    const m = /operator token \(expires [^)]*\):\n(\S+)/.exec(this.out);
    if (!m) throw new Error(`no operator token in: ${this.out.slice(-2000)}`);
    return m[1];
  }

  /** The supervisor's view: its pid and its live children (DATA_DIR/children.json). */
  children(): { supervisor: number; children: { name: string; pid: number }[] } {
    return JSON.parse(readFileSync(join(this.dataDir, 'children.json'), 'utf8'));
  }

  pidOf(name: string): number {
    const c = this.children().children.find((x) => x.name === name);
    if (!c) throw new Error(`${name} is not running under the supervisor`);
    return c.pid;
  }

  async waitExit(timeoutMs = 60_000): Promise<number | null> {
    if (!this.exited()) await waitFor('npm start to exit', () => this.exited(), timeoutMs, 100);
    return this.proc.exitCode;
  }

  async stop(opts: { removeData?: boolean } = {}): Promise<void> {
    if (!this.exited()) {
      this.proc.kill('SIGTERM');
      await this.waitExit(60_000).catch(() => this.proc.kill('SIGKILL'));
    }
    if (opts.removeData) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * `n` consecutive free ports starting at the one returned, none of them in `taken` (which gets
 * them). Below Linux's ephemeral range (32768+): a replica binds its port+1 only after the
 * previous parts started, and meanwhile any outgoing connection on this busy machine may take
 * an ephemeral port as its local one (Express 5 then reports EADDRINUSE to the listen callback).
 */
async function freePortBlock(n: number, taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const first = 10_000 + Math.floor(Math.random() * (9_999 - n));
    const block = Array.from({ length: n }, (_, i) => first + i);
    if (block.some((p) => taken.has(p))) continue;
    if (!(await Promise.all(block.map(bindable))).every(Boolean)) continue;
    for (const p of block) taken.add(p);
    return first;
  }
  throw new Error(`no ${n} consecutive free ports found`);
}

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
