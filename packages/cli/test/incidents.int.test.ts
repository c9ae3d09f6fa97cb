import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHealthMonitor } from '@droplet-mesh/health-monitor/dist/health-monitor.js';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { quiet, runCli, scratchHome } from './support/cli.js';
import { ADMIN_KEY, startRegistry } from './support/mesh.js';

// A real health-monitor (one replica, k = 1) watching a real HTTP target that we break
// and mend; meshctl reads the incidents it records.

let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;
let monitor: ReturnType<typeof createHealthMonitor>;
let target: Server;
let control: Server;
let healthy = true;
const home = scratchHome();
const env = () => ({ HOME: home.home, MESHCTL_CONFIG: home.config });

async function listen(handler: Parameters<typeof createServer>[1]): Promise<[Server, string]> {
  const s = createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return [s, `http://127.0.0.1:${(s.address() as AddressInfo).port}`];
}

const incidents = async (args: string[] = []) =>
  JSON.parse((await runCli(['incidents', 'ls', '--json', ...args], env())).stdout).items as Array<{
    id: string;
    target_id: string;
    status: string;
  }>;

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
  let targetUrl: string;
  let controlUrl: string;
  [target, targetUrl] = await listen((req, res) => {
    res.statusCode = healthy ? 200 : 503;
    res.end(healthy ? 'ok' : 'down');
  });
  [control, controlUrl] = await listen((_req, res) => res.end('ok'));
  monitor = createHealthMonitor({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      LOG_LEVEL: 'info',
      MONITORS_PER_TARGET: '1',
      CHECK_INTERVAL_MS: '300',
      CHECK_TIMEOUT_MS: '300',
      RECHECK_DELAY_MS: '100',
      OKS_TO_RECOVER: '2',
      LEASE_TTL_MS: '1500',
      RECOVERY_POLICY: 'alert',
      DIGEST_INTERVAL_MIN: '0',
      STATIC_TARGETS: JSON.stringify([{ id: 'shop-web', url: targetUrl, recovery: ['alert'] }]),
      CONTROL_CHECK_URLS: JSON.stringify([controlUrl]),
      REGISTRY_URL: reg.url,
      REGISTRY_KEY: ADMIN_KEY,
      JWKS_URL: `${reg.url}/.well-known/jwks.json`,
    },
    logDestination: quiet(),
  });
  await monitor.start({ port: 0 });
  const login = await runCli(['login', '--registry', reg.url, '--admin-key', ADMIN_KEY], env());
  if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
  await waitFor(
    'health-monitor in the registry, answering',
    async () => (await runCli(['incidents', '--json'], env())).code === 0,
    20_000,
    300,
  );
}, 90_000);

afterAll(async () => {
  await monitor?.stop();
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
  await new Promise((r) => target?.close(r));
  await new Promise((r) => control?.close(r));
  home.remove();
});

describe('meshctl incidents against a real health-monitor', () => {
  it('no incidents while the target answers', async () => {
    const r = await runCli(['incidents'], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('ID  TARGET  STATUS  OPENED  RESOLVED  RECOVERY  REASON\n');
  });

  it('a failing target opens an incident that ls and show describe; it resolves once the target answers again', async () => {
    healthy = false;
    await waitFor('an incident for shop-web', async () => (await incidents(['--target', 'shop-web'])).length > 0, 20_000, 300);
    const [open] = await incidents(['--status', 'active']);
    expect(open).toMatchObject({ target_id: 'shop-web' });

    const ls = await runCli(['incidents'], env());
    const row = ls.stdout
      .trimEnd()
      .split('\n')
      .find((l) => l.startsWith(open.id))!;
    expect(row.split(/\s{2,}/).slice(0, 3)).toEqual([open.id, 'shop-web', expect.stringMatching(/^(open|recovering)$/)]);

    const show = await runCli(['incidents', 'show', open.id], env());
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(new RegExp(`^incident ${open.id}: shop-web (open|recovering)\nreason: .+\nopened: \\S+`));
    expect(show.stdout).toMatch(/\nAT\s+EVENT\s+BY\s+DETAIL\n/);

    healthy = true;
    await waitFor(
      'the incident to resolve',
      async () => (await incidents(['--status', 'resolved'])).some((i) => i.id === open.id),
      20_000,
      300,
    );
    const shown = JSON.parse((await runCli(['incidents', 'show', open.id, '--json'], env())).stdout);
    expect(shown).toMatchObject({ id: open.id, status: 'resolved', resolved_at: expect.any(String) });
  }, 60_000);

  it('an unknown incident is NOT_FOUND', async () => {
    const r = await runCli(['incidents', 'show', 'nope'], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: NOT_FOUND: no incident 'nope'\n");
  });

  it('ack, silence, silences, unsilence and recover an incident by hand, --json everywhere', async () => {
    healthy = false;
    let open: { id: string } | undefined;
    await waitFor(
      'a new active incident',
      async () => !!(open = (await incidents(['--status', 'active', '--target', 'shop-web']))[0]),
      20_000,
      300,
    );
    const ack = await runCli(['incidents', 'ack', open!.id, '--note', 'on it', '--json'], env());
    expect(ack.code).toBe(0);
    expect(JSON.parse(ack.stdout)).toMatchObject({ id: open!.id, acknowledged_by: 'operator' });
    const ackText = await runCli(['incidents', 'ack', open!.id], env());
    expect(ackText.stdout).toMatch(new RegExp(`^incident ${open!.id} \\(shop-web\\) acknowledged by operator at \\S+\n$`));
    expect((await runCli(['incidents'], env())).stdout).toMatch(/shop-web {2}(open|recovering) \(ack\)/);

    const silenced = await runCli(['incidents', 'silence', open!.id, '--for', '10m', '--reason', 'planned', '--json'], env());
    expect(silenced.code).toBe(0);
    const s = JSON.parse(silenced.stdout);
    expect(s).toMatchObject({ target_id: 'shop-web', by: 'operator', reason: 'planned' });
    expect(Date.parse(s.until) - Date.now()).toBeGreaterThan(590_000);
    const other = await runCli(['incidents', 'silence', 'db-1', '--target', '--for', '1h'], env());
    expect(other.stdout).toMatch(/^db-1 silenced until \S+\n$/);
    const list = JSON.parse((await runCli(['incidents', 'silences', '--json'], env())).stdout);
    expect(list.items.map((x: { target_id: string }) => x.target_id).sort()).toEqual(['db-1', 'shop-web']);
    expect((await runCli(['incidents', 'silences'], env())).stdout).toMatch(/^TARGET\s+UNTIL\s+BY\s+REASON\n/);

    // Its policy is alert-only: no step applies.
    const rec = await runCli(['incidents', 'recover', open!.id], env());
    expect(rec.code).toBe(1);
    expect(rec.stderr).toMatch(/^error: CONFLICT: no recovery step applies to 'shop-web'/);

    const un = await runCli(['incidents', 'unsilence', 'db-1', '--json'], env());
    expect(JSON.parse(un.stdout)).toEqual({ target_id: 'db-1', silenced: false });
    expect((await runCli(['incidents', 'unsilence', 'db-1'], env())).stderr).toBe("error: NOT_FOUND: target 'db-1' is not silenced\n");
    const bad = await runCli(['incidents', 'silence', open!.id, '--for', 'forever'], env());
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/duration like 90s/);

    healthy = true;
    await waitFor(
      'the incident to resolve',
      async () => (await incidents(['--status', 'resolved'])).some((i) => i.id === open!.id),
      20_000,
      300,
    );
    expect((await runCli(['incidents', 'ack', open!.id], env())).stderr).toMatch(/^error: CONFLICT: incident '.+' is resolved\n/);
  }, 60_000);
});
