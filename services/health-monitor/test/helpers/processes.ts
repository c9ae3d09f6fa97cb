import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@droplet-mesh/udc-kit/testing';

export const SERVICE_DIR = fileURLToPath(new URL('../..', import.meta.url));
const TARGET_SCRIPT = fileURLToPath(new URL('../fixtures/target-server.mjs', import.meta.url));

export interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: () => boolean;
  kill9: () => Promise<void>;
  stop: () => Promise<void>;
}

function track(child: ChildProcess): Proc {
  let out = '';
  let exited = false;
  const onData = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exitP = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const end = async (signal: NodeJS.Signals) => {
    if (exited) return;
    child.kill(signal);
    const t = setTimeout(() => child.kill('SIGKILL'), 8000);
    await exitP;
    clearTimeout(t);
  };
  return { child, output: () => out, exited: () => exited, kill9: () => end('SIGKILL'), stop: () => end('SIGTERM') };
}

/** A target droplet process answering /health on `port`. */
export async function startTarget(port: number): Promise<Proc> {
  const p = track(spawn(process.execPath, [TARGET_SCRIPT, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(
    `target on port ${port}`,
    () => {
      if (p.exited()) throw new Error(`target exited: ${p.output()}`);
      return p.output().includes('ready');
    },
    10_000,
    20,
  );
  return p;
}

const MONITOR_WITH_TOKEN = fileURLToPath(new URL('../fixtures/monitor-process.mjs', import.meta.url));

/**
 * A health-monitor replica: `node dist/main.js` with the given environment; with
 * TEST_MONITOR_TOKEN, the same droplet whose messages (restart, reboot) carry that token,
 * as a registered monitor's do.
 */
export function spawnMonitor(env: Record<string, string>): Proc {
  return track(
    spawn(process.execPath, [env.TEST_MONITOR_TOKEN ? MONITOR_WITH_TOKEN : 'dist/main.js'], {
      cwd: SERVICE_DIR,
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}
