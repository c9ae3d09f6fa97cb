import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import {
  freePort,
  startNatsServer,
  startPebble,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type Pebble,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { cleanDocker, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { startProxyManager, type Proc } from './process-helpers.js';
import { createProject, startTestDeployer } from './deployer-harness.js';

// The deploy flow with HTTPS end to end: a service with `https: true` → its route asks for
// HTTPS → proxy-manager gets a certificate from pebble over HTTP-01 through its own nginx →
// HTTP redirects to HTTPS, which serves the new container with a certificate that verifies.
const project = uniqueProject('tls');
const domain = `${project}.mesh.test`;
let nats: NatsServerHandle;
let authority: TestAuthority;
let pebble: Pebble;
let images: TestImages;
let proxy: Proc | undefined;
let droplet: DeployerDroplet;
let httpPort: number;
let httpsPort: number;
let auth: Record<string, string>;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-tls-'));
chmodSync(tmp, 0o755); // nginx workers (nobody) serve the ACME webroot inside it

interface Answer {
  status: number;
  body: string;
  location?: string;
}

function viaHttp(path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: httpPort, path, headers: { Host: domain }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += String(c)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim(), location: res.headers.location }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

function viaHttps(ca: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: httpsPort, path: '/', servername: domain, headers: { Host: domain }, ca, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += String(c)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

beforeAll(async () => {
  images = await testImages();
  nats = await startNatsServer();
  authority = await startTestAuthority();
  httpPort = await freePort();
  httpsPort = await freePort();
  pebble = await startPebble({ httpPort });
  const pmPort = await freePort();
  proxy = await startProxyManager({
    port: pmPort,
    httpPort: httpPort,
    httpsPort: httpsPort,
    natsUrl: nats.url,
    dataDir: join(tmp, 'proxy'),
    env: { ACME_DIRECTORY_URL: pebble.directoryUrl, ACME_CA_BUNDLE: pebble.apiCaFile, ACME_EMAIL: 'ops@example.com', ...authority.env() },
  });
  droplet = await startTestDeployer({ natsUrl: nats.url, authority, dataDir: join(tmp, 'data'), env: { DRAIN_S: '0' } });
  auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  const [svc] = await createProject(droplet.app, auth, project, {
    services: [{ name: 'web', type: 'web', domain, https: true, health_path: '/health' }],
  });
  expect(svc.body.https).toBe(true);
}, 120_000);

afterAll(async () => {
  await droplet?.deployer.idle();
  await droplet?.stop();
  await proxy?.stop();
  await pebble?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('a service with https: true', () => {
  it('deploys, gets a certificate from the CA, redirects HTTP to HTTPS and serves the release over verified TLS', async () => {
    const res = await request(droplet.app)
      .post('/deployments')
      .set(auth)
      .send({ project, service: 'web', environment: 'prod', source: { image: images.v1 } });
    expect(res.status).toBe(202);
    const d = await waitDeployment(droplet.app, auth, res.body.id, 60_000);
    if (d.status !== 'succeeded') throw new Error(`deploy ${d.status}: ${d.reason}\n${proxy?.output().slice(-2000)}`);

    // The certificate is obtained in the background once the route serves HTTP.
    let redirect: Answer | undefined;
    await waitFor(
      'HTTP to redirect to HTTPS',
      async () => {
        redirect = await viaHttp('/page?q=1');
        return redirect.status === 301;
      },
      30_000,
      200,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\nproxy-manager: ${proxy?.output().slice(-3000)}`);
    });
    expect(redirect?.location).toBe(`https://${domain}:${httpsPort}/page?q=1`);
    const root = await pebble.issuanceRoot();
    expect(await viaHttps(root)).toEqual({ status: 200, body: 'version-1' });
    // The challenge path stays on plain HTTP (for renewals).
    expect((await viaHttp('/.well-known/acme-challenge/missing')).status).toBe(404);
  }, 120_000);

  it('a redeploy keeps HTTPS and switches it to the new release', async () => {
    const res = await request(droplet.app)
      .post('/deployments')
      .set(auth)
      .send({ project, service: 'web', environment: 'prod', source: { image: images.v2 } });
    const d = await waitDeployment(droplet.app, auth, res.body.id, 60_000);
    expect(d.status).toBe('succeeded');
    expect(await viaHttps(await pebble.issuanceRoot())).toEqual({ status: 200, body: 'version-2' });
    expect((await viaHttp('/')).status).toBe(301);
  }, 120_000);
});
