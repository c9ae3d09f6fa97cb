// /reload-config with a new provider token in the env file rebuilds the providers: the next
// call reaches the emulator with the new token, and the answer names the setting, never its value.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { CLOUD_TOKEN, startHarness, type Harness } from './harness.js';

let h: Harness;
let dir: string;
const STALE = 'stale-SECRET-token-0a1b2c3d';
const doListing = async () =>
  (
    await request(h.droplet.app)
      .get('/instances?provider=digitalocean')
      .set(h.auth(['read']))
  ).body.providers[0];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mcm-reload-'));
  h = await startHarness({ seedInstances: 2, env: { DATA_DIR: dir, DO_TOKEN: STALE } });
});
afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('POST /reload-config', () => {
  it('a new DO_TOKEN in the env file rebuilds the providers; the next call uses it', async () => {
    const before = await doListing();
    expect(before).toMatchObject({ provider: 'digitalocean', status: 'error' });

    writeFileSync(join(dir, 'multi-cloud-manager.env'), `DO_TOKEN=${CLOUD_TOKEN}\nPROVIDER_TIMEOUT_MS=2500\nLOCAL_NETWORK=other-net\n`);
    const res = await request(h.droplet.app)
      .post('/reload-config')
      .set(h.auth(['admin']));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ changed: ['DO_TOKEN', 'LOCAL_NETWORK', 'PROVIDER_TIMEOUT_MS'], needs_restart: ['LOCAL_NETWORK'] });
    expect(JSON.stringify(res.body)).not.toContain(CLOUD_TOKEN);
    expect(h.logs.text()).not.toContain(CLOUD_TOKEN);

    const after = await doListing();
    expect(after).toMatchObject({ provider: 'digitalocean', status: 'ok', count: 2 });
  });

  it('an invalid URL is refused by name and the working providers stay', async () => {
    writeFileSync(join(dir, 'multi-cloud-manager.env'), `DO_TOKEN=${CLOUD_TOKEN}\nDO_API_URL=not a url\n`);
    const res = await request(h.droplet.app)
      .post('/reload-config')
      .set(h.auth(['admin']));
    expect(res.status).toBe(400);
    expect(res.body.error.details.fields.map((f: { path: string }) => f.path)).toEqual(['DO_API_URL']);
    expect(await doListing()).toMatchObject({ provider: 'digitalocean', status: 'ok' });
  });
});
