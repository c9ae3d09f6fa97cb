import type { KV } from '@nats-io/kv';
import { REVOCATION_BUCKET, revocationKey, type Bus, type Logger, type Revocation, type RevocationList } from '@droplet-mesh/udc-kit';

/** Room for clocks that disagree a little: entries outlive the tokens they refuse by this much. */
const SKEW_S = 60;

/**
 * The revocation bucket, written only by the registry and watched by every droplet. Its
 * max_age is the longest token lifetime: an entry is kept as long as any token it
 * refuses can be valid, then JetStream drops it. A registry started with a longer
 * TOKEN_TTL_S lengthens max_age; a shorter one leaves it (older, longer tokens may live).
 */
export async function openRevocationBucket(bus: Bus, tokenTtlS: number, logger?: Logger): Promise<KV> {
  const maxAgeMs = (tokenTtlS + SKEW_S) * 1000;
  const kv = await bus.kv(REVOCATION_BUCKET, { history: 1, ttlMs: maxAgeMs });
  const jsm = await bus.jetstreamManager();
  const stream = `KV_${REVOCATION_BUCKET}`;
  const info = await jsm.streams.info(stream);
  const want = maxAgeMs * 1_000_000; // nanoseconds
  if (!info.config.max_age || info.config.max_age < want) {
    await jsm.streams.update(stream, { ...info.config, max_age: want });
    logger?.info(
      { bucket: REVOCATION_BUCKET, max_age_s: tokenTtlS + SKEW_S },
      'revocation bucket keeps entries for the longest token lifetime',
    );
  }
  return kv;
}

/** Writes revocations, and applies them to this registry's own list at once (the watch follows). */
export class Revoker {
  constructor(
    private kv: KV,
    private list: RevocationList,
    private tokenTtlS: number,
    private now: () => number = Date.now,
  ) {}

  private times() {
    const at = this.now();
    return {
      revoked_at: new Date(at).toISOString(),
      expires_at: new Date(at + (this.tokenTtlS + SKEW_S) * 1000).toISOString(),
      at,
    };
  }

  private async save(r: Revocation): Promise<Revocation> {
    await this.kv.put(revocationKey(r), JSON.stringify(r));
    this.list.apply(r);
    return r;
  }

  revokeToken(jti: string): Promise<Revocation> {
    const { revoked_at, expires_at } = this.times();
    return this.save({ kind: 'token', jti, revoked_at, expires_at });
  }

  /**
   * Every token issued to the droplet up to now. JWT times are whole seconds, so tokens
   * issued in the same second as the revocation are refused too.
   */
  revokeDroplet(dropletId: string): Promise<Revocation> {
    const { revoked_at, expires_at, at } = this.times();
    return this.save({ kind: 'droplet', droplet_id: dropletId, issued_before: Math.floor(at / 1000), revoked_at, expires_at });
  }
}
