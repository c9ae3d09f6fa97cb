import type { EmulatorHandle } from '../src/index.js';

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** A tiny client over real HTTP: `call('GET', '/v2/droplets')` with the emulator's token unless told otherwise. */
export function client(emu: EmulatorHandle) {
  return async function call<T = any>(method: string, path: string, body?: unknown, token: string | null = emu.token): Promise<Reply<T>> {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(path.startsWith('http') ? path : `${emu.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };
}
