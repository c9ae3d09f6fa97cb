import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespacedEngineUnavailable, startNamespacedEngine, type NamespacedEngine } from '@droplet-mesh/docker-testing';
import request from 'supertest';
import { Bus, sendMessage, sendRequestSchema } from '@droplet-mesh/udc-kit';
import {
  freePort,
  startNatsServer,
  startTestAuthority,
  tokenOnlyRegistry,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createHealthMonitor, type HealthMonitor } from '../src/health-monitor.js';
import type { Incident, Observation } from '../src/domain/types.js';
import { SERVER_TARGET_PREFIX } from '../src/targets/server-engines.js';
import { quiet } from './helpers/quiet.js';

// Servers are watched: every engine the deployer lists is pinged (GET /_ping) over mutual
// TLS with a client certificate of the mesh CA the deployer issues, under the same quorum as
// apps; an engine declared down opens one incident (the deployer follows it and moves the
// server's replicas). The deployer here is a stand-in on the bus answering its two UDC
// actions; the mesh CA is made with openssl; the engine is a real dockerd in its own network namespace.
const why = namespacedEngineUnavailable();
const d = why ? describe.skip : describe;
if (why) console.warn(`server-engines: skipped (${why})`);

const SERVER = 'srv-a';
const ROGUE = 'srv-rogue';
const tmp = mkdtempSync(join(tmpdir(), 'hm-engines-'));
let nats: NatsServerHandle;
let authority: TestAuthority;
let bus: Bus;
let engine: NamespacedEngine;
let rogue: HttpsServer;
let roguePort: number;
let monitor: HealthMonitor;
const observations: Observation[] = [];
const opened: Incident[] = [];
const asked: string[] = [];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: tmp, stdio: 'pipe' });
}

/** A CA, and a certificate it signs (server: the engine identity as SAN; client: clientAuth). */
function makeCa(name: string): void {
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`].concat([
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
    ]),
  );
}
function issue(ca: string, name: string, ext: string): { cert: string; key: string } {
  openssl([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${name}`,
  ]);
  writeFileSync(join(tmp, `${name}.ext`), ext);
  openssl([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
  ]);
  return { cert: readFileSync(join(tmp, `${name}.pem`), 'utf8'), key: readFileSync(join(tmp, `${name}.key`), 'utf8') };
}
const identity = (id: string) => `${id}.engine.droplet-mesh.internal`;

beforeAll(async () => {
  if (why) return;
  makeCa('mesh');
  makeCa('foreign');
  const meshCa = readFileSync(join(tmp, 'mesh.pem'), 'utf8');
  const server = issue('mesh', 'server', `subjectAltName=DNS:${identity(SERVER)}\nextendedKeyUsage=serverAuth\n`);
  const client = issue('mesh', 'client', 'extendedKeyUsage=clientAuth\n');
  // An "engine" whose certificate another CA signed: the monitor must refuse it.
  const foreign = issue('foreign', 'rogue', `subjectAltName=DNS:${identity(ROGUE)}\nextendedKeyUsage=serverAuth\n`);
  rogue = createHttpsServer({ ...foreign }, (_req, res) => res.end('OK'));
  roguePort = await freePort();
  await new Promise<void>((r) => rogue.listen(roguePort, '127.0.0.1', () => r()));
  engine = await startNamespacedEngine({ tls: { ca: meshCa, ...server } });

  nats = await startNatsServer();
  authority = await startTestAuthority();
  bus = await Bus.connect({ url: nats.url, name: 'test-deployer' });
  const replyTo = (m: { respond: (s: string) => boolean }, data: unknown) =>
    m.respond(JSON.stringify({ received: true, trace_id: 't', processed_at: new Date().toISOString(), result: 'success', data }));
  bus.nc.subscribe('udc.deployer.message', {
    callback: (_e, m) => {
      const action = (m.json() as { payload: { action: string } }).payload.action;
      asked.push(action);
      if (action === 'servers.engines')
        replyTo(m, {
          engines: [
            { server_id: SERVER, host: engine.address, port: engine.port, servername: identity(SERVER) },
            { server_id: ROGUE, host: '127.0.0.1', port: roguePort, servername: identity(ROGUE) },
          ],
        });
      else if (action === 'mesh-ca.monitor-certificate')
        replyTo(m, { ca: meshCa, ...client, expires_at: new Date(Date.now() + 86_400_000).toISOString() });
    },
  });
  bus.nc.subscribe('health-monitor.observations', { callback: (_e, m) => void observations.push(...m.json<Observation[]>()) });
  bus.nc.subscribe('udc.health-monitor.events.incident.opened', { callback: (_e, m) => void opened.push(m.json<Incident>()) });

  monitor = createHealthMonitor({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      MONITOR_ID: 'm1',
      MONITORS_PER_TARGET: '1',
      CHECK_INTERVAL_MS: '500',
      CHECK_TIMEOUT_MS: '1000',
      RECHECK_DELAY_MS: '100',
      TARGET_REFRESH_MS: '500',
      CONTROL_CHECK_URLS: '[]',
      DIGEST_INTERVAL_MIN: '0',
      ...authority.env(),
    },
    registry: tokenOnlyRegistry(() => authority.mint({ sub: 'health-monitor', scopes: ['read', 'write'] })),
    logDestination: quiet(),
  });
  await monitor.start();
}, 120_000);

afterAll(async () => {
  await monitor?.stop();
  await bus?.close();
  await nats?.stop();
  await authority?.close();
  await engine?.stop();
  await new Promise<void>((r) => (rogue ? rogue.close(() => r()) : r()));
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

d('server engines watched by health-monitor', () => {
  it('pings each engine over mutual TLS with the certificate the deployer issued; an engine of another CA fails its checks', async () => {
    await waitFor('engine seen up', () => observations.some((o) => o.target_id === `${SERVER_TARGET_PREFIX}${SERVER}` && o.ok), 15_000);
    expect(asked).toContain('mesh-ca.monitor-certificate');
    const up = observations.find((o) => o.target_id === `${SERVER_TARGET_PREFIX}${SERVER}` && o.ok)!;
    expect(up.url).toBe(`https://${engine.address}:${engine.port}/_ping`);
    await waitFor('rogue checked', () => observations.some((o) => o.target_id === `${SERVER_TARGET_PREFIX}${ROGUE}`), 15_000);
    const bad = observations.filter((o) => o.target_id === `${SERVER_TARGET_PREFIX}${ROGUE}`);
    expect(bad.every((o) => !o.ok)).toBe(true);
    expect(bad[0].error).toMatch(/CERT|SIGNATURE|ISSUER|SELF_SIGNED/);
  }, 30_000);

  it('an engine that dies is declared down by the quorum and opens exactly one incident', async () => {
    const id = `${SERVER_TARGET_PREFIX}${SERVER}`;
    expect(opened.some((i) => i.target_id === id)).toBe(false);
    engine.kill();
    await waitFor('incident opened', () => opened.some((i) => i.target_id === id), 15_000);
    await new Promise((r) => setTimeout(r, 3000));
    const mine = opened.filter((i) => i.target_id === id);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ target_id: id, status: 'open' });
    // The recovery is a person's: the deployer moves the replicas, nothing reboots the machine from here.
    expect(mine[0].recovery.policy).toEqual(['alert']);
    // The deployer's steps go on that incident's timeline.
    const note = (target_id: string) =>
      sendMessage(
        bus,
        'deployer',
        sendRequestSchema.parse({
          target: 'health-monitor',
          message_type: 'command',
          payload: { action: 'incident.note', target_id, event: 'replicas.moving', detail: { moves: [{ target_id: 'app-x-web-prod' }] } },
          retry_count: 0,
        }),
        monitor.droplet.ctx.logger,
        authority.mint({ sub: 'deployer', scopes: ['read', 'write'] }),
      );
    expect((await note(id)).result).toBe('success');
    expect((await note(`${SERVER_TARGET_PREFIX}nothing-open`)).error?.code).toBe('NOT_FOUND');
    const timeline = (
      await request(monitor.droplet.app)
        .get(`/incidents/${mine[0].id}`)
        .set({ Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` })
    ).body.timeline as Array<{ event: string; by: string; detail?: unknown }>;
    expect(timeline.map((t) => t.event)).toEqual(expect.arrayContaining(['opened', 'replicas.moving']));
    expect(timeline.find((t) => t.event === 'replicas.moving')).toMatchObject({
      by: 'droplet:deployer',
      detail: { moves: [{ target_id: 'app-x-web-prod' }] },
    });
  }, 30_000);
});
