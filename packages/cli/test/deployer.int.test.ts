import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeployerDroplet } from '@droplet-mesh/deployer/dist/app.js';
import { buildImageFromDir, ensureBusyboxImage, ensureDockerEngine } from '@droplet-mesh/docker-testing';
import { startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { expectNoStack, quiet, runCli, scratchHome } from './support/cli.js';
import { ADMIN_KEY, startRegistry } from './support/mesh.js';

// The real deployer on the real Docker Engine, found through the registry, driven only by meshctl.

type Docker = Awaited<ReturnType<typeof ensureDockerEngine>>;
const project = `cli${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'meshctl-deployer-'));
const home = scratchHome();
const env = () => ({ HOME: home.home, MESHCTL_CONFIG: home.config });
let docker: Docker;
let busybox: string;
let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;
let deployer: Awaited<ReturnType<typeof createDeployerDroplet>>;
let token: string;

/** A busybox httpd site: / says `text`, /health says ok (or, when `healthy` is false, nothing serves). */
function writeSite(dir: string, text: string, healthy = true): string {
  mkdirSync(join(dir, 'www'), { recursive: true });
  writeFileSync(join(dir, 'www', 'index.html'), text);
  writeFileSync(join(dir, 'www', 'health'), 'ok');
  const cmd = healthy ? '["/bin/sh", "-c", "exec httpd -f -p 0.0.0.0:$PORT -h /www"]' : '["/bin/sh", "-c", "echo not serving; sleep 3600"]';
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${busybox}\nCOPY www /www\nCMD ${cmd}\n`);
  return dir;
}

async function api(method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${deployerUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json();
}
let deployerUrl: string;

beforeAll(async () => {
  docker = await ensureDockerEngine();
  busybox = await ensureBusyboxImage(docker);
  await buildImageFromDir(docker, writeSite(join(tmp, 'v1'), 'version-1'), `mesh-test/${project}:v1`);
  await buildImageFromDir(docker, writeSite(join(tmp, 'broken'), 'never', false), `mesh-test/${project}:broken`);
  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
  const lo = 30000 + Math.floor(Math.random() * 150) * 200;
  deployer = await createDeployerDroplet({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      LOG_LEVEL: 'info',
      DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64'),
      DEPLOY_PORT_RANGE: `${lo}-${lo + 199}`,
      DRAIN_S: '0',
      HEALTH_TIMEOUT_S: '4',
      DATA_DIR: join(tmp, 'data'),
      REGISTRY_URL: reg.url,
      REGISTRY_KEY: ADMIN_KEY,
      JWKS_URL: `${reg.url}/.well-known/jwks.json`,
    },
    logDestination: quiet(),
  });
  deployerUrl = (await deployer.start()).url;
  const login = await runCli(['login', '--registry', reg.url, '--admin-key', ADMIN_KEY], env());
  if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
  token = JSON.parse(readFileSync(home.config, 'utf8')).token;
  await waitFor(
    'the deployer in the registry',
    async () => (await fetch(`${reg.url}/droplets/deployer`, { headers: { authorization: `Bearer ${token}` } })).ok,
    15_000,
  );
  await api('POST', '/projects', { name: project });
  await api('POST', `/projects/${project}/environments`, { name: 'prod' });
  await api('POST', `/projects/${project}/services`, { name: 'web', type: 'web', health_path: '/health', health_timeout_s: 4 });
}, 180_000);

afterAll(async () => {
  await deployer?.deployer.idle();
  await deployer?.stop();
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
  if (docker) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [`mesh.project=${project}`] } }))
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    for (const i of await docker.listImages()) {
      for (const t of i.RepoTags ?? [])
        if (t.includes(project))
          await docker
            .getImage(t)
            .remove({ force: true })
            .catch(() => undefined);
    }
  }
  rmSync(tmp, { recursive: true, force: true });
  home.remove();
}, 60_000);

async function servingText(): Promise<string> {
  const release = (await api('GET', `/services/app-${project}-web-prod`)) as { containers: Array<{ port: number }> };
  const res = await fetch(`http://127.0.0.1:${release.containers[0].port}/`, { signal: AbortSignal.timeout(3000) });
  return (await res.text()).trim();
}

describe('meshctl deploy against the real deployer and Docker Engine', () => {
  let firstId: string;

  it('deploys an image with progress from the SSE stream and exits 0', async () => {
    const r = await runCli(['deploy', 'web', '--project', project, '--env', 'prod', '--image', `mesh-test/${project}:v1`], env(), {
      timeoutMs: 120_000,
    });
    expect(r.stderr).toMatch(/health: ok/);
    expect(r.stderr).toMatch(/\[100%\] \S+ succeeded/);
    expect(r.code).toBe(0);
    firstId = /^deployment (\S+) succeeded$/m.exec(r.stdout)![1];
    expect(await servingText()).toBe('version-1');
  }, 130_000);

  it('a deploy whose health check fails exits non-zero with the reason; the old version keeps serving', async () => {
    const r = await runCli(['deploy', 'web', '--project', project, '--env', 'prod', '--image', `mesh-test/${project}:broken`], env(), {
      timeoutMs: 120_000,
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^deployment \S+ failed: .+/m);
    expect(r.stderr).toMatch(/health: FAILED/);
    expectNoStack(r.stdout + r.stderr);
    expect(await servingText()).toBe('version-1');
  }, 130_000);

  it('deploys an uploaded directory (its own Dockerfile), then rolls back to the first image', async () => {
    const r = await runCli(
      ['deploy', 'web', '--project', project, '--env', 'prod', '--dir', writeSite(join(tmp, 'v2'), 'version-2')],
      env(),
      { timeoutMs: 120_000 },
    );
    expect(r.stderr).toContain('uploading');
    expect(r.code).toBe(0);
    expect(await servingText()).toBe('version-2');

    const ls = JSON.parse((await runCli(['deployments', '--project', project, '--json'], env())).stdout);
    expect(ls.items.map((d: { status: string }) => d.status)).toEqual(['succeeded', 'failed', 'succeeded']);
    expect(ls.items[0].source.kind).toBe('upload');

    const back = await runCli(['rollback', firstId], env(), { timeoutMs: 120_000 });
    expect(back.code).toBe(0);
    expect(back.stdout).toMatch(/succeeded/);
    expect(await servingText()).toBe('version-1');
  }, 200_000);

  it('the deployer refuses bad input with its envelope', async () => {
    const r = await runCli(['deploy', 'web', '--project', 'No Such', '--env', 'prod', '--image', 'x:1'], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: INVALID_REQUEST: invalid body\n {2}project: /);
    const missing = await runCli(['deployments', 'show', '00000000-0000-4000-8000-000000000000'], env());
    expect(missing.stderr).toBe("error: NOT_FOUND: no deployment '00000000-0000-4000-8000-000000000000'\n");
  });

  it('undeploys: containers and the registry record go, the history stays; then the service can be deleted', async () => {
    const target = `app-${project}-web-prod`;
    const recordOf = () => fetch(`${reg.url}/droplets/${target}`, { headers: { authorization: `Bearer ${token}` } });
    await waitFor('the app in the registry', async () => (await recordOf()).ok, 15_000);
    const r = await runCli(['undeploy', 'web', '--project', project, '--env', 'prod', '--json'], env(), { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body.undeployed).toHaveLength(1);
    expect(body.undeployed[0]).toMatchObject({ target_id: target, route: 'none', registry: 'removed', history_kept: true });
    expect(body.undeployed[0].containers_removed.length).toBeGreaterThan(0);
    expect(await docker.listContainers({ all: true, filters: { label: [`mesh.project=${project}`] } })).toEqual([]);
    expect((await recordOf()).status).toBe(404);
    const ls = JSON.parse((await runCli(['deployments', '--project', project, '--json'], env())).stdout);
    expect(ls.items).toHaveLength(4);

    const again = await runCli(['undeploy', 'web', '--project', project], env());
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`error: NOT_FOUND: nothing is deployed for ${project}/web\n`);
    expectNoStack(again.stdout + again.stderr);
    await api('DELETE', `/projects/${project}/services/web`);
  }, 90_000);
  it('server: list shows the servers; add follows provisioning to its failure and says why; drain and remove refuse the local server', async () => {
    const ls = await runCli(['server', 'list'], env());
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^ID\s+ENGINE/);
    expect(ls.stdout).toMatch(/\nlocal\s/);
    // No multi-cloud-manager in this mesh: the provisioning fails at its first step, with the reason.
    const name = `${project}-srv`;
    const add = await runCli(['server', 'add', name, '--provider', 'local', '--region', 'local', '--size', 'small'], env(), {
      timeoutMs: 60_000,
    });
    expect(add.code).toBe(1);
    expect(add.stderr).toMatch(/creating_instance: asking multi-cloud-manager for a small machine in local\/local/);
    expect(add.stderr).toMatch(new RegExp(`error: DEPENDENCY_UNAVAILABLE: server ${name} was not provisioned: multi-cloud-manager`));
    const seen = JSON.parse((await runCli(['server', 'list', '--json'], env())).stdout);
    expect(seen.items.map((s: { id: string }) => s.id)).not.toContain(name);
    const drain = await runCli(['server', 'drain', 'local'], env());
    expect(drain.code).toBe(1);
    expect(drain.stderr).toMatch(/the local server cannot be drained/);
    const rm = await runCli(['server', 'remove', 'local'], env());
    expect(rm.code).toBe(1);
    expect(rm.stderr).toMatch(/the local server cannot be removed/);
    expectNoStack(add.stdout + add.stderr + drain.stderr + rm.stderr);
  }, 90_000);
});
