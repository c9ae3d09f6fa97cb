import { request } from 'node:http';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = any>(): T;
}

/**
 * A plain HTTP request with any Host header (fetch does not let a caller choose Host),
 * for asking nginx for a virtual host through its published port.
 */
export function httpRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, timeout: opts.timeoutMs ?? 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${url} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** JSON call to a droplet API with a bearer token. */
export async function api<T = any>(method: string, url: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/** An operator token from the registry, with the admin key. */
export async function registryToken(registryUrl: string, adminKey: string, dropletId = 'operator'): Promise<string> {
  const r = await fetch(`${registryUrl}/auth/token?droplet_id=${dropletId}`, {
    method: 'POST',
    headers: { 'x-registry-key': adminKey },
    signal: AbortSignal.timeout(10_000),
  });
  if (!r.ok) throw new Error(`token: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { token: string }).token;
}
