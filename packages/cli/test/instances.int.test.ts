import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startDigitalOceanEmulator } from '@droplet-mesh/cloud-emulators';
import { createMultiCloudDroplet } from '@droplet-mesh/multi-cloud-manager/dist/app.js';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { expectNoStack, quiet, runCli, scratchHome } from './support/cli.js';
import { ADMIN_KEY, startRegistry } from './support/mesh.js';

// The real multi-cloud-manager over the DigitalOcean emulator (the real API is unreachable
// here), registered in a real registry, driven only by meshctl.

const CLOUD_TOKEN = 'meshctl-test-cloud-token';
let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;
let emulator: Awaited<ReturnType<typeof startDigitalOceanEmulator>>;
let mcm: ReturnType<typeof createMultiCloudDroplet>;
const home = scratchHome();
const env = () => ({ HOME: home.home, MESHCTL_CONFIG: home.config });

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
  emulator = await startDigitalOceanEmulator({ token: CLOUD_TOKEN, seedInstances: 2, actionDurationMs: 100 });
  mcm = createMultiCloudDroplet({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      LOG_LEVEL: 'info',
      DO_TOKEN: CLOUD_TOKEN,
      DO_API_URL: emulator.apiUrl,
      LOCAL_PROVIDER_ENABLED: 'false',
      ACTION_POLL_INTERVAL_MS: '50',
      ACTION_WAIT_TIMEOUT_S: '10',
      REGISTRY_URL: reg.url,
      REGISTRY_KEY: ADMIN_KEY,
      JWKS_URL: `${reg.url}/.well-known/jwks.json`,
    },
    logDestination: quiet(),
  });
  await mcm.start();
  const login = await runCli(['login', '--registry', reg.url, '--admin-key', ADMIN_KEY], env());
  if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
  await waitFor(
    'multi-cloud-manager in the registry',
    async () => (await runCli(['status', '--json'], env())).stdout.includes('"id": "multi-cloud-manager"'),
    15_000,
    300,
  );
}, 90_000);

afterAll(async () => {
  await mcm?.stop();
  await emulator?.close();
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
  home.remove();
});

describe('meshctl instances', () => {
  let created: { id: string; provider_id: string };

  it('ls lists every instance as a table, or JSON with the provider reports', async () => {
    const r = await runCli(['instances'], env());
    expect(r.code).toBe(0);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    expect(header.split(/\s{2,}/)).toEqual(['ID', 'NAME', 'STATUS', 'IPV4', 'REGION', 'SIZE', 'IMAGE', 'MANAGED']);
    expect(rows).toHaveLength(2);
    expect(rows.every((l) => /^digitalocean:\d+\s/.test(l) && /\brunning\b/.test(l) && /\bno$/.test(l))).toBe(true);
    const json = JSON.parse((await runCli(['instances', 'ls', '--json', '--provider', 'digitalocean'], env())).stdout);
    expect(json.items).toHaveLength(2);
    expect(json.providers).toEqual(expect.arrayContaining([expect.objectContaining({ provider: 'digitalocean', status: 'ok' })]));
  });

  it('create --wait makes a managed, running instance that the registry lists as a host', async () => {
    const r = await runCli(
      [
        'instances',
        'create',
        'web-1',
        '--provider',
        'digitalocean',
        '--region',
        'nyc3',
        '--size',
        's-1vcpu-1gb',
        '--image',
        'ubuntu-24-04-x64',
        '--tag',
        'web',
        '--wait',
        '--json',
      ],
      env(),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body.instance).toMatchObject({ provider: 'digitalocean', name: 'web-1', status: 'running', managed: true });
    created = body.instance;
    const status = JSON.parse((await runCli(['status', '--json'], env())).stdout);
    const host = status.droplets.find(
      (d: { kind: string; metadata?: { instance_id?: string } }) => d.kind === 'host' && d.metadata?.instance_id === created.provider_id,
    );
    // A host record has no health path: status does not probe the (emulated, non-loopback) address.
    expect(host).toMatchObject({ url: expect.stringMatching(/^http:\/\//), health: null });
  });

  it('power off and on, waiting for each action', async () => {
    const off = await runCli(['instances', 'power', created.id, 'off', '--wait'], env());
    expect(off.code).toBe(0);
    expect(off.stdout).toBe(`power_off on ${created.id}: completed (instance off)\n`);
    const on = await runCli(['instances', 'power', created.id, 'on', '--wait'], env());
    expect(on.stdout).toBe(`power_on on ${created.id}: completed (instance running)\n`);
  });

  it('refusals print the UDC error: an unmanaged instance, a bad id, a bad action', async () => {
    const seeded = JSON.parse((await runCli(['instances', '--json'], env())).stdout).items.find((i: { managed: boolean }) => !i.managed);
    const refused = await runCli(['instances', 'rm', seeded.id], env());
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: CONFLICT: digitalocean:\d+ was not created by droplet-mesh/);
    expectNoStack(refused.stderr);
    const badId = await runCli(['instances', 'rm', 'web-1'], env());
    expect(badId.stderr).toBe(
      "error: INVALID_REQUEST: 'web-1' is not an instance id: expected <provider>:<id> with provider one of digitalocean, hetzner, vultr, local\n",
    );
    const badAction = await runCli(['instances', 'power', created.id, 'explode'], env());
    expect(badAction.stderr).toBe("error: INVALID_REQUEST: unknown power action 'explode': use on, off, shutdown or reboot\n");
    const missing = await runCli(['instances', 'power', 'digitalocean:999999', 'reboot'], env());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: NOT_FOUND: /);
  });

  it('rm deletes the managed instance', async () => {
    const r = await runCli(['instances', 'rm', created.id], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`deleted ${created.id}\n`);
    await waitFor(
      'the instance to disappear',
      async () => !(await runCli(['instances', '--json'], env())).stdout.includes(`"${created.id}"`),
      10_000,
      300,
    );
  });
});
