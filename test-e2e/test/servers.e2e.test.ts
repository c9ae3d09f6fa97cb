import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { buildImageFromDir, copyImages, ensureBusyboxImage, namespacedEngineUnavailable } from '@droplet-mesh/docker-testing';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { underLoad, viaHttp, type LoadResult } from '../support/mesh-http.js';
import { Mesh } from '../support/mesh-stack.js';

// Issue 15, the whole chain as processes: registry, multi-cloud-manager, proxy-manager (its
// nginx), the deployer and three health-monitor replicas on a real nats-server. Three local
// servers are provisioned through the API (each a dockerd in its own network namespace,
// reached over mutual TLS only); a web service with 3 replicas spreads over them; one
// server is lost (its engine killed, its network gone) under load through nginx. The
// health monitors' quorum declares it down, the deployer moves its replica: within 60 s
// the route no longer points at it, requests succeed again, and one incident tells it all.
const why = namespacedEngineUnavailable();
const d = why ? describe.skip : describe;
if (why) console.warn(`servers e2e: skipped (${why})`);

const mesh = new Mesh();
const domain = `${mesh.project}.servers.test`;
const target = `app-${mesh.project}-web-prod`;
const ids = ['a', 'b', 'c'].map((x) => `${mesh.project}-${x}`);
const image = `mesh-apps/${mesh.project}-web:v1`;
// biome-ignore lint/suspicious/noExplicitAny: JSON answers, read loosely
type Loose = Record<string, any>;
let lost: { id: string; netns: string; address: string };

interface Release {
  deployment_id: string;
  containers: Array<{ server_id: string; address: string; port: number }>;
}
const release = async () => (await mesh.call<Release>(mesh.deployer, 'GET', `/services/${target}`)).body;
async function upstreams(): Promise<string[]> {
  const r = await mesh.call(mesh.proxy, 'GET', `/proxies/${target}`);
  return ((r.body?.upstreams ?? []) as Array<{ host: string; port: number }>).map((u) => `${u.host}:${u.port}`).sort();
}
const send = () => viaHttp(mesh.proxyHttpPort, domain, '/', 3000);
const ok = (r: LoadResult) => r.status === 200 && r.body === 'v1';

/**
 * The app's image, built on the host's engine from local files (no registry on the internet):
 * busybox httpd serving `v1` and /health (small: it is copied into every server).
 */
async function buildApp(): Promise<void> {
  const base = await ensureBusyboxImage(mesh.docker);
  const dir = join(mesh.tmp, 'app');
  mkdirSync(join(dir, 'www'), { recursive: true });
  writeFileSync(join(dir, 'www', 'index.html'), 'v1\n');
  writeFileSync(join(dir, 'www', 'health'), 'ok\n');
  writeFileSync(
    join(dir, 'Dockerfile'),
    // httpd as PID 1 has no SIGTERM handler: a stop kills it at once instead of waiting out the timeout.
    `FROM ${base}\nCOPY www /www\nSTOPSIGNAL SIGKILL\nCMD ["/bin/sh", "-c", "exec /bin/busybox httpd -f -p $PORT -h /www"]\n`,
  );
  await buildImageFromDir(mesh.docker, dir, image);
}

/** What every droplet logged about `word` (a failing step's message). */
function linesAbout(word: string): string {
  return mesh
    .processes()
    .map(
      ({ id, proc }) =>
        `--- ${id}\n${proc
          .output()
          .split('\n')
          .filter((l) => l.includes(word))
          .slice(-20)
          .join('\n')}`,
    )
    .join('\n');
}

/** A local server's engine over its private unix socket (test setup only: images). */
function localEngine(instanceId: string): { docker: Docker; netns: string } {
  const netns = instanceId.replace(/^local:/, '');
  if (!/^dmesh-[a-z0-9-]+$/.test(netns)) throw new Error(`not a local server instance: ${instanceId}`);
  const dir = readFileSync(`/run/dmesh/${netns}`, 'utf8').trim();
  return { docker: new Docker({ socketPath: join(dir, 'docker.sock') }), netns };
}

/** The server is lost: every process of its engine killed, its network links down. */
function loseServer(netns: string): void {
  const pids = execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const p of pids) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const links = JSON.parse(execFileSync('ip', ['-j', '-n', netns, 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string }>;
  for (const l of links) if (l.ifname !== 'lo') execFileSync('ip', ['-n', netns, 'link', 'set', l.ifname.split('@')[0], 'down']);
}

beforeAll(async () => {
  if (why) return;
  await mesh.start();
  await buildApp();
}, 240_000);

afterAll(async () => {
  if (why) return;
  // multi-cloud-manager tears its local servers down when it stops (inside mesh.stop()).
  await mesh.stop();
}, 120_000);

d('real servers end to end (issue 15)', () => {
  it('three local servers provisioned through the API; one lost under load: its replica moves, the route follows, one incident tells it', async () => {
    const t0 = Date.now();
    const phases: Record<string, number | string> = {};
    const created = await Promise.all([
      mesh.call(mesh.deployer, 'POST', '/projects', { name: mesh.project }),
      ...ids.map((id) =>
        mesh.call(mesh.deployer, 'POST', '/servers/provision', {
          provider: 'local',
          region: 'local',
          size: 'small',
          name: id,
          environments: [`${mesh.project}/prod`],
        }),
      ),
    ]);
    expect(created.map((c) => c.status)).toEqual([201, 202, 202, 202]);
    expect((await mesh.call(mesh.deployer, 'POST', `/projects/${mesh.project}/environments`, { name: 'prod' })).status).toBe(201);
    const svc = await mesh.call(mesh.deployer, 'POST', `/projects/${mesh.project}/services`, {
      name: 'web',
      type: 'web',
      domain,
      health_path: '/health',
      replicas: 3,
    });
    expect(svc.status).toBe(201);
    const servers: Array<Loose> = [];
    for (const id of ids) {
      let s: Loose = {};
      await waitFor(
        `server ${id} registered`,
        async () => {
          s = (await mesh.call(mesh.deployer, 'GET', `/servers/${id}`)).body;
          if (s.status === 'failed') throw new Error(`provisioning ${id} failed: ${s.reason}`);
          // A local engine can report ready before multi-cloud-manager's answer names its
          // instance: the server is registered at once and its instance id follows moments later.
          return !s.provisioning && !!s.docker_host && !!s.instance_id;
        },
        60_000,
        250,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}: ${JSON.stringify(s)}\n${linesAbout(id)}`);
      });
      expect(s).toMatchObject({ id, tls: true, instance_id: expect.stringMatching(/^local:dmesh-/) });
      expect(s.docker_host).toMatch(/^tcp:\/\/10\.\d+\.\d+\.\d+:2376$/);
      servers.push(s);
    }
    phases.provisioned_s = (Date.now() - t0) / 1000;
    // Every server gets the app image from local files; the deploy pulls nothing from outside.
    await Promise.all(servers.map((s) => copyImages(mesh.docker, localEngine(s.instance_id).docker, [image])));

    phases.copied_s = (Date.now() - t0) / 1000;
    const dep = await mesh.call(mesh.deployer, 'POST', '/deployments', {
      project: mesh.project,
      service: 'web',
      environment: 'prod',
      source: { image },
    });
    expect(dep.status).toBe(202);
    let done: Loose = {};
    await waitFor(
      'the first deploy',
      async () => {
        done = (await mesh.call(mesh.deployer, 'GET', `/deployments/${dep.body.id}`)).body;
        return ['succeeded', 'failed', 'interrupted', 'rolled_back'].includes(done.status);
      },
      90_000,
      250,
    );
    if (done.status !== 'succeeded') throw new Error(`deploy ${done.status}: ${done.reason}\n${mesh.dump()}`);
    phases.deployed_s = (Date.now() - t0) / 1000;
    phases.deploy_steps = done.steps?.map((x: Loose) => `${x.name}:${x.duration_ms}`).join(',');
    const before = await release();
    // One replica per server, nginx upstreams across all three.
    expect(new Set(before.containers.map((c) => c.server_id))).toEqual(new Set(ids));
    await waitFor('nginx serves the app', async () => ok({ ...(await send()), at: 0 }), 20_000, 200);
    // The monitors see every engine up before one is lost.
    await waitFor(
      'every engine checked healthy',
      async () => {
        const targets = (await mesh.call(mesh.monitors[0], 'GET', '/targets?per_page=100')).body.items as Array<Loose>;
        return ids.every((id) => targets.find((t) => t.id === `server-engine-${id}`)?.status === 'up');
      },
      30_000,
      500,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${mesh.dump()}`);
    });

    const victim = servers[2];
    lost = { id: victim.id, netns: localEngine(victim.instance_id).netns, address: victim.address };
    let movedAt = 0;
    let lostAt = 0;
    const results = await underLoad(
      send,
      async () => {
        await new Promise((r) => setTimeout(r, 500));
        lostAt = Date.now();
        loseServer(lost.netns);
        await waitFor(
          'three replicas on the two servers left, the route without the lost one',
          async () => {
            const r = await release();
            const ups = await upstreams();
            return (
              r.deployment_id !== before.deployment_id &&
              r.containers.length === 3 &&
              r.containers.every((c) => c.server_id !== lost.id) &&
              ups.length === 3 &&
              !ups.some((u) => u.startsWith(`${lost.address}:`))
            );
          },
          60_000,
          250,
        ).catch((err) => {
          throw new Error(`${(err as Error).message}\n${mesh.dump(25)}`);
        });
        movedAt = Date.now();
        // Requests succeed again: a run of answers from the servers left.
        for (let i = 0; i < 10; i++) expect(ok({ ...(await send()), at: 0 })).toBe(true);
      },
      3,
      4500,
    );
    phases.lost_to_moved_s = (movedAt - lostAt) / 1000;
    console.log(`servers e2e: ${JSON.stringify(phases)}`);
    expect(movedAt - lostAt).toBeLessThan(60_000);
    const after = await release();
    expect(new Set(after.containers.map((c) => c.server_id))).toEqual(new Set(ids.slice(0, 2)));
    expect(await upstreams()).toEqual(after.containers.map((c) => `${c.address}:${c.port}`).sort());
    // Before the loss and after the move every request succeeded (in between nginx may meet the dead
    // upstream). `at` is when an answer came: one after movedAt + the 3 s client timeout + 0.5 s was sent after the move.
    const afterMove = results.filter((r) => r.at > movedAt + 3500);
    expect(results.filter((r) => r.at < lostAt && !ok(r))).toEqual([]);
    expect(afterMove.filter((r) => !ok(r))).toEqual([]);
    expect(afterMove.length).toBeGreaterThan(5);

    // One incident for the lost server, with the whole story on its timeline.
    let incidents: Array<Loose> = [];
    await waitFor(
      'the move recorded on the incident',
      async () => {
        incidents = (await mesh.call(mesh.monitors[0], 'GET', `/incidents?target_id=server-engine-${lost.id}&per_page=100`)).body.items;
        return incidents.length > 0 && incidents[0].timeline.some((e: { event: string }) => e.event === 'replicas.moved');
      },
      20_000,
      250,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(incidents)}`);
    });
    expect(incidents).toHaveLength(1);
    const events = (incidents[0].timeline as Array<{ event: string; detail?: Loose }>).map((e) => e.event);
    expect(events[0]).toBe('opened');
    expect(events.indexOf('replicas.moving')).toBeGreaterThan(0);
    expect(events.indexOf('replicas.moved')).toBeGreaterThan(events.indexOf('replicas.moving'));
    const moved = incidents[0].timeline.find((e: { event: string }) => e.event === 'replicas.moved').detail;
    expect(moved.deployments).toEqual([
      expect.objectContaining({ target_id: target, deployment_id: after.deployment_id, status: 'succeeded' }),
    ]);
    expect(new Set(moved.deployments[0].servers)).toEqual(new Set(ids.slice(0, 2)));
    // The lost server runs nothing now: removing it is immediate, and its incident closes (its target left).
    expect((await mesh.call(mesh.deployer, 'DELETE', `/servers/${lost.id}`)).status).toBe(204);
    await waitFor(
      'the incident resolved once the server is removed',
      async () => {
        incidents = (await mesh.call(mesh.monitors[0], 'GET', `/incidents?target_id=server-engine-${lost.id}&per_page=100`)).body.items;
        return incidents.length === 1 && incidents[0].status === 'resolved';
      },
      20_000,
      250,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(incidents)}`);
    });
    const story = (incidents[0].timeline as Array<{ event: string }>).map((e) => e.event);
    expect(story.indexOf('replicas.moved')).toBeLessThan(story.length - 1);
    // No other server was declared down.
    for (const id of ids.slice(0, 2)) {
      const other = (await mesh.call(mesh.monitors[0], 'GET', `/incidents?target_id=server-engine-${id}`)).body.items;
      expect(other).toEqual([]);
    }
  }, 180_000);
});
