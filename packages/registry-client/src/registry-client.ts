import { heartbeatSubject } from './droplet-id.js';
import { callRegistry, RegistryError } from './http.js';
import type { DropletRecord, Page, RecordInput, TokenResponse } from './types.js';

export interface RegistryClientLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface RegistryClientOptions {
  registryUrl: string;
  /** This droplet's own key, or the admin key (which may act for any id). */
  registryKey: string;
  /** The record this droplet registers for itself. */
  self: RecordInput;
  heartbeatIntervalS?: number;
  /** Heartbeats go over NATS when given (`registry.heartbeat.<id>`, dots in the id as `_`), else over HTTP. */
  publish?: (subject: string, data: unknown) => void;
  /** Extra heartbeat payload (status, metrics). */
  heartbeatPayload?: () => Record<string, unknown>;
  logger?: RegistryClientLogger;
  lookupCacheMs?: number;
  now?: () => number;
}

const noopLogger: RegistryClientLogger = { info() {}, warn() {}, debug() {} };

/**
 * Registers a droplet, heartbeats, keeps a fresh token and looks other droplets up.
 * Nothing here blocks the droplet: registration retries with backoff in the background,
 * and a registry that goes away only marks the link unreachable until it comes back.
 */
export class RegistryClient {
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private registered = false;
  private reachable = false;
  private lastError?: string;
  private lastHeartbeatAt?: string;
  private beats = 0;
  private tokenCache?: { token: string; expiresAt: number };
  private tokenPending?: Promise<string>;
  private lastForcedRefresh = Number.NEGATIVE_INFINITY;
  private listCache = new Map<string, { at: number; items: DropletRecord[] }>();
  /** Set when registration gave this droplet its own key (first registration with the admin key). */
  dropletKey?: string;
  private readonly log: RegistryClientLogger;
  private readonly now: () => number;

  constructor(private opts: RegistryClientOptions) {
    this.log = opts.logger ?? noopLogger;
    this.now = opts.now ?? Date.now;
  }

  get id(): string {
    return this.opts.self.id;
  }

  status() {
    return { reachable: this.reachable, registered: this.registered, last_error: this.lastError, last_heartbeat_at: this.lastHeartbeatAt };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.registerLoop(0);
  }

  private schedule(fn: () => void, ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(fn, ms);
    this.timer.unref();
  }

  private async registerLoop(attempt: number): Promise<void> {
    if (this.stopped) return;
    try {
      await this.register();
      this.schedule(() => void this.heartbeatLoop(), this.intervalMs());
    } catch (err) {
      this.markFailure(err);
      const backoff = Math.min(30_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
      this.log.warn({ attempt, retry_in_ms: Math.round(backoff), reason: this.lastError }, 'registration failed; retrying');
      this.schedule(() => void this.registerLoop(attempt + 1), backoff);
    }
  }

  private intervalMs(): number {
    return (this.opts.heartbeatIntervalS ?? this.opts.self.heartbeat_interval_s ?? 30) * 1000;
  }

  async register(): Promise<DropletRecord> {
    const send = () =>
      callRegistry<{ droplet: DropletRecord; droplet_key?: string }>(this.opts.registryUrl, 'POST', '/droplets', {
        headers: { 'x-registry-key': this.dropletKey ?? this.opts.registryKey },
        body: { heartbeat_interval_s: this.opts.heartbeatIntervalS, ...this.opts.self },
      });
    const res = await send().catch((err) => {
      // Our droplet key ended (an admin removed our record): register with the configured key.
      if (err instanceof RegistryError && err.status === 401 && this.dropletKey) {
        this.dropletKey = undefined;
        return send();
      }
      throw err;
    });
    if (res.droplet_key) this.dropletKey = res.droplet_key;
    this.registered = true;
    this.markSuccess();
    this.log.info({ registry: this.opts.registryUrl, id: this.id }, 'registered with the registry');
    return res.droplet;
  }

  private async heartbeatLoop(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.heartbeat();
    } catch (err) {
      this.markFailure(err);
      // The registry lost us (restarted without state, or we were deregistered): register again.
      if (err instanceof RegistryError && err.status === 404) {
        this.registered = false;
        return void this.registerLoop(0);
      }
    }
    this.schedule(() => void this.heartbeatLoop(), this.intervalMs());
  }

  async heartbeat(): Promise<void> {
    const payload = { id: this.id, at: new Date(this.now()).toISOString(), ...(this.opts.heartbeatPayload?.() ?? {}) };
    if (this.opts.publish) {
      this.opts.publish(heartbeatSubject(this.id), payload);
      // NATS heartbeats get no answer: every few beats, check over HTTP that the registry
      // still knows us (it may have been reset, or an operator removed us).
      if (this.beats++ % 5 === 0 && !(await this.get(this.id))) {
        throw new RegistryError(`registry no longer knows '${this.id}'`, 404, 'NOT_FOUND');
      }
    } else {
      await this.withToken((authorization) =>
        callRegistry(this.opts.registryUrl, 'POST', `/droplets/${encodeURIComponent(this.id)}/heartbeat`, {
          headers: { authorization },
          body: payload,
        }),
      );
    }
    this.lastHeartbeatAt = payload.at;
    this.markSuccess();
  }

  /** A valid token for this droplet, refreshed when less than a fifth of its life is left. */
  async token(): Promise<string> {
    const c = this.tokenCache;
    if (c && c.expiresAt - this.now() > 60_000) return c.token;
    if (!this.tokenPending) {
      this.tokenPending = (async () => {
        try {
          const r = await this.requestToken().catch((err) => {
            // Our droplet key died with our record: fall back to the configured key.
            if (err instanceof RegistryError && err.status === 401 && this.dropletKey) {
              this.dropletKey = undefined;
              return this.requestToken();
            }
            throw err;
          });
          const expiresAt = Date.parse(r.expires_at);
          const issuedAt = this.now();
          // Refresh at 80% of the lifetime.
          this.tokenCache = { token: r.token, expiresAt: issuedAt + (expiresAt - issuedAt) * 0.8 + 60_000 };
          this.markSuccess();
          return r.token;
        } catch (err) {
          // Keep serving with the cached token while it is still valid.
          if (c && c.expiresAt > this.now()) return c.token;
          this.markFailure(err);
          throw err;
        } finally {
          this.tokenPending = undefined;
        }
      })();
    }
    return this.tokenPending;
  }

  /**
   * A call with our token; when the registry refuses the token (401: revoked, or its key
   * is gone), once more with a new one — at most one forced refresh per 10 s.
   */
  private async withToken<T>(call: (authorization: string) => Promise<T>): Promise<T> {
    const token = await this.token();
    try {
      return await call(`Bearer ${token}`);
    } catch (err) {
      if (!(err instanceof RegistryError && err.status === 401) || this.now() - this.lastForcedRefresh < 10_000) throw err;
      this.lastForcedRefresh = this.now();
      if (this.tokenCache?.token === token) this.tokenCache = undefined;
      return call(`Bearer ${await this.token()}`);
    }
  }

  private requestToken(): Promise<TokenResponse> {
    return callRegistry<TokenResponse>(this.opts.registryUrl, 'POST', `/auth/token?droplet_id=${encodeURIComponent(this.id)}`, {
      headers: { 'x-registry-key': this.dropletKey ?? this.opts.registryKey },
    });
  }

  async upsertRecord(record: RecordInput): Promise<DropletRecord> {
    const r = await this.withToken((authorization) =>
      callRegistry<{ droplet: DropletRecord }>(this.opts.registryUrl, 'POST', '/droplets', { headers: { authorization }, body: record }),
    );
    this.listCache.clear();
    return r.droplet;
  }

  async removeRecord(id: string): Promise<void> {
    await this.withToken((authorization) =>
      callRegistry(this.opts.registryUrl, 'DELETE', `/droplets/${encodeURIComponent(id)}`, { headers: { authorization } }),
    );
    this.listCache.clear();
  }

  async get(id: string): Promise<DropletRecord | undefined> {
    try {
      const r = await this.withToken((authorization) =>
        callRegistry<{ droplet: DropletRecord }>(this.opts.registryUrl, 'GET', `/droplets/${encodeURIComponent(id)}`, {
          headers: { authorization },
        }),
      );
      return r.droplet;
    } catch (err) {
      if (err instanceof RegistryError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Every record matching the filter, all pages, cached for `lookupCacheMs` (default 5 s). */
  async list(filter: { capability?: string; kind?: string; status?: string } = {}): Promise<DropletRecord[]> {
    const key = JSON.stringify(filter);
    const hit = this.listCache.get(key);
    if (hit && this.now() - hit.at < (this.opts.lookupCacheMs ?? 5000)) return hit.items;
    const items: DropletRecord[] = [];
    let page: number | null = 1;
    const qs = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined) as [string, string][]);
    while (page) {
      qs.set('page', String(page));
      qs.set('per_page', '200');
      const r: Page<DropletRecord> = await this.withToken((authorization) =>
        callRegistry(this.opts.registryUrl, 'GET', `/droplets?${qs}`, { headers: { authorization } }),
      );
      items.push(...r.items);
      page = r.pagination.next_page;
    }
    this.listCache.set(key, { at: this.now(), items });
    return items;
  }

  async stop(opts: { deregister?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (opts.deregister !== false && this.registered) {
      try {
        await callRegistry(this.opts.registryUrl, 'DELETE', `/droplets/${encodeURIComponent(this.id)}`, {
          headers: { 'x-registry-key': this.dropletKey ?? this.opts.registryKey },
          timeoutMs: 2000,
        });
        this.registered = false;
      } catch (err) {
        this.log.warn({ reason: (err as Error).message }, 'deregistration failed');
      }
    }
  }

  private markSuccess(): void {
    this.reachable = true;
    this.lastError = undefined;
  }

  private markFailure(err: unknown): void {
    const e = err as RegistryError;
    // An answer from the registry (4xx) means it is reachable; only network failures mean it is not.
    this.reachable = e instanceof RegistryError && e.status !== undefined && e.status < 500;
    this.lastError = e.message;
  }
}
