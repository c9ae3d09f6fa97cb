import { createHash } from 'node:crypto';
import { RateLimited } from '@droplet-mesh/udc-kit';
import type { ProviderName } from '../cloud-provider.js';
import { rateLimitWaitMs } from './retry-policy.js';

type HeaderValue = string | string[] | undefined;
const header = (headers: Record<string, HeaderValue>, name: string) => {
  const v = headers[name] ?? headers[name.toLowerCase()];
  return (Array.isArray(v) ? v[0] : v)?.trim();
};

export interface AccountLimiterOptions {
  provider: ProviderName;
  /** A fixed client-side rate: no 1 s window sees more sends than this (Vultr). */
  maxRequestsPerSecond?: number;
  /** Pace by the provider's `ratelimit-limit/remaining/reset` headers (DigitalOcean, Hetzner). */
  paceByHeaders?: boolean;
  /** A send that would have to wait longer than this is refused as RATE_LIMITED instead. */
  maxWaitMs?: number;
  now?: () => number;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * The pace of one provider account, shared by every call to it in this process: a fixed rate
 * (a sliding 1 s window), what the provider's rate-limit headers say is left, and a hold for
 * everyone after a 429. Callers wait their turn in order (`acquire`), then report the answer
 * (`done`), which is how the headers are learnt.
 */
export class AccountLimiter {
  private readonly queue: Waiter[] = [];
  /**
   * When answers to fixed-rate sends arrived, oldest first. A send counts from when it is let go
   * until 1 s after its answer: the provider counts arrivals, which fall somewhere in between,
   * so no 1 s window at the provider can see more than the rate.
   */
  private readonly sent: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private holdUntil = 0;
  private inFlight = 0;
  // What the last response with rate-limit headers said, and when.
  private learnt = false;
  private limit: number | undefined;
  private remaining: number | undefined;
  private resetAt: number | undefined;
  private learntAt = 0;
  /** Sends since the last header reading (the reading did not count them). */
  private sentSince = 0;
  private readonly now: () => number;

  constructor(private opts: AccountLimiterOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Several clients of one account: the strictest fixed rate wins. */
  tighten(maxRequestsPerSecond: number | undefined): void {
    if (!maxRequestsPerSecond) return;
    const cur = this.opts.maxRequestsPerSecond;
    this.opts = { ...this.opts, maxRequestsPerSecond: cur ? Math.min(cur, maxRequestsPerSecond) : maxRequestsPerSecond };
  }

  /** Resolves when this call may send; rejects with the signal's reason, or RATE_LIMITED when the wait is too long. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.queue.indexOf(w);
          if (i >= 0) this.queue.splice(i, 1);
          reject(signal.reason);
          this.pump();
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.queue.push(w);
      this.pump();
    });
  }

  /** The answer to a send `acquire` allowed (no status: the call failed without one). */
  done(status?: number, headers: Record<string, HeaderValue> = {}): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    const t = this.now();
    if (this.opts.maxRequestsPerSecond) this.sent.push(t);
    if (status === 429) {
      const wait = rateLimitWaitMs(headers, t);
      this.holdUntil = Math.max(this.holdUntil, t + (wait ?? 1000));
    }
    if (this.opts.paceByHeaders && status !== undefined) this.learn(headers, t);
    this.pump();
  }

  private learn(headers: Record<string, HeaderValue>, t: number): void {
    this.learnt = true;
    const remaining = Number(header(headers, 'ratelimit-remaining'));
    if (!header(headers, 'ratelimit-remaining') || !Number.isFinite(remaining)) return;
    const limit = Number(header(headers, 'ratelimit-limit'));
    const reset = Number(header(headers, 'ratelimit-reset'));
    this.remaining = Math.max(0, remaining);
    this.limit = Number.isFinite(limit) && limit > 0 ? limit : undefined;
    // DigitalOcean and Hetzner send a Unix time; a small number is a delay in seconds.
    this.resetAt = Number.isFinite(reset) ? (reset > 1e9 ? reset * 1000 : t + reset * 1000) : undefined;
    this.learntAt = t;
    this.sentSince = this.inFlight;
  }

  /** Requests the headers say may go now (Infinity when they say nothing). */
  private headerAllowance(t: number): { now: number; waitMs: number } {
    if (!this.opts.paceByHeaders) return { now: Infinity, waitMs: 0 };
    // Until the first answer, one call at a time: it teaches us what is left.
    if (!this.learnt) return this.inFlight > 0 ? { now: 0, waitMs: Infinity } : { now: 1, waitMs: 0 };
    if (this.remaining === undefined) return { now: Infinity, waitMs: 0 };
    let tokens = this.remaining;
    let perTokenMs = Infinity;
    if (this.resetAt !== undefined && this.limit !== undefined) {
      if (t >= this.resetAt) tokens = this.limit;
      else if (this.limit > this.remaining) {
        // Refilled evenly until reset (Hetzner's bucket exactly; DigitalOcean's window roughly).
        perTokenMs = (this.resetAt - this.learntAt) / (this.limit - this.remaining);
        tokens = Math.min(this.limit, this.remaining + (t - this.learntAt) / perTokenMs);
      }
    }
    const left = tokens - this.sentSince;
    if (left >= 1) return { now: Math.floor(left), waitMs: 0 };
    if (this.inFlight > 0) return { now: 0, waitMs: Infinity }; // an answer on its way will say more
    const waitMs = Number.isFinite(perTokenMs) ? Math.ceil((1 - left) * perTokenMs) : this.resetAt !== undefined ? this.resetAt - t : 1000;
    return { now: 0, waitMs: Math.max(1, Math.min(waitMs, this.resetAt !== undefined ? Math.max(1, this.resetAt - t) : waitMs)) };
  }

  private pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.queue.length) {
      const t = this.now();
      let waitMs = Math.max(0, this.holdUntil - t);
      const rps = this.opts.maxRequestsPerSecond;
      if (rps) {
        while (this.sent.length && this.sent[0]! <= t - 1000) this.sent.shift();
        if (this.sent.length + this.inFlight >= rps) waitMs = Math.max(waitMs, this.sent.length ? this.sent[0]! + 1000 - t + 1 : Infinity);
      }
      if (waitMs === 0) {
        const allowance = this.headerAllowance(t);
        if (allowance.now < 1) waitMs = allowance.waitMs;
      }
      if (waitMs === 0) {
        const w = this.queue.shift()!;
        if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
        this.inFlight++;
        this.sentSince++;
        w.resolve();
        continue;
      }
      if (waitMs === Infinity) return; // an answer in flight will pump again
      const maxWait = this.opts.maxWaitMs ?? 20_000;
      if (waitMs > maxWait) {
        // Waiting that long would hold the caller past any sensible deadline: say so now.
        const err = new RateLimited(
          `${this.opts.provider} rate limit for this account is used up; not calling it again for ${Math.ceil(waitMs / 1000)} s`,
          Math.max(1, Math.ceil(waitMs / 1000)),
          { provider: this.opts.provider, client_side: true },
        );
        for (const w of this.queue.splice(0)) {
          if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
          w.reject(err);
        }
        return;
      }
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, waitMs);
      return;
    }
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

const accounts = new Map<string, { limiter: AccountLimiter; refs: number }>();

/**
 * The limiter of the account behind (provider, API origin, token): one per process, however
 * many clients are built for it. `release` when a client closes; the last one frees it.
 */
export function accountLimiter(
  baseUrl: string,
  token: string,
  opts: AccountLimiterOptions,
): { limiter: AccountLimiter; release: () => void } {
  const account = createHash('sha256').update(token).digest('hex').slice(0, 16);
  const key = `${opts.provider} ${new URL(baseUrl).origin} ${account}`;
  let entry = accounts.get(key);
  if (entry) entry.limiter.tighten(opts.maxRequestsPerSecond);
  else {
    entry = { limiter: new AccountLimiter(opts), refs: 0 };
    accounts.set(key, entry);
  }
  entry.refs++;
  const held = entry;
  let released = false;
  return {
    limiter: held.limiter,
    release: () => {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs <= 0 && accounts.get(key) === held) {
        held.limiter.close();
        accounts.delete(key);
      }
    },
  };
}
