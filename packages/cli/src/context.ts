import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { configPath, readSession, type StoredSession } from './config-file.js';
import { CliError, LOGIN_HINT } from './errors.js';
import { HttpClient } from './http.js';
import { Output } from './output.js';

/** The droplets meshctl knows by name; any registered id works for `logs`. */
export const DROPLETS = ['registry', 'multi-cloud-manager', 'proxy-manager', 'deployer', 'health-monitor'] as const;
export type DropletId = (typeof DROPLETS)[number];

export interface GlobalOptions {
  json?: boolean;
}

const timeoutSchema = z.coerce.number().int().min(100).max(3_600_000);

/** `MESHCTL_PROXY_MANAGER_URL` for `proxy-manager`. */
export function urlEnvName(id: string): string {
  return `MESHCTL_${id.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;
}

export function checkUrl(value: string, from: string): string {
  const r = z.url({ protocol: /^https?$/ }).safeParse(value);
  if (!r.success) throw new CliError('INVALID_REQUEST', `${from} must be an http(s) URL, got '${value}'`);
  return value.replace(/\/+$/, '');
}

/** What a command needs: output, the stored session, and clients for droplets by name. */
export class Context {
  readonly out: Output;
  readonly correlationId = randomUUID();
  readonly timeoutMs: number;
  /** Set by a command whose outcome is not an error but not a success either (a failed deploy). */
  exitCode = 0;
  private session: Promise<StoredSession | undefined> | undefined;
  private records: Promise<Array<{ id: string; url: string }>> | undefined;

  constructor(
    readonly opts: GlobalOptions,
    readonly env: NodeJS.ProcessEnv = process.env,
    out?: Output,
  ) {
    this.out = out ?? new Output(!!opts.json);
    const t = timeoutSchema.safeParse(env.MESHCTL_TIMEOUT_MS ?? 30_000);
    if (!t.success) throw new CliError('INVALID_REQUEST', 'MESHCTL_TIMEOUT_MS must be a number of milliseconds (100 to 3600000)');
    this.timeoutMs = t.data;
  }

  get configPath(): string {
    return configPath(this.env);
  }

  storedSession(): Promise<StoredSession | undefined> {
    this.session ??= readSession(this.configPath);
    return this.session;
  }

  /** MESHCTL_TOKEN, or the token `meshctl login` stored; refuses an expired one. */
  async token(): Promise<string> {
    if (this.env.MESHCTL_TOKEN) return this.env.MESHCTL_TOKEN;
    const s = await this.storedSession();
    if (!s) throw new CliError('UNAUTHORIZED', `not logged in (no session in ${this.configPath})`, undefined, LOGIN_HINT);
    if (Date.parse(s.expires_at) <= Date.now()) {
      throw new CliError(
        'UNAUTHORIZED',
        `the token from \`meshctl login\` expired at ${s.expires_at}; run \`meshctl login\` again`,
        undefined,
        LOGIN_HINT,
      );
    }
    return s.token;
  }

  /** --url, MESHCTL_REGISTRY_URL, the logged-in registry, then REGISTRY_URL. */
  async registryUrl(override?: string): Promise<string> {
    if (override) return checkUrl(override, '--url');
    if (this.env.MESHCTL_REGISTRY_URL) return checkUrl(this.env.MESHCTL_REGISTRY_URL, 'MESHCTL_REGISTRY_URL');
    const s = await this.storedSession();
    if (s) return checkUrl(s.registry_url, this.configPath);
    if (this.env.REGISTRY_URL) return checkUrl(this.env.REGISTRY_URL, 'REGISTRY_URL');
    throw new CliError('INVALID_REQUEST', 'no registry URL: pass --url, set MESHCTL_REGISTRY_URL, or log in first', undefined, LOGIN_HINT);
  }

  client(name: string, baseUrl: string, token?: string): HttpClient {
    return new HttpClient({ baseUrl, name, token, timeoutMs: this.timeoutMs, correlationId: this.correlationId });
  }

  async registry(override?: string): Promise<HttpClient> {
    const token = await this.token();
    return this.client('registry', await this.registryUrl(override), token);
  }

  /** Every registry record (cached for this invocation). */
  registryRecords<T extends { id: string; url: string }>(): Promise<T[]> {
    this.records ??= this.registry().then(async (r) => (await r.all<T>('/droplets')).items);
    return this.records as Promise<T[]>;
  }

  /** A droplet's URL: --url, then MESHCTL_<DROPLET>_URL, then its record in the registry. */
  async dropletUrl(id: string, override?: string): Promise<string> {
    if (override) return checkUrl(override, '--url');
    const fromEnv = this.env[urlEnvName(id)];
    if (fromEnv) return checkUrl(fromEnv, urlEnvName(id));
    if (id === 'registry') return this.registryUrl();
    const record = (await this.registryRecords()).find((r) => r.id === id);
    if (!record) {
      throw new CliError('NOT_FOUND', `'${id}' is not registered in the registry`, undefined, `pass --url or set ${urlEnvName(id)}`);
    }
    return checkUrl(record.url, `the registry's record of '${id}'`);
  }

  async droplet(id: string, override?: string): Promise<HttpClient> {
    const url = await this.dropletUrl(id, override);
    return this.client(id, url, await this.token());
  }
}
