import type { Agent } from 'undici';
import type { Logger } from '@droplet-mesh/udc-kit';
import type { ProviderName } from '../cloud-provider.js';
import { accountLimiter, type AccountLimiter } from './account-limiter.js';
import { DEFAULT_MAX_PAGES, type ListingContext } from './paging.js';
import { mapProviderError, unreachable, type ProviderErrorBody } from './provider-errors.js';
import { backoffMs, isIdempotent, rateLimitWaitMs, sleep } from './retry-policy.js';

export type Headers = Record<string, string | string[] | undefined>;

// undici (~9 MB of a droplet's idle RSS, issue 16) is loaded with the first provider call: a
// multi-cloud-manager without cloud tokens, or whose providers are not called yet, never holds it.
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = () => (undici ??= import('undici'));

export interface ProviderHttpClientOptions {
  provider: ProviderName;
  /** The API's server URL from its OpenAPI description (or an emulator's). */
  baseUrl: string;
  token: string;
  /** Per attempt. */
  timeoutMs: number;
  logger: Logger;
  /** Reads the provider's error body. */
  parseError: (body: unknown, headers: Headers) => ProviderErrorBody;
  /** Retries of 5xx and network failures, idempotent calls only. */
  maxRetries?: number;
  /** Retries after a 429 (the provider did not act on the call, so any method may retry). */
  maxRateLimitRetries?: number;
  /** A 429 asking for a longer wait than this is returned to the caller as RATE_LIMITED. */
  maxRateLimitWaitMs?: number;
  /**
   * Client-side request rate limit (Vultr), shared with every other client of the same
   * account (provider, API origin, token) in this process.
   */
  maxRequestsPerSecond?: number;
  /** Pace by the provider's rate-limit headers, shared per account like the rate (DigitalOcean, Hetzner). */
  paceByHeaders?: boolean;
  /** Most pages one listing reads before it stops with an error (default 1000). */
  maxPages?: number;
  random?: () => number;
}

export interface HttpResult<T> {
  status: number;
  body: T;
  headers: Headers;
}

export interface CallInput {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  signal?: AbortSignal;
}

/**
 * HTTP to one provider API: bearer token, a timeout on every attempt, 429 honoured,
 * jittered retries of 5xx on idempotent calls only, errors mapped to UDC errors.
 * The token lives only in the Authorization header and is scrubbed from any text we pass on.
 */
export class ProviderHttpClient {
  /** Made with the first call (undici is loaded then). */
  private agent?: Agent;
  private closed = false;
  private readonly limiter: AccountLimiter;
  private readonly releaseLimiter: () => void;
  private readonly base: string;
  /** Requests sent (attempts), for the health view and the benchmark. */
  requestCount = 0;

  constructor(private readonly opts: ProviderHttpClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
    const { limiter, release } = accountLimiter(opts.baseUrl, opts.token, {
      provider: opts.provider,
      maxRequestsPerSecond: opts.maxRequestsPerSecond,
      paceByHeaders: opts.paceByHeaders,
      maxWaitMs: opts.maxRateLimitWaitMs ?? 20_000,
    });
    this.limiter = limiter;
    this.releaseLimiter = release;
  }

  /** Bounds and logger for one listing of `path`. */
  listing(path: string): ListingContext {
    return {
      provider: this.opts.provider,
      operation: `GET ${path}`,
      maxPages: this.opts.maxPages ?? DEFAULT_MAX_PAGES,
      logger: this.opts.logger,
    };
  }

  get provider(): ProviderName {
    return this.opts.provider;
  }

  url(path: string, query?: CallInput['query']): string {
    const u = new URL(this.base + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  async call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, input: CallInput = {}): Promise<HttpResult<T>> {
    const { provider, logger } = this.opts;
    const operation = `${method} ${path}`;
    const maxRetries = this.opts.maxRetries ?? 3;
    const maxRateLimitRetries = this.opts.maxRateLimitRetries ?? 4;
    const maxWait = this.opts.maxRateLimitWaitMs ?? 20_000;
    const url = this.url(path, input.query);
    const retryable = isIdempotent(method);
    // Before the first attempt's timeout starts: loading undici is not the provider's time.
    const { request } = await loadUndici();
    const agent = await this.dispatcher();
    let failures = 0;
    let limited = 0;
    for (;;) {
      if (input.signal?.aborted) throw input.signal.reason;
      await this.limiter.acquire(input.signal);
      const started = Date.now();
      const timeout = AbortSignal.timeout(this.opts.timeoutMs);
      const signal = input.signal ? AbortSignal.any([input.signal, timeout]) : timeout;
      let status: number;
      let answered = false;
      let headers: Headers;
      let text: string;
      this.requestCount++;
      try {
        const res = await request(url, {
          method,
          dispatcher: agent,
          signal,
          headers: {
            authorization: `Bearer ${this.opts.token}`,
            accept: 'application/json',
            ...(input.body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          body: input.body !== undefined ? JSON.stringify(input.body) : undefined,
        });
        status = res.statusCode;
        headers = res.headers;
        answered = true;
        this.limiter.done(status, headers);
        text = await res.body.text();
      } catch (err) {
        // Once per send: only when the answer did not arrive.
        if (!answered) this.limiter.done();
        if (input.signal?.aborted) throw input.signal.reason;
        const timedOut = timeout.aborted;
        const reason = timedOut
          ? `no answer within ${this.opts.timeoutMs} ms`
          : this.scrub((err as { code?: string }).code ?? (err as Error).message);
        if (retryable && failures < maxRetries) {
          const wait = backoffMs(failures++, 200, 5000, this.opts.random);
          logger.warn({ provider, operation, reason, retry_in_ms: wait }, 'provider call failed; retrying');
          await sleep(wait, input.signal);
          continue;
        }
        throw unreachable(provider, operation, reason, timedOut);
      }
      const duration_ms = Date.now() - started;
      logger.debug({ provider, operation, status, duration_ms }, 'provider call');
      const body = parseJson(text);
      if (status === 429) {
        const wait = rateLimitWaitMs(headers) ?? backoffMs(limited, 500, 5000, this.opts.random);
        if (limited < maxRateLimitRetries && wait <= maxWait) {
          limited++;
          logger.warn({ provider, operation, retry_in_ms: wait }, 'provider rate limit; waiting');
          await sleep(wait, input.signal);
          continue;
        }
        throw mapProviderError(provider, status, this.errorBody(body, headers), operation, wait);
      }
      if (status >= 500 && retryable && failures < maxRetries) {
        const wait = backoffMs(failures++, 200, 5000, this.opts.random);
        logger.warn({ provider, operation, status, retry_in_ms: wait }, 'provider error; retrying');
        await sleep(wait, input.signal);
        continue;
      }
      if (status >= 400) {
        // A DELETE retried after a 5xx may find the first attempt already did the job.
        if (status === 404 && method === 'DELETE' && failures > 0) return { status: 204, body: undefined as T, headers };
        throw mapProviderError(provider, status, this.errorBody(body, headers), operation);
      }
      return { status, body: body as T, headers };
    }
  }

  async get<T>(path: string, input: CallInput = {}): Promise<T> {
    return (await this.call<T>('GET', path, input)).body;
  }

  private errorBody(body: unknown, headers: Headers): ProviderErrorBody {
    const parsed = this.opts.parseError(body, headers);
    const header = (n: string) => {
      const v = headers[n];
      return Array.isArray(v) ? v[0] : v;
    };
    const request_id = parsed.request_id ?? header('x-request-id') ?? header('x-correlation-id') ?? header('request-id');
    return {
      ...(parsed.code ? { code: this.scrub(parsed.code) } : {}),
      ...(parsed.message ? { message: this.scrub(parsed.message) } : {}),
      ...(request_id ? { request_id } : {}),
    };
  }

  /** Belt and braces: a provider echoing the token back must not carry it into our errors. */
  private scrub(s: string): string {
    return this.opts.token ? s.split(this.opts.token).join('[redacted]') : s;
  }

  private async dispatcher(): Promise<Agent> {
    if (!this.agent) {
      const { Agent } = await loadUndici();
      this.agent ??= new Agent({ keepAliveTimeout: 10_000, connections: 32 });
      // Closed before its first call: its calls fail as a closed client's always did.
      if (this.closed) await this.agent.close();
    }
    return this.agent;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.releaseLimiter();
    await this.agent?.close();
  }
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 200) };
  }
}
