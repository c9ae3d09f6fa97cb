import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Request, Response } from 'express';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** Served with every page: nothing loads from elsewhere, no inline script, no framing. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function securityHeaders(res: Response): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
}

interface Asset {
  type: string;
  body: Buffer;
  gzip?: Buffer;
}

/** The default place of the built web app: dist/web beside dist/app.js (or beside src/ when run from source). */
export function defaultWebDir(): string {
  const candidates = [fileURLToPath(new URL('./web', import.meta.url)), fileURLToPath(new URL('../dist/web', import.meta.url))];
  return candidates.find((d) => existsSync(join(d, 'index.html'))) ?? candidates[0];
}

/** The built web app, read once into memory (it is small) with gzip copies of the text files. */
export class WebAssets {
  private readonly files = new Map<string, Asset>();
  readonly available: boolean;

  constructor(readonly dir: string) {
    this.available = existsSync(join(dir, 'index.html'));
    if (this.available) this.load(dir);
  }

  private load(d: string): void {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) {
        this.load(full);
        continue;
      }
      const body = readFileSync(full);
      const type = TYPES[extname(name)] ?? 'application/octet-stream';
      const compressible = /text|javascript|json|svg/.test(type) && body.length > 512;
      this.files.set(`/${relative(this.dir, full).split(sep).join('/')}`, {
        type,
        body,
        gzip: compressible ? gzipSync(body, { level: 9 }) : undefined,
      });
    }
  }

  /** Total gzip-compressed bytes of the JavaScript (first-load budget). */
  scriptBytesGzipped(): number {
    let n = 0;
    for (const [p, a] of this.files) if (p.endsWith('.js')) n += (a.gzip ?? a.body).length;
    return n;
  }

  /** Sends `/index.html` or `/assets/...`; false when there is no such file. */
  send(req: Request, res: Response, path: string): boolean {
    const a = this.files.get(path);
    if (!a) return false;
    securityHeaders(res);
    res.setHeader('Content-Type', a.type);
    res.setHeader('Vary', 'Accept-Encoding');
    // Vite names assets by content hash: they never change. The page itself is always revalidated.
    res.setHeader('Cache-Control', path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    const gz = a.gzip && /\bgzip\b/.test(req.header('accept-encoding') ?? '');
    if (gz) res.setHeader('Content-Encoding', 'gzip');
    const body = gz ? a.gzip! : a.body;
    res.setHeader('Content-Length', String(body.length));
    res.status(200).end(req.method === 'HEAD' ? undefined : body);
    return true;
  }
}
