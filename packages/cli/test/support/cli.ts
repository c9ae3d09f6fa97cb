import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';

export const BIN = fileURLToPath(new URL('../../dist/bin.js', import.meta.url));
export const quiet = () => new Writable({ write: (_c, _e, cb) => cb() });

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A scratch HOME and config path, so no test touches the real ~/.config. */
export function scratchHome() {
  const home = mkdtempSync(join(tmpdir(), 'meshctl-home-'));
  return { home, config: join(home, '.config', 'meshctl', 'config.json'), remove: () => rmSync(home, { recursive: true, force: true }) };
}

/**
 * Runs the built CLI as a child process (asynchronously: the droplets it talks to run in
 * this process). Only the environment given here reaches it, plus PATH.
 */
export function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      {
        env: { PATH: process.env.PATH, ...env } as NodeJS.ProcessEnv,
        timeout: opts.timeoutMs ?? 60_000,
        killSignal: 'SIGKILL',
        maxBuffer: 10 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; killed?: boolean }) | null;
        if (e?.killed) return reject(new Error(`meshctl ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
        if (e && typeof e.code !== 'number') return reject(e);
        resolve({ code: e ? (e.code as number) : 0, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Nothing a user sees may look like a Node stack trace. */
export function expectNoStack(text: string): void {
  if (/^\s+at .+(\(|:\d+:\d+)/m.test(text) || /node:internal|\.js:\d+:\d+/.test(text)) {
    throw new Error(`output contains a stack trace:\n${text}`);
  }
}
