import { createServer, request, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Writable } from 'node:stream';
import { createServer as createNetServer } from 'node:net';

/** A free port on 127.0.0.1 (kept free of udc-kit/testing so the benchmark can use this file outside jest). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export const quiet = new Writable({ write: (_c, _e, cb) => cb() });

export interface Upstream {
  port: number;
  name: string;
  hits: number;
  setHealthy(ok: boolean): void;
  close(): Promise<void>;
}

/** A real HTTP upstream on 127.0.0.1 that says who it is; /health answers 200 or 503. */
export async function startUpstream(name: string, opts: { healthy?: boolean } = {}): Promise<Upstream> {
  let healthy = opts.healthy ?? true;
  const port = await freePort();
  const u: Upstream = {
    port,
    name,
    hits: 0,
    setHealthy: (ok) => (healthy = ok),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  const server: Server = createServer((req, res) => {
    u.hits++;
    if (req.url === '/health') {
      res.statusCode = healthy ? 200 : 503;
      res.end(healthy ? 'ok' : 'down');
      return;
    }
    res.setHeader('content-type', 'text/plain');
    res.end(`upstream ${name} host=${req.headers.host} path=${req.url}`);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return u;
}

export interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One request through nginx with a given Host header (no keep-alive, with a timeout). */
export function viaNginx(port: number, host: string, path = '/', timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from nginx within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** HTTPS through nginx with SNI = servername, verified against `ca`. */
export function httpsViaNginx(port: number, servername: string, ca: string, path = '/', timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve, reject) => {
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
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no HTTPS answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
