/** What a rate-limit policy decides for one request. */
export interface RateDecision {
  allowed: boolean;
  /** Headers every response carries (empty for providers that send none). */
  headers: Record<string, string>;
  /** Seconds to wait, for the 429's `retry-after` (when the provider sends one). */
  retryAfterS?: number;
}

export interface RateLimitPolicy {
  check(now: number): RateDecision;
}

/**
 * DigitalOcean: a per-hour and a per-minute window over request times; every response carries
 * `ratelimit-limit` (hourly limit), `ratelimit-remaining` and `ratelimit-reset` (epoch seconds when
 * the oldest counted request expires). A 429 also carries `retry-after`.
 */
export class DigitalOceanRateLimit implements RateLimitPolicy {
  private times: number[] = [];

  constructor(
    private readonly perHour = 5000,
    private readonly perMinute = 250,
  ) {}

  check(now: number): RateDecision {
    const hourAgo = now - 3_600_000;
    while (this.times.length && this.times[0]! <= hourAgo) this.times.shift();
    const lastMinute = countSince(this.times, now - 60_000);
    const allowed = this.times.length < this.perHour && lastMinute < this.perMinute;
    let retryAfterS: number | undefined;
    if (allowed) this.times.push(now);
    else {
      const minuteFull = lastMinute >= this.perMinute;
      const oldestInWindow = minuteFull ? this.times[this.times.length - lastMinute]! + 60_000 : this.times[0]! + 3_600_000;
      retryAfterS = Math.max(1, Math.ceil((oldestInWindow - now) / 1000));
    }
    const reset = this.times.length ? Math.ceil((this.times[0]! + 3_600_000) / 1000) : Math.ceil(now / 1000);
    const headers: Record<string, string> = {
      'ratelimit-limit': String(this.perHour),
      'ratelimit-remaining': String(Math.max(0, this.perHour - this.times.length)),
      'ratelimit-reset': String(reset),
    };
    if (retryAfterS !== undefined) headers['retry-after'] = String(retryAfterS);
    return { allowed, headers, retryAfterS };
  }
}

/** Count of sorted timestamps strictly after `since`. */
function countSince(times: number[], since: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid]! <= since) lo = mid + 1;
    else hi = mid;
  }
  return times.length - lo;
}

/**
 * Hetzner: a bucket of `perHour` requests that refills gradually (one per 3600/perHour seconds).
 * Headers `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (epoch seconds when full again).
 */
export class HetznerRateLimit implements RateLimitPolicy {
  private tokens: number;
  private last: number | undefined;

  constructor(private readonly perHour = 3600) {
    this.tokens = perHour;
  }

  check(now: number): RateDecision {
    const perMs = this.perHour / 3_600_000;
    if (this.last !== undefined) this.tokens = Math.min(this.perHour, this.tokens + (now - this.last) * perMs);
    this.last = now;
    const allowed = this.tokens >= 1;
    if (allowed) this.tokens -= 1;
    const msToFull = (this.perHour - this.tokens) / perMs;
    const headers = {
      'RateLimit-Limit': String(this.perHour),
      'RateLimit-Remaining': String(Math.floor(this.tokens)),
      'RateLimit-Reset': String(Math.ceil((now + msToFull) / 1000)),
    };
    return { allowed, headers, retryAfterS: allowed ? undefined : Math.max(1, Math.ceil((1 - this.tokens) / perMs / 1000)) };
  }
}

/** Vultr: more than `perSecond` requests within any second are refused; no rate-limit headers. */
export class VultrRateLimit implements RateLimitPolicy {
  private times: number[] = [];

  constructor(private readonly perSecond = 30) {}

  check(now: number): RateDecision {
    while (this.times.length && this.times[0]! <= now - 1000) this.times.shift();
    const allowed = this.times.length < this.perSecond;
    if (allowed) this.times.push(now);
    return { allowed, headers: {} };
  }
}
