import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { type Bus, DependencyUnavailable, type Logger } from '@droplet-mesh/udc-kit';
import type { SessionSealer } from './session-seal.js';

/** One signed-in browser: the operator token never leaves the server. */
export interface Session {
  /** sha256 of the cookie value: the store never holds the cookie itself. */
  readonly key: string;
  readonly token: string;
  readonly subject: string;
  readonly scopes: string[];
  readonly createdAt: number;
  /** When the token expires; the session ends with it. */
  readonly expiresAt: number;
  /** Synchronizer token: every state-changing request must carry it in X-CSRF-Token. */
  readonly csrf: string;
  /** Called when the session ends here (sign-out on any replica, expiry, eviction, stop): open streams close. */
  readonly onEnd: Set<() => void>;
}

export interface SessionView {
  subject: string;
  scopes: string[];
  expires_at: string;
  csrf_token: string;
}

/** A session as it is kept in the NATS bucket: the token and CSRF token only sealed. */
interface StoredSession {
  v: 1;
  subject: string;
  scopes: string[];
  created_at: number;
  expires_at: number;
  /** SessionSealer.seal(JSON {token, csrf}) bound to this key and expiry. */
  sealed: string;
}

type Kv = Awaited<ReturnType<Bus['kv']>>;

export const SESSION_BUCKET = 'console-sessions';
/**
 * NATS 2.9 has no per-entry TTL: the bucket keeps an entry at most as long as the longest token
 * the registry issues (TOKEN_TTL_S ≤ 7 days); each entry carries its token's expiry, and is
 * refused and deleted once that has passed.
 */
export const SESSION_BUCKET_MAX_AGE_MS = 7 * 24 * 3600_000 + 60_000;

const hash = (v: string) => createHash('sha256').update(v).digest('hex');
const sealContext = (key: string, expiresAt: number) => `${key}|${expiresAt}`;

export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

const unavailable = (err: unknown) =>
  new DependencyUnavailable(`console sessions are unavailable (NATS): ${(err as Error)?.message ?? String(err)}`, { droplet: 'nats' });

/**
 * Sessions in a NATS KV bucket, keyed by sha256 of the cookie, the token sealed: they survive
 * a console restart and every replica sharing the bucket and the session secret sees them. A
 * sign-out anywhere deletes the entry; each replica watches the bucket and ends its open
 * streams for it at once. Decrypted sessions are cached per replica, but every lookup reads the
 * entry, so a deleted one is refused at once.
 */
export class SessionStore {
  private readonly local = new Map<string, { session: Session; revision: number }>();
  private kv?: Kv;
  private sealer?: SessionSealer;
  private watcher?: { stop(): void };
  private sweeper?: NodeJS.Timeout;

  constructor(
    private readonly opts: {
      /** Sessions this replica holds decrypted at once; the oldest is signed out beyond this. */
      maxSessions: number;
      now?: () => number;
      logger?: Logger;
    },
  ) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  private bucket(): Kv {
    if (!this.kv) throw new DependencyUnavailable('console sessions are not ready: the console is starting', { droplet: 'nats' });
    return this.kv;
  }

  private seals(): SessionSealer {
    if (!this.sealer) throw new DependencyUnavailable('console sessions are not ready: the console is starting');
    return this.sealer;
  }

  /** Uses the bucket and the sealer, and follows deletions made by any replica. */
  async attach(kv: Kv, sealer: SessionSealer): Promise<void> {
    this.kv = kv;
    this.sealer = sealer;
    const updates = await kv.watch({ include: 'updates', ignoreDeletes: false });
    this.watcher = updates;
    void (async () => {
      try {
        for await (const e of updates) if (e.operation !== 'PUT') this.endLocal(e.key);
      } catch (err) {
        this.opts.logger?.warn({ err }, 'console session watch ended');
      }
    })();
  }

  /** Returns the cookie value (shown to the browser once) and the session. */
  async create(input: {
    token: string;
    subject: string;
    scopes: string[];
    expiresAt: number;
  }): Promise<{ cookie: string; session: Session }> {
    const kv = this.bucket();
    const cookie = randomBytes(32).toString('base64url');
    const key = hash(cookie);
    const csrf = randomBytes(32).toString('base64url');
    const expiresAt = Math.min(input.expiresAt, this.now() + SESSION_BUCKET_MAX_AGE_MS - 60_000);
    const stored: StoredSession = {
      v: 1,
      subject: input.subject,
      scopes: input.scopes,
      created_at: this.now(),
      expires_at: expiresAt,
      sealed: this.seals().seal(JSON.stringify({ token: input.token, csrf }), sealContext(key, expiresAt)),
    };
    let revision: number;
    try {
      revision = await kv.create(key, JSON.stringify(stored));
    } catch (err) {
      throw unavailable(err);
    }
    while (this.local.size >= this.opts.maxSessions) {
      const oldest = this.local.keys().next().value as string;
      // Best effort in the bucket: this sign-in is already stored.
      await this.remove(oldest).catch(() => this.endLocal(oldest));
    }
    const session = this.toSession(key, stored, { token: input.token, csrf });
    this.local.set(key, { session, revision });
    return { cookie, session };
  }

  /** The live session for a cookie value, or undefined (unknown, signed out anywhere, expired, or sealed with another secret). */
  async get(cookie: string | undefined): Promise<Session | undefined> {
    if (!cookie) return undefined;
    const key = hash(cookie);
    let entry: Awaited<ReturnType<Kv['get']>>;
    try {
      entry = await this.bucket().get(key);
    } catch (err) {
      throw unavailable(err);
    }
    if (entry?.operation !== 'PUT' || entry.length === 0) {
      this.endLocal(key);
      return undefined;
    }
    const cached = this.local.get(key);
    if (cached && cached.revision === entry.revision) {
      if (cached.session.expiresAt > this.now()) return cached.session;
      await this.remove(key);
      return undefined;
    }
    let stored: StoredSession;
    try {
      stored = entry.json<StoredSession>();
    } catch {
      return undefined;
    }
    if (!(stored.expires_at > this.now())) {
      await this.remove(key);
      return undefined;
    }
    const plain = this.seals().open(stored.sealed, sealContext(key, stored.expires_at));
    if (!plain) {
      // Another secret (a replica configured apart), or an altered entry: refused, not deleted.
      this.opts.logger?.warn({ session: key.slice(0, 12) }, 'a console session does not open with this console session secret');
      return undefined;
    }
    const secret = JSON.parse(plain) as { token: string; csrf: string };
    // The console never rewrites an entry: one that changed under a cached session starts afresh.
    if (cached) this.endLocal(key);
    const session = this.toSession(key, stored, secret);
    this.local.set(key, { session, revision: entry.revision });
    return session;
  }

  /** Signs the cookie's session out everywhere. */
  async destroy(cookie: string | undefined): Promise<boolean> {
    if (!cookie) return false;
    const key = hash(cookie);
    const known = this.local.has(key);
    await this.remove(key);
    return known;
  }

  private async remove(key: string): Promise<void> {
    this.endLocal(key);
    try {
      await this.bucket().delete(key);
    } catch (err) {
      throw unavailable(err);
    }
  }

  private toSession(key: string, s: StoredSession, secret: { token: string; csrf: string }): Session {
    return {
      key,
      token: secret.token,
      subject: s.subject,
      scopes: s.scopes,
      createdAt: s.created_at,
      expiresAt: s.expires_at,
      csrf: secret.csrf,
      onEnd: new Set(),
    };
  }

  /** Forgets the session here and closes its streams; the bucket is left alone. */
  private endLocal(key: string): boolean {
    const held = this.local.get(key);
    if (!held) return false;
    this.local.delete(key);
    for (const fn of held.session.onEnd) {
      try {
        fn();
      } catch {
        // A closing stream must not keep the others open.
      }
    }
    held.session.onEnd.clear();
    return true;
  }

  /** Sessions this replica holds decrypted. */
  get size(): number {
    return this.local.size;
  }

  /** Ends the expired sessions this replica holds, and deletes their entries (also done every few seconds once started). */
  async sweep(): Promise<void> {
    const now = this.now();
    for (const [key, held] of [...this.local]) if (held.session.expiresAt <= now) await this.remove(key).catch(() => this.endLocal(key));
  }

  start(intervalMs = 5000): void {
    this.sweeper ??= setInterval(() => void this.sweep(), intervalMs);
    this.sweeper.unref();
  }

  /** Stops this replica: its streams close, the sessions stay in the bucket for the next start or the other replicas. */
  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.watcher?.stop();
    this.watcher = undefined;
    for (const key of [...this.local.keys()]) this.endLocal(key);
  }

  view(s: Session): SessionView {
    return { subject: s.subject, scopes: s.scopes, expires_at: new Date(s.expiresAt).toISOString(), csrf_token: s.csrf };
  }
}
