// The floor of bench/footprint: the libraries every droplet must use by the stack (Express 5,
// zod 4, pino, prom-client's default metrics, jsonwebtoken + jwks-rsa, a NATS connection and a
// JetStream KV watch), each loaded and set up once, with one /health route that logs a line, and
// none of udc-kit or a droplet's own code. What a droplet weighs above this is ours to cut; what
// this weighs above bare Express is the price of the mandated libraries. With FLOOR_DOCKER=1 it
// also loads dockerode and makes a client: the floor of the droplets that drive Docker Engines.
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import express from 'express';
import jwt from 'jsonwebtoken';
import jwksRsa from 'jwks-rsa';
import pino from 'pino';
import client from 'prom-client';
import { z } from 'zod';

const env = z
  .object({ PORT: z.coerce.number().int().min(0), HOST: z.string().default('127.0.0.1'), NATS_URL: z.string() })
  .parse(process.env);
const log = pino({ name: 'mandated-stack' });
const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });
const requests = new client.Counter({ name: 'requests_total', help: 'requests', registers: [registry] });
const docker = process.env.FLOOR_DOCKER === '1' ? new (await import('dockerode')).default() : undefined;
const jwks = jwksRsa({ jwksUri: 'http://127.0.0.1:1/.well-known/jwks.json', cache: true });
const nc = await connect({ servers: env.NATS_URL });
const kv = await new Kvm(nc).create('footprint-floor');
const watch = await kv.watch({ key: '>' });
void (async () => {
  for await (const _ of watch);
})();

const app = express();
app.get('/health', (_req, res) => {
  requests.inc();
  log.info('health');
  res.json({ status: 'active' });
});
// Referenced so that none is left unused: a droplet verifies tokens with both, and talks to Docker.
app.locals.docker = docker;
app.locals.verify = (token, key) => jwt.verify(token, key, { algorithms: ['RS256'] });
app.locals.jwks = jwks;
const server = app.listen(env.PORT, env.HOST);
process.on('SIGTERM', () => server.close(() => void nc.close().then(() => process.exit(0))));
