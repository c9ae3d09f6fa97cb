import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { startAllEmulators, type AllEmulators } from '@droplet-mesh/cloud-emulators';
import { namespacedEngineUnavailable, startNamespacedEngine } from '@droplet-mesh/docker-testing';
import { sendMessage, sendRequestSchema } from '@droplet-mesh/udc-kit';
import {
  freePort,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { createMeshCa } from '../src/domain/mesh-ca.js';
import type { RouteDeps } from '../src/routes/route-deps.js';
import { provisionerOf } from '../src/routes/servers.js';
import { uniqueProject } from './helpers.js';
import { MCM_MAIN, runNode, waitHealthy, type Proc } from './process-helpers.js';
import { startTestDeployer } from './deployer-harness.js';

// One call provisions a server: the deployer asks multi-cloud-manager (its own process,
// over UDC with the deployer's token) for the machine. The local provider makes a real
// engine (dockerd in its own network namespace) that reports back and is registered; an
// emulated cloud gets an instance created with the cloud-init user_data (checked with
// Debian's cloud-init) that can never boot here, so provisioning fails on time with the
// reason, and the instance is deleted.
const why = namespacedEngineUnavailable();
const d = why ? describe.skip : describe;
if (why) console.warn(`server-provision: skipped (${why})`);
const cloudInit = spawnSync('sh', ['-c', 'command -v cloud-init'], { encoding: 'utf8' }).stdout.trim();

const prefix = uniqueProject('pv');
const REPORT_TIMEOUT_S = 6;
const MESH_REGISTRY_HOST = '10.0.0.5:5050';
let registryCa: string;
let nats: NatsServerHandle;
let authority: TestAuthority;
let emus: AllEmulators;
let mcm: Proc | undefined;
let droplet: DeployerDroplet;
let admin: Record<string, string>;
let reader: Record<string, string>;
const recorders: HttpServer[] = [];
/** Bodies of the calls multi-cloud-manager sent to the emulated clouds. */
const creates: Array<Record<string, unknown>> = [];
/** Each emulated cloud: where its API is under the emulator's origin, and how a server there is deleted. */
const CLOUDS = [
  { provider: 'digitalocean', region: 'nyc3', size: 's-1vcpu-1gb', env: 'DO', prefix: '', del: '/v2/droplets/' },
  { provider: 'hetzner', region: 'fsn1', size: 'cx22', env: 'HETZNER', prefix: '/v1', del: '/v1/servers/' },
  { provider: 'vultr', region: 'ewr', size: 'vc2-1c-1gb', env: 'VULTR', prefix: '/v2', del: '/v2/instances/' },
] as const;
const tmp = mkdtempSync(join(tmpdir(), 'deployer-pv-'));

/** In front of the emulator: records each create's body (the emulator keeps no user_data), then forwards. */
function recordingProxy(target: string): Promise<{ server: HttpServer; url: string }> {
  const t = new URL(target);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && body.length > 0) creates.push(JSON.parse(body.toString()));
      const out = httpRequest(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      out.on('error', () => res.destroy());
      out.end(body);
    });
  });
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () => r({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })),
  );
}

async function untilSettled(id: string, timeoutMs: number): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> = {};
  await waitFor(
    `server ${id} settled`,
    async () => {
      const res = await request(droplet.app).get(`/servers/${id}`).set(reader);
      last = res.body;
      return res.status === 200 && (!res.body.provisioning || ['failed', 'expired'].includes(res.body.status));
    },
    timeoutMs,
    250,
  ).catch(() => {
    throw new Error(`server ${id} did not settle: ${JSON.stringify(last)}\n${mcm?.output().slice(-2000)}`);
  });
  return last;
}

beforeAll(async () => {
  if (why) return;
  nats = await startNatsServer();
  authority = await startTestAuthority();
  emus = await startAllEmulators({ seedInstances: 0, actionDurationMs: 100 });
  const cloudEnv: Record<string, string> = {};
  for (const c of CLOUDS) {
    const proxy = await recordingProxy(emus[c.provider].url);
    recorders.push(proxy.server);
    cloudEnv[`${c.env}_TOKEN`] = emus[c.provider].token;
    cloudEnv[`${c.env}_API_URL`] = `${proxy.url}${c.prefix}`;
  }
  const mcmPort = await freePort();
  mcm = runNode(MCM_MAIN, {
    PORT: String(mcmPort),
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    ...cloudEnv,
    LOCAL_PROVIDER_ENABLED: 'true',
    ACTION_POLL_INTERVAL_MS: '100',
    ...authority.env(),
  });
  await waitHealthy(`http://127.0.0.1:${mcmPort}`, mcm, 30_000);
  registryCa = (await createMeshCa()).certPem;
  const registryCaFile = join(tmp, 'registry-ca.pem');
  writeFileSync(registryCaFile, registryCa);
  const port = await freePort();
  // A droplet's token is read+write (the harness's registry link): multi-cloud-manager provisions
  // for the deployer by its identity.
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    port,
    env: {
      DRAIN_S: undefined,
      DEPLOYER_PUBLIC_URL: `http://127.0.0.1:${port}`,
      PROVISION_TIMEOUT_S: String(REPORT_TIMEOUT_S),
      // A mesh image registry the new servers trust (its CA in their user_data's certs.d).
      MESH_REGISTRY: MESH_REGISTRY_HOST,
      MESH_REGISTRY_USERNAME: 'mesh',
      MESH_REGISTRY_PASSWORD: 'not-used-here',
      MESH_REGISTRY_CA_FILE: registryCaFile,
    },
  });
  admin = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write', 'admin'] })}` };
  reader = { Authorization: `Bearer ${authority.mint({ scopes: ['read'] })}` };
}, 120_000);

afterAll(async () => {
  await droplet?.stop();
  await mcm?.stop(); // tears its local engines down
  await Promise.all(recorders.map((r) => new Promise<void>((done) => r.close(() => done()))));
  await emus?.close();
  await authority?.close();
  await nats?.stop();
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

d('provisioning a server in one call', () => {
  it('local: a real engine of its own starts, reports back with its one-time token and is registered, reachable only over mutual TLS', async () => {
    const id = `${prefix}-local`;
    const res = await request(droplet.app)
      .post('/servers/provision')
      .set(admin)
      .send({ provider: 'local', region: 'local', size: 'small', name: id, environments: ['prod'] });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ id, status: 'creating_instance', provider: 'local', progress_url: `/servers/${id}` });
    expect(JSON.stringify(res.body)).not.toMatch(/PRIVATE KEY|token_sha256|callback_token/);
    const server = await untilSettled(id, 90_000);
    expect(server).toMatchObject({ id, tls: true, environments: ['prod'] });
    expect(server.docker_host).toMatch(/^tcp:\/\/10\.231\.\d+\.\d+:2376$/);
    expect(server.instance_id).toMatch(/^local:dmesh-/);
    const engine = await request(droplet.app).get(`/servers/${id}/engine`).set(reader);
    expect(engine.status).toBe(200);
    expect(engine.body.docker_version).toMatch(/^\d+\./);
    const record = (await request(droplet.app).get(`/servers/provision/${id}`).set(reader)).body;
    expect(JSON.stringify(record)).not.toMatch(/token|PRIVATE KEY/);
    const steps = record.steps as Array<{ status: string }>;
    expect(steps.map((s) => s.status)).toEqual(expect.arrayContaining(['creating_instance', 'ready']));
    // The engine refuses a client without a mesh certificate.
    const address = String(server.address);
    const plain = await fetch(`https://${address}:2376/_ping`, { signal: AbortSignal.timeout(3000) }).then(
      (r) => r.status,
      (e: Error) => e.message,
    );
    expect(plain).not.toBe(200);
  }, 120_000);

  it("each emulated cloud: the instance gets valid user_data (trusting the mesh registry's CA), then provisioning fails on time with the reason and the instance is deleted", async () => {
    await Promise.all(
      CLOUDS.map(async (c, i) => {
        const id = `${prefix}-${c.provider.slice(0, 2)}`;
        // The seed's alias for one of them, the unified route for the others.
        const res = await request(droplet.app)
          .post(i === 0 ? '/infra/servers/provision' : '/servers/provision')
          .set(admin)
          .send({ provider: c.provider, region: c.region, size: c.size, name: id });
        expect(res.status).toBe(202);
        let waiting: Record<string, unknown> = {};
        await waitFor(
          `${c.provider} instance created`,
          async () => {
            waiting = (await request(droplet.app).get(`/servers/${id}`).set(reader)).body;
            return waiting.status === 'waiting_for_callback';
          },
          20_000,
          200,
        );
        expect(waiting.instance_id).toMatch(/^[0-9a-f-]+$/);
        // What the emulator received (Vultr takes it base64-encoded).
        const userData = creates
          .map((b) => (c.provider === 'vultr' ? Buffer.from(String(b.user_data ?? ''), 'base64').toString() : String(b.user_data ?? '')))
          .find((u) => u.includes(`/servers/provision/${id}/ready`));
        expect(userData).toMatch(/^#cloud-config\n/);
        // The mesh image registry's CA, for that registry only (checked with the rest by cloud-init below).
        expect(userData).toContain(`path: "/etc/docker/certs.d/${MESH_REGISTRY_HOST}/ca.crt"`);
        expect(userData).toContain(registryCa.trim().split('\n')[1]);
        if (cloudInit) {
          const file = join(tmp, `user-data-${c.provider}.yaml`);
          writeFileSync(file, userData!);
          const schema = spawnSync(cloudInit, ['schema', '--config-file', file], { encoding: 'utf8', timeout: 60_000 });
          expect(`${schema.status} ${schema.stdout}${schema.stderr}`).toMatch(/^0 .*Valid/s);
        }
        const failed = await untilSettled(id, (REPORT_TIMEOUT_S + 15) * 1000);
        expect(failed.status).toBe('failed');
        expect(String(failed.reason)).toMatch(
          new RegExp(`no ready report within ${REPORT_TIMEOUT_S} s: the machine never ran its user_data`),
        );
        await waitFor(
          `${c.provider} instance deleted`,
          async () => emus[c.provider].requests.some((r) => r.method === 'DELETE' && r.path === `${c.del}${waiting.instance_id}`),
          15_000,
          200,
        );
        // No server was registered.
        expect((await request(droplet.app).get(`/servers/${id}/engine`).set(reader)).status).toBe(404);
      }),
    );
  }, 90_000);

  it('a cloud machine played here: the engine material and token from the user_data the emulator got make a real engine, whose report makes the server ready and registered', async () => {
    const id = `${prefix}-boot`;
    // expires_in_s: this machine has 120 s to report (the others' REPORT_TIMEOUT_S is for the timeout test).
    const res = await request(droplet.app)
      .post('/servers/provision')
      .set(admin)
      .send({ provider: 'hetzner', region: 'fsn1', size: 'cx22', name: id, environments: ['prod'], expires_in_s: 120 });
    expect(res.status).toBe(202);
    let waiting: Record<string, unknown> = {};
    await waitFor(
      'hetzner instance created',
      async () => {
        waiting = (await request(droplet.app).get(`/servers/${id}`).set(reader)).body;
        return waiting.status === 'waiting_for_callback';
      },
      20_000,
      200,
    );
    const userData = creates.map((b) => String(b.user_data ?? '')).find((u) => u.includes(`/servers/provision/${id}/ready`));
    // As cloud-init on the machine reads it (python3-yaml, cloud-init's own parser).
    const config = JSON.parse(
      execFileSync('python3', ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], {
        input: userData,
        encoding: 'utf8',
        timeout: 30_000,
      }),
    ) as { write_files: Array<{ path: string; content: string }> };
    const file = (path: string) => {
      const f = config.write_files.find((w) => w.path === path);
      if (!f) throw new Error(`no ${path} in the user_data`);
      return f.content;
    };
    const token = file('/etc/droplet-mesh/callback-token').trim();
    const callbackUrl = /--data "\$BODY" '([^']+)'/.exec(file('/usr/local/sbin/droplet-mesh-report'))?.[1];
    expect(callbackUrl).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/servers/provision/${id}/ready$`));
    // The machine boots: its engine runs with exactly the certificate material it was given.
    const engine = await startNamespacedEngine({
      tls: {
        ca: file('/etc/droplet-mesh/tls/ca.pem'),
        cert: file('/etc/droplet-mesh/tls/server-cert.pem'),
        key: file('/etc/droplet-mesh/tls/server-key.pem'),
      },
    });
    try {
      // What the report script sends (the address: the deployer would see the machine's own; here it says it).
      const report = (auth: string) =>
        fetch(callbackUrl!, {
          method: 'POST',
          headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
          body: JSON.stringify({ server_id: id, engine_port: 2376, docker_version: '20.10', address: engine.address }),
        });
      expect((await report('x'.repeat(43))).status).toBe(401);
      const ready = await report(token);
      expect(ready.status).toBe(201);
      const server = (await request(droplet.app).get(`/servers/${id}`).set(reader)).body;
      expect(server).toMatchObject({
        id,
        tls: true,
        docker_host: `tcp://${engine.address}:2376`,
        instance_id: `hetzner:${waiting.instance_id}`,
        environments: ['prod'],
      });
      expect(server.provisioning).toBeUndefined();
      const steps = (await request(droplet.app).get(`/servers/provision/${id}`).set(reader)).body.steps as Array<{ status: string }>;
      expect(steps.map((s) => s.status)).toEqual(['creating_instance', 'waiting_for_callback', 'ready']);
      expect((await request(droplet.app).get(`/servers/${id}/engine`).set(reader)).status).toBe(200);
      // The token is spent; and the timer no longer runs: the instance is kept.
      expect((await report(token)).status).toBe(409);
      expect(emus.hetzner.requests.some((r) => r.method === 'DELETE' && r.path === `/v1/servers/${waiting.instance_id}`)).toBe(false);
    } finally {
      await engine.stop();
      await request(droplet.app).delete(`/servers/${id}`).set(admin);
    }
  }, 90_000);

  it('on_server_loss: move by default, none and replace_from_snapshot can be set, anything else is refused; move-back needs a server', async () => {
    const project = `${prefix}-pol`;
    expect((await request(droplet.app).post('/projects').set(admin).send({ name: project })).status).toBe(201);
    expect((await request(droplet.app).post(`/projects/${project}/environments`).set(admin).send({ name: 'prod' })).status).toBe(201);
    const path = `/projects/${project}/environments/prod/server-loss-policy`;
    expect((await request(droplet.app).get(path).set(reader)).body).toMatchObject({ on_server_loss: 'move' });
    expect((await request(droplet.app).put(path).set(reader).send({ on_server_loss: 'none' })).status).toBe(403);
    const set = await request(droplet.app).put(path).set(admin).send({ on_server_loss: 'none' });
    expect(set.status).toBe(200);
    expect((await request(droplet.app).get(path).set(reader)).body).toMatchObject({ on_server_loss: 'none' });
    const replace = await request(droplet.app).put(path).set(admin).send({ on_server_loss: 'replace_from_snapshot' });
    expect(replace.status).toBe(200);
    expect((await request(droplet.app).get(path).set(reader)).body).toMatchObject({ on_server_loss: 'replace_from_snapshot' });
    const refused = await request(droplet.app).put(path).set(admin).send({ on_server_loss: 'reboot' });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('INVALID_REQUEST');
    expect((await request(droplet.app).get(`/projects/${project}/environments/nope/server-loss-policy`).set(reader)).status).toBe(404);
    expect((await request(droplet.app).post(`/servers/${project}-none/move-back`).set(admin)).status).toBe(404);
  });

  it('only the deployer (or an admin) may have servers created, and only health-monitor (or an admin) gets an engine client certificate', async () => {
    const bus = droplet.ctx.bus;
    const send = (target: string, action: string, sub: string, payload: object = {}) =>
      sendMessage(
        bus,
        sub,
        sendRequestSchema.parse({ target, message_type: 'command', payload: { action, ...payload }, retry_count: 0 }),
        droplet.ctx.logger,
        authority.mint({ sub, scopes: ['read', 'write'] }),
      );
    const create = await send('multi-cloud-manager', 'server.create', 'some-app', { provider: 'local' });
    expect(create.result).toBe('error');
    expect(create.error?.code).toBe('FORBIDDEN');
    const stranger = await send('deployer', 'mesh-ca.monitor-certificate', 'some-app');
    expect(stranger.error?.code).toBe('FORBIDDEN');
    const monitor = await send('deployer', 'mesh-ca.monitor-certificate', 'health-monitor');
    expect(monitor.result).toBe('success');
    const cert = new X509Certificate((monitor.data as { cert: string }).cert);
    expect(cert.subject).toMatch(/^CN=monitor-health-monitor$/m);
    // One day at most: whoever holds it can drive every engine.
    expect(Date.parse(cert.validTo) - Date.now()).toBeLessThanOrEqual(86_400_000 + 60_000);
  });

  it('a provisioning whose timer was lost (a deployer restart) fails at the next sweep and its instance is deleted', async () => {
    const id = `${prefix}-orphan`;
    const made = await fetch(`${emus.digitalocean.url}/v2/droplets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${emus.digitalocean.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: id,
        region: 'nyc3',
        size: 's-1vcpu-1gb',
        image: 'debian-12-x64',
        tags: ['droplet-mesh', 'mesh-server'],
      }),
    }).then((r) => r.json() as Promise<{ droplet: { id: number } }>);
    const past = new Date(Date.now() - 1000).toISOString();
    // As a deployer that died while waiting for the machine left it.
    await droplet.ctx.bus.kv('deployer').then((kv) =>
      kv.put(
        `provision.${id}`,
        JSON.stringify({
          id,
          token_sha256: '0'.repeat(64),
          engine_port: 2376,
          status: 'waiting_for_callback',
          provider: 'digitalocean',
          instance_id: String(made.droplet.id),
          expires_at: past,
          created_at: past,
          updated_at: past,
        }),
      ),
    );
    expect(await provisionerOf({ ctx: droplet.ctx } as RouteDeps).sweep()).toBe(1);
    const failed = (await request(droplet.app).get(`/servers/${id}`).set(reader)).body;
    expect(failed).toMatchObject({ id, status: 'failed', provisioning: true });
    expect(failed.reason).toMatch(/never reported.*the instance is deleted/);
    expect(emus.digitalocean.requests.some((r) => r.method === 'DELETE' && r.path === `/v2/droplets/${made.droplet.id}`)).toBe(true);
    // Swept once: a second sweep finds nothing to do.
    expect(await provisionerOf({ ctx: droplet.ctx } as RouteDeps).sweep()).toBe(0);
  });
});
