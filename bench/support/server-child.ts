import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * Runs a benchmark's servers in a child process (on 2 cores, the servers get one and the
 * load generator the other) and waits for the JSON handshake line it writes on fd 3.
 * The child's stdout (droplet logs, as in production) goes to /dev/null.
 */
export async function startServerChild<T>(script: string): Promise<T & { pid: number; stop: () => void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'ignore', 'inherit', 'pipe'] });
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.on('exit', stop);
  process.on('SIGINT', () => process.exit(130));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('servers did not start in 30 s')), 30_000);
    child.once('exit', (code) => reject(new Error(`servers exited with ${code}`)));
    createInterface({ input: child.stdio[3] as NodeJS.ReadableStream }).once('line', (line) => {
      clearTimeout(timer);
      resolve({ ...JSON.parse(line), stop });
    });
  });
}

/** In the child: run `stop` (once) on SIGTERM or when the parent goes away, then exit. */
export function stopWhenParentLeaves(stop: () => Promise<void>): void {
  let stopping = false;
  const once = async () => {
    if (stopping) return;
    stopping = true;
    await stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void once());
  process.stdin.on('end', () => void once());
  process.stdin.resume();
}
