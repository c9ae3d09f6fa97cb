import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Clone `url` at `ref` into `dir` with the git CLI (shallow when the ref is a branch or tag). */
export async function cloneRepository(url: string, ref: string, dir: string, signal: AbortSignal): Promise<string> {
  // GIT_TERMINAL_PROMPT=0: a private repository fails instead of waiting for a password.
  const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true' };
  const opts = { env, signal, maxBuffer: 4 * 1024 * 1024 };
  // `--` ends options: a URL can never be read as a flag.
  if (ref === 'HEAD') {
    await run('git', ['clone', '--quiet', '--depth', '1', '--', url, dir], opts);
  } else {
    try {
      await run('git', ['clone', '--quiet', '--depth', '1', '--branch', ref, '--', url, dir], opts);
    } catch {
      // A commit id: full clone, then check it out.
      await run('git', ['clone', '--quiet', '--no-checkout', '--', url, dir], opts);
      await run('git', ['-C', dir, 'checkout', '--quiet', '--detach', ref], opts);
    }
  }
  const { stdout } = await run('git', ['-C', dir, 'rev-parse', 'HEAD'], opts);
  return stdout.trim();
}

/** git's stderr can carry a URL with credentials: keep only the first line, with user:pass removed. */
export function gitErrorMessage(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  const text = (e.stderr || e.message || 'git failed').split('\n').find((l) => l.trim()) ?? 'git failed';
  return text.replace(/\/\/[^/@\s]+@/g, '//[redacted]@').slice(0, 500);
}
