import { createHash } from 'node:crypto';
import { DependencyUnavailable, type Bus } from '@droplet-mesh/udc-kit';

type KV = Awaited<ReturnType<Bus['kv']>>;

export interface StoredResponse {
  status: number;
  body: unknown;
}

export type BeginResult = { kind: 'new' } | { kind: 'replay'; response: StoredResponse } | { kind: 'in_progress' } | { kind: 'mismatch' };

/** Remembers creates by Idempotency-Key so a retried request does not create twice. */
export interface IdempotencyStore {
  /** Claim the key for this request (fingerprint = hash of the request), or report what happened to it. */
  begin(key: string, fingerprint: string): Promise<BeginResult>;
  complete(key: string, fingerprint: string, response: StoredResponse): Promise<void>;
  /** Release a claim whose request failed, so a retry may run. */
  abandon(key: string): Promise<void>;
}

interface Record_ {
  state: 'pending' | 'done';
  fingerprint: string;
  response?: StoredResponse;
  at: string;
}

/** KV keys allow only [-/_=.a-zA-Z0-9]: store a hash of the caller and key. */
export function idempotencyKvKey(scope: string, key: string): string {
  return createHash('sha256').update(`${scope}\u0000${key}`).digest('hex');
}

export function fingerprint(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/**
 * A JetStream KV bucket shared by every replica: `create` is atomic, so two replicas
 * receiving the same key at once cannot both claim it. The bucket's TTL forgets old keys.
 */
export class KvIdempotencyStore implements IdempotencyStore {
  constructor(private readonly bucket: () => Promise<KV>) {}

  private async kv(): Promise<KV> {
    try {
      return await this.bucket();
    } catch (err) {
      throw new DependencyUnavailable('the idempotency store (NATS KV) is unavailable', { reason: (err as Error).message });
    }
  }

  async begin(key: string, fp: string): Promise<BeginResult> {
    try {
      return await this.claim(key, fp);
    } catch (err) {
      if (err instanceof DependencyUnavailable) throw err;
      throw new DependencyUnavailable('the idempotency store (NATS KV) is unavailable', { reason: (err as Error).message });
    }
  }

  private async claim(key: string, fp: string): Promise<BeginResult> {
    const kv = await this.kv();
    const claim: Record_ = { state: 'pending', fingerprint: fp, at: new Date().toISOString() };
    try {
      await kv.create(key, JSON.stringify(claim));
      return { kind: 'new' };
    } catch {
      const e = await kv.get(key);
      if (!e || e.operation !== 'PUT') {
        // Deleted between our create and get: claim it again once.
        try {
          await kv.create(key, JSON.stringify(claim));
          return { kind: 'new' };
        } catch {
          return { kind: 'in_progress' };
        }
      }
      const rec = e.json<Record_>();
      if (rec.fingerprint !== fp) return { kind: 'mismatch' };
      if (rec.state === 'done' && rec.response) return { kind: 'replay', response: rec.response };
      return { kind: 'in_progress' };
    }
  }

  async complete(key: string, fp: string, response: StoredResponse): Promise<void> {
    const kv = await this.kv();
    const rec: Record_ = { state: 'done', fingerprint: fp, response, at: new Date().toISOString() };
    await kv.put(key, JSON.stringify(rec));
  }

  async abandon(key: string): Promise<void> {
    const kv = await this.kv();
    await kv.delete(key);
  }
}
