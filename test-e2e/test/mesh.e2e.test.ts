import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Bus } from '@droplet-mesh/udc-kit';
import { conformanceTargetFromUrl, udcConformanceSuite, waitFor } from '@droplet-mesh/udc-kit/testing';
import { appTarball } from '../support/mesh-app.js';
import { underLoad, viaHttp, viaHttps, type LoadResult } from '../support/mesh-http.js';
import { ALERT_TO, DROPLET_NAMES, Mesh } from '../support/mesh-stack.js';

// Issue 8, "End-to-end scenario": the five droplets as separate processes (three
// health-monitor replicas) on a real nats-server, nginx (run by proxy-manager), pebble,
// the Docker Engine and an SMTP server. The steps run in order and build on each other.

const mesh = new Mesh();
const DOMAIN = 'app.test';
const target = `app-${mesh.project}-web-prod`; // the deployer's id for project/web/prod: route name, registry id
let ready = false;
let bus: Bus; // the test's own NATS connection, to see what reaches whom
let pebbleRoot: string;
let hostId: string;
const deployments: Record<string, string> = {}; // version -> deployment id
const deployerRequests: Array<{ source: string; action: string; payload: Record<string, unknown>; at: number }> = [];
const incidentEvents: Array<{ type: string; incident: { id: string; target_id: string; status: string }; at: number }> = [];
const restartedEvents: Array<{ target_id: string; at: number }> = [];

const https = (path = '/') => viaHttps(mesh.proxyHttpsPort, DOMAIN, pebbleRoot, path);
/** The requests that did not get a 200 with an expected body, summarised (a load run makes hundreds). */
function failures(results: LoadResult[], ok: RegExp): { count: number; kinds: string[] } {
  const bad = results.filter((r) => r.status !== 200 || !ok.test(r.body));
  return {
    count: bad.length,
    kinds: [...new Set(bad.map((r) => (r.error ? r.error.split('\n')[0].slice(0, 160) : `${r.status} ${r.body.slice(0, 60)}`)))],
  };
}
const NONE = { count: 0, kinds: [] };

async function waitDeployment(id: string, timeoutMs = 120_000): Promise<Record<string, any>> {
  let d: Record<string, any> = {};
  await waitFor(
    `deployment ${id} to finish`,
    async () => {
      d = (await mesh.call(mesh.deployer, 'GET', `/deployments/${id}`)).body;
      return ['succeeded', 'failed', 'interrupted', 'rolled_back'].includes(d.status);
    },
    timeoutMs,
    250,
  );
  return d;
}

/** Upload the app's .tar.gz as a multipart deploy and wait for it to succeed. */
async function deployVersion(version: string): Promise<Record<string, any>> {
  const { bytes } = appTarball(mesh.tmp, version);
  const form = new FormData();
  form.set('project', mesh.project);
  form.set('service', 'web');
  form.set('environment', 'prod');
  form.set('source', new Blob([bytes], { type: 'application/gzip' }), `app-${version}.tar.gz`);
  const res = await fetch(`${mesh.deployer.url}/deployments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${mesh.token(['read', 'write'])}` },
    body: form,
  });
  const accepted = (await res.json()) as { id: string };
  expect(res.status).toBe(202);
  const d = await waitDeployment(accepted.id);
  if (d.status !== 'succeeded')
    throw new Error(`deploy of ${version} ${d.status}: ${d.reason}\n${(d.last_log_lines ?? []).join('\n')}\n${mesh.dump()}`);
  expect(d.source).toMatchObject({ kind: 'upload', filename: `app-${version}.tar.gz` });
  deployments[version] = d.id;
  return d;
}

async function incidentsFor(targetId: string): Promise<Array<Record<string, any>>> {
  const r = await mesh.call(mesh.monitors[0], 'GET', `/incidents?target_id=${targetId}&per_page=100`);
  expect(r.status).toBe(200);
  return r.body.items;
}

/** Waits for an incident about `targetId` to open (within `openWithinMs`) and then resolve; returns its opened event. */
async function incidentOpenedAndResolved(targetId: string, openWithinMs: number) {
  await waitFor(
    `an incident opened for ${targetId}`,
    () => incidentEvents.some((e) => e.type === 'opened' && e.incident.target_id === targetId),
    openWithinMs,
    100,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${mesh.dump()}`);
  });
  const opened = incidentEvents.find((e) => e.type === 'opened' && e.incident.target_id === targetId)!;
  await waitFor(
    'the incident resolved',
    () => incidentEvents.some((e) => e.type === 'resolved' && e.incident.id === opened.incident.id),
    60_000,
    100,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\nincident: ${JSON.stringify(incidentEvents)}\n${mesh.dump()}`);
  });
  return opened;
}

beforeAll(async () => {
  await mesh.start();
  bus = await Bus.connect({ url: mesh.nats.url, name: 'mesh-e2e-observer' });
  // A plain subscriber gets a copy of every request to the deployer's queue group.
  bus.nc.subscribe('udc.deployer.message', {
    callback: (_e, m) => {
      const env = m.json<{ source: string; payload: Record<string, unknown> }>();
      deployerRequests.push({ source: env.source, action: String(env.payload?.action), payload: env.payload, at: Date.now() });
    },
  });
  bus.nc.subscribe('health-monitor.incident.*', {
    callback: (_e, m) => {
      incidentEvents.push({ type: m.subject.split('.').pop()!, incident: m.json(), at: Date.now() });
    },
  });
  bus.nc.subscribe('deployer.service.restarted', {
    callback: (_e, m) => {
      restartedEvents.push({ ...m.json<{ target_id: string }>(), at: Date.now() });
    },
  });
  await bus.nc.flush();
  ready = true;
}, 300_000);

afterAll(async () => {
  await bus?.close().catch(() => undefined);
  await mesh.stop();
}, 120_000);

describe('the mesh end to end (issue 8)', () => {
  it('1. bring-up: every droplet registers itself and is active in the registry', async () => {
    const procs = mesh.processes();
    let items: Array<Record<string, any>> = [];
    await waitFor(
      'every droplet active in the registry',
      async () => {
        items = (await mesh.call(mesh.registry, 'GET', '/droplets?per_page=100')).body.items;
        return procs.every(({ id }) => items.find((d) => d.id === id)?.status === 'active');
      },
      20_000,
      200,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\nregistry says: ${JSON.stringify(items.map((d) => [d.id, d.status]))}\n${mesh.dump()}`);
    });
    for (const { id, proc } of procs) {
      expect(items.find((d) => d.id === id)).toMatchObject({ kind: 'service', url: proc.url, status: 'active' });
      const health = await (await fetch(`${proc.url}/health`)).json();
      expect(health).toMatchObject({ status: 'active' });
    }
    // Each kept heartbeating: still active after more than three intervals.
    await new Promise((r) => setTimeout(r, 3500));
    const later = (await mesh.call(mesh.registry, 'GET', '/droplets?status=active&per_page=100')).body.items.map(
      (d: { id: string }) => d.id,
    );
    expect(later).toEqual(expect.arrayContaining(procs.map((p) => p.id)));
  }, 60_000);

  it('2. an instance on the local provider through multi-cloud-manager appears in the registry as a host', async () => {
    const created = await mesh.call(mesh.multiCloud, 'POST', '/instances', {
      provider: 'local',
      name: mesh.instanceName,
      region: 'local',
      size: 'local-small',
      image: mesh.nodeImage,
      command: ['sleep', '3600'],
      wait: true,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      registered: true,
      // On the mesh's bridge network (not the host's): its address there.
      instance: { provider: 'local', status: 'running', managed: true, ipv4: expect.stringMatching(/^\d+\.\d+\.\d+\.\d+$/) },
    });
    const instance = created.body.instance;
    hostId = `host-local-${String(instance.provider_id).slice(0, 12)}`;

    const record = await mesh.call(mesh.registry, 'GET', `/droplets/${hostId}`);
    expect(record.status).toBe(200);
    expect(record.body.droplet).toMatchObject({
      id: hostId,
      kind: 'host',
      url: `http://${instance.ipv4}`,
      status: 'active',
      steward: 'multi-cloud-manager',
      metadata: { provider: 'local', instance_id: instance.provider_id, recovery: ['reboot', 'alert'] },
    });
    const hosts = (await mesh.call(mesh.registry, 'GET', '/droplets?kind=host&per_page=100')).body.items.map((d: { id: string }) => d.id);
    expect(hosts).toContain(hostId);
    const listed = await mesh.call(mesh.multiCloud, 'GET', `/instances?provider=local&name=${mesh.instanceName}`);
    expect(listed.body.items.map((i: { provider_id: string }) => i.provider_id)).toEqual([instance.provider_id]);

    // A host that declares no health path is not a health-check target (nothing answers
    // http://<ip>/health on a bare host): the monitors see the droplets, not this host.
    await waitFor(
      'the monitors to refresh their targets',
      async () => {
        const ids = (await mesh.call(mesh.monitors[0], 'GET', '/targets?per_page=100')).body.items.map((x: { id: string }) => x.id);
        return ids.includes('registry');
      },
      15_000,
      250,
    );
    await new Promise((r) => setTimeout(r, 2500)); // > TARGET_REFRESH_MS: the host record is in every list by now
    const targets = (await mesh.call(mesh.monitors[0], 'GET', '/targets?per_page=100')).body.items.map((x: { id: string }) => x.id);
    expect(targets).not.toContain(hostId);
  }, 90_000);

  it('3. deploys an uploaded .tar.gz; proxy-manager routes app.test to it over HTTP, then HTTPS with a pebble certificate', async () => {
    const post = (path: string, body: unknown) => mesh.call(mesh.deployer, 'POST', path, body, ['read', 'write']);
    expect((await post('/projects', { name: mesh.project })).status).toBe(201);
    expect((await post(`/projects/${mesh.project}/environments`, { name: 'prod' })).status).toBe(201);
    expect(
      (await post(`/projects/${mesh.project}/services`, { name: 'web', type: 'web', domain: DOMAIN, health_path: '/health' })).status,
    ).toBe(201);

    const d = await deployVersion('v1');
    expect(d.steps.map((s: { name: string }) => s.name)).toEqual(expect.arrayContaining(['image', 'start', 'health', 'switch', 'verify']));
    const release = (await mesh.call(mesh.deployer, 'GET', `/services/${target}`)).body;
    expect(release.deployment_id).toBe(d.id);

    // proxy-manager holds the route the deployer asked for, pointing at the new container.
    const route = await mesh.call(mesh.proxy, 'GET', `/proxies/${target}`);
    expect(route.status).toBe(200);
    expect(route.body).toMatchObject({
      name: target,
      domain: DOMAIN,
      upstreams: [{ host: '127.0.0.1', port: release.containers[0].port }],
    });
    expect(await viaHttp(mesh.proxyHttpPort, DOMAIN)).toMatchObject({ status: 200, body: 'v1' });

    // The app is registered too, so the monitors watch it.
    const app = await mesh.call(mesh.registry, 'GET', `/droplets/${target}`);
    expect(app.body.droplet).toMatchObject({ url: `http://127.0.0.1:${release.containers[0].port}`, domain: DOMAIN, steward: 'deployer' });

    const ssl = await mesh.call(mesh.proxy, 'POST', `/proxies/${target}/ssl`, { email: 'ops@example.com' }, ['read', 'write']);
    if (ssl.status !== 200)
      throw new Error(`POST /proxies/${target}/ssl: ${ssl.status} ${JSON.stringify(ssl.body)}\n${mesh.pebble.output().slice(-2000)}`);
    expect(ssl.body.action).toBe('issued');
    expect(ssl.body.route).toMatchObject({ enable_ssl: true, status: { https: true } });
    expect(ssl.body.route.certificate.issuer).toMatch(/Pebble/i);

    pebbleRoot = await mesh.pebble.issuanceRoot();
    expect(await https()).toMatchObject({ status: 200, body: 'v1' });
    // Verification is real: an unrelated CA does not accept the served chain.
    const { readFileSync } = await import('node:fs');
    const wrongCa = await viaHttps(mesh.proxyHttpsPort, DOMAIN, readFileSync(mesh.pebble.apiCaFile, 'utf8'));
    expect(wrongCa.status).toBe(0);
    expect(wrongCa.error).toMatch(/certificate/i);
    // Plain HTTP now redirects to HTTPS.
    const redirect = await viaHttp(mesh.proxyHttpPort, DOMAIN, '/x?y=1');
    expect(redirect.status).toBe(301);
    expect(redirect.location).toBe(`https://${DOMAIN}:${mesh.proxyHttpsPort}/x?y=1`);
  }, 180_000);

  it('4. redeploys v2 under HTTPS load with zero failed requests; a rollback brings v1 back, also under load', async () => {
    const toV2 = await underLoad(https, async () => {
      await deployVersion('v2');
    });
    expect(toV2.length).toBeGreaterThan(30);
    expect(failures(toV2, /^v[12]$/)).toEqual(NONE);
    expect(toV2.some((r) => r.body === 'v1')).toBe(true);
    expect(toV2[toV2.length - 1].body).toBe('v2');
    expect(await https()).toMatchObject({ status: 200, body: 'v2' });

    const back = await underLoad(https, async () => {
      const rb = await mesh.call(mesh.deployer, 'POST', `/deployments/${deployments.v1}/rollback`, {}, ['read', 'write']);
      expect(rb.status).toBe(202);
      const d = await waitDeployment(rb.body.id);
      if (d.status !== 'succeeded') throw new Error(`rollback ${d.status}: ${d.reason}`);
      expect(d.rollback_of).toBe(deployments.v1);
    });
    expect(failures(back, /^v[12]$/)).toEqual(NONE);
    expect(back[back.length - 1].body).toBe('v1');
    expect(await https()).toMatchObject({ status: 200, body: 'v1' });
    // The route kept its certificate through both switches.
    expect((await mesh.call(mesh.proxy, 'GET', `/proxies/${target}`)).body).toMatchObject({ enable_ssl: true, status: { https: true } });
    // No monitor saw an outage of the app during the redeploys.
    expect(await incidentsFor(target)).toEqual([]);
    expect(deployerRequests.filter((r) => r.action === 'restart')).toEqual([]);
  }, 240_000);

  it('5. the app container is killed: one incident, exactly one restart through the deployer, answers again, resolved, both emails sent', async () => {
    const containers = await mesh.docker.listContainers({
      filters: { label: ['mesh.managed=true', `mesh.project=${mesh.project}`, 'mesh.service=web'] },
    });
    expect(containers).toHaveLength(1);
    const killedAt = Date.now();
    await mesh.docker.getContainer(containers[0].Id).kill();
    const opened = await incidentOpenedAndResolved(target, 15_000);
    expect(await https()).toMatchObject({ status: 200, body: 'v1' });
    // The deployer restarted the same container (no redeploy).
    const info = await mesh.docker.getContainer(containers[0].Id).inspect();
    expect(info.State.Running).toBe(true);
    expect(Date.parse(info.State.StartedAt)).toBeGreaterThan(killedAt);

    // Any second request would have been sent before the resolve; give in-flight messages a moment.
    await bus.nc.flush();
    await new Promise((r) => setTimeout(r, 1500));
    const restarts = deployerRequests.filter((r) => r.action === 'restart');
    expect(restarts).toHaveLength(1);
    expect(restarts[0]).toMatchObject({ source: 'health-monitor', payload: { target_id: target, incident_id: opened.incident.id } });
    expect(restartedEvents.filter((e) => e.target_id === target)).toHaveLength(1);
    expect(incidentEvents.filter((e) => e.incident.target_id === target && e.type === 'opened')).toHaveLength(1);

    const incident = (await mesh.call(mesh.monitors[0], 'GET', `/incidents/${opened.incident.id}`)).body;
    const timeline = incident.timeline.map((t: { event: string }) => t.event);
    expect(timeline.filter((e: string) => e === 'restart.requested')).toHaveLength(1);
    expect(timeline).toEqual(expect.arrayContaining(['opened', 'restart.requested', 'restart.accepted', 'resolved']));

    const down = (id: string) => mesh.smtp.subjects(new RegExp(`^\\[DOWN\\] ${target} - incident ${id}$`));
    const resolved = (id: string) => mesh.smtp.subjects(new RegExp(`^\\[RESOLVED\\] ${target} - incident ${id}$`));
    await waitFor(
      'the open and resolve emails',
      () => down(opened.incident.id).length > 0 && resolved(opened.incident.id).length > 0,
      15_000,
      100,
    );
    expect(down(opened.incident.id)).toHaveLength(1);
    expect(resolved(opened.incident.id)).toHaveLength(1);
    expect(down(opened.incident.id)[0].to).toEqual([ALERT_TO]);
    // Nothing else went down meanwhile (the host, the droplets).
    expect(incidentEvents.filter((e) => e.incident.target_id !== target)).toEqual([]);
  }, 120_000);

  it('5b. with two replicas, one that hangs is found and restarted alone; scaling back removes its record', async () => {
    const scaled = await mesh.call(mesh.deployer, 'POST', `/services/${target}/scale`, { replicas: 2 }, ['read', 'write']);
    expect(scaled.status).toBe(202);
    expect((await waitDeployment(scaled.body.id)).status).toBe('succeeded');
    const replica = `${target}.r2`;
    const checked = async () =>
      ((await mesh.call(mesh.monitors[0], 'GET', '/targets?per_page=100')).body.items as Array<{ id: string; status: string }>).find(
        (t) => t.id === replica,
      );
    await waitFor('the monitors check the second replica, up', async () => (await checked())?.status === 'up', 30_000, 250);
    const containers = (await mesh.call(mesh.deployer, 'GET', `/services/${target}`)).body.containers as Array<{ container_id: string }>;
    expect(containers).toHaveLength(2);
    const started = async (i: number) => (await mesh.docker.getContainer(containers[i].container_id).inspect()).State.StartedAt;
    const firstStarted = await started(0);

    // Frozen, not dead: no Docker event says so, only the checks can tell. Requests keep coming;
    // proxy-manager sets no read timeout, so nginx's default 60 s holds those the frozen replica took:
    // the client allows 30 s, and the slowest is printed, not asserted.
    const before = deployerRequests.length;
    let slowestMs = 0;
    const timedHttps = async () => {
      const t0 = Date.now();
      const answer = await viaHttps(mesh.proxyHttpsPort, DOMAIN, pebbleRoot, '/', 30_000);
      slowestMs = Math.max(slowestMs, Date.now() - t0);
      return answer;
    };
    let opened: Awaited<ReturnType<typeof incidentOpenedAndResolved>> | undefined;
    const load = await underLoad(timedHttps, async () => {
      await mesh.docker.getContainer(containers[1].container_id).pause();
      opened = await incidentOpenedAndResolved(replica, 20_000);
    });
    // None lost: those held by the frozen replica are answered once it is restarted, or retried on the other.
    expect(failures(load, /^v1$/)).toEqual(NONE);
    console.log(`mesh e2e 5b: ${load.length} requests while a replica hung, the slowest took ${slowestMs} ms`);
    const restarts = deployerRequests.slice(before).filter((r) => r.action === 'restart');
    expect(restarts).toHaveLength(1);
    // `during` threw unless the incident opened and resolved.
    expect(restarts[0].payload).toMatchObject({ target_id: replica, incident_id: opened!.incident.id });
    // That replica alone was restarted; the first never stopped.
    expect(await started(0)).toBe(firstStarted);
    const second = await mesh.docker.getContainer(containers[1].container_id).inspect();
    expect(second.State).toMatchObject({ Running: true, Paused: false });
    expect(await https()).toMatchObject({ status: 200, body: 'v1' });
    expect(incidentEvents.filter((e) => e.type === 'opened' && e.incident.target_id === target)).toHaveLength(1); // test 5's

    const down = await mesh.call(mesh.deployer, 'POST', `/services/${target}/scale`, { replicas: 1 }, ['read', 'write']);
    expect((await waitDeployment(down.body.id)).status).toBe('succeeded');
    expect((await mesh.call(mesh.registry, 'GET', `/droplets/${replica}`)).status).toBe(404);
    await waitFor('the monitors stop checking the second replica', async () => (await checked()) === undefined, 30_000, 250);
  }, 240_000);

  it('6. NATS restarts under traffic: every droplet reconnects and is active within 10 s; no deployment or route is lost', async () => {
    const snapshot = async () => ({
      deployments: (await mesh.call(mesh.deployer, 'GET', `/deployments?project=${mesh.project}&per_page=100`)).body.items
        .map((d: Record<string, unknown>) => [d.id, d.status])
        .sort(),
      release: (await mesh.call(mesh.deployer, 'GET', `/services/${target}`)).body,
      routes: (await mesh.call(mesh.proxy, 'GET', '/proxies?per_page=100')).body.items.map((r: Record<string, unknown>) => [
        r.name,
        r.domain,
        r.upstreams,
        r.enable_ssl,
      ]),
      droplets: (await mesh.call(mesh.registry, 'GET', '/droplets?per_page=100')).body.items
        .map((d: Record<string, unknown>) => d.id)
        .sort(),
    });
    const before = await snapshot();
    // v1, v2 and the rollback (4), then 5b's scale to two replicas and back.
    expect(before.deployments).toHaveLength(5);
    expect(before.routes).toHaveLength(1);

    let activeAfterMs = -1;
    const load = await underLoad(https, async () => {
      await mesh.nats.restart();
      const back = Date.now();
      await waitFor(
        'every droplet /health active again',
        async () => {
          const all = await Promise.all(
            mesh
              .processes()
              .map(
                async ({ proc }) =>
                  ((await (await fetch(`${proc.url}/health`, { signal: AbortSignal.timeout(1000) })).json()) as { status: string }).status,
              ),
          );
          return all.every((s) => s === 'active');
        },
        10_000,
        100,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}\n${mesh.dump()}`);
      });
      // Reconnected for real: every process (each monitor replica too) gets a reply over its own connection.
      for (const { id, proc } of mesh.processes()) {
        const to = id === 'registry' ? 'deployer' : 'registry';
        const r = await mesh.call(proc, 'POST', '/send', { target: to, message_type: 'query', payload: { action: 'ping' } }, [
          'read',
          'write',
        ]);
        expect({ from: id, status: r.status, result: r.body?.result, droplet: r.body?.data?.droplet }).toEqual({
          from: id,
          status: 200,
          result: 'success',
          droplet: to,
        });
      }
      activeAfterMs = Date.now() - back;
    });
    expect(activeAfterMs).toBeGreaterThanOrEqual(0);
    expect(activeAfterMs).toBeLessThan(10_000);
    // The app's path (nginx to the container) never depended on NATS.
    expect(failures(load, /^v1$/)).toEqual(NONE);

    // Every droplet is heard from again (heartbeats over the new connection).
    await waitFor(
      'every droplet active in the registry after the restart',
      async () => {
        const items = (await mesh.call(mesh.registry, 'GET', '/droplets?per_page=100')).body.items as Array<{ id: string; status: string }>;
        return mesh.processes().every(({ id }) => items.find((d) => d.id === id)?.status === 'active');
      },
      10_000,
      200,
    );
    const after = await snapshot();
    expect(after).toEqual(before);
    // JetStream takes writes again (the deployer's KV).
    expect(
      (await mesh.call(mesh.deployer, 'POST', `/projects/${mesh.project}/environments`, { name: 'staging' }, ['read', 'write'])).status,
    ).toBe(201);
    expect(await https()).toMatchObject({ status: 200, body: 'v1' });
  }, 90_000);
});

// 7. Every droplet passes the UDC conformance suite while running in the mesh (after the
// scenario above: jest runs a file's describes in order).
for (const name of DROPLET_NAMES) {
  udcConformanceSuite(`${name} running in the mesh`, async () => {
    if (!ready) throw new Error('the mesh did not come up');
    return conformanceTargetFromUrl(mesh.droplets()[name].url, name, (scopes) => mesh.token(scopes));
  });
}

describe('7. /send between every pair of droplets', () => {
  it('each of the 20 ordered pairs exchanges a ping over NATS', async () => {
    const pairs = DROPLET_NAMES.flatMap((from) => DROPLET_NAMES.filter((to) => to !== from).map((to) => [from, to] as const));
    expect(pairs).toHaveLength(20);
    const outcomes = await Promise.all(
      pairs.map(async ([from, to]) => {
        const r = await mesh.call(
          mesh.droplets()[from],
          'POST',
          '/send',
          { target: to, message_type: 'query', payload: { action: 'ping' }, trace_id: `e2e-${from}-${to}` },
          ['read', 'write'],
        );
        return {
          from,
          to,
          status: r.status,
          result: r.body?.result,
          trace: r.body?.trace_id,
          droplet: r.body?.data?.droplet,
          pong: r.body?.data?.pong,
        };
      }),
    );
    expect(outcomes).toEqual(
      pairs.map(([from, to]) => ({ from, to, status: 200, result: 'success', trace: `e2e-${from}-${to}`, droplet: to, pong: true })),
    );
  }, 60_000);
});
