import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { capture } from './helpers.js';
import { startTestDeployer } from './deployer-harness.js';

// Finding 6 of the zero-trust review, the deployer's part: `POST /servers` let any
// `write` caller point dockerode at any tcp:// host (plain HTTP), and what came back was
// echoed. A tcp:// engine now needs TLS and the admin scope, a unix:// socket the admin
// scope, every remote host passes the address policy, and a tcp:// engine is tried once
// before it is saved, its failure described without the remote's own words.

const BANNER = 'SECRET-BANNER-from-the-remote-5e2a';
let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: DeployerDroplet;
const logs = capture();
const tmp = mkdtempSync(join(tmpdir(), 'deployer-srv-'));
let tls: { ca: string; cert: string; key: string };
let liar: TlsServer;
let liarPort: number;
let fakeEngine: TlsServer;
let fakeEnginePort: number;
let plain: HttpServer;
let plainPort: number;

const as = (scopes: string[]) => ({ Authorization: `Bearer ${authority.mint({ scopes: scopes as never })}` });
const post = (body: object, scopes = ['read', 'write', 'admin']) => request(droplet.app).post('/servers').set(as(scopes)).send(body);

/** A TLS server that answers every request with `status` and `body`. */
async function tlsAnswering(status: string, body: string): Promise<[TlsServer, number]> {
  const s = createTlsServer({ key: tls.key, cert: tls.cert }, (sock) => {
    sock.on('error', () => undefined);
    sock.once('data', () =>
      sock.end(
        `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      ),
    );
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return [s, (s.address() as { port: number }).port];
}

beforeAll(async () => {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(tmp, 'key.pem'),
      '-out',
      join(tmp, 'cert.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'pipe' },
  );
  const cert = readFileSync(join(tmp, 'cert.pem'), 'utf8');
  tls = { ca: cert, cert, key: readFileSync(join(tmp, 'key.pem'), 'utf8') };
  [liar, liarPort] = await tlsAnswering('500 Internal Server Error', `${BANNER}: here is what I am`);
  [fakeEngine, fakeEnginePort] = await tlsAnswering('200 OK', 'OK');
  plain = createHttpServer((_req, res) => res.end(BANNER));
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', () => r()));
  plainPort = (plain.address() as { port: number }).port;

  nats = await startNatsServer();
  authority = await startTestAuthority();
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    env: { LOG_LEVEL: 'debug', DRAIN_S: undefined },
    registry: 'none',
    logDestination: logs,
  });
}, 60_000);

afterAll(async () => {
  await droplet?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  for (const s of [liar, fakeEngine, plain]) await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  rmSync(tmp, { recursive: true, force: true });
});

const gone = async (id: string) =>
  (
    await request(droplet.app)
      .get(`/servers/${id}`)
      .set(as(['read']))
  ).status === 404;

describe('POST /servers', () => {
  it('a tcp:// engine needs the admin scope (403 for write)', async () => {
    const res = await post({ id: 'tcp-write', docker_host: `tcp://127.0.0.1:${fakeEnginePort}`, tls }, ['read', 'write']);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
    expect(await gone('tcp-write')).toBe(true);
  });

  it('a unix:// socket needs the admin scope too', async () => {
    const res = await post({ id: 'sock', docker_host: 'unix:///var/run/docker.sock' }, ['read', 'write']);
    expect(res.status).toBe(403);
  });

  it('a tcp:// engine needs TLS material (400)', async () => {
    const res = await post({ id: 'tcp-plain', docker_host: `tcp://127.0.0.1:${plainPort}` });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_REQUEST');
    expect(res.text).not.toContain(BANNER);
    expect(await gone('tcp-plain')).toBe(true);
  });

  it.each([
    ['tcp://169.254.169.254:2376', undefined],
    ['tcp://100.100.100.200:2376', undefined],
    ['tcp://127.0.0.1:4222', undefined],
    ['tcp://127.0.0.1:8000', undefined],
    ['ssh://root@169.254.169.254', undefined],
    ['ssh://root@127.0.0.1:8200', undefined],
    ['ssh://root@10.0.0.7', '169.254.169.254'],
  ])('refuses %s (address %s) by the address policy (400)', async (docker_host, address) => {
    const res = await post({ id: 'meta', docker_host, ...(address ? { address } : {}), ...(docker_host.startsWith('tcp') ? { tls } : {}) });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'INVALID_REQUEST', details: { reason: 'address_refused' } });
    expect(await gone('meta')).toBe(true);
  });

  it('an engine that answers wrongly is refused, and nothing of its answer comes back or reaches a log line', async () => {
    const res = await post({ id: 'liar', docker_host: `tcp://127.0.0.1:${liarPort}`, tls });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(600);
    expect(res.status).not.toBe(500);
    expect(res.body.status).toBe('error');
    expect(res.text).not.toContain(BANNER);
    expect(res.body.error.message).toMatch(/HTTP 500/);
    expect(await gone('liar')).toBe(true);
    // Not TLS at all: the handshake fails, described by its code only.
    const notTls = await post({ id: 'not-tls', docker_host: `tcp://127.0.0.1:${plainPort}`, tls });
    expect(notTls.body.status).toBe('error');
    expect(notTls.text).not.toContain(BANNER);
    expect(await gone('not-tls')).toBe(true);
    expect(logs.text()).not.toContain(BANNER);
  });

  it('an engine that answers its ping over TLS is added by an admin, its TLS material never shown', async () => {
    const res = await post({ id: 'remote', docker_host: `tcp://127.0.0.1:${fakeEnginePort}`, tls });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id: 'remote', tls: true });
    expect(res.text).not.toContain('PRIVATE KEY');
    const one = await request(droplet.app)
      .get('/servers/remote')
      .set(as(['read']));
    expect(one.text).not.toContain('PRIVATE KEY');
  });

  it('ssh:// engines at ordinary addresses stay open to write callers', async () => {
    const res = await post({ id: 'ssh-box', docker_host: 'ssh://deploy@10.20.30.40' }, ['read', 'write']);
    expect(res.status).toBe(201);
  });
});
