import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDigitalOceanEmulator, type EmulatorHandle } from '@droplet-mesh/cloud-emulators';
import { createDeployerDroplet } from '@droplet-mesh/deployer/dist/app.js';
import { createMultiCloudDroplet } from '@droplet-mesh/multi-cloud-manager/dist/app.js';
import { startNatsServer, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { expectNoStack, quiet, runCli, scratchHome } from './support/cli.js';
import { ADMIN_KEY, startProxyManager, startRegistry } from './support/mesh.js';

// The operator commands meshctl gained for issue 17 (projects, environments, services,
// secrets, certificates, snapshots, config reload), each against a real droplet.

const project = `op${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'meshctl-operator-'));
const home = scratchHome();
const DO_TOKEN = 'operator-test-do-token-1234';
let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;
let proxy: Awaited<ReturnType<typeof startProxyManager>>;
let deployer: Awaited<ReturnType<typeof createDeployerDroplet>>;
let mcm: ReturnType<typeof createMultiCloudDroplet>;
let emulator: EmulatorHandle;
let urls: Record<string, string>;
const env = () => ({ HOME: home.home, MESHCTL_CONFIG: home.config, ...urls });
const cli = async (args: string[], input?: string) => {
  const r = await runCli(args, env(), { input });
  expectNoStack(r.stderr);
  return r;
};
const json = async (args: string[]) => {
  const r = await cli([...args, '--json']);
  if (r.code !== 0) throw new Error(`meshctl ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
};

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
  const trust = { REGISTRY_URL: reg.url, JWKS_URL: `${reg.url}/.well-known/jwks.json` };
  proxy = await startProxyManager(nats.url, reg.url);
  deployer = await createDeployerDroplet({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64'),
      DATA_DIR: join(tmp, 'deployer'),
      CRASH_RESTART: 'false',
      ...trust,
    },
    logDestination: quiet(),
  });
  emulator = await startDigitalOceanEmulator({ token: DO_TOKEN, seedInstances: 1, actionDurationMs: 50 });
  mcm = createMultiCloudDroplet({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      DO_TOKEN,
      DO_API_URL: emulator.apiUrl,
      LOCAL_PROVIDER_ENABLED: 'false',
      ...trust,
    },
    registry: false,
    logDestination: quiet(),
  });
  urls = {
    MESHCTL_DEPLOYER_URL: (await deployer.start()).url,
    MESHCTL_MULTI_CLOUD_MANAGER_URL: (await mcm.start()).url,
    MESHCTL_PROXY_MANAGER_URL: proxy.url,
  };
  const login = await runCli(['login', '--registry', reg.url, '--admin-key', ADMIN_KEY], env());
  if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
}, 90_000);

afterAll(async () => {
  await deployer?.stop();
  await mcm?.stop();
  await emulator?.close();
  await proxy?.close();
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
  rmSync(tmp, { recursive: true, force: true });
  home.remove();
}, 60_000);

describe('projects, environments, services, secrets', () => {
  it('creates, lists, shows and removes them; a secret comes from stdin and is never shown', async () => {
    expect((await json(['projects', 'create', project, '--description', 'the shop'])).name).toBe(project);
    expect((await json(['environments', 'create', 'uat', '--project', project, '--var', 'MODE=test'])).env).toEqual({ MODE: 'test' });
    const svc = await json(['services', 'create', 'web', '--project', project, '--domain', 'web.op.test', '--https', '--replicas', '2']);
    expect(svc).toMatchObject({ name: 'web', type: 'web', domain: 'web.op.test', https: true, replicas: 2 });
    const shown = await cli(['projects', 'show', project]);
    expect(shown.stdout).toContain('services: web\n');
    expect(shown.stdout).toContain('environments: uat');

    const set = await cli(['secrets', 'set', 'API_KEY', '--project', project, '--env', 'uat'], 'top-secret-value-42\n');
    expect(set.code).toBe(0);
    expect(set.stdout).toContain('secret API_KEY set');
    const ls = await cli(['secrets', 'ls', '--project', project, '--env', 'uat']);
    expect(ls.stdout).toMatch(/^NAME\s+UPDATED\nAPI_KEY\s+\d{4}-/);
    expect(ls.stdout).not.toContain('top-secret-value-42');
    const empty = await cli(['secrets', 'set', 'EMPTY', '--project', project, '--env', 'uat'], '');
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain('no value on stdin');
    expect((await cli(['secrets', 'rm', 'API_KEY', '--project', project, '--env', 'uat'])).code).toBe(0);

    // The deployer's own refusal comes back as its envelope.
    const busy = await cli(['projects', 'rm', project]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/^error: CONFLICT: /);
    for (const args of [
      ['services', 'rm', 'web', '--project', project],
      ['environments', 'rm', 'uat', '--project', project],
      ['projects', 'rm', project],
    ])
      expect((await cli(args)).code).toBe(0);
  }, 60_000);
});

describe('certificates', () => {
  it('uploads a certificate, lists it by the names it covers, removes it', async () => {
    const cert = join(tmp, 'cert.pem');
    const key = join(tmp, 'key.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert].concat([
        '-subj',
        '/CN=*.op.test',
        '-addext',
        'subjectAltName=DNS:*.op.test',
        '-days',
        '30',
      ]),
      { stdio: 'ignore' },
    );
    const up = await json(['certificates', 'upload', '--cert', cert, '--key', key]);
    expect(up.certificate.names).toEqual(['*.op.test']);
    const ls = await cli(['certs', 'ls']);
    expect(ls.stdout).toMatch(new RegExp(`upload\\s+${up.certificate.id}\\s+\\*\\.op\\.test\\s+\\d{4}-\\d\\d-\\d\\d \\((29|30)d\\)`));
    expect(ls.stdout).not.toContain('PRIVATE KEY');
    expect((await cli(['certificates', 'rm', up.certificate.id])).code).toBe(0);
    const missing = await cli(['certificates', 'upload', '--cert', join(tmp, 'nope.pem'), '--key', key]);
    expect(missing.stderr).toContain('cannot read the certificate file');
  });
});

describe('snapshots', () => {
  it('snapshots an instance on the DigitalOcean emulator and lists it', async () => {
    const instances = await json(['instances', 'ls', '--provider', 'digitalocean']);
    const id = instances.items[0].id as string;
    // Listed ids are already provider:id.
    const made = await cli(['snapshots', 'create', id, '--name', 'before-upgrade', '--wait']);
    expect(`${made.code} ${made.stderr}`).toBe('0 ');
    const listed = await json(['snapshots', 'ls', '--provider', 'digitalocean']);
    expect(listed.snapshots.map((x: { name: string }) => x.name)).toContain('before-upgrade');
  });
});

describe('config reload', () => {
  it('reloads a droplet from its env file and says what applied and what needs a restart', async () => {
    writeFileSync(join(tmp, 'deployer', 'deployer.env'), 'LOG_LEVEL=debug\nHEARTBEAT_INTERVAL_S=7\n');
    const r = await cli(['config', 'reload', 'deployer']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('deployer: applied LOG_LEVEL\ndeployer: restart to apply HEARTBEAT_INTERVAL_S\n');
    writeFileSync(join(tmp, 'deployer', 'deployer.env'), 'LOG_LEVEL=shouting\n');
    const bad = await cli(['config', 'reload', 'deployer']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('LOG_LEVEL');
  });
});
