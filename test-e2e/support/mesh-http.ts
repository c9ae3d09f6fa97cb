import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface Answer {
  status: number;
  body: string;
  location?: string;
  /** Set when no HTTP answer came (refused, reset, TLS failure, timeout). */
  error?: string;
}

/** One GET through nginx's HTTP port with a Host header, on a fresh connection. Never throws. */
export function viaHttp(port: number, host: string, path = '/', timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim(), location: res.headers.location }));
      res.on('error', (e) => resolve({ status: 0, body: '', error: String(e) }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ status: 0, body: '', error: String(e) }));
    req.end();
  });
}

/** One GET through nginx's HTTPS port, SNI and Host = `servername`, verified against `ca`. Never throws. */
export function viaHttps(port: number, servername: string, ca: string, path = '/', timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        servername,
        headers: { host: servername },
        ca,
        agent: false,
        timeout: timeoutMs,
        rejectUnauthorized: true,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim(), location: res.headers.location }));
        res.on('error', (e) => resolve({ status: 0, body: '', error: String(e) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no HTTPS answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ status: 0, body: '', error: String(e) }));
    req.end();
  });
}

export interface LoadResult extends Answer {
  at: number;
}

/**
 * Steady load while `during` runs: `workers` loops each sending one request after another
 * (a fresh connection each, so every request meets nginx's current configuration).
 * Returns every answer, in the order they arrived.
 */
export async function underLoad(
  send: () => Promise<Answer>,
  during: () => Promise<void>,
  workers = 3,
  tailMs = 300,
): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) results.push({ ...(await send()), at: Date.now() });
  });
  try {
    await during();
    await new Promise((r) => setTimeout(r, tailMs));
  } finally {
    running = false;
    await Promise.all(loops);
  }
  return results;
}
