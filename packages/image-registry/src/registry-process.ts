// A real image registry (Debian's docker-registry, distribution 2.8) run from a directory of
// its own: config, TLS material, htpasswd and storage under `dir`. Debian's package also
// installs a system service; nothing here uses it.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { htpasswdLine, htpasswdMatches } from './htpasswd.js';
import { renderRegistryConfig } from './registry-config.js';
import { ensureRegistryTls } from './tls-material.js';

export const REGISTRY_BIN = process.env.DOCKER_REGISTRY_BIN ?? 'docker-registry';

export interface ImageRegistryOptions {
  /** Holds config.yml, credentials.json and htpasswd (0600), tls/, data/ and registry.log. */
  dir: string;
  /** The IP address it listens on: loopback for `npm start`, an address only the engines reach in tests. */
  address: string;
  port: number;
  /** More names (DNS or IP) the certificate carries besides `address`. */
  hosts?: string[];
  username?: string;
  /** Default: kept in credentials.json, generated on first use. */
  password?: string;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  bcryptCost?: number;
}

export interface PreparedRegistry {
  /** address:port, as image references name it. */
  host: string;
  url: string;
  /** PEM of the CA engines must trust for `host`. */
  ca: string;
  caFile: string;
  username: string;
  password: string;
  configFile: string;
  credentialsFile: string;
  logFile: string;
  /** The command that serves it (for a supervisor). */
  cmd: string;
  args: string[];
}

/** Write everything the registry needs under `dir` (kept across starts: CA, credentials, storage). */
export function prepareImageRegistry(o: ImageRegistryOptions): PreparedRegistry {
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const tls = ensureRegistryTls(join(o.dir, 'tls'), [o.address, ...(o.hosts ?? [])]);
  const credentialsFile = join(o.dir, 'credentials.json');
  const stored = existsSync(credentialsFile)
    ? (JSON.parse(readFileSync(credentialsFile, 'utf8')) as { username: string; password: string; http_secret?: string })
    : undefined;
  const username = o.username ?? stored?.username ?? 'mesh';
  const password = o.password ?? (stored?.username === username ? stored.password : undefined) ?? randomBytes(24).toString('base64url');
  const httpSecret = stored?.http_secret ?? randomBytes(32).toString('hex');
  writeFileSync(credentialsFile, `${JSON.stringify({ username, password, http_secret: httpSecret }, null, 2)}\n`, { mode: 0o600 });
  const htpasswdFile = join(o.dir, 'htpasswd');
  const current = existsSync(htpasswdFile) ? readFileSync(htpasswdFile, 'utf8') : '';
  // bcrypt is slow on purpose: the file is rewritten only when the password changed.
  if (!current.startsWith(`${username}:`) || !htpasswdMatches(current, password))
    writeFileSync(htpasswdFile, htpasswdLine(username, password, o.bcryptCost), { mode: 0o600 });
  const storageDir = join(o.dir, 'data');
  mkdirSync(storageDir, { recursive: true, mode: 0o700 });
  const host = `${o.address.includes(':') ? `[${o.address}]` : o.address}:${o.port}`;
  const configFile = join(o.dir, 'config.yml');
  writeFileSync(
    configFile,
    renderRegistryConfig({
      listen: host,
      storageDir,
      certFile: tls.certFile,
      keyFile: tls.keyFile,
      htpasswdFile,
      httpSecret,
      logLevel: o.logLevel,
    }),
    { mode: 0o600 },
  );
  return {
    host,
    url: `https://${host}`,
    ca: tls.ca,
    caFile: tls.caFile,
    username,
    password,
    configFile,
    credentialsFile,
    logFile: join(o.dir, 'registry.log'),
    cmd: REGISTRY_BIN,
    args: ['serve', configFile],
  };
}

/**
 * GET /v2/ over TLS trusting only `ca`: 200 with good credentials, 401 without or with bad
 * ones. Rejects when nothing answers or the certificate is not the registry's.
 */
export function probeRegistry(url: string, ca: string, auth?: { username: string; password: string }, timeoutMs = 3000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/v2/`,
      {
        ca,
        timeout: timeoutMs,
        headers: auth ? { Authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` } : {},
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url} did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface ImageRegistry extends PreparedRegistry {
  process: ChildProcess;
  /** What the registry logged so far (access log included). */
  log(): string;
  stop(): Promise<void>;
}

/** Start the registry and wait until it answers 401 to an anonymous GET /v2/ over TLS. */
export async function startImageRegistry(o: ImageRegistryOptions & { startTimeoutMs?: number }): Promise<ImageRegistry> {
  const p = prepareImageRegistry(o);
  const out = openSync(p.logFile, 'a');
  const child = spawn(p.cmd, p.args, { stdio: ['ignore', out, out] });
  let spawnError: Error | undefined;
  child.once('error', (e) => (spawnError = e));
  const log = () => (existsSync(p.logFile) ? readFileSync(p.logFile, 'utf8') : '');
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const deadline = Date.now() + (o.startTimeoutMs ?? 15_000);
  let last = '';
  for (;;) {
    if (spawnError) throw new Error(`${p.cmd} could not start: ${spawnError.message} (apt-get install docker-registry)`);
    if (child.exitCode !== null) throw new Error(`${p.cmd} exited (${child.exitCode}): ${log().trim().split('\n').slice(-5).join('\n')}`);
    try {
      if ((await probeRegistry(p.url, p.ca, undefined, 1000)) === 401) break;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the image registry did not answer at ${p.url} (${last}): ${log().trim().split('\n').slice(-5).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return Object.assign(p, { process: child, log, stop });
}
