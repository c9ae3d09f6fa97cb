import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { Router } from 'express';
import { DependencyUnavailable } from './errors.js';

const require = createRequire(import.meta.url);

/** Where the npm package `redoc` keeps its one-file browser bundle; undefined when it is not installed. */
export function redocBundlePath(): string | undefined {
  try {
    return require.resolve('redoc/bundles/redoc.standalone.js');
  } catch {
    return undefined;
  }
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * `/redoc`: the OpenAPI document rendered by ReDoc, beside swagger-ui's `/docs`. The page and
 * the bundle come from this droplet (from the `redoc` package), nothing from a CDN; links are
 * relative so the page also works behind a path prefix.
 */
export function redocRouter(title: string): Router {
  const router = Router();
  const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} API reference</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="openapi.json"></redoc>
<script src="redoc/redoc.standalone.js"></script>
</body>
</html>
`;
  router.get('/', (req, res) => {
    // The page's links are relative to /redoc: /redoc/ goes there first.
    if (req.originalUrl.split('?')[0].endsWith('/')) return res.redirect(301, '../redoc');
    if (!redocBundlePath()) throw new DependencyUnavailable('ReDoc is not installed (npm package redoc); /docs has the same document');
    res.type('html').set('Cache-Control', 'no-cache').send(page);
  });
  router.get('/redoc.standalone.js', (_req, res) => {
    const path = redocBundlePath();
    if (!path) throw new DependencyUnavailable('ReDoc is not installed (npm package redoc)');
    res.type('application/javascript').set('Cache-Control', 'public, max-age=86400');
    createReadStream(path)
      .on('error', () => res.destroy())
      .pipe(res);
  });
  return router;
}
