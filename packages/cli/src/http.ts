import { randomUUID } from 'node:crypto';
import { ApiError, codeForStatus, LOGIN_HINT, UDC_CODES, UnreachableError } from './errors.js';

export const USER_AGENT = 'meshctl/0.1.0';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  /** JSON body. */
  body?: unknown;
  /** multipart/form-data body (the boundary header is set by fetch). */
  form?: FormData;
  headers?: Record<string, string>;
  /** Send the bearer token (default true). */
  auth?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface HttpResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

export interface HttpClientOptions {
  /** Where the droplet lives, e.g. http://127.0.0.1:8100. */
  baseUrl: string;
  /** Named in messages: "could not reach proxy-manager at ...". */
  name: string;
  token?: string;
  timeoutMs: number;
  /** One id per meshctl invocation, so a droplet's logs can be matched to it. */
  correlationId?: string;
}

function describeNetworkError(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return 'timed out';
  if (e.name === 'AbortError') return 'aborted';
  const cause = e.cause;
  if (cause?.code) return cause.code;
  return cause?.message ?? e.message ?? 'network error';
}

function isEnvelope(v: unknown): v is { status: 'error'; error: { code: string; message: string; details?: unknown } } {
  const e = (v as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return !!e && typeof e.code === 'string' && typeof e.message === 'string';
}

/**
 * The one HTTP client: JSON in and out, bearer token, timeouts, and every failure turned
 * into a typed error (ApiError from the UDC envelope, UnreachableError when nothing answered).
 */
export class HttpClient {
  readonly correlationId: string;
  constructor(readonly opts: HttpClientOptions) {
    this.correlationId = opts.correlationId ?? randomUUID();
  }

  get name(): string {
    return this.opts.name;
  }

  url(path: string, query?: Query): string {
    const u = new URL(path, this.opts.baseUrl.endsWith('/') ? this.opts.baseUrl : `${this.opts.baseUrl}/`);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== '') u.searchParams.set(k, String(v));
    return u.toString();
  }

  /** The raw fetch, with network failures as UnreachableError; HTTP errors are the caller's. */
  async fetch(method: string, path: string, o: RequestOptions & { accept?: string } = {}): Promise<Response> {
    const url = this.url(path, o.query);
    const headers: Record<string, string> = {
      'User-Agent': USER_AGENT,
      Accept: o.accept ?? 'application/json',
      'X-Correlation-ID': this.correlationId,
      ...o.headers,
    };
    if (o.auth !== false && this.opts.token) headers.Authorization = `Bearer ${this.opts.token}`;
    let body: string | FormData | undefined;
    if (o.form) body = o.form;
    else if (o.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(o.body);
    }
    const timeout = AbortSignal.timeout(o.timeoutMs ?? this.opts.timeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    try {
      return await fetch(url, { method, headers, body, signal });
    } catch (err) {
      throw new UnreachableError(`${this.opts.name} at ${url.split('?')[0]}`, describeNetworkError(err));
    }
  }

  /** A request whose non-2xx answer becomes an ApiError. */
  async send<T = unknown>(method: string, path: string, o: RequestOptions = {}): Promise<HttpResponse<T>> {
    const res = await this.fetch(method, path, o);
    const text = await res.text().catch(() => '');
    let parsed: unknown;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (!res.ok) throw this.toError(res.status, res.statusText, parsed, this.url(path));
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  async get<T = unknown>(path: string, query?: Query): Promise<T> {
    return (await this.send<T>('GET', path, { query })).body;
  }
  async post<T = unknown>(path: string, body?: unknown, o: RequestOptions = {}): Promise<T> {
    return (await this.send<T>('POST', path, { ...o, body })).body;
  }
  async put<T = unknown>(path: string, body?: unknown): Promise<T> {
    return (await this.send<T>('PUT', path, { body })).body;
  }
  async delete<T = unknown>(path: string, query?: Query): Promise<T> {
    return (await this.send<T>('DELETE', path, { query })).body;
  }

  /** Every item of a UDC paginated list (`{items, pagination:{next_page}}`), page by page. */
  async all<T>(path: string, query: Query = {}, maxPages = 100): Promise<{ items: T[]; first: Record<string, unknown> }> {
    const items: T[] = [];
    let page: number | null = 1;
    let first: Record<string, unknown> | undefined;
    for (let n = 0; page !== null && n < maxPages; n++) {
      const body: { items: T[]; pagination?: { next_page: number | null } } = await this.get(path, { ...query, page, per_page: 200 });
      first ??= body as unknown as Record<string, unknown>;
      items.push(...(body.items ?? []));
      page = body.pagination?.next_page ?? null;
    }
    return { items, first: first ?? {} };
  }

  private toError(status: number, statusText: string, body: unknown, url: string): ApiError {
    const where = url.split('?')[0];
    if (isEnvelope(body)) {
      const code = (UDC_CODES as readonly string[]).includes(body.error.code) ? body.error.code : body.error.code || codeForStatus(status);
      const hint = code === 'UNAUTHORIZED' ? LOGIN_HINT : undefined;
      return new ApiError(status, code, body.error.message, where, body.error.details, hint);
    }
    const snippet = typeof body === 'string' && body ? `: ${body.replace(/\s+/g, ' ').slice(0, 200)}` : '';
    return new ApiError(
      status,
      codeForStatus(status),
      `${this.opts.name} answered HTTP ${status} ${statusText}${snippet} (${where})`,
      where,
    );
  }
}
