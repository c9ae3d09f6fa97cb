// Child process of bench/udc/run.ts: serves the four targets on 127.0.0.1 and prints one
// JSON line with their URLs and a token. Runs until stdin closes or SIGTERM.
import { writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stopWhenParentLeaves } from '../support/server-child.js';
import type { Server } from 'node:http';
import express from 'express';
import { z } from 'zod';
import { contractWorkApp } from './contract-work.js';

// BENCH_UDC_KIT: another build of udc-kit (a directory with index.js and testing/index.js,
// e.g. an earlier commit's), to compare with the current one in the same conditions.
type Kit = typeof import('@droplet-mesh/udc-kit');
type Testing = typeof import('@droplet-mesh/udc-kit/testing');
const other = process.env.BENCH_UDC_KIT;
const kit: Kit = other ? await import(pathToFileURL(resolve(other, 'index.js')).href) : await import('@droplet-mesh/udc-kit');
const testing: Testing = other
  ? await import(pathToFileURL(resolve(other, 'testing/index.js')).href)
  : await import('@droplet-mesh/udc-kit/testing');
const { baseConfigShape, createDroplet } = kit;
const { startNatsServer, startTestAuthority } = testing;

const nats = await startNatsServer();
const authority = await startTestAuthority();

// 1. The baseline: bare Express 5, one JSON route, nothing else.
const bare = express();
bare.get('/hello', (_req, res) => {
  res.json({ hello: 'world' });
});
const bareServer: Server = await new Promise((resolve) => {
  const s = bare.listen(0, '127.0.0.1', () => resolve(s));
});

// The second baseline: the per-request work /state must do, written directly with the
// mandated libraries (see contract-work.ts).
const contractServer: Server = await new Promise((resolve) => {
  const s = contractWorkApp(authority).listen(0, '127.0.0.1', () => resolve(s));
});

// 2 and 3. A udc-kit droplet with its defaults: JSON log lines to stdout (/dev/null, see run.ts).
const droplet = createDroplet({
  name: 'bench',
  version: '0.0.0',
  capabilities: [],
  configSchema: z.object({ ...baseConfigShape, PORT: baseConfigShape.PORT.default(0) }),
  env: { NATS_URL: nats.url, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', ...authority.env() },
  exit: () => undefined,
});
const { url } = await droplet.start({ port: 0 });

writeSync(
  3,
  `${JSON.stringify({
    bare: `http://127.0.0.1:${(bareServer.address() as { port: number }).port}/hello`,
    contract: `http://127.0.0.1:${(contractServer.address() as { port: number }).port}/state`,
    health: `${url}/health`,
    state: `${url}/state`,
    token: authority.mint({ scopes: ['read'], expiresInSeconds: 3600 }),
    pid: process.pid,
  })}\n`,
);

stopWhenParentLeaves(async () => {
  for (const s of [bareServer, contractServer]) {
    s.closeAllConnections();
    s.close();
  }
  await droplet.stop();
  await authority.close();
  await nats.stop({ removeStore: true });
});
