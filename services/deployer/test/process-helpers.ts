import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { waitFor } from '@droplet-mesh/udc-kit/testing';

const here = dirname(fileURLToPath(import.meta.url));
export const DEPLOYER_MAIN = join(here, '../dist/main.js');
export const PROXY_MANAGER_MAIN = join(here, '../../proxy-manager/dist/main.js');
export const MCM_MAIN = join(here, '../../multi-cloud-manager/dist/main.js');

export interface Proc {
  child: ChildProcess;
  output: () => string;
  /** SIGTERM, then SIGKILL after 5 s; resolves when it has exited. */
  stop: () => Promise<void>;
}

/** Run a droplet's dist/main.js as its own process (so a test can kill -9 it). */
export function runNode(main: string, env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [main], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d) => (out = (out + String(d)).slice(-20_000)));
  child.stderr?.on('data', (d) => (out = (out + String(d)).slice(-20_000)));
  return {
    child,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => (clearTimeout(t), resolve()));
        child.kill('SIGTERM');
      }),
  };
}

export async function waitHealthy(url: string, proc: Proc, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    `${url}/health`,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`process exited: ${proc.output().slice(-1500)}`);
      const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      return r.status === 200;
    },
    timeoutMs,
    100,
  );
}

/**
 * A real proxy-manager process (its own nginx on `httpPort`) for deploys to switch routes on;
 * healthy when this resolves. `env` adds settings (ACME, …) over the test defaults.
 */
export async function startProxyManager(o: {
  port: number;
  httpPort: number;
  httpsPort: number;
  natsUrl: string;
  dataDir: string;
  env: Record<string, string>;
}): Promise<Proc> {
  const proc = runNode(PROXY_MANAGER_MAIN, {
    PORT: String(o.port),
    NATS_URL: o.natsUrl,
    DATA_DIR: o.dataDir,
    PROXY_HTTP_PORT: String(o.httpPort),
    PROXY_HTTPS_PORT: String(o.httpsPort),
    LOG_LEVEL: 'warn',
    UPSTREAM_RECHECK_INTERVAL_S: '0',
    ...o.env,
  });
  await waitHealthy(`http://127.0.0.1:${o.port}`, proc, 30_000);
  return proc;
}
