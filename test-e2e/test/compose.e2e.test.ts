import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ensureDockerEngine } from '@droplet-mesh/docker-testing';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { DROPLET_IMAGES, ensureComposeImages, type ComposeImages } from '../support/compose-images.js';
import { api, httpRequest, registryToken } from '../support/compose-http.js';
import { buildComposeAppImage, removeDeployedApps } from '../support/compose-app.js';
import { COMPOSE_SERVICES, ComposeStack, removeStaleComposeProjects } from '../support/compose-stack.js';

// docker-compose.yml brought up for real: images built from a Node base made on this
// machine, `docker-compose up` (Debian's 1.29) against the Docker Engine, a smoke
// scenario through the published loopback ports, `down -v` at the end.

const DROPLETS = DROPLET_IMAGES.map((d) => d.service);
const API_SERVICES = ['registry', 'multi-cloud-manager', 'proxy-manager', 'deployer', 'health-monitor', 'console', 'orchestrator'] as const;

let stack: ComposeStack | undefined;
let images: ComposeImages;
let docker: Awaited<ReturnType<typeof ensureDockerEngine>>;
let token: string;

const s = () => stack!;
const activeRecords = async (): Promise<Record<string, { status: string; url: string }>> => {
  const r = await api('GET', `${s().url('registry')}/droplets?per_page=100`, token);
  expect(r.status).toBe(200);
  return Object.fromEntries(
    (r.body.items as Array<{ id: string; status: string; url: string }>).map((d) => [d.id, { status: d.status, url: d.url }]),
  );
};

beforeAll(async () => {
  docker = await ensureDockerEngine();
  await removeStaleComposeProjects(docker);
  images = await ensureComposeImages(docker);
  stack = await ComposeStack.create(docker, images);
  await s().up();
  await s().waitHealthy(180_000);
  token = await registryToken(s().url('registry'), s().adminKey);
}, 25 * 60_000);

afterAll(async () => {
  if (stack) await removeDeployedApps(docker, stack.project);
  await stack?.down();
}, 180_000);

describe('docker-compose.yml on the real Docker Engine', () => {
  it('builds every image locally and brings every service up healthy', async () => {
    expect([...images.built, ...images.reused]).toEqual(expect.arrayContaining(DROPLETS.map((d) => `${images.repo}/${d}:${images.tag}`)));
    expect(await s().health()).toEqual(Object.fromEntries(COMPOSE_SERVICES.map((svc) => [svc, 'healthy'])));
  });

  it('publishes only the proxy (HTTP, HTTPS) and the droplet APIs, on loopback', async () => {
    const published: Record<string, string[]> = {};
    for (const svc of COMPOSE_SERVICES) {
      const bindings = ((await s().inspect(svc)).HostConfig.PortBindings ?? {}) as Record<
        string,
        Array<{ HostIp: string; HostPort: string }> | null
      >;
      published[svc] = Object.entries(bindings)
        .flatMap(([port, list]) => (list ?? []).map((b) => `${b.HostIp}:${b.HostPort}->${port}`))
        .sort();
    }
    const p = s().ports;
    expect(published).toEqual({
      nats: [],
      registry: [`127.0.0.1:${p.registry}->8000/tcp`],
      'multi-cloud-manager': [`127.0.0.1:${p['multi-cloud-manager']}->8010/tcp`],
      'proxy-manager': [
        `127.0.0.1:${p.proxyHttp}->8080/tcp`,
        `127.0.0.1:${p['proxy-manager']}->8100/tcp`,
        `127.0.0.1:${p.proxyHttps}->8443/tcp`,
      ].sort(),
      deployer: [`127.0.0.1:${p.deployer}->8200/tcp`],
      'health-monitor': [`127.0.0.1:${p['health-monitor']}->8300/tcp`],
      console: [`127.0.0.1:${p.console}->8400/tcp`],
      orchestrator: [`127.0.0.1:${p.orchestrator}->8500/tcp`],
    });
  });

  it('runs the droplets unprivileged on a read-only root, with the Docker socket only where it is needed', async () => {
    for (const svc of DROPLETS) {
      const info = await s().inspect(svc as (typeof COMPOSE_SERVICES)[number]);
      expect({ svc, user: info.Config.User, readOnly: info.HostConfig.ReadonlyRootfs }).toEqual({ svc, user: '1000:1000', readOnly: true });
      const socket = (info.Mounts ?? []).some((m) => m.Destination === '/var/run/docker.sock');
      expect({ svc, socket }).toEqual({ svc, socket: svc === 'deployer' || svc === 'multi-cloud-manager' });
    }
  });

  it('NATS refuses clients without the credentials from .env', async () => {
    // From inside the mesh network: a droplet container's node opens a raw NATS connection.
    const probe = `const s = require('node:net').connect(4222, 'nats'); let t = '';
      s.on('data', (d) => { t += d; if (t.includes('INFO')) { s.write('CONNECT {"verbose":false,"pedantic":false}\\r\\nPING\\r\\n'); }
        if (/-ERR|PONG/.test(t)) { process.stdout.write(t.includes('Authorization Violation') ? 'refused' : 'accepted'); process.exit(0); } });
      setTimeout(() => { process.stdout.write('timeout'); process.exit(1); }, 5000);`;
    const r = await s().compose(['exec', '-T', 'registry', 'node', '-e', probe], 30_000);
    expect(r.output.trim()).toMatch(/refused$/);
  });

  it('the registry issues a token with the admin key; every droplet registered itself, active, at its compose URL', async () => {
    const ports: Record<string, number> = {
      registry: 8000,
      'multi-cloud-manager': 8010,
      'proxy-manager': 8100,
      deployer: 8200,
      'health-monitor': 8300,
      console: 8400,
      orchestrator: 8500,
    };
    await waitFor(
      'every droplet active in the registry',
      async () => {
        const records = await activeRecords();
        return DROPLETS.every((d) => records[d]?.status === 'active');
      },
      30_000,
    );
    const records = await activeRecords();
    for (const d of DROPLETS) expect({ d, ...records[d] }).toEqual({ d, status: 'active', url: `http://${d}:${ports[d]}` });
    expect(
      (
        await fetch(`${s().url('registry')}/auth/token?droplet_id=operator`, {
          method: 'POST',
          headers: { 'x-registry-key': 'wrong-key-0123456789' },
        })
      ).status,
    ).toBe(401);
  });

  it.each(API_SERVICES)('%s answers /health through its published port: 200, active, NATS ok', async (svc) => {
    const r = await fetch(`${s().url(svc)}/health`);
    expect(r.status).toBe(200);
    const h = (await r.json()) as { status: string; droplet: string; dependencies: Array<{ name: string; status: string }> };
    expect(h).toMatchObject({ status: 'active', droplet: svc });
    expect(h.dependencies.find((x) => x.name === 'nats')?.status).toBe('ok');
  });

  it('the console serves its web app, signs in with the admin key, forwards to the droplets on the compose network, and keeps the session over a restart', async () => {
    const base = s().url('console');
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    const script = /<script type="module"[^>]* src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${base}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    const signIn = await fetch(`${base}/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ admin_key: s().adminKey }),
    });
    expect(signIn.status).toBe(201);
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0];
    expect(cookie).toMatch(/^mesh_console=/);
    // The registry's list, and the orchestrator's stacks, through the console's backend-for-frontend.
    const droplets = await fetch(`${base}/api/registry/droplets?per_page=100`, { headers: { cookie } });
    expect(droplets.status).toBe(200);
    const ids = ((await droplets.json()) as { items: Array<{ id: string }> }).items.map((d) => d.id);
    expect(ids).toEqual(expect.arrayContaining(DROPLETS));
    const stacks = await fetch(`${base}/api/orchestrator/stacks`, { headers: { cookie } });
    expect(stacks.status).toBe(200);
    // Without the cookie the forwarder refuses.
    expect((await fetch(`${base}/api/registry/droplets`)).status).toBe(401);

    // Sessions are in NATS and the secret sealing them in the console-data volume: a restarted
    // console container (read-only root) still knows the cookie.
    const restart = await s().compose(['restart', '-t', '10', 'console'], 60_000);
    expect(restart.code).toBe(0);
    await s().waitHealthy(90_000);
    const again = await fetch(`${base}/session`, { headers: { cookie } });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ subject: 'operator' });
  });

  it('a route PUT through proxy-manager answers through the published HTTP port (nginx in the container)', async () => {
    const put = await api('PUT', `${s().url('proxy-manager')}/proxies/registry-api`, token, {
      domain: 'registry.mesh.test',
      upstream_host: 'registry',
      upstream_port: 8000,
    });
    expect(put.status).toBe(201);
    const viaProxy = () => httpRequest(`http://127.0.0.1:${s().ports.proxyHttp}/health`, { headers: { host: 'registry.mesh.test' } });
    await waitFor('registry /health through nginx', async () => (await viaProxy()).status === 200, 15_000);
    const answer = await viaProxy();
    expect(answer.json()).toMatchObject({ droplet: 'registry', status: 'active' });
    // A host no route serves gets nginx's default server.
    expect((await httpRequest(`http://127.0.0.1:${s().ports.proxyHttp}/health`, { headers: { host: 'nobody.mesh.test' } })).status).toBe(
      404,
    );
    // Bad input is a 400 in the UDC envelope, not a 500.
    const bad = await api('PUT', `${s().url('proxy-manager')}/proxies/bad-route`, token, {
      domain: 'bad domain;',
      upstream_host: 'registry',
      upstream_port: 8000,
    });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ status: 'error', error: { code: 'INVALID_REQUEST' } });
  });

  it('the deployer deploys an image onto its local server; the app answers through the published HTTP port with its domain', async () => {
    const project = s().project;
    const image = await buildComposeAppImage(docker, 'mesh-test/compose-app:1', 'hello from the compose deployer');
    const deployer = s().url('deployer');
    expect((await api('POST', `${deployer}/projects`, token, { name: project })).status).toBe(201);
    expect((await api('POST', `${deployer}/projects/${project}/environments`, token, { name: 'prod' })).status).toBe(201);
    expect(
      (
        await api('POST', `${deployer}/projects/${project}/services`, token, {
          name: 'web',
          type: 'web',
          health_path: '/health',
          domain: 'app.mesh.test',
        })
      ).status,
    ).toBe(201);
    const started = await api('POST', `${deployer}/deployments`, token, {
      project,
      service: 'web',
      environment: 'prod',
      source: { image },
    });
    expect(started.status).toBe(202);
    let deployment: { status: string; error?: unknown } = { status: 'queued' };
    await waitFor(
      'the deployment to finish',
      async () => {
        deployment = (await api('GET', `${deployer}/deployments/${started.body.id}`, token)).body;
        return ['succeeded', 'failed', 'interrupted', 'rolled_back'].includes(deployment.status);
      },
      120_000,
      500,
    );
    // The whole record on failure: its error and steps say which step failed.
    if (deployment.status !== 'succeeded') throw new Error(`deployment ${deployment.status}: ${JSON.stringify(deployment).slice(0, 3000)}`);
    // The route names the local server's address as the containers see the host.
    const routes = await api('GET', `${s().url('proxy-manager')}/proxies?per_page=100`, token);
    const route = (routes.body.items as Array<{ domain: string; upstreams: Array<{ host: string }> }>).find(
      (r) => r.domain === 'app.mesh.test',
    );
    expect(route?.upstreams.map((u) => u.host)).toEqual(['host.docker.internal']);
    const viaProxy = () => httpRequest(`http://127.0.0.1:${s().ports.proxyHttp}/`, { headers: { host: 'app.mesh.test' } });
    await waitFor('the app through nginx', async () => (await viaProxy()).status === 200, 15_000);
    expect((await viaProxy()).body).toBe('hello from the compose deployer');
  });

  it('state lives in the named volumes: a recreated NATS container keeps records, keys and routes', async () => {
    const rm = await s().compose(['rm', '--stop', '--force', 'nats'], 60_000);
    expect(rm.code).toBe(0);
    await s().up(['nats']);
    await s().waitHealthy(90_000);
    // The token issued before still verifies: the registry's keys are in JetStream KV.
    await waitFor(
      'every droplet active again',
      async () => {
        const records = await activeRecords();
        return DROPLETS.every((d) => records[d]?.status === 'active');
      },
      60_000,
    );
    const route = await api('GET', `${s().url('proxy-manager')}/proxies/registry-api`, token);
    expect(route.status).toBe(200);
    expect(route.body).toMatchObject({ name: 'registry-api', domain: 'registry.mesh.test' });
    // Served again through nginx once the registry answers /health as active (a droplet that has
    // just reconnected can answer 503 for a moment, nginx passes that on).
    let last = 0;
    await waitFor(
      'the registry through nginx',
      async () => {
        last = (await httpRequest(`http://127.0.0.1:${s().ports.proxyHttp}/health`, { headers: { host: 'registry.mesh.test' } })).status;
        return last === 200;
      },
      15_000,
      250,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}; last status ${last}`);
    });
  });
});
