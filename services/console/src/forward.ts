import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import { DependencyUnavailable, DROPLET_ID_PATTERN, InvalidRequest } from '@droplet-mesh/udc-kit';
import { reason } from './discovery.js';
import type { Session } from './sessions.js';

/** Request headers a droplet may need; nothing else (no cookies) leaves the console. */
const PASS_REQUEST = ['accept', 'content-type', 'idempotency-key', 'last-event-id'];
/** Response headers passed back to the browser. */
const PASS_RESPONSE = ['content-type', 'retry-after', 'idempotent-replayed', 'content-disposition', 'x-correlation-id'];

export interface ForwardTarget {
  droplet: string;
  /** `/deployments?status=running`: the raw path and query after `/api/<droplet>`. */
  pathAndQuery: string;
}

/** Splits `/api/<droplet>/<path>?<query>` without decoding, refusing dot segments and other tricks. */
export function parseForwardUrl(originalUrl: string): ForwardTarget {
  const m = /^\/api\/([^/?#]+)(\/[^?#]*)?(\?[^#]*)?$/.exec(originalUrl);
  if (!m || !DROPLET_ID_PATTERN.test(m[1]))
    throw new InvalidRequest('expected /api/<droplet>/<path>', { fields: [{ path: 'droplet', message: 'must be a droplet id' }] });
  const path = m[2] ?? '/';
  for (const raw of path.split('/').slice(1)) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      throw new InvalidRequest('request path is not valid percent-encoding');
    }
    if (seg === '.' || seg === '..' || /[\\\u0000-\u001f]/.test(seg))
      throw new InvalidRequest('the path may not hold dot segments or control characters');
  }
  return { droplet: m[1], pathAndQuery: path + (m[3] ?? '') };
}

const hasBody = (req: Request) => req.method !== 'GET' && req.method !== 'HEAD';

/**
 * Sends the request on to the droplet with the session's token and streams the answer
 * back: JSON (errors included, in the droplet's own UDC envelope) and server-sent events
 * alike. A droplet that cannot be reached is a 503 DEPENDENCY_UNAVAILABLE envelope.
 */
export async function forward(
  req: Request,
  res: Response,
  opts: { session: Session; baseUrl: string; target: ForwardTarget; timeoutMs: number },
): Promise<void> {
  const { session, baseUrl, target } = opts;
  const url = `${baseUrl}${target.pathAndQuery}`;
  const headers: Record<string, string> = { authorization: `Bearer ${session.token}`, 'x-correlation-id': req.correlationId };
  for (const h of PASS_REQUEST) {
    const v = req.header(h);
    if (v !== undefined) headers[h] = v;
  }
  let body: RequestInit['body'];
  let duplex: 'half' | undefined;
  if (hasBody(req)) {
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['content-type'] = 'application/json';
    } else if (req.header('content-length') !== undefined || req.header('transfer-encoding') !== undefined) {
      // Not JSON (a multipart upload): the body is streamed through untouched.
      body = Readable.toWeb(req) as unknown as RequestInit['body'];
      duplex = 'half';
    }
  }

  const ctrl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctrl.abort();
  }, opts.timeoutMs);
  const abort = () => ctrl.abort();
  res.once('close', abort);
  session.onEnd.add(abort);
  try {
    let up: globalThis.Response;
    try {
      up = await fetch(url, {
        method: req.method,
        headers,
        body,
        signal: ctrl.signal,
        redirect: 'manual',
        ...(duplex ? { duplex } : {}),
      } as RequestInit);
    } catch (err) {
      if (res.destroyed) return;
      if (timedOut)
        throw new DependencyUnavailable(
          `droplet '${target.droplet}' did not answer within ${opts.timeoutMs} ms`,
          { droplet: target.droplet },
          504,
        );
      throw new DependencyUnavailable(`droplet '${target.droplet}' is unreachable (${reason(err)})`, { droplet: target.droplet });
    }
    const stream = /^text\/event-stream/i.test(up.headers.get('content-type') ?? '');
    // An event stream lives as long as the droplet keeps it open (or the session lasts).
    if (stream) clearTimeout(timer);
    res.status(up.status);
    for (const h of PASS_RESPONSE) {
      const v = up.headers.get(h);
      if (v !== null) res.setHeader(h, v);
    }
    const location = up.headers.get('location');
    // Droplet-relative locations become console paths; absolute ones (other hosts) are dropped.
    if (location?.startsWith('/') && !location.startsWith('//')) res.setHeader('Location', `/api/${target.droplet}${location}`);
    // Answers were made for this session's token: no cache may keep them.
    res.setHeader('Cache-Control', 'no-store');
    // A droplet's answer is data for the web app, never a page of this origin: whatever it
    // holds (a droplet's /docs HTML, a reflected string) cannot run script here.
    res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'; sandbox");
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (stream) {
      res.setHeader('X-Accel-Buffering', 'no');
      res.flushHeaders();
    }
    if (!up.body || req.method === 'HEAD') {
      res.end();
      return;
    }
    try {
      await pipeline(Readable.fromWeb(up.body as import('node:stream/web').ReadableStream), res);
    } catch {
      // The browser went away, the session ended or the droplet dropped the stream: the
      // response is already under way, so all that is left is to close it.
      if (!res.writableEnded) res.destroy();
    }
  } finally {
    clearTimeout(timer);
    res.off('close', abort);
    session.onEnd.delete(abort);
  }
}
