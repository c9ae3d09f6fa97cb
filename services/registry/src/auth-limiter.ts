import type { Request } from 'express';
import { RateLimiterMemory, RateLimiterRes } from './rate-limiter.js';
import { RateLimited } from '@droplet-mesh/udc-kit';

/**
 * Failed X-Registry-Key attempts per client address, shared by every route that accepts
 * a key (/auth/token, /auth/revoke, /droplets, /keys/rotate): guesses at the admin key
 * are limited the same wherever they are made. Once an address has spent its failures,
 * it is refused with 429 even with the right key until the minute is over.
 */
export class AuthFailureLimiter {
  private failures: RateLimiterMemory;

  constructor(perMinute: number) {
    this.failures = new RateLimiterMemory({ points: perMinute, duration: 60 });
  }

  private static ip(req: Request): string {
    return req.ip ?? 'unknown';
  }

  static refuse(res: unknown, what = 'requests'): never {
    const ms = res instanceof RateLimiterRes ? res.msBeforeNext : 60_000;
    throw new RateLimited(`too many failed ${what} from this address; retry later`, ms / 1000);
  }

  /** Throws 429 when this address has no failures left. */
  async assertAllowed(req: Request): Promise<void> {
    const blocked = await this.failures.get(AuthFailureLimiter.ip(req));
    if (blocked && blocked.remainingPoints <= 0) AuthFailureLimiter.refuse(blocked, 'key attempts');
  }

  async recordFailure(req: Request): Promise<void> {
    await this.failures.consume(AuthFailureLimiter.ip(req)).catch(() => undefined);
  }
}
