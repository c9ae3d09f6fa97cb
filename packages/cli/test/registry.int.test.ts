import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { startNatsServer, freePort, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { expectNoStack, runCli, scratchHome } from './support/cli.js';
import { ADMIN_KEY, registerRecord, startRegistry } from './support/mesh.js';

let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;
const home = scratchHome();
const env = () => ({ HOME: home.home, MESHCTL_CONFIG: home.config });

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
  // A second record whose URL answers nothing: status must say so, not fail.
  await registerRecord(reg.url, {
    id: 'ghost',
    url: `http://127.0.0.1:${await freePort()}`,
    version: '9.9.9',
    kind: 'service',
    health_path: '/health',
  });
}, 60_000);

afterAll(async () => {
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
  home.remove();
});

describe('meshctl login', () => {
  it('stores {registry_url, token, expires_at} with mode 0600 and never prints the admin key', async () => {
    const r = await runCli(['login', '--registry', reg.url, '--admin-key', ADMIN_KEY], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`logged in to ${reg.url} as operator`);
    expect(r.stdout + r.stderr).not.toContain(ADMIN_KEY);
    expect(statSync(home.config).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(readFileSync(home.config, 'utf8'));
    expect(Object.keys(saved).sort()).toEqual(['expires_at', 'registry_url', 'token']);
    expect(saved.registry_url).toBe(reg.url);
    expect(Date.parse(saved.expires_at)).toBeGreaterThan(Date.now());
    // The stored token is a real one: the registry accepts it.
    const res = await fetch(`${reg.url}/droplets`, { headers: { authorization: `Bearer ${saved.token}` } });
    expect(res.status).toBe(200);
  });

  it('takes the registry and key from REGISTRY_URL / REGISTRY_ADMIN_KEY, or the key from stdin', async () => {
    const other = scratchHome();
    try {
      const fromEnv = await runCli(['login', '--json'], {
        HOME: other.home,
        MESHCTL_CONFIG: other.config,
        REGISTRY_URL: reg.url,
        REGISTRY_ADMIN_KEY: ADMIN_KEY,
      });
      expect(fromEnv.code).toBe(0);
      const summary = JSON.parse(fromEnv.stdout);
      expect(summary).toMatchObject({
        registry_url: reg.url,
        droplet_id: 'operator',
        scopes: ['read', 'write', 'admin'],
        config_path: other.config,
      });
      expect(fromEnv.stdout).not.toContain(ADMIN_KEY);
      expect(JSON.stringify(summary)).not.toContain(JSON.parse(readFileSync(other.config, 'utf8')).token);
      const fromStdin = await runCli(
        ['login', '--registry', reg.url, '--admin-key-stdin'],
        { HOME: other.home, MESHCTL_CONFIG: other.config },
        { input: `${ADMIN_KEY}\n` },
      );
      expect(fromStdin.code).toBe(0);
    } finally {
      other.remove();
    }
  });

  it('a wrong admin key prints the UDC error and exits 1, without a stack or the key', async () => {
    const other = scratchHome();
    try {
      const r = await runCli(['login', '--registry', reg.url, '--admin-key', 'wrong-key-wrong-key-wrong'], {
        HOME: other.home,
        MESHCTL_CONFIG: other.config,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: UNAUTHORIZED: .+/);
      expect(r.stderr).not.toContain('wrong-key-wrong-key-wrong');
      expectNoStack(r.stderr);
      expect(() => statSync(other.config)).toThrow();
    } finally {
      other.remove();
    }
  });
});

describe('meshctl status', () => {
  it('shows every record with status, version, last heartbeat and live health as a table', async () => {
    const r = await runCli(['status'], env());
    expect(r.code).toBe(0);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    expect(header.split(/\s{2,}/)).toEqual(['ID', 'KIND', 'STATUS', 'HEALTH', 'VERSION', 'LAST HEARTBEAT', 'URL']);
    const byId = Object.fromEntries(rows.map((l) => [l.split(/\s+/)[0], l.split(/\s{2,}/)]));
    // The registry's own record gets its first heartbeat one interval after start: '-' until then.
    expect(byId.registry).toEqual(['registry', 'service', 'active', 'active', '0.1.0', expect.stringMatching(/^(-|\d+s ago)$/), reg.url]);
    expect(byId.ghost.slice(0, 6)).toEqual(['ghost', 'service', 'active', 'unreachable', '9.9.9', expect.stringMatching(/^\d+s ago$/)]);
  });

  it('--json prints parseable JSON with the live health of each record', async () => {
    const r = await runCli(['status', '--json'], env());
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    const registry = body.droplets.find((d: { id: string }) => d.id === 'registry');
    expect(registry).toMatchObject({ id: 'registry', status: 'active', version: '0.1.0', health: { status: 'active', http_status: 200 } });
    expect(body.droplets.find((d: { id: string }) => d.id === 'ghost').health.status).toBe('unreachable');
    // --json is accepted before the command too.
    expect(JSON.parse((await runCli(['--json', 'status'], env())).stdout).droplets.length).toBe(body.droplets.length);
  });
});

describe('meshctl logs', () => {
  it("prints a droplet's recent log lines, or them as JSON", async () => {
    const lines = await runCli(['logs', 'registry', '--limit', '20'], env());
    expect(lines.code).toBe(0);
    expect(lines.stdout).toMatch(/^\d{4}-\d\d-\d\dT\S+ (INFO|WARN) /m);
    const json = JSON.parse((await runCli(['logs', 'registry', '--json', '--level', 'info'], env())).stdout);
    expect(Array.isArray(json.logs)).toBe(true);
    expect(json.logs.length).toBeGreaterThan(0);
  });

  it('a bad query is a UDC error with the failing field', async () => {
    const r = await runCli(['logs', 'registry', '--level', 'loud'], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: INVALID_REQUEST: invalid query\n {2}level: /);
    expectNoStack(r.stderr);
    const json = await runCli(['logs', 'registry', '--level', 'loud', '--json'], env());
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'error', error: { code: 'INVALID_REQUEST' }, http_status: 400 });
  });
});

describe('errors', () => {
  it('an expired stored token says to run meshctl login, before any request', async () => {
    const other = scratchHome();
    try {
      await runCli(['login', '--registry', reg.url, '--admin-key', ADMIN_KEY], { HOME: other.home, MESHCTL_CONFIG: other.config });
      const saved = JSON.parse(readFileSync(other.config, 'utf8'));
      writeFileSync(other.config, JSON.stringify({ ...saved, expires_at: '2020-01-01T00:00:00.000Z' }));
      const r = await runCli(['status'], { HOME: other.home, MESHCTL_CONFIG: other.config });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        'error: UNAUTHORIZED: the token from `meshctl login` expired at 2020-01-01T00:00:00.000Z; run `meshctl login` again',
      );
      expectNoStack(r.stderr);
    } finally {
      other.remove();
    }
  });

  it('a token the registry refuses prints its code and message and the login hint', async () => {
    const r = await runCli(['status'], { HOME: home.home, MESHCTL_REGISTRY_URL: reg.url, MESHCTL_TOKEN: 'not-a-jwt' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: UNAUTHORIZED: malformed token\nhint: run `meshctl login/);
  });

  it('not logged in says so', async () => {
    const other = scratchHome();
    try {
      const r = await runCli(['routes', 'ls'], { HOME: other.home, MESHCTL_CONFIG: other.config });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: UNAUTHORIZED: not logged in/);
    } finally {
      other.remove();
    }
  });

  it('a droplet that is not registered is NOT_FOUND with a way out', async () => {
    const r = await runCli(['incidents'], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "error: NOT_FOUND: 'health-monitor' is not registered in the registry\nhint: pass --url or set MESHCTL_HEALTH_MONITOR_URL\n",
    );
  });

  it('an unreachable droplet names the URL that could not be reached', async () => {
    const port = await freePort();
    const r = await runCli(['routes', 'ls', '--url', `http://127.0.0.1:${port}`], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `error: DEPENDENCY_UNAVAILABLE: could not reach proxy-manager at http://127.0.0.1:${port}/proxies: ECONNREFUSED\n`,
    );
    const viaEnv = await runCli(['deployments'], { ...env(), MESHCTL_DEPLOYER_URL: `http://127.0.0.1:${port}` });
    expect(viaEnv.stderr).toContain(`could not reach deployer at http://127.0.0.1:${port}/deployments`);
  });

  it('usage errors come from the parser, with exit 1 and no stack', async () => {
    const r = await runCli(['deploy', 'web', '--project', 'p', '--env', 'prod'], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: INVALID_REQUEST: give exactly one of --image, --git or --dir\n');
    const unknown = await runCli(['routes', 'set', 'a', '--domain', 'a.test', '--upstream', 'nope'], env());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: option '--upstream <host:port\[:weight\]>' argument 'nope' is invalid/);
    expectNoStack(unknown.stderr);
  });
});
