import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import request from 'supertest';
import { startNatsServer, startTestAuthority, waitFor, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import type { DeployerDroplet } from '../src/app.js';
import { capture, cleanDocker, httpText, testImages, uniqueProject, waitDeployment, type TestImages } from './helpers.js';
import { startTestDeployer } from './deployer-harness.js';

// Finding 5 of the zero-trust review: git credentials were stored and returned verbatim
// (deployment views, rollbacks, deploy configs). Now: sealed at rest like secrets, the URL
// shown with them redacted, and ssh URLs take a deploy key (sealed) that exists on disk
// only as a 0600 file for the length of the clone.

const USER = 'ci-bot';
const TOKEN = 'glpat-TOKEN-7d41c0ffee-do-not-leak';
const KEY_BODY = 'ZmFrZS1kZXBsb3kta2V5LXNlY3JldC1ib2R5LTkxYjI=';
const DEPLOY_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----\n${KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----\n`;
const SECRETS = [TOKEN, KEY_BODY, Buffer.from(`${USER}:${TOKEN}`).toString('base64')];

const project = uniqueProject('gc');
let nats: NatsServerHandle;
let authority: TestAuthority;
let droplet: DeployerDroplet;
let images: TestImages;
let gitServer: Server;
let gitPort: number;
const logs = capture();
const tmp = mkdtempSync(join(tmpdir(), 'deployer-gc-'));
const bare = join(tmp, 'srv', 'site.git');
const sshLog = join(tmp, 'ssh.log');
const responses: string[] = [];
let auth: Record<string, string>;
const originalPath = process.env.PATH;

const api = () => {
  const keep = <T extends { text?: string; body?: unknown }>(r: T) => {
    responses.push(r.text ?? JSON.stringify(r.body));
    return r;
  };
  return {
    get: async (path: string) => keep(await request(droplet.app).get(path).set(auth)),
    post: async (path: string, body?: object) =>
      keep(
        await request(droplet.app)
          .post(path)
          .set(auth)
          .send(body ?? {}),
      ),
    put: async (path: string, body: object) => keep(await request(droplet.app).put(path).set(auth).send(body)),
  };
};

/** A git server over "dumb" HTTP that wants Basic USER:TOKEN for everything. */
async function startGitServer(root: string): Promise<void> {
  const want = `Basic ${Buffer.from(`${USER}:${TOKEN}`).toString('base64')}`;
  gitServer = createServer((req, res) => {
    if (req.headers.authorization !== want) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' });
      return res.end('authentication required');
    }
    const path = normalize(join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    if (!path.startsWith(root) || !existsSync(path)) {
      res.writeHead(404);
      return res.end();
    }
    try {
      res.end(readFileSync(path));
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => gitServer.listen(0, '127.0.0.1', () => r()));
  gitPort = (gitServer.address() as { port: number }).port;
}

/**
 * A stand-in `ssh` first on PATH: records how it was called (the key file, its mode and
 * whether it holds the deploy key), then runs the remote git command locally.
 */
function installFakeSsh(): string {
  const bin = join(tmp, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'ssh'),
    `#!/bin/sh
key=""
prev=""
for a in "$@"; do
  if [ "$prev" = "-i" ]; then key="$a"; fi
  prev="$a"
  last="$a"
done
mode=$(stat -c %a "$key" 2>/dev/null)
if grep -q '${KEY_BODY}' "$key" 2>/dev/null; then match=yes; else match=no; fi
echo "key=$key mode=$mode match=$match args=$*" >> '${sshLog}'
exec sh -c "$last"
`,
  );
  chmodSync(join(bin, 'ssh'), 0o755);
  return bin;
}

beforeAll(async () => {
  images = await testImages();
  // The repository: a Dockerfile app served by busybox httpd.
  const repo = join(tmp, 'repo');
  mkdirSync(join(repo, 'www'), { recursive: true });
  writeFileSync(join(repo, 'www/index.html'), 'from-private-git');
  writeFileSync(join(repo, 'www/health'), 'ok');
  writeFileSync(
    join(repo, 'Dockerfile'),
    `FROM ${images.busybox}\nCOPY www /www\nCMD ${JSON.stringify(['/bin/sh', '-c', 'exec httpd -f -p 0.0.0.0:$PORT -h /www'])}\n`,
  );
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  execFileSync('git', ['-C', repo, 'add', '.']);
  execFileSync('git', ['-C', repo, '-c', 'user.email=t@example.com', '-c', 'user.name=t', 'commit', '-q', '-m', 'site']);
  mkdirSync(join(tmp, 'srv'), { recursive: true });
  execFileSync('git', ['clone', '-q', '--bare', repo, bare]);
  execFileSync('git', ['-C', bare, 'update-server-info']);
  await startGitServer(join(tmp, 'srv'));
  process.env.PATH = `${installFakeSsh()}:${originalPath}`;

  nats = await startNatsServer();
  authority = await startTestAuthority();
  droplet = await startTestDeployer({
    natsUrl: nats.url,
    authority,
    dataDir: join(tmp, 'data'),
    env: { LOG_LEVEL: 'debug', DRAIN_S: '0' },
    registry: 'none',
    logDestination: logs,
  });
  auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
  expect((await api().post('/projects', { name: project })).status).toBe(201);
  expect((await api().post(`/projects/${project}/environments`, { name: 'prod' })).status).toBe(201);
  for (const name of ['site', 'keyed'])
    expect((await api().post(`/projects/${project}/services`, { name, type: 'web', health_path: '/health' })).status).toBe(201);
}, 180_000);

afterAll(async () => {
  process.env.PATH = originalPath;
  await droplet?.deployer.idle();
  await droplet?.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
  await new Promise<void>((r) => (gitServer ? gitServer.close(() => r()) : r()));
  if (images) await cleanDocker(images.docker, project);
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

const privateUrl = () => `http://${USER}:${TOKEN}@127.0.0.1:${gitPort}/site.git`;

async function deploy(service: string, source: object) {
  const res = await api().post('/deployments', { project, service, environment: 'prod', source });
  expect(res.status).toBe(202);
  const done = await waitDeployment(droplet.app, auth, res.body.id, 90_000);
  responses.push(JSON.stringify(done));
  return done;
}

async function serving(service: string): Promise<string> {
  const r = await api().get(`/services/app-${project}-${service}-prod`);
  expect(r.status).toBe(200);
  const c = r.body.containers[0];
  return httpText(`http://127.0.0.1:${c.port}/`);
}

/** Every value in the deployer's KV bucket, as stored. */
async function rawBucket(): Promise<string> {
  const kv = await droplet.ctx.bus.kv('deployer');
  const out: string[] = [];
  for await (const k of await kv.keys('>')) {
    const e = await kv.get(k);
    if (e?.length) out.push(e.string());
  }
  return out.join('\n');
}

describe('git credentials', () => {
  let deploymentId: string;

  it('a private https repository deploys with the credentials from its URL; they are sealed and shown redacted', async () => {
    const done = await deploy('site', { git: { url: privateUrl(), ref: 'main' } });
    if (done.status !== 'succeeded') throw new Error(`${done.status}: ${done.reason}`);
    deploymentId = done.id;
    expect(await serving('site')).toBe('from-private-git');
    expect(done.source).toMatchObject({ kind: 'git', url: `http://[redacted]@127.0.0.1:${gitPort}/site.git`, ref: 'main', auth: 'basic' });
    const one = await api().get(`/deployments/${done.id}`);
    expect(one.text).not.toContain(TOKEN);
    const list = await api().get(`/deployments?project=${project}`);
    expect(list.body.items[0].source.url).toBe(`http://[redacted]@127.0.0.1:${gitPort}/site.git`);
    const events = await request(droplet.app).get(`/deployments/${done.id}/events`).set(auth).buffer(true);
    responses.push(events.text);
    expect(events.text).toContain('[redacted]@127.0.0.1');
  }, 120_000);

  it('a wrong token fails the clone with a message that names no credential', async () => {
    const done = await deploy('site', {
      git: { url: `http://${USER}:wrong-${TOKEN.slice(0, 6)}@127.0.0.1:${gitPort}/site.git`, ref: 'main' },
    });
    expect(done.status).toBe('failed');
    expect(done.reason).toMatch(/git clone failed/);
    expect(JSON.stringify(done)).not.toContain(`wrong-${TOKEN.slice(0, 6)}`);
    expect(await serving('site')).toBe('from-private-git');
  }, 120_000);

  it('rollback answers without the credentials', async () => {
    const res = await api().post(`/deployments/${deploymentId}/rollback`, { queue: true });
    expect(res.status).toBe(202);
    expect(res.text).not.toContain(TOKEN);
    const done = await waitDeployment(droplet.app, auth, res.body.id, 90_000);
    expect(done.status).toBe('succeeded');
  }, 120_000);

  it('deploy configs keep the credentials sealed, show them redacted, and deploy with them', async () => {
    const created = await api().post('/deploy-configs', {
      name: 'site-private',
      project,
      service: 'site',
      environment: 'prod',
      source: { git: { url: privateUrl(), ref: 'main' } },
    });
    expect(created.status).toBe(201);
    expect(created.body.source.git).toMatchObject({ url: `http://[redacted]@127.0.0.1:${gitPort}/site.git`, auth: 'basic' });
    expect(created.body.source.git.credentials).toBeUndefined();
    const replaced = await api().put('/deploy-configs/site-private', {
      project,
      service: 'site',
      environment: 'prod',
      source: { git: { url: privateUrl(), ref: 'main' } },
    });
    expect(replaced.status).toBe(200);
    for (const path of ['/deploy-configs/site-private', '/deploy-configs'])
      expect((await api().get(path)).text).toContain('[redacted]@127.0.0.1');
    const res = await api().post('/deploy-configs/site-private/deploy', { queue: true });
    expect(res.status).toBe(202);
    const done = await waitDeployment(droplet.app, auth, res.body.id, 90_000);
    expect(done.status).toBe('succeeded');
    const viaJson = await api().post('/deployments', { config: 'site-private' });
    expect(viaJson.status).toBe(202);
    expect((await waitDeployment(droplet.app, auth, viaJson.body.id, 90_000)).status).toBe('succeeded');
  }, 180_000);

  it('an ssh URL takes a deploy key: a 0600 file during the clone, gone after it', async () => {
    const done = await deploy('keyed', { git: { url: `ssh://git@git.example.test${bare}`, ref: 'main', deploy_key: DEPLOY_KEY } });
    if (done.status !== 'succeeded') throw new Error(`${done.status}: ${done.reason}`);
    expect(await serving('keyed')).toBe('from-private-git');
    expect(done.source).toMatchObject({ kind: 'git', url: `ssh://git@git.example.test${bare}`, auth: 'ssh_key' });
    const calls = readFileSync(sshLog, 'utf8').trim().split('\n');
    expect(calls.length).toBeGreaterThan(0);
    for (const line of calls) {
      expect(line).toMatch(/ mode=600 match=yes /);
      const key = /key=(\S+)/.exec(line)![1];
      expect(existsSync(key)).toBe(false);
    }
  }, 120_000);

  it('refuses a deploy key for a non-ssh URL and a password in an ssh URL (400, nothing echoed)', async () => {
    const a = await api().post('/deployments', {
      project,
      service: 'keyed',
      environment: 'prod',
      source: { git: { url: `http://127.0.0.1:${gitPort}/site.git`, deploy_key: DEPLOY_KEY } },
    });
    expect(a.status).toBe(400);
    expect(a.body.error.code).toBe('INVALID_REQUEST');
    const b = await api().post('/deployments', {
      project,
      service: 'keyed',
      environment: 'prod',
      source: { git: { url: `ssh://git:${TOKEN}@git.example.test/x.git` } },
    });
    expect(b.status).toBe(400);
    const c = await api().post('/deployments', {
      project,
      service: 'keyed',
      environment: 'prod',
      source: { git: { url: 'ssh://git@git.example.test/x.git', deploy_key: 'not a key' } },
    });
    expect(c.status).toBe(400);
  });

  it('no credential is in any response, log line or stored record', async () => {
    await waitFor('log flush', () => true, 500);
    expect(responses.length).toBeGreaterThan(10);
    for (const r of responses) for (const s of SECRETS) expect(r).not.toContain(s);
    const text = logs.text();
    expect(text.length).toBeGreaterThan(1000);
    for (const s of SECRETS) expect(text).not.toContain(s);
    const ring = await request(droplet.app).get('/logs?limit=1000').set(auth);
    for (const s of SECRETS) expect(ring.text).not.toContain(s);
    const stored = await rawBucket();
    expect(stored).toContain('"credentials"');
    for (const s of SECRETS) expect(stored).not.toContain(s);
  });
});
