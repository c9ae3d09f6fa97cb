import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@droplet-mesh/udc-kit/testing';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface DropletProcess {
  name: string;
  url: string;
  proc: ChildProcess;
  output: () => string;
  /** SIGTERM and wait (SIGKILL after 10 s). */
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

/** Start `services/<service>/dist/main.js` as its own process and wait for /health to answer 200. */
export async function startDropletProcess(
  service: string,
  env: Record<string, string>,
  opts: { name?: string; healthTimeoutMs?: number } = {},
): Promise<DropletProcess> {
  const name = opts.name ?? service;
  let out = '';
  const proc = spawn(process.execPath, [join(REPO, 'services', service, 'dist', 'main.js')], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d) => (out = (out + String(d)).slice(-200_000)));
  proc.stderr!.on('data', (d) => (out = (out + String(d)).slice(-200_000)));
  const url = `http://127.0.0.1:${env.PORT}`;
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  await waitFor(
    `${name} /health`,
    async () => {
      if (exited()) throw new Error(`${name} exited: ${out.slice(-1500)}`);
      return (await fetch(`${url}/health`)).status === 200;
    },
    opts.healthTimeoutMs ?? 30_000,
    100,
  );
  const waitExit = (signal: NodeJS.Signals, killAfterMs: number) =>
    new Promise<void>((resolve) => {
      if (exited()) return resolve();
      const t = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.kill(signal);
    });
  return { name, url, proc, output: () => out, stop: () => waitExit('SIGTERM', 10_000), kill9: () => waitExit('SIGKILL', 1000) };
}
