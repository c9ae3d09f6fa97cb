import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Bus } from '@droplet-mesh/udc-kit';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { namespacedEngineUnavailable } from '@droplet-mesh/docker-testing';
import { api, cleanDocker, startMesh, startUpstream, testImages, type Images, type Mesh } from './support/mesh.js';

// One mesh for the whole file: the steps build on each other like an operator's session.
/** Why local servers (real engines in their own network namespace) cannot be made here, if they cannot. */
const noLocalServers = namespacedEngineUnavailable();
/** Network namespaces on this host: a local server's engine lives in one (its instance id). */
const netnsList = () =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]);
const project = `o${randomBytes(3).toString('hex')}`;
const stack = 'shop';
const webDomain = `${project}.mesh.test`;
const uatDomain = `uat-${project}.mesh.test`;
const docsDomain = `docs-${project}.mesh.test`;
let mesh: Mesh;
let images: Images;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let o: ReturnType<typeof api>;

/** The parts of the KV records the crash test rewinds. */
interface Rewindable {
  status: string;
  finished_at?: string;
  steps: Array<{ status: string }>;
  managed: Record<string, unknown>;
  last_apply: { status: string };
}

function file(opts: { image?: string; uatImage?: string; replicas?: number; hetzner?: number; route?: boolean; uatHttps?: boolean } = {}) {
  return `
version: 1
servers:
  edge:
    provider: hetzner
    region: fsn1
    size: cx22
    image: ubuntu-24.04
    count: ${opts.hetzner ?? 1}
  db:
    provider: digitalocean
    region: fra1
    size: s-1vcpu-1gb
    image: ubuntu-24-04-x64
projects:
  ${project}:
    description: stack test
    environments:
      prod:
        env: { LOG_LEVEL: info }
        services:
          web:
            image: ${opts.image ?? images.v1}
            domain: ${webDomain}
            replicas: ${opts.replicas ?? 1}
          jobs:
            type: worker
            image: ${images.v1}
      uat:
        services:
          web:
            image: ${opts.uatImage ?? images.v1}
            domain: ${uatDomain}
            https: ${opts.uatHttps ?? false}
${
  opts.route === false
    ? ''
    : `routes:
  docs-${project}:
    domain: ${docsDomain}
    upstreams: [{ host: 127.0.0.1, port: ${upstream.port} }]
`
}`;
}

/** Instances of the stack at the emulators, through multi-cloud-manager's API. */
async function stackInstances(): Promise<Array<{ provider: string; provider_id: string; name: string; labels: Record<string, string> }>> {
  const res = await droplet('multi-cloud-manager', '/instances?per_page=200');
  const body = (await res.json()) as {
    items: Array<{ provider: string; provider_id: string; name: string; status: string; labels: Record<string, string> }>;
  };
  // A deleted instance is `deleting` at the provider for a moment: it is gone for the stack.
  return body.items.filter((i) => i.labels?.['mesh-stack'] === stack && i.status !== 'deleting');
}

async function droplet(name: string, path: string, init: RequestInit = {}) {
  const rec = (await (
    await fetch(`${mesh.registryUrl}/droplets/${name}`, { headers: { authorization: `Bearer ${mesh.token}` } })
  ).json()) as {
    droplet: { url: string };
  };
  return fetch(`${rec.droplet.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${mesh.token}`, 'content-type': 'application/json', ...init.headers },
  });
}

const registryRecord = (id: string) => fetch(`${mesh.registryUrl}/droplets/${id}`, { headers: { authorization: `Bearer ${mesh.token}` } });

beforeAll(async () => {
  images = await testImages();
  upstream = await startUpstream('docs here');
  mesh = await startMesh({ healthMonitor: true, localServers: !noLocalServers });
  o = api(mesh);
}, 180_000);

afterAll(async () => {
  await mesh?.close();
  await upstream?.close();
  if (images) await cleanDocker(images.docker, project);
}, 120_000);

describe('the stack API refuses bad input with 4xx and the path in the file', () => {
  it('serves the JSON Schema, equal to the committed file, without a token', async () => {
    const res = await fetch(`${mesh.orchestratorUrl}/stacks/schema.json`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(JSON.parse(readFileSync(new URL('../stack.schema.json', import.meta.url), 'utf8')));
  });

  it('bad YAML, unknown keys, wrong types, secret values: 400 INVALID_REQUEST with fields', async () => {
    const yaml = await o.plan(stack, 'projects:\n  p: [unclosed\n');
    expect(yaml.status).toBe(400);
    expect(yaml.body.error.code).toBe('INVALID_REQUEST');
    expect(yaml.body.error.details.fields[0].message).toMatch(/line \d+, column \d+/);

    const unknown = await o.plan(stack, { projects: { p: { environments: { prod: { services: { web: { image: 'x', replica: 2 } } } } } } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details.fields).toEqual([expect.objectContaining({ path: 'projects.p.environments.prod.services.web' })]);

    const types = await o.plan(stack, 'servers:\n  a: { provider: hetzner, region: fsn1, size: cx22, image: u, count: many }\n');
    expect(types.status).toBe(400);
    expect(types.body.error.details.fields).toEqual([expect.objectContaining({ path: 'servers.a.count' })]);

    const secret = await o.plan(stack, { projects: { p: { environments: { prod: { secrets: { DB_PASSWORD: 'hunter2' } } } } } });
    expect(secret.status).toBe(400);
    expect(secret.body.error.message).toMatch(/secret values/);
    expect(secret.body.error.details.fields[0].path).toBe('projects.p.environments.prod.secrets');
    expect(JSON.stringify(secret.body)).not.toContain('hunter2');

    expect((await o.plan(stack, '')).status).toBe(400);
    expect((await o.call('POST', '/stacks/Bad_Name/plan', {})).status).toBe(400);
  });

  it('apply: an unknown plan is 404, a malformed body 400; GET of an unknown stack 404', async () => {
    expect((await o.apply(stack, '00000000-0000-4000-8000-000000000000')).status).toBe(404);
    const bad = await o.call('POST', `/stacks/${stack}/apply`, { plan_id: 'nope', extra: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.fields.map((f: { path: string }) => f.path)).toEqual(expect.arrayContaining(['plan_id']));
    expect((await o.call('GET', '/stacks/nothing-here')).status).toBe(404);
  });

  it('without a token: 401', async () => {
    const res = await fetch(`${mesh.orchestratorUrl}/stacks`);
    expect(res.status).toBe(401);
  });
});

describe('plan and apply against the real droplets', () => {
  it('plans a new stack: every step in dependency order, with the monthly cost of the servers', async () => {
    const p = await o.plan(stack, file());
    expect(p.status).toBe(201);
    expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([
      'create server/edge/0',
      'create server/db/0',
      `create project/${project}`,
      `create environment/${project}/prod`,
      `create environment/${project}/uat`,
      `create service/${project}/prod/web`,
      `create service/${project}/prod/jobs`,
      `create service/${project}/uat/web`,
      `deploy release/${project}/prod/web`,
      `deploy release/${project}/prod/jobs`,
      `deploy release/${project}/uat/web`,
      `create route/docs-${project}`,
    ]);
    expect(p.body.cost.monthly_delta).toEqual({ USD: 6, EUR: expect.any(Number) });
    expect(p.body.cost.unknown_prices).toEqual([]);
  });

  it('validates a file without touching anything, and keeps each plan', async () => {
    const v = await o.call('POST', `/stacks/${stack}/validate`, file(), 'application/yaml');
    expect(v.status).toBe(200);
    expect(v.body.resources).toContain(`release/${project}/uat/web`);
    const p = await o.plan(stack, file());
    const again = await o.call('GET', `/stacks/${stack}/plans/${p.body.id}`);
    expect(again.body).toMatchObject({ id: p.body.id, status: 'pending', steps: p.body.steps });
    expect((await o.call('GET', `/stacks/other/plans/${p.body.id}`)).status).toBe(404);
  });

  it('applies it: instances at two providers, services deployed and served through nginx, the route live', async () => {
    const p = await o.plan(stack, file());
    const a = await o.apply(stack, p.body.id);
    expect(a.status).toBe(200);
    if (a.body.status !== 'succeeded') throw new Error(JSON.stringify(a.body, null, 2));
    expect(a.body.steps.every((s: { status: string }) => s.status === 'succeeded')).toBe(true);

    const inst = await stackInstances();
    expect(inst.map((i) => `${i.provider} ${i.name}`).sort()).toEqual(['digitalocean shop-db-0', 'hetzner shop-edge-0']);
    expect(await mesh.viaProxy(webDomain)).toEqual({ status: 200, body: 'version-1' });
    expect(await mesh.viaProxy(uatDomain)).toEqual({ status: 200, body: 'version-1' });
    expect(await mesh.viaProxy(docsDomain)).toEqual({ status: 200, body: 'docs here' });

    const s = await o.call('GET', `/stacks/${stack}`);
    expect(s.body).toMatchObject({ name: stack, status: 'applied', last_apply: { id: a.body.id, status: 'succeeded' } });
    expect(s.body.desired.projects[project].environments.prod.services.web.domain).toBe(webDomain);
    const list = await o.call('GET', '/stacks');
    expect(list.body.items.map((x: { name: string }) => x.name)).toContain(stack);
  }, 240_000);

  it('planning the same file again is a no-op, and drift says in sync', async () => {
    const p = await o.plan(stack, file());
    expect(p.body.steps).toEqual([]);
    const d = await o.call('GET', `/stacks/${stack}/drift`);
    expect(d.body).toMatchObject({ in_sync: true, differences: [] });
  }, 60_000);

  it('a new image and replicas: the plan lists exactly those steps; apply serves the new version', async () => {
    const p = await o.plan(stack, file({ image: images.v2, replicas: 2 }));
    expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([
      `update service/${project}/prod/web`,
      `deploy release/${project}/prod/web`,
    ]);
    expect(p.body.steps[0].changes).toEqual([{ field: 'replicas', before: 1, after: 2 }]);
    expect(p.body.steps[1].changes).toEqual([{ field: 'image', before: images.v1, after: images.v2 }]);
    // Steady requests through nginx while it applies: none may fail.
    const seen: Array<{ status: number; body: string }> = [];
    let loading = true;
    const load = Array.from({ length: 3 }, async () => {
      while (loading) seen.push(await mesh.viaProxy(webDomain));
    });
    const a = await o.apply(stack, p.body.id).finally(() => {
      loading = false;
    });
    await Promise.all(load);
    expect(a.body.status).toBe('succeeded');
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.filter((r) => r.status !== 200 || !['version-1', 'version-2'].includes(r.body))).toEqual([]);
    expect(await mesh.viaProxy(webDomain)).toEqual({ status: 200, body: 'version-2' });
    const rel = await (await droplet('deployer', `/services/app-${project}-web-prod-prod`)).json();
    expect((rel as { containers: unknown[] }).containers).toHaveLength(2);
  }, 180_000);

  it('a plan is refused (409) once live state changed behind its back, and drift shows the change', async () => {
    const p = await o.plan(stack, file({ image: images.v2, replicas: 2 }));
    expect(p.body.steps).toEqual([]);
    // How long one comparison of this stack with live state takes right now (the periodic check does the same).
    const probeStart = Date.now();
    expect((await o.call('GET', `/stacks/${stack}/drift`)).body.in_sync).toBe(true);
    const checkMs = Date.now() - probeStart;
    expect((await droplet('proxy-manager', `/proxies/docs-${project}`, { method: 'DELETE' })).status).toBe(200);
    const deletedAt = Date.now();
    let seenAt = 0;
    await waitFor(
      'the drift check to see the deleted route',
      async () => {
        const d = (await o.call('GET', `/stacks/${stack}`)).body.last_drift;
        if (!d?.differences?.some((x: { id: string }) => x.id === `route/docs-${project}`)) return false;
        seenAt = Date.parse(d.checked_at);
        return true;
      },
      15_000,
      50,
    );
    // Within one interval (DRIFT_INTERVAL_S=1 here): the next periodic check starts at most 1 s after the
    // deletion, and stamps checked_at when its comparison ends, so one comparison's duration (measured
    // above, doubled for its variance) and 500 ms for late timers on a loaded 2-core machine are the margin.
    expect(seenAt - deletedAt).toBeLessThanOrEqual(1000 + 2 * checkMs + 500);
    const a = await o.apply(stack, p.body.id);
    expect(a.status).toBe(409);
    expect(a.body.error.code).toBe('CONFLICT');
    expect(a.body.error.details.changed).toEqual([`route/docs-${project}`]);
    const d = await o.call('GET', `/stacks/${stack}/drift`);
    expect(d.body.in_sync).toBe(false);
    expect(d.body.differences).toEqual([expect.objectContaining({ id: `route/docs-${project}`, problem: 'missing' })]);
    // Repair: a fresh plan puts the route back.
    const fix = await o.plan(stack, file({ image: images.v2, replicas: 2 }));
    expect(fix.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([`create route/docs-${project}`]);
    expect((await o.apply(stack, fix.body.id)).body.status).toBe('succeeded');
    expect(await mesh.viaProxy(docsDomain)).toEqual({ status: 200, body: 'docs here' });
  }, 120_000);

  it('a failed step stops the apply, says which and why, undoes what it did; the old version keeps serving', async () => {
    const p = await o.plan(stack, file({ image: images.broken, replicas: 2, hetzner: 2 }));
    expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([
      'create server/edge/1',
      `deploy release/${project}/prod/web`,
    ]);
    // The previous version serves throughout: steady requests through nginx while it fails and rolls back.
    const seen: Array<{ status: number; body: string }> = [];
    let loading = true;
    const load = Array.from({ length: 2 }, async () => {
      while (loading) seen.push(await mesh.viaProxy(webDomain));
    });
    const a = await o.apply(stack, p.body.id).finally(() => {
      loading = false;
    });
    await Promise.all(load);
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.filter((r) => r.status !== 200 || r.body !== 'version-2')).toEqual([]);
    expect(a.body.status).toBe('rolled_back');
    expect(a.body.failed_step).toMatchObject({ n: 2, id: `release/${project}/prod/web` });
    expect(a.body.failed_step.error).toMatch(/failed/);
    expect(a.body.undo).toEqual([expect.objectContaining({ id: 'server/edge/1', result: 'undone' })]);
    expect(await mesh.viaProxy(webDomain)).toEqual({ status: 200, body: 'version-2' });
    expect((await stackInstances()).map((i) => i.name).sort()).toEqual(['shop-db-0', 'shop-edge-0']);
    const s = await o.call('GET', `/stacks/${stack}`);
    expect(s.body.status).toBe('rolled_back');
    expect(s.body.desired.projects[project].environments.prod.services.web.image).toBe(images.v2);
  }, 180_000);

  it('promote: prod runs exactly the image uat runs', async () => {
    // uat gets v1 → v2 first, then prod (v2) is promoted from uat after uat moves to v1 again.
    const up = await o.plan(stack, file({ image: images.v2, replicas: 2, uatImage: images.v1 }));
    expect(up.body.steps).toEqual([]);
    const pr = await o.call('POST', `/stacks/${stack}/promote?wait=true`, { from: 'uat', to: 'prod' });
    expect(pr.status).toBe(200);
    expect(pr.body.images).toEqual([{ project, service: 'web', image: images.v1, was: images.v2 }]);
    expect(pr.body.apply.status).toBe('succeeded');
    expect(pr.body.plan.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([
      `deploy release/${project}/prod/web`,
    ]);
    expect(await mesh.viaProxy(webDomain)).toEqual({ status: 200, body: 'version-1' });
    const s = await o.call('GET', `/stacks/${stack}`);
    expect(s.body.desired.projects[project].environments.prod.services.web.image).toBe(images.v1);
    expect((await o.call('POST', `/stacks/${stack}/promote`, { from: 'uat', to: 'uat' })).status).toBe(400);
  }, 180_000);

  it('an apply interrupted by a crash continues when the orchestrator starts again, with no duplicate instance', async () => {
    const p = await o.plan(stack, file({ image: images.v2, replicas: 2, hetzner: 3 }));
    expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([
      'create server/edge/1',
      'create server/edge/2',
      `deploy release/${project}/prod/web`,
    ]);
    const started = await o.call('POST', `/stacks/${stack}/apply`, { plan_id: p.body.id });
    expect(started.status).toBe(202);
    const applyId = started.body.id as string;
    // Crash in the middle: once the deploy step runs (both servers done), stop without finishing.
    await waitFor(
      'the deploy step to start',
      async () => (await o.call('GET', `/stacks/${stack}/applies/${applyId}`)).body.steps[2].status === 'running',
      60_000,
      50,
    );
    await mesh.stopOrchestrator();
    await mesh.startOrchestrator();
    let final: { status: string; resumed: number; steps: Array<{ status: string }> } | undefined;
    await waitFor(
      'the resumed apply to finish',
      async () => {
        final = (await o.call('GET', `/stacks/${stack}/applies/${applyId}`)).body;
        return final?.status !== 'running';
      },
      120_000,
      200,
    );
    expect(final).toMatchObject({ status: 'succeeded', resumed: 1 });
    const inst = await stackInstances();
    expect(inst.map((i) => i.name).sort()).toEqual(['shop-db-0', 'shop-edge-0', 'shop-edge-1', 'shop-edge-2']);
    expect(await mesh.viaProxy(webDomain)).toEqual({ status: 200, body: 'version-2' });
  }, 240_000);

  it('one apply per stack at a time', async () => {
    const p1 = await o.plan(stack, file({ image: images.v1, replicas: 2, hetzner: 3 }));
    const first = await o.call('POST', `/stacks/${stack}/apply`, { plan_id: p1.body.id });
    expect(first.status).toBe(202);
    const second = await o.call('POST', `/stacks/${stack}/apply`, { plan_id: p1.body.id });
    expect(second.status).toBe(409);
    // Progress as server-sent events, ending with the final status.
    const res = await fetch(`${mesh.orchestratorUrl}/stacks/${stack}/applies/${first.body.id}/events`, {
      headers: { authorization: `Bearer ${mesh.token}` },
      signal: AbortSignal.timeout(120_000),
    });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const events = (await res.text())
      .split('\n\n')
      .filter((b) => b.includes('data: '))
      .map((b) => ({ event: /^event: (.+)$/m.exec(b)?.[1], data: JSON.parse(/^data: (.+)$/m.exec(b)?.[1] ?? '{}') }));
    expect(events.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded' } });
    expect(events.filter((e) => e.event === 'step' && e.data.status === 'succeeded').map((e) => e.data.id)).toEqual([
      `release/${project}/prod/web`,
    ]);
    expect((await o.call('GET', `/stacks/${stack}/applies/${first.body.id}`)).body.status).toBe('succeeded');
  }, 180_000);

  it('a server step interrupted after the provider created the instance replays its Idempotency-Key: no duplicate', async () => {
    const p = await o.plan(stack, file({ image: images.v1, replicas: 2, hetzner: 4 }));
    expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual(['create server/edge/3']);
    const a = await o.apply(stack, p.body.id);
    expect(a.body.status).toBe('succeeded');
    expect((await stackInstances()).map((i) => i.name).sort()).toEqual([
      'shop-db-0',
      'shop-edge-0',
      'shop-edge-1',
      'shop-edge-2',
      'shop-edge-3',
    ]);
    // Rewind the records to the moment after the provider's create, before the step was recorded as done,
    // as an orchestrator killed there leaves them (its lease no longer renewed).
    const bus = await Bus.connect({ url: mesh.nats.url, name: 'orchestrator-test-rewind' });
    try {
      const kv = await bus.kv('orchestrator');
      const rec = (await kv.get(`apply.${a.body.id}`))!.json<Rewindable>();
      rec.status = 'running';
      rec.steps[0].status = 'running';
      delete rec.finished_at;
      await kv.put(`apply.${a.body.id}`, JSON.stringify(rec));
      const st = (await kv.get(`stack.${stack}`))!.json<Rewindable>();
      delete st.managed['server/edge/3'];
      st.last_apply.status = 'running';
      st.status = 'applying';
      await kv.put(`stack.${stack}`, JSON.stringify(st));
      await kv.put(`lease.${stack}`, JSON.stringify({ apply_id: a.body.id, owner: 'a-dead-orchestrator', at: Date.now() - 60_000 }));
    } finally {
      await bus.close();
    }
    // A plan now is refused at apply: the interrupted apply comes first.
    let final: { status: string; resumed: number } | undefined;
    await waitFor(
      'the running orchestrator to resume the apply',
      async () => {
        final = (await o.call('GET', `/stacks/${stack}/applies/${a.body.id}`)).body;
        return final?.status !== 'running';
      },
      60_000,
      200,
    );
    expect(final).toMatchObject({ status: 'succeeded', resumed: 1 });
    expect((await stackInstances()).map((i) => i.name).sort()).toEqual([
      'shop-db-0',
      'shop-edge-0',
      'shop-edge-1',
      'shop-edge-2',
      'shop-edge-3',
    ]);
    const s = await o.call('GET', `/stacks/${stack}`);
    expect(s.body.resources.map((r: { id: string }) => r.id)).toContain('server/edge/3');
    expect(s.body.status).toBe('applied');
  }, 120_000);

  it('a service built from a git repository (file://): deployed, then a no-op plan, then a new commit redeploys', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'orch-git-'));
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', repo, ...args], { stdio: 'pipe' })
        .toString()
        .trim();
    const commit = (text: string) => {
      mkdirSync(join(repo, 'www'), { recursive: true });
      writeFileSync(join(repo, 'www/index.html'), text);
      writeFileSync(join(repo, 'www/health'), 'ok');
      writeFileSync(
        join(repo, 'Dockerfile'),
        `FROM ${images.busybox}\nCOPY www /www\nCMD ["/bin/sh", "-c", "exec httpd -f -p 0.0.0.0:$PORT -h /www"]\n`,
      );
      git('add', '.');
      git('-c', 'user.email=t@example.com', '-c', 'user.name=t', 'commit', '-q', '-m', text);
      return git('rev-parse', 'HEAD');
    };
    try {
      execFileSync('git', ['init', '-q', '-b', 'main', repo]);
      const first = commit('from-git-1');
      const gproject = `${project}g`;
      const gdomain = `git-${project}.mesh.test`;
      const stackFile = (ref: string) => ({
        projects: {
          [gproject]: { environments: { prod: { services: { site: { git: { url: `file://${repo}`, ref }, domain: gdomain } } } } },
        },
      });
      const p = await o.plan('gitstack', stackFile(first));
      expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toContain(
        `deploy release/${gproject}/prod/site`,
      );
      const a = await o.apply('gitstack', p.body.id);
      if (a.body.status !== 'succeeded') throw new Error(JSON.stringify(a.body.steps, null, 2));
      expect(await mesh.viaProxy(gdomain)).toEqual({ status: 200, body: 'from-git-1' });
      expect((await o.plan('gitstack', stackFile(first))).body.steps).toEqual([]);
      const second = commit('from-git-2');
      const p2 = await o.plan('gitstack', stackFile(second));
      expect(p2.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([
        `deploy release/${gproject}/prod/site`,
      ]);
      expect(p2.body.steps[0].changes[0].field).toBe('git');
      expect((await o.apply('gitstack', p2.body.id)).body.status).toBe('succeeded');
      expect(await mesh.viaProxy(gdomain)).toEqual({ status: 200, body: 'from-git-2' });
      await cleanDocker(images.docker, gproject);
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  }, 180_000);

  it('reconcile: true repairs drift found by the periodic check', async () => {
    const docs = `
reconcile: true
routes:
  self-${project}:
    domain: self-${docsDomain}
    upstreams: [{ host: 127.0.0.1, port: ${upstream.port} }]
`;
    const p = await o.plan('selfheal', docs);
    expect((await o.apply('selfheal', p.body.id)).body.status).toBe('succeeded');
    expect(await mesh.viaProxy(`self-${docsDomain}`)).toEqual({ status: 200, body: 'docs here' });
    expect((await droplet('proxy-manager', `/proxies/self-${project}`, { method: 'DELETE' })).status).toBe(200);
    await waitFor('the route to be put back', async () => (await mesh.viaProxy(`self-${docsDomain}`)).status === 200, 30_000, 200);
    const s = await o.call('GET', '/stacks/selfheal');
    const repair = s.body.last_drift.last_reconcile.apply_id as string;
    await waitFor(
      'the repair to finish',
      async () => (await o.call('GET', `/stacks/selfheal/applies/${repair}`)).body.status !== 'running',
      30_000,
      200,
    );
    expect((await o.call('GET', `/stacks/selfheal/applies/${repair}`)).body.status).toBe('succeeded');
    const gone = await o.call('DELETE', '/stacks/selfheal?confirm=selfheal&wait=true');
    expect(gone.body.status).toBe('succeeded');
    expect((await o.call('GET', '/stacks/selfheal')).body.status).toBe('destroyed');
  }, 90_000);

  it("a size the provider does not offer is the file's mistake (400 with its path), found at plan time", async () => {
    const bad = file({ image: images.v1, replicas: 2, hetzner: 4 }).replace('size: cx22', 'size: cx999');
    const p = await o.plan(stack, bad);
    expect(p.status).toBe(400);
    expect(p.body.error.details.fields).toEqual([expect.objectContaining({ path: 'servers.edge.size' })]);
  }, 60_000);

  it('https: a certificate from the ACME CA (pebble) and HTTP redirected to HTTPS', async () => {
    const p = await o.plan(stack, file({ image: images.v1, replicas: 2, hetzner: 4, uatHttps: true }));
    expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([`create https/${project}/uat/web`]);
    const a = await o.apply(stack, p.body.id);
    if (a.body.status !== 'succeeded') throw new Error(JSON.stringify(a.body.steps, null, 2));
    const route = (await (await droplet('proxy-manager', `/proxies/app-${project}-web-uat-uat`)).json()) as {
      enable_ssl: boolean;
      certificate?: { issuer: string };
    };
    expect(route.enable_ssl).toBe(true);
    expect(route.certificate?.issuer).toMatch(/Pebble/i);
    expect((await mesh.viaProxy(uatDomain)).status).toBe(301);
    expect((await o.plan(stack, file({ image: images.v1, replicas: 2, hetzner: 4, uatHttps: true }))).body.steps).toEqual([]);
  }, 120_000);

  it('destroy: needs ?confirm, then undeploys and deletes everything the stack created, and only that', async () => {
    // What must go: the web service's registry record and containers exist now.
    expect((await registryRecord(`app-${project}-web-prod-prod`)).status).toBe(200);
    expect((await images.docker.listContainers({ filters: { label: [`mesh.project=${project}`] } })).length).toBeGreaterThan(0);
    const unconfirmed = await o.call('DELETE', `/stacks/${stack}`);
    expect(unconfirmed.status).toBe(400);
    expect(unconfirmed.body.error.details.fields).toEqual([expect.objectContaining({ path: 'confirm' })]);
    const steps = unconfirmed.body.error.details.plan.steps as Array<{
      action: string;
      id: string;
      destructive: boolean;
      unsupported?: string;
    }>;
    expect(steps.every((s) => s.action === 'delete' && s.destructive)).toBe(true);
    expect(steps[0].id).toBe(`route/docs-${project}`);
    expect(steps.filter((s) => s.unsupported)).toEqual([]);
    expect(steps.map((s) => s.id)).toEqual(
      expect.arrayContaining([
        `release/${project}/prod/web`,
        `service/${project}/prod/web`,
        `environment/${project}/prod`,
        `project/${project}`,
      ]),
    );
    expect(unconfirmed.body.error.details.plan.cost.monthly_delta.USD).toBe(-6);
    // Its plan cannot be applied around the confirmation.
    const around = await o.apply(stack, unconfirmed.body.error.details.plan.id);
    expect(around.status).toBe(400);
    expect(around.body.error.message).toMatch(/confirm=/);

    const done = await o.call('DELETE', `/stacks/${stack}?confirm=${stack}&wait=true`);
    expect(done.status).toBe(200);
    if (done.body.status !== 'succeeded') throw new Error(JSON.stringify(done.body, null, 2));
    expect(done.body.not_done).toEqual([]);
    expect((await droplet('deployer', `/projects/${project}`)).status).toBe(404);
    expect(await stackInstances()).toEqual([]);
    expect((await droplet('proxy-manager', `/proxies/docs-${project}`)).status).toBe(404);
    expect((await droplet('proxy-manager', `/proxies/app-${project}-web-prod-prod`)).status).toBe(404);
    expect(await images.docker.listContainers({ all: true, filters: { label: [`mesh.project=${project}`] } })).toEqual([]);
    expect((await registryRecord(`app-${project}-web-prod-prod`)).status).toBe(404);
    // Instances the stack did not create are still there (the emulators' seeded ones).
    const all = await (await droplet('multi-cloud-manager', '/instances?per_page=200')).json();
    expect((all as { items: unknown[] }).items.length).toBeGreaterThan(0);
    const after = (await o.call('GET', `/stacks/${stack}`)).body;
    expect(after.status).toBe('destroyed');
    expect(after.resources.map((r: { id: string }) => r.id)).not.toContain('server/db/0');
  }, 180_000);

  it("placement: a service runs on the stack's own server (its engine: the deployer's local server), and destroy takes the server back", async () => {
    const proj = `${project}p`;
    const placed = `
servers:
  box:
    provider: digitalocean
    region: fra1
    size: s-1vcpu-1gb
    image: ubuntu-24-04-x64
    engine: local
projects:
  ${proj}:
    environments:
      prod:
        services:
          api:
            image: ${images.v1}
            replicas: 2
            placement: [box]
`;
    try {
      const p = await o.plan('placed', placed);
      expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([
        'create server/box/0',
        `create project/${proj}`,
        `create environment/${proj}/prod`,
        `create service/${proj}/prod/api`,
        `create placement/${proj}/prod/api`,
        `deploy release/${proj}/prod/api`,
      ]);
      const a = await o.apply('placed', p.body.id);
      if (a.body.status !== 'succeeded') throw new Error(JSON.stringify(a.body.steps, null, 2));
      const placement = await (await droplet('deployer', `/projects/${proj}/services/api-prod/placements/prod`)).json();
      expect(placement).toMatchObject({ servers: [{ server_id: 'local', replicas: 2 }] });
      const local = (await (await droplet('deployer', '/servers/local')).json()) as { environments?: string[] };
      expect(local.environments).toContain(`${proj}/prod`);
      const rel = (await (await droplet('deployer', `/services/app-${proj}-api-prod-prod`)).json()) as {
        containers: Array<{ server_id: string }>;
      };
      expect(rel.containers.map((c) => c.server_id)).toEqual(['local', 'local']);
      expect((await o.plan('placed', placed)).body.steps).toEqual([]);

      const unplaced = placed.replace('            placement: [box]\n', '');
      // Dropped together with a deploy that fails: the rollback puts the placement back.
      const broken = await o.plan('placed', unplaced.replace(images.v1, images.broken));
      const rb = await o.apply('placed', broken.body.id);
      expect(rb.body.status).toBe('rolled_back');
      expect(rb.body.undo).toEqual(
        expect.arrayContaining([expect.objectContaining({ id: `placement/${proj}/prod/api`, result: 'undone' })]),
      );
      expect(await (await droplet('deployer', `/projects/${proj}/services/api-prod/placements/prod`)).json()).toMatchObject({
        servers: [{ server_id: 'local', replicas: 2 }],
      });
      expect((await o.plan('placed', placed)).body.steps).toEqual([]);
      // The file drops the placement; the service stays: the placement is removed before a deploy (no step left undone).
      const u = await o.plan('placed', unplaced);
      expect(u.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([
        `delete placement/${proj}/prod/api`,
        `deploy release/${proj}/prod/api`,
      ]);
      const ua = await o.apply('placed', u.body.id);
      if (ua.body.status !== 'succeeded') throw new Error(JSON.stringify(ua.body, null, 2));
      expect(ua.body.not_done).toEqual([]);
      expect((await droplet('deployer', `/projects/${proj}/services/api-prod/placements/prod`)).status).toBe(404);
      const freed = (await (await droplet('deployer', '/servers/local')).json()) as { environments?: string[] };
      expect(freed.environments ?? []).not.toContain(`${proj}/prod`);
      expect((await o.plan('placed', unplaced)).body.steps).toEqual([]);

      const done = await o.call('DELETE', '/stacks/placed?confirm=placed&wait=true');
      if (done.body.status !== 'succeeded') throw new Error(JSON.stringify(done.body, null, 2));
      const after = (await (await droplet('deployer', '/servers/local')).json()) as { environments?: string[] };
      expect(after.environments ?? []).not.toContain(`${proj}/prod`);
      expect((await droplet('deployer', `/projects/${proj}`)).status).toBe(404);
    } finally {
      await cleanDocker(images.docker, proj);
    }
  }, 180_000);

  (noLocalServers ? it.skip : it)(
    'provision: a stack server provisioned through the deployer is a real engine its service runs on; destroy drains and removes it, and its machine',
    async () => {
      const proj = `${project}v`;
      const file = `
servers:
  node: { provider: local, region: local, size: local-small, image: debian-12, provision: true }
  # The deploy's image is made on its first server (local, sorted first) and copied to the new engine (nothing is pulled here).
  box: { provider: digitalocean, region: fra1, size: s-1vcpu-1gb, image: ubuntu-24-04-x64, engine: local }
projects:
  ${proj}:
    environments:
      prod:
        services:
          api: { type: worker, image: ${images.v1}, replicas: 2, placement: [node, box] }
`;
      const serverId = 'provd-node-0';
      try {
        const p = await o.plan('provd', file);
        expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual([
          'create server/node/0',
          'create server/box/0',
          `create project/${proj}`,
          `create environment/${proj}/prod`,
          `create service/${proj}/prod/api`,
          `create placement/${proj}/prod/api`,
          `deploy release/${proj}/prod/api`,
        ]);
        const a = await o.apply('provd', p.body.id);
        if (a.body.status !== 'succeeded') throw new Error(JSON.stringify(a.body.steps, null, 2));
        const server = (await (await droplet('deployer', `/servers/${serverId}`)).json()) as Record<string, string | boolean>;
        expect(server).toMatchObject({ id: serverId, tls: true });
        expect(server.docker_host).toMatch(/^tcp:\/\/10\.231\.\d+\.\d+:2376$/);
        // The machine multi-cloud-manager made (a real engine in its own network namespace).
        const provision = (await (await droplet('deployer', `/servers/provision/${serverId}`)).json()) as { instance_id: string };
        const netns = String(provision.instance_id);
        expect(netnsList()).toContain(netns);
        const rel = (await (await droplet('deployer', `/services/app-${proj}-api-prod-prod`)).json()) as {
          containers: Array<{ server_id: string }>;
        };
        expect(rel.containers.map((c) => c.server_id).sort()).toEqual(['local', serverId]);
        expect((await o.plan('provd', file)).body.steps).toEqual([]);

        const done = await o.call('DELETE', '/stacks/provd?confirm=provd&wait=true');
        if (done.body.status !== 'succeeded') throw new Error(JSON.stringify(done.body, null, 2));
        expect(done.body.steps.find((s: { id: string }) => s.id === 'server/node/0').detail).toMatch(/drained and removed; local instance/);
        expect((await droplet('deployer', `/servers/${serverId}`)).status).toBe(404);
        await waitFor('the engine (its network namespace) to be gone', async () => !netnsList().includes(netns), 30_000, 200);
      } finally {
        await cleanDocker(images.docker, proj);
      }
    },
    180_000,
  );

  it('provision on an emulated cloud: the machine never boots here, so the step fails with the reason within the provisioning timeout', async () => {
    const file = `
servers:
  far: { provider: hetzner, region: fsn1, size: cx22, image: ubuntu-24.04, provision: true }
`;
    const p = await o.plan('faraway', file);
    expect(p.body.steps.map((s: { action: string; id: string }) => `${s.action} ${s.id}`)).toEqual(['create server/far/0']);
    const started = Date.now();
    const a = await o.apply('faraway', p.body.id);
    expect(a.body.status).toBe('rolled_back');
    expect(a.body.failed_step.error).toMatch(/provisioning server faraway-far-0 failed: no ready report within 10 s/);
    // PROVISION_TIMEOUT_S=10 on the deployer, and its create call: not the orchestrator's SERVER_TIMEOUT_S (900 s).
    expect(Date.now() - started).toBeLessThan(40_000);
    // The deployer deleted the instance it had made; nothing is left to the stack.
    expect(await (await droplet('deployer', '/servers/faraway-far-0')).json()).toMatchObject({ provisioning: true, status: 'failed' });
    expect((await o.plan('faraway', file)).body.steps.map((s: { id: string }) => s.id)).toEqual(['server/far/0']);
  }, 60_000);

  it('alerts: the recipients and webhooks go to the health-monitor, show in the plan, change in place and leave with destroy', async () => {
    const hook = (n: number) => `http://127.0.0.1:${upstream.port}/hook-${n}`;
    const alerted = (hooks: string[]) => `alerts:\n  webhooks: [${hooks.join(', ')}]\n`;
    const recipients = () => droplet('health-monitor', '/notifications/recipients/stack-alerted');
    const p = await o.plan('alerted', alerted([hook(1)]));
    expect(p.body.steps.map((s: { action: string; id: string; after: unknown }) => [s.action, s.id, s.after])).toEqual([
      ['create', 'alerts', { owner: 'stack-alerted', emails: [], webhooks: [hook(1)] }],
    ]);
    expect((await o.apply('alerted', p.body.id)).body.status).toBe('succeeded');
    expect(await (await recipients()).json()).toMatchObject({ owner: 'stack-alerted', webhooks: [hook(1)] });
    expect((await o.plan('alerted', alerted([hook(1)]))).body.steps).toEqual([]);

    const q = await o.plan('alerted', alerted([hook(1), hook(2)]));
    expect(q.body.steps.map((s: { action: string; changes: unknown }) => [s.action, s.changes])).toEqual([
      ['update', [{ field: 'webhooks', before: [hook(1)], after: [hook(1), hook(2)] }]],
    ]);
    expect((await o.apply('alerted', q.body.id)).body.status).toBe('succeeded');
    expect(await (await recipients()).json()).toMatchObject({ webhooks: [hook(1), hook(2)] });
    // A metadata address is refused by the health-monitor: the step fails and nothing changes.
    const bad = await o.plan('alerted', alerted(['http://169.254.169.254/latest']));
    const failed = await o.apply('alerted', bad.body.id);
    expect(failed.body.status).toBe('rolled_back');
    expect(failed.body.failed_step.error).toMatch(/not allowed/);
    expect(await (await recipients()).json()).toMatchObject({ webhooks: [hook(1), hook(2)] });

    const done = await o.call('DELETE', '/stacks/alerted?confirm=alerted&wait=true');
    expect(done.body.status).toBe('succeeded');
    expect((await recipients()).status).toBe(404);
  }, 60_000);
});
