import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { Bus } from './bus.js';
import type { Logger } from './logger.js';

/**
 * Revoked tokens, published by the registry (the only writer) in this JetStream KV
 * bucket and watched by every droplet's verifier. The bucket's max_age is the longest
 * token lifetime, so an entry outlives every token it refuses and then goes away.
 *
 * Keys: `token.<jti>` (one token) and `droplet.<id>` (every token issued to a droplet up
 * to and including `issued_before`, in JWT seconds).
 */
export const REVOCATION_BUCKET = 'registry-revocations';

export type Revocation =
  | { kind: 'token'; jti: string; revoked_at: string; expires_at: string }
  | { kind: 'droplet'; droplet_id: string; issued_before: number; revoked_at: string; expires_at: string };

export function revocationKey(r: Pick<Revocation, 'kind'> & { jti?: string; droplet_id?: string }): string {
  return r.kind === 'token' ? `token.${r.jti}` : `droplet.${r.droplet_id}`;
}

/** What a verifier asks of a revocation list. */
export interface RevocationCheck {
  /** Why this token is revoked, or undefined when it is not. */
  revokedReason(claims: { jti?: string; droplet_id: string; sub: string; iat?: number }): string | undefined;
}

function parseRevocation(v: unknown): Revocation | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r.revoked_at !== 'string' || typeof r.expires_at !== 'string' || Number.isNaN(Date.parse(r.expires_at))) return undefined;
  if (r.kind === 'token' && typeof r.jti === 'string' && r.jti) return r as Revocation;
  if (r.kind === 'droplet' && typeof r.droplet_id === 'string' && r.droplet_id && typeof r.issued_before === 'number')
    return r as Revocation;
  return undefined;
}

/** Revocations in memory: a map lookup per verification. Entries past their expiry are dropped. */
export class RevocationList implements RevocationCheck {
  private entries = new Map<string, { r: Revocation; until: number }>();
  private lastPrune = 0;

  constructor(protected now: () => number = Date.now) {}

  get size(): number {
    return this.entries.size;
  }

  /** Apply an entry (from the bucket, or at once by the registry that wrote it). */
  apply(r: Revocation): void {
    const key = revocationKey(r);
    const until = Date.parse(r.expires_at);
    const cur = this.entries.get(key);
    // A later droplet-wide revocation covers an earlier one; never shrink what is refused.
    if (cur && cur.r.kind === 'droplet' && r.kind === 'droplet' && cur.r.issued_before > r.issued_before) return;
    this.entries.set(key, { r, until });
    this.prune();
  }

  remove(key: string): void {
    this.entries.delete(key);
  }

  private prune(): void {
    const now = this.now();
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    for (const [k, e] of this.entries) if (e.until <= now) this.entries.delete(k);
  }

  private live(key: string): Revocation | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.until <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.r;
  }

  revokedReason(c: { jti?: string; droplet_id: string; sub: string; iat?: number }): string | undefined {
    if (this.entries.size === 0) return undefined;
    if (c.jti && this.live(`token.${c.jti}`)) return 'token revoked';
    for (const id of c.sub === c.droplet_id ? [c.droplet_id] : [c.droplet_id, c.sub]) {
      const r = this.live(`droplet.${id}`);
      // A token without iat cannot show it was issued after the revocation.
      if (r?.kind === 'droplet' && (c.iat === undefined || c.iat <= r.issued_before)) return `tokens issued to '${id}' are revoked`;
    }
    return undefined;
  }
}

/**
 * Keeps a RevocationList current from the registry's bucket with a KV watch (no call per
 * request). A bucket that does not exist yet (no registry has started) is looked for
 * again every `retryMs`; its existing entries arrive as soon as it is found. Until then,
 * and while NATS is away, the last known list applies.
 */
export class RevocationWatcher extends RevocationList {
  private stopped = true;
  private retry?: NodeJS.Timeout;
  private watch?: { stop(): void };
  private reportedMissing = false;
  watching = false;

  constructor(private opts: { retryMs?: number; initialWaitMs?: number; now?: () => number } = {}) {
    super(opts.now);
  }

  /** Resolves once the existing entries are loaded (at most `initialWaitMs`), or at once when the bucket is not there yet. */
  async start(bus: Bus, logger?: Logger): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    await this.attach(bus, logger);
  }

  private scheduleRetry(bus: Bus, logger?: Logger): void {
    if (this.stopped) return;
    this.retry = setTimeout(() => void this.attach(bus, logger), this.opts.retryMs ?? 1000);
    this.retry.unref();
  }

  private async attach(bus: Bus, logger?: Logger): Promise<void> {
    if (this.stopped) return;
    let kv: KV;
    let values: number;
    try {
      kv = await new Kvm(bus.nc).open(REVOCATION_BUCKET);
      values = (await kv.status()).values;
    } catch (err) {
      if (!this.reportedMissing) {
        this.reportedMissing = true;
        logger?.info({ bucket: REVOCATION_BUCKET, reason: (err as Error).message }, 'no revocation bucket yet; looking again every second');
      }
      return this.scheduleRetry(bus, logger);
    }
    let iter: AsyncIterable<KvWatchEntry> & { stop(): void };
    try {
      iter = await kv.watch({ key: '>' });
    } catch (err) {
      logger?.warn({ err }, 'cannot watch the revocation bucket; retrying');
      return this.scheduleRetry(bus, logger);
    }
    if (this.stopped) return iter.stop();
    this.watch = iter;
    this.watching = true;
    let loaded!: () => void;
    const initial = new Promise<void>((r) => (loaded = r));
    if (values === 0) loaded();
    void (async () => {
      try {
        for await (const e of iter) {
          if (e.operation === 'PUT') {
            let r: Revocation | undefined;
            try {
              r = parseRevocation(e.json());
            } catch {
              r = undefined;
            }
            if (r) this.apply(r);
            else logger?.warn({ key: e.key }, 'ignored a malformed revocation entry');
          } else {
            this.remove(e.key);
          }
          if (e.delta === 0) loaded();
        }
      } catch (err) {
        logger?.warn({ err }, 'revocation watch ended');
      }
      this.watching = false;
      loaded();
      // The watch ended without stop() (the bucket was removed): look for it again.
      if (!this.stopped) this.scheduleRetry(bus, logger);
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([initial, new Promise<void>((r) => (timer = setTimeout(r, this.opts.initialWaitMs ?? 2000)))]);
    clearTimeout(timer);
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.watch?.stop();
    this.watch = undefined;
    this.watching = false;
  }
}
