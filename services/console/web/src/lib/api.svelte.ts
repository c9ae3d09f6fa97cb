// The browser side of the backend-for-frontend: every call goes to this console only.
// The session lives in an HttpOnly cookie the page cannot read; the CSRF token is kept
// in memory (never in localStorage) and sent with every change.

export interface FieldError {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
  get fields(): FieldError[] {
    const f = (this.details as { fields?: FieldError[] } | undefined)?.fields;
    return Array.isArray(f) ? f : [];
  }
  /** The message of the first error at `path` (e.g. `domain`, `source.image`). */
  field(...paths: string[]): string | undefined {
    return this.fields.find((f) => paths.includes(f.path))?.message;
  }
}

export interface SessionInfo {
  subject: string;
  scopes: string[];
  expires_at: string;
  csrf_token: string;
}

export const auth = $state<{ checked: boolean; session: SessionInfo | null; notice: string }>({
  checked: false,
  session: null,
  notice: '',
});

let csrf = '';

function adopt(s: SessionInfo | null, notice = ''): void {
  csrf = s?.csrf_token ?? '';
  auth.session = s;
  auth.notice = notice;
  auth.checked = true;
}

/** Waits before asking a GET again after a network failure. */
const GET_RETRY_DELAYS_MS = [500, 1500];

/**
 * fetch to the console. A GET that fails in the network (a dropped connection; the browser
 * cancels requests in flight when the machine's addresses change) is asked again after 0.5 s
 * and 1.5 s: asking again changes nothing, and a page stays filled rather than "down".
 * Changes are never repeated.
 */
async function send(path: string, init: RequestInit): Promise<Response> {
  const retries = (init.method ?? 'GET') === 'GET' ? GET_RETRY_DELAYS_MS : [];
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(path, { ...init, credentials: 'same-origin' });
    } catch {
      if (attempt >= retries.length) throw new ApiError(0, 'NETWORK_ERROR', 'the console did not answer (is it running?)');
      await new Promise((r) => setTimeout(r, retries[attempt]));
    }
  }
}

async function raw(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json', ...extra };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['x-csrf-token'] = csrf;
  const res = await send(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return undefined;
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
    const err = new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? (text.slice(0, 200) || res.statusText), e?.details);
    // The console's own session ended (expired, or signed out elsewhere): back to sign-in.
    if (res.status === 401 && (e?.details as { console_session?: string } | undefined)?.console_session && auth.session) {
      adopt(null, 'Your session has ended. Sign in again.');
    }
    throw err;
  }
  return json;
}

/** A multipart POST (an upload): the browser sets the content type and its boundary. */
async function upload(path: string, form: FormData): Promise<unknown> {
  const res = await send(path, { method: 'POST', headers: { accept: 'application/json', 'x-csrf-token': csrf }, body: form });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
    throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? (text.slice(0, 200) || res.statusText), e?.details);
  }
  return json;
}

export const api = {
  upload: <T>(path: string, form: FormData) => upload(path, form) as Promise<T>,
  get: <T>(path: string) => raw('GET', path) as Promise<T>,
  post: <T>(path: string, body: unknown = {}, headers: Record<string, string> = {}) => raw('POST', path, body, headers) as Promise<T>,
  put: <T>(path: string, body: unknown) => raw('PUT', path, body) as Promise<T>,
  del: <T>(path: string) => raw('DELETE', path) as Promise<T>,
};

/** `/api/<droplet><path>` with query parameters (empty ones left out). */
export function dropletPath(droplet: string, path: string, query: Record<string, string | number | undefined> = {}): string {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') qs.set(k, String(v));
  const q = qs.toString();
  return `/api/${droplet}${path}${q ? `?${q}` : ''}`;
}

export interface HealthBody {
  status: string;
  degraded?: string[];
}

/** A droplet's /health through the console: its body says active or error (200 or 503); a droplet the console cannot reach is an ApiError. */
export async function dropletHealth(droplet: string): Promise<HealthBody> {
  const res = await send(`/api/${droplet}/health`, { headers: { accept: 'application/json' } });
  const body = (await res.json().catch(() => undefined)) as
    | (HealthBody & { error?: { code: string; message: string; details?: unknown } })
    | undefined;
  // A health report has a status and no `error`; an error envelope (the console's or the droplet's) has both.
  if (body && typeof body.status === 'string' && !body.error) return body;
  throw new ApiError(res.status, body?.error?.code ?? `HTTP_${res.status}`, body?.error?.message ?? res.statusText, body?.error?.details);
}

export async function checkSession(): Promise<void> {
  const ended = auth.session ? 'Your session has ended. Sign in again.' : '';
  try {
    adopt((await raw('GET', '/session')) as SessionInfo);
  } catch (err) {
    adopt(null, err instanceof ApiError && err.status !== 401 ? `${err.code}: ${err.message}` : ended);
  }
}

export async function signIn(credentials: { admin_key: string } | { token: string }): Promise<void> {
  adopt((await raw('POST', '/session', credentials)) as SessionInfo);
}

export async function signOut(): Promise<void> {
  try {
    await raw('DELETE', '/session');
  } finally {
    adopt(null, 'Signed out.');
  }
}

export interface Page<T> {
  items: T[];
  pagination: { page: number; per_page: number; total: number; next_page: number | null };
}

export function asError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError(0, 'INTERNAL_ERROR', (err as Error)?.message ?? String(err));
}
