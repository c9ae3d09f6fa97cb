import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import request from 'supertest';
import type { Express } from 'express';
import { buildWebImage, ensureBusyboxImage, ensureDockerEngine, ensureNodeBaseImage } from '@droplet-mesh/docker-testing';

// The test apps' image and how they serve live in docker-testing (the orchestrator's tests build them too).
export { buildWebImage, HTTPD } from '@droplet-mesh/docker-testing';
import { waitFor } from '@droplet-mesh/udc-kit/testing';

export const quiet = () => new Writable({ write: (_c, _e, cb) => cb() });

/** A Writable that keeps every log line, to prove secrets never reach one. */
export function capture(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({ write: (c, _e, cb) => (chunks.push(String(c)), cb()) }) as Writable & { text: () => string };
  w.text = () => chunks.join('');
  return w;
}

export const masterKey = () => randomBytes(32).toString('base64');
/** A private port range per suite so parallel runs on the machine do not meet. */
export function portRange(): string {
  const lo = 30000 + Math.floor(Math.random() * 150) * 200;
  return `${lo}-${lo + 199}`;
}
export const uniqueProject = (prefix: string) => `${prefix}${randomBytes(3).toString('hex')}`;

export interface TestImages {
  docker: Docker;
  v1: string;
  v2: string;
  broken: string;
  busybox: string;
  nodeBase: string;
}

/** Small web apps built FROM the local busybox image: httpd on $PORT serving /www (index = version, /health = ok). */
export async function testImages(): Promise<TestImages> {
  const docker = await ensureDockerEngine();
  const busybox = await ensureBusyboxImage(docker);
  const nodeBase = await ensureNodeBaseImage(docker);
  const build = (tag: string, index: string, cmd?: string) =>
    buildWebImage(docker, busybox, tag, { 'index.html': index, health: 'ok' }, cmd);
  return {
    docker,
    busybox,
    nodeBase,
    v1: await build('mesh-test/deployer-app:v1', 'version-1'),
    v2: await build('mesh-test/deployer-app:v2', 'version-2'),
    broken: await build('mesh-test/deployer-app:broken', 'never', '["/bin/sh", "-c", "echo starting; echo failing for good; sleep 3600"]'),
  };
}

/** Remove every container and deploy image a suite's project left behind (by label). */
export async function cleanDocker(docker: Docker, project: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`mesh.managed=true`, `mesh.project=${project}`] } });
  for (const c of containers)
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  const images = await docker.listImages({ filters: { label: [`mesh.managed=true`, `mesh.project=${project}`] } });
  for (const i of images)
    for (const t of i.RepoTags ?? [])
      await docker
        .getImage(t)
        .remove()
        .catch(() => undefined);
  for (const i of await docker.listImages({ filters: { reference: [`mesh-apps/${project}-*`] } }))
    for (const t of i.RepoTags ?? [])
      await docker
        .getImage(t)
        .remove()
        .catch(() => undefined);
}

export async function httpText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  return res.text();
}

export interface DeploymentBody {
  id: string;
  status: string;
  reason?: string;
  image?: string;
  steps: Array<{ name: string; status: string; duration_ms?: number; detail?: string }>;
  last_log_lines?: string[];
  [k: string]: unknown;
}

/** Poll GET /deployments/:id until it is final. */
export async function waitDeployment(app: Express, auth: Record<string, string>, id: string, timeoutMs = 60_000): Promise<DeploymentBody> {
  let body: DeploymentBody | undefined;
  await waitFor(
    `deployment ${id} to finish`,
    async () => {
      const res = await request(app).get(`/deployments/${id}`).set(auth);
      body = res.body;
      return ['succeeded', 'failed', 'interrupted', 'rolled_back'].includes(res.body.status);
    },
    timeoutMs,
    100,
  );
  return body!;
}

/** Parse an SSE body into events. */
export function parseSse(text: string): Array<{ event: string; data: Record<string, unknown> }> {
  return text
    .split('\n\n')
    .filter((b) => b.includes('data: '))
    .map((b) => {
      const event = /^event: (.+)$/m.exec(b)?.[1] ?? 'message';
      return { event, data: JSON.parse(/^data: (.+)$/m.exec(b)![1]) };
    });
}

// One GET of `/` through nginx for a domain (udc-kit/testing: the orchestrator's tests use it too).
export { getViaNginx } from '@droplet-mesh/udc-kit/testing';
