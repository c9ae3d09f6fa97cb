import { request as httpRequest } from 'node:http';

/** One GET of `/` on 127.0.0.1:`port` (nginx) with `Host: host`, on a fresh connection; never throws (status 0 and the error instead). */
export function getViaNginx(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', headers: { Host: host }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += String(c)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on('error', (e) => resolve({ status: 0, body: String(e) }));
    });
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}
