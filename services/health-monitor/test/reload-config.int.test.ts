// /reload-config: a new CHECK_INTERVAL_MS in the env file reaches the running check scheduler.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import {
  freePort,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createHealthMonitor, type HealthMonitor } from '../src/health-monitor.js';
import { quiet } from './helpers/quiet.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let monitor: HealthMonitor;
let target: Server;
let dir: string;
let hits = 0;

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  dir = mkdtempSync(join(tmpdir(), 'hm-reload-'));
  const port = await freePort();
  target = createServer((_req, res) => {
    hits++;
    res.end('{"status":"active"}');
  });
  await new Promise<void>((r) => target.listen(port, '127.0.0.1', () => r()));
  monitor = createHealthMonitor({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      DATA_DIR: dir,
      MONITORS_PER_TARGET: '1',
      // A minute between checks: at most one check happens before the reload.
      CHECK_INTERVAL_MS: '60000',
      CHECK_TIMEOUT_MS: '300',
      DIGEST_INTERVAL_MIN: '0',
      STATIC_TARGETS: JSON.stringify([{ id: 'web', url: `http://127.0.0.1:${port}` }]),
      ...authority.env(),
    },
    logDestination: quiet(),
  });
  await monitor.start();
});
afterAll(async () => {
  await monitor?.stop();
  target?.close();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  rmSync(dir, { recursive: true, force: true });
});

describe('POST /reload-config', () => {
  it('applies a new check interval to the running scheduler; a setting it cannot apply live is named', async () => {
    await sleep(1000);
    const before = hits;
    expect(before).toBeLessThanOrEqual(1);

    writeFileSync(join(dir, 'health-monitor.env'), 'CHECK_INTERVAL_MS=200\nMONITORS_PER_TARGET=2\n');
    const res = await request(monitor.droplet.app)
      .post('/reload-config')
      .set({ Authorization: `Bearer ${authority.mint({ scopes: ['admin'] })}` });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ changed: ['CHECK_INTERVAL_MS', 'MONITORS_PER_TARGET'], needs_restart: ['MONITORS_PER_TARGET'] });
    expect(monitor.droplet.ctx.config.CHECK_INTERVAL_MS).toBe(200);
    expect(monitor.droplet.ctx.config.MONITORS_PER_TARGET).toBe(1);

    // Five checks in a few seconds: only the new interval gives that.
    await waitFor('checks at the new interval', () => hits >= before + 5, 5000);
  });
});
