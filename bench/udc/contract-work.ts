// The second baseline of bench/udc: the work a JWT-protected UDC route must do on every request,
// written straight on the stack's libraries, with no udc-kit. That work is a correlation id, the
// bearer token, a request-duration histogram, a request log line and the JSON body. The token is
// verified with jsonwebtoken once, then looked up as udc-kit does. udc-kit's /state against this
// shows what udc-kit itself costs. This against bare Express shows what the contract's work costs.
import { randomUUID } from 'node:crypto';
import express, { type Express } from 'express';
import jwt, { type JwtPayload } from 'jsonwebtoken';
import pino from 'pino';
import client from 'prom-client';

export interface ContractWorkOptions {
  publicKeyPem: string;
  issuer: string;
  audience: string;
}

export function contractWorkApp(opts: ContractWorkOptions): Express {
  // pino's own batched stdout, as close as pino gets to udc-kit's batching.
  const log = pino({ name: 'contract-work' }, pino.destination({ dest: 1, sync: false, minLength: 16 * 1024 - 1 }));
  const registry = new client.Registry();
  const duration = new client.Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const stateSeries = duration.labels({ method: 'GET', route: '/state', status: '200' });
  const verified = new Map<string, JwtPayload>();
  const startedAt = new Date();
  let requestsTotal = 0;

  const app = express();
  app.get('/state', (req, res) => {
    const started = performance.now();
    const correlationId = randomUUID();
    res.setHeader('X-Correlation-ID', correlationId);
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7) : '';
    let claims = verified.get(token);
    if (!claims) {
      try {
        claims = jwt.verify(token, opts.publicKeyPem, {
          algorithms: ['RS256'],
          issuer: opts.issuer,
          audience: opts.audience,
        }) as JwtPayload;
      } catch {
        res.status(401).json({ error: { code: 'UNAUTHORIZED' } });
        return;
      }
      verified.set(token, claims);
    }
    const scopes: unknown = claims.scopes;
    if ((claims.exp ?? 0) * 1000 <= Date.now() || !Array.isArray(scopes) || !scopes.includes('read')) {
      res.status(401).json({ error: { code: 'UNAUTHORIZED' } });
      return;
    }
    res.once('finish', () => {
      const ms = performance.now() - started;
      stateSeries.observe(ms / 1000);
      log.info(
        { correlation_id: correlationId, method: req.method, path: req.path, route: '/state', status: res.statusCode, duration_ms: ms },
        'request',
      );
    });
    requestsTotal++;
    res.json({
      droplet: 'bench',
      phase: 'running',
      cpu_percent: 0,
      memory_mb: 0,
      uptime_seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
      requests_total: requestsTotal,
      requests_per_minute: 0,
      errors_last_hour: 0,
      last_restart: startedAt.toISOString(),
    });
  });
  return app;
}
