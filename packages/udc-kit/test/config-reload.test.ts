// /reload-config reads the env file (ENV_FILE, default <DATA_DIR>/<droplet>.env) over the
// process environment, applies the live settings through the droplet's hook and names the rest.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { environmentWithFile, envFilePath, planReload } from '../src/config-reload.js';
import { expectEnvelope, startTestAuthority, type TestAuthority } from '../src/testing/index.js';
import { captureStream, createTestDroplet, type TestDroplet } from './helpers.js';

let authority: TestAuthority;
let droplet: TestDroplet;
let dir: string;
const logs = captureStream();
const applied: Array<{ greeting: string; changed: string[] }> = [];
let refuse = false;
const admin = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['admin'] })}` });
const write = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['write'] })}` });
const envFile = () => join(dir, 'testdrop.env');
const greeting = async () => (await request(droplet.app).post('/echo').set(write()).send({ text: 'x' })).body.greeting;

beforeAll(async () => {
  authority = await startTestAuthority();
  dir = mkdtempSync(join(tmpdir(), 'udc-reload-'));
  writeFileSync(envFile(), '# the operator edits this\nGREETING=from-file\n');
  droplet = createTestDroplet({
    env: { ...authority.env(), DATA_DIR: dir, GREETING: 'from-env', API_TOKEN: 'sixteen-chars-or-more-1' },
    logDestination: logs.stream,
    liveConfig: {
      keys: ['GREETING', 'API_TOKEN'],
      apply: (config, changed) => {
        if (refuse) throw new Error('the hook refused');
        applied.push({ greeting: config.GREETING, changed });
      },
    },
  });
});
afterAll(async () => {
  await droplet.stop();
  await authority.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('env file', () => {
  it('is <DATA_DIR>/<droplet>.env unless ENV_FILE says otherwise', () => {
    expect(envFilePath('deployer', { DATA_DIR: '/srv/mesh' })).toBe('/srv/mesh/deployer.env');
    expect(envFilePath('deployer', { DATA_DIR: '/srv/mesh', ENV_FILE: '/etc/mesh/one.env' })).toBe('/etc/mesh/one.env');
  });

  it('merged again over the original environment: a line removed from the file reverts', () => {
    const d = mkdtempSync(join(tmpdir(), 'udc-envfile-'));
    try {
      writeFileSync(join(d, 'x.env'), 'A=file\nB=file\n');
      const first = environmentWithFile('x', { DATA_DIR: d, A: 'env' });
      expect([first.A, first.B]).toEqual(['file', 'file']);
      writeFileSync(join(d, 'x.env'), 'B=again\n');
      const second = environmentWithFile('x', first);
      expect([second.A, second.B]).toEqual(['env', 'again']);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('is read at start, over the process environment', async () => {
    expect(await greeting()).toBe('from-file');
  });
});

describe('POST /reload-config', () => {
  it('applies live settings through the hook and answers with the names that changed', async () => {
    writeFileSync(envFile(), 'GREETING=second\nLOG_LEVEL=debug\n');
    const res = await request(droplet.app).post('/reload-config').set(admin());
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ reloaded: true, changed: ['GREETING', 'LOG_LEVEL'], needs_restart: [] });
    expect(applied.at(-1)).toEqual({ greeting: 'second', changed: ['GREETING'] });
    expect(await greeting()).toBe('second');
    expect(droplet.ctx.logger.level).toBe('debug');
  });

  it('keeps the old value of a setting that needs a restart, and says so', async () => {
    writeFileSync(envFile(), 'GREETING=second\nLOG_LEVEL=debug\nHEARTBEAT_INTERVAL_S=5\n');
    const res = await request(droplet.app).post('/reload-config').set(admin());
    expect(res.body).toMatchObject({ changed: ['HEARTBEAT_INTERVAL_S'], needs_restart: ['HEARTBEAT_INTERVAL_S'] });
    expect(droplet.ctx.config.HEARTBEAT_INTERVAL_S).toBe(30);
  });

  it('refuses an invalid file with 400 naming the variable, never its value, and keeps the old config', async () => {
    writeFileSync(envFile(), 'GREETING=third\nLOG_LEVEL=loud-secret-value\n');
    const res = await request(droplet.app).post('/reload-config').set(admin());
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    expect(res.body.error.details.fields.map((f: { path: string }) => f.path)).toEqual(['LOG_LEVEL']);
    expect(JSON.stringify(res.body)).not.toContain('loud-secret-value');
    expect(await greeting()).toBe('second');
    expect(droplet.ctx.logger.level).toBe('debug');
  });

  it('names a changed secret without echoing it in the answer or the log', async () => {
    writeFileSync(envFile(), 'GREETING=second\nLOG_LEVEL=debug\nAPI_TOKEN=a-brand-new-token-value-42\n');
    const res = await request(droplet.app).post('/reload-config').set(admin());
    expect(res.body).toMatchObject({ changed: ['API_TOKEN'], needs_restart: [] });
    expect(JSON.stringify(res.body)).not.toContain('a-brand-new-token-value-42');
    expect(logs.text()).toContain('configuration reloaded');
    expect(logs.text()).not.toContain('a-brand-new-token-value-42');
  });

  it('keeps the old config when the hook refuses', async () => {
    refuse = true;
    writeFileSync(envFile(), 'GREETING=fourth\nLOG_LEVEL=debug\nAPI_TOKEN=a-brand-new-token-value-42\n');
    const res = await request(droplet.app).post('/reload-config').set(admin());
    refuse = false;
    expect(res.status).toBe(500);
    expect(await greeting()).toBe('second');
  });

  it('an unreadable file is a 400 naming ENV_FILE', async () => {
    // A directory in the file's place: unreadable as a file, even for root.
    rmSync(envFile());
    mkdirSync(envFile());
    const res = await request(droplet.app).post('/reload-config').set(admin());
    rmSync(envFile(), { recursive: true });
    expectEnvelope(res, 400, 'INVALID_REQUEST');
    expect(res.body.error.details.fields[0].path).toBe('ENV_FILE');
  });
});

describe('planReload', () => {
  it('splits changed settings into live and needs_restart; the applied config keeps old restart-only values', () => {
    const plan = planReload({ A: 1, B: [1], C: 'x' }, { A: 2, B: [1], C: 'y' }, new Set(['A']));
    expect(plan).toEqual({ changed: ['A', 'C'], live: ['A'], needs_restart: ['C'], applied: { A: 2, B: [1], C: 'x' } });
  });
});
