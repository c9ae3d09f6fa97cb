import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { GitAuth } from '../domain/git-credentials.js';

const run = promisify(execFile);

/** Single-quoted for /bin/sh (GIT_SSH_COMMAND runs through a shell). */
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * What git needs to authenticate, in a private temporary directory (0700) removed after
 * the clone: an askpass script that answers from the environment of this one git process
 * (never argv, never the clone's .git/config), or the deploy key as a 0600 file used
 * through GIT_SSH_COMMAND.
 */
function authEnvironment(auth: GitAuth | undefined): { env: Record<string, string>; cleanup: () => void } {
  // GIT_TERMINAL_PROMPT=0 and an askpass that answers nothing: a private repository fails instead of waiting.
  if (!auth) return { env: { GIT_ASKPASS: 'true' }, cleanup: () => undefined };
  const dir = mkdtempSync(join(tmpdir(), 'mesh-git-auth-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    if (auth.kind === 'basic') {
      const askpass = join(dir, 'askpass');
      writeFileSync(
        askpass,
        '#!/bin/sh\ncase "$1" in\n  Username*) printf \'%s\\n\' "$MESH_GIT_USERNAME" ;;\n  *) printf \'%s\\n\' "$MESH_GIT_PASSWORD" ;;\nesac\n',
        { mode: 0o700 },
      );
      return {
        env: { GIT_ASKPASS: askpass, MESH_GIT_USERNAME: auth.username, MESH_GIT_PASSWORD: auth.password ?? '' },
        cleanup,
      };
    }
    const keyFile = join(dir, 'deploy_key');
    writeFileSync(keyFile, auth.key, { mode: 0o600, flag: 'wx' });
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, auth.knownHosts ?? '', { mode: 0o600 });
    const ssh = [
      'ssh',
      '-F /dev/null',
      `-i ${shq(keyFile)}`,
      '-o IdentitiesOnly=yes',
      '-o IdentityAgent=none',
      '-o BatchMode=yes',
      `-o UserKnownHostsFile=${shq(knownHosts)}`,
      // With known_hosts given the host must match them; without, its key is taken on first use (per clone).
      `-o StrictHostKeyChecking=${auth.knownHosts ? 'yes' : 'accept-new'}`,
    ].join(' ');
    return { env: { GIT_ASKPASS: 'true', GIT_SSH_COMMAND: ssh, GIT_SSH_VARIANT: 'ssh' }, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

/** Clone `url` at `ref` into `dir` with the git CLI (shallow when the ref is a branch or tag). */
export async function cloneRepository(url: string, ref: string, dir: string, signal: AbortSignal, auth?: GitAuth): Promise<string> {
  const { env: authEnv, cleanup } = authEnvironment(auth);
  try {
    const env = {
      ...process.env,
      GIT_TERMINAL_PROMPT: '0',
      // No credential helper may store or offer credentials; only these transports.
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'credential.helper',
      GIT_CONFIG_VALUE_0: '',
      GIT_ALLOW_PROTOCOL: 'file:git:http:https:ssh',
      ...authEnv,
    };
    const opts = { env, signal, maxBuffer: 4 * 1024 * 1024 };
    // `--` ends options: a URL can never be read as a flag.
    if (ref === 'HEAD') {
      await run('git', ['clone', '--quiet', '--depth', '1', '--', url, dir], opts);
    } else {
      try {
        await run('git', ['clone', '--quiet', '--depth', '1', '--branch', ref, '--', url, dir], opts);
      } catch {
        // A commit id: full clone, then check it out.
        rmSync(dir, { recursive: true, force: true });
        await run('git', ['clone', '--quiet', '--no-checkout', '--', url, dir], opts);
        await run('git', ['-C', dir, 'checkout', '--quiet', '--detach', ref], opts);
      }
    }
    const { stdout } = await run('git', ['-C', dir, 'rev-parse', 'HEAD'], opts);
    return stdout.trim();
  } finally {
    cleanup();
  }
}

/** git's stderr can carry a URL with credentials: keep only the first line, with user:pass removed. */
export function gitErrorMessage(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  const text = (e.stderr || e.message || 'git failed').split('\n').find((l) => l.trim()) ?? 'git failed';
  return text.replace(/\/\/[^/@\s]+@/g, '//[redacted]@').slice(0, 500);
}
