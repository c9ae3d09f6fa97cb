import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { CliError, LOGIN_HINT } from './errors.js';

export const storedSessionSchema = z.object({
  registry_url: z.url(),
  token: z.string().min(1),
  expires_at: z.iso.datetime({ offset: true }),
});
export type StoredSession = z.infer<typeof storedSessionSchema>;

/** `MESHCTL_CONFIG`, else `$XDG_CONFIG_HOME/meshctl/config.json`, else `~/.config/meshctl/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MESHCTL_CONFIG) return resolve(env.MESHCTL_CONFIG);
  // The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const base = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'meshctl', 'config.json');
}

export async function readSession(path: string): Promise<StoredSession | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError('INVALID_REQUEST', `cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError('INVALID_REQUEST', `${path} is not valid JSON`, undefined, LOGIN_HINT);
  }
  const r = storedSessionSchema.safeParse(parsed);
  if (!r.success) throw new CliError('INVALID_REQUEST', `${path} does not hold a meshctl session`, undefined, LOGIN_HINT);
  return r.data;
}

/** The token is a credential: directory 0700, file 0600, written whole or not at all. */
export async function writeSession(path: string, session: StoredSession): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

export async function removeSession(path: string): Promise<boolean> {
  try {
    await rm(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
