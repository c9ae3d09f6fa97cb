import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClusterNode, renderClusterNodeConfig } from '../nats-cluster.js';
import { freePort, waitFor } from './ports.js';

export interface NatsServerHandle {
  url: string;
  port: number;
  storeDir: string;
  process: ChildProcess;
  /** Stop the server (SIGTERM, then SIGKILL after 5 s). Keeps the store unless `removeStore`. */
  stop(opts?: { removeStore?: boolean }): Promise<void>;
  /** Stop and start again on the same port and store (for reconnect tests). */
  restart(): Promise<void>;
}

const NATS_BIN = process.env.NATS_SERVER_BIN ?? 'nats-server';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Start a real nats-server with JetStream on 127.0.0.1 and a free port. `config` is extra
 * server configuration (e.g. the mesh's `authorization` block from renderNatsAuthorization).
 */
export async function startNatsServer(opts: { port?: number; storeDir?: string; config?: string } = {}): Promise<NatsServerHandle> {
  const port = opts.port ?? (await freePort());
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'mesh-nats-'));
  const configArgs: string[] = [];
  if (opts.config) {
    const file = join(storeDir, 'extra.conf');
    writeFileSync(file, opts.config, { mode: 0o600 });
    configArgs.push('-c', file);
  }
  let proc: ChildProcess;
  let stderr = '';
  const launch = async () => {
    stderr = '';
    proc = spawn(NATS_BIN, [...configArgs, '-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    proc.stderr?.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
    let exited = false;
    proc.once('exit', () => (exited = true));
    proc.once('error', (e) => {
      exited = true;
      stderr += String(e);
    });
    await waitFor(
      `nats-server on port ${port}`,
      async () => {
        if (exited) throw new Error(`nats-server exited: ${stderr.trim().slice(-500)}`);
        return portOpen(port);
      },
      15_000,
    );
  };
  await launch();
  const handle: NatsServerHandle = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get process() {
      return proc;
    },
    async stop(stopOpts = {}) {
      const p = proc;
      if (p.exitCode === null && p.signalCode === null) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => p.kill('SIGKILL'), 5000);
          p.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          p.kill('SIGTERM');
        });
      }
      if (stopOpts.removeStore) rmSync(storeDir, { recursive: true, force: true });
    },
    async restart() {
      await handle.stop();
      await launch();
    },
  };
  return handle;
}

/** A JetStream cluster of `size` real nats-servers on loopback, routed to each other. */
export async function startNatsCluster(opts: { size?: number; authorization?: string } = {}): Promise<{
  url: string;
  nodes: NatsServerHandle[];
  names: string[];
  stop(): Promise<void>;
}> {
  const size = opts.size ?? 3;
  const nodes: ClusterNode[] = [];
  for (let i = 1; i <= size; i++) nodes.push({ name: `n${i}`, port: await freePort(), clusterPort: await freePort() });
  const routePassword = randomBytes(12).toString('hex');
  const handles = await Promise.all(
    nodes.map((n) => startNatsServer({ port: n.port, config: renderClusterNodeConfig(n, nodes, routePassword, opts.authorization) })),
  );
  return {
    url: handles.map((h) => h.url).join(','),
    nodes: handles,
    names: nodes.map((n) => n.name),
    async stop() {
      await Promise.all(handles.map((h) => h.stop({ removeStore: true })));
    },
  };
}
