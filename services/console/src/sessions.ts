import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

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
  /** Called when the session ends (sign-out, expiry, eviction): open streams close. */
  readonly onEnd: Set<() => void>;
}

export interface SessionView {
  subject: string;
  scopes: string[];
  expires_at: string;
  csrf_token: string;
}

const hash = (v: string) => createHash('sha256').update(v).digest('hex');

export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/**
 * Sessions in this process's memory: a console restart signs everyone out, and two
 * console replicas do not share sessions (a sticky load balancer or one replica).
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private sweeper?: NodeJS.Timeout;

  constructor(private readonly opts: { maxSessions: number; now?: () => number }) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** Returns the cookie value (shown to the browser once) and the session. */
  create(input: { token: string; subject: string; scopes: string[]; expiresAt: number }): { cookie: string; session: Session } {
    const cookie = randomBytes(32).toString('base64url');
    const session: Session = {
      key: hash(cookie),
      token: input.token,
      subject: input.subject,
      scopes: input.scopes,
      createdAt: this.now(),
      expiresAt: input.expiresAt,
      csrf: randomBytes(32).toString('base64url'),
      onEnd: new Set(),
    };
    while (this.sessions.size >= this.opts.maxSessions) {
      const oldest = this.sessions.keys().next().value as string;
      this.end(oldest);
    }
    this.sessions.set(session.key, session);
    return { cookie, session };
  }

  /** The live session for a cookie value, or undefined (unknown, signed out or expired). */
  get(cookie: string | undefined): Session | undefined {
    if (!cookie) return undefined;
    const key = hash(cookie);
    const s = this.sessions.get(key);
    if (!s) return undefined;
    if (s.expiresAt <= this.now()) {
      this.end(key);
      return undefined;
    }
    return s;
  }

  destroy(cookie: string | undefined): boolean {
    if (!cookie) return false;
    return this.end(hash(cookie));
  }

  private end(key: string): boolean {
    const s = this.sessions.get(key);
    if (!s) return false;
    this.sessions.delete(key);
    for (const fn of s.onEnd) {
      try {
        fn();
      } catch {
        // A closing stream must not keep the others open.
      }
    }
    s.onEnd.clear();
    return true;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Drop expired sessions now (also done every few seconds once started). */
  sweep(): void {
    const now = this.now();
    for (const [key, s] of this.sessions) if (s.expiresAt <= now) this.end(key);
  }

  start(intervalMs = 5000): void {
    this.sweeper ??= setInterval(() => this.sweep(), intervalMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const key of [...this.sessions.keys()]) this.end(key);
  }

  view(s: Session): SessionView {
    return { subject: s.subject, scopes: s.scopes, expires_at: new Date(s.expiresAt).toISOString(), csrf_token: s.csrf };
  }
}
