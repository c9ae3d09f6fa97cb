import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeployerDroplet } from '@droplet-mesh/deployer/dist/app.js';
import { startNatsServer, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { expectNoStack, quiet, runCli, scratchHome } from './support/cli.js';
import { ADMIN_KEY, startRegistry } from './support/mesh.js';

// Issue 17: `meshctl registries` (a project's or the mesh-wide pull credentials, the password
// from stdin only) and `meshctl placements`, against a real deployer.

const project = `rp${randomBytes(3).toString('hex')}`;
const HOST = 'registry.example.com:5000';
const PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'meshctl-rp-'));
const home = scratchHome();
let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;
let deployer: Awaited<ReturnType<typeof createDeployerDroplet>>;
let deployerUrl: string;
/** Everything meshctl printed: the password must never be in it. */
const printed: string[] = [];
const env = () => ({ HOME: home.home, MESHCTL_CONFIG: home.config, MESHCTL_DEPLOYER_URL: deployerUrl });
const cli = async (args: string[], input?: string) => {
  const r = await runCli(args, env(), { input });
  expectNoStack(r.stderr);
  printed.push(r.stdout, r.stderr);
  return r;
};
const json = async (args: string[], input?: string) => {
  const r = await cli([...args, '--json'], input);
  if (r.code !== 0) throw new Error(`meshctl ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
};

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
  deployer = await createDeployerDroplet({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64'),
      DATA_DIR: join(tmp, 'deployer'),
      CRASH_RESTART: 'false',
      REGISTRY_URL: reg.url,
      JWKS_URL: `${reg.url}/.well-known/jwks.json`,
    },
    logDestination: quiet(),
  });
  deployerUrl = (await deployer.start()).url;
  const login = await runCli(['login', '--registry', reg.url, '--admin-key', ADMIN_KEY], env());
  if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
  await json(['projects', 'create', project]);
  await json(['environments', 'create', 'prod', '--project', project]);
  await json(['services', 'create', 'web', '--project', project]);
}, 60_000);

afterAll(async () => {
  await deployer?.stop();
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
  rmSync(tmp, { recursive: true, force: true });
  home.remove();
}, 30_000);

describe('meshctl registries', () => {
  it("stores a project's credentials with the password from stdin, lists host and username, never the password", async () => {
    const set = await json(['registries', 'set', HOST, '--project', project, '--username', 'ci-puller'], `${PASSWORD}\n`);
    expect(set).toMatchObject({ host: HOST, username: 'ci-puller' });
    const ls = await cli(['registries', 'ls', '--project', project]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(new RegExp(`^HOST\\s+USERNAME\\s+UPDATED\\n${HOST}\\s+ci-puller\\s+\\d{4}-`));
    // Mesh-wide is another list: still empty.
    expect((await json(['registries', 'ls'])).items).toEqual([]);
    // Sealed in the deployer: its bucket holds neither the password nor the username in the clear.
    const raw = await (await deployer.ctx.bus.kv('deployer')).get(
      `project-registry-credentials.${project}.${Buffer.from(HOST).toString('base64url')}`,
    );
    expect(raw?.string()).toBeTruthy();
    expect(raw!.string()).not.toContain(PASSWORD);
  }, 30_000);

  it('refuses a password as an argument, an empty stdin, and a bad host', async () => {
    const arg = await cli(['registries', 'set', HOST, '--username', 'u', '--password', 'in-the-shell-history']);
    expect(arg.code).not.toBe(0);
    expect(arg.stderr).toMatch(/unknown option '--password'/);
    const empty = await cli(['registries', 'set', HOST, '--project', project, '--username', 'u'], '');
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain('no password on stdin');
    const bad = await cli(['registries', 'set', 'not a host', '--project', project, '--username', 'u'], 'x');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: INVALID_REQUEST: /);
  }, 30_000);

  it('stores and forgets mesh-wide credentials (admin), and forgets the project ones', async () => {
    expect(await json(['registries', 'set', HOST, '--username', 'mesh-puller'], PASSWORD)).toEqual(expect.objectContaining({ host: HOST }));
    expect((await json(['registries', 'ls'])).items).toEqual([expect.objectContaining({ host: HOST })]);
    expect((await cli(['registries', 'rm', HOST])).code).toBe(0);
    expect((await json(['registries', 'rm', HOST, '--project', project])).deleted).toBe(HOST);
    expect((await json(['registries', 'ls', '--project', project])).items).toEqual([]);
    const again = await cli(['registries', 'rm', HOST, '--project', project]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: NOT_FOUND: /);
    for (const text of printed) expect(text).not.toContain(PASSWORD);
  }, 30_000);
});

describe('meshctl placements', () => {
  it('sets, lists and removes a placement over the deployer routes', async () => {
    const none = await cli(['placements', 'ls', 'web', '--project', project]);
    expect(none.stdout).toContain('no placement: web runs on the local server');
    const set = await json(['placements', 'set', 'web', '--project', project, '--env', 'prod', '--server', 'local=2']);
    expect(set).toMatchObject({ project, service: 'web', environment: 'prod', servers: [{ server_id: 'local', replicas: 2 }] });
    const ls = await cli(['placements', 'ls', 'web', '--project', project]);
    expect(ls.stdout).toMatch(/^ENVIRONMENT\s+SERVERS\s+UPDATED\nprod\s+local=2\s+\d{4}-/);
    expect((await json(['placements', 'ls', 'web', '--project', project, '--env', 'prod'])).items).toHaveLength(1);
    // What the deployer stores is what meshctl sent.
    expect((await deployer.ctx.bus.kv('deployer').then((kv) => kv.get(`placement.${project}.web.prod`)))?.json()).toMatchObject({
      servers: [{ server_id: 'local', replicas: 2 }],
    });
    expect((await json(['placements', 'rm', 'web', '--project', project, '--env', 'prod'])).deleted).toBe('web');
    expect((await json(['placements', 'ls', 'web', '--project', project])).items).toEqual([]);
  }, 30_000);

  it('names what is wrong: an unknown server, a bad replica count, an unknown service', async () => {
    const unknown = await cli(['placements', 'set', 'web', '--project', project, '--env', 'prod', '--server', 'nosuch']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: INVALID_REQUEST: no server 'nosuch'/);
    const zero = await cli(['placements', 'set', 'web', '--project', project, '--env', 'prod', '--server', 'local=0']);
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toContain('expected SERVER or SERVER=REPLICAS');
    const missing = await cli(['placements', 'ls', 'nosuch', '--project', project]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: NOT_FOUND: /);
  }, 30_000);
});
