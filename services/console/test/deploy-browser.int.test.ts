import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createDeployerDroplet } from '@droplet-mesh/deployer/dist/app.js';
import { buildImageFromDir, ensureBusyboxImage, ensureDockerEngine } from '@droplet-mesh/docker-testing';
import type { NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import {
  ADMIN_KEY,
  CHROMIUM,
  CHROMIUM_ARGS,
  closeAll,
  meshEnv,
  operatorToken,
  quiet,
  seriousA11yViolations,
  startConsole,
  startNatsServer,
  startRegistry,
  waitRegistered,
  type Closer,
} from './support/mesh.js';

// The deploy page against a real deployer on the real Docker Engine: deploy an image and
// watch its steps arrive live over SSE (deployer → console → browser), then roll back.
const project = `con${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'console-deploy-'));
let nats: NatsServerHandle;
let registry: Awaited<ReturnType<typeof startRegistry>>;
let consoleApp: Awaited<ReturnType<typeof startConsole>>;
let docker: Awaited<ReturnType<typeof ensureDockerEngine>>;
let busyboxImage = '';
let deployerBase = '';
let browser: Browser;
let page: Page;
const closers: Closer[] = [];
const pageErrors: string[] = [];
const images = { v1: 'mesh-test/console-app:v1', v2: 'mesh-test/console-app:v2' };

async function buildApp(busybox: string, tag: string, text: string) {
  const dir = join(tmp, tag.replace(/[^a-z0-9]/g, '-'));
  mkdirSync(join(dir, 'www'), { recursive: true });
  writeFileSync(join(dir, 'www', 'index.html'), text);
  writeFileSync(join(dir, 'www', 'health'), 'ok');
  writeFileSync(
    join(dir, 'Dockerfile'),
    `FROM ${busybox}\nCOPY www /www\nRUN ["/bin/busybox", "chmod", "1777", "/tmp"]\nCMD ["/bin/sh", "-c", "exec httpd -f -p 0.0.0.0:$PORT -h /www"]\n`,
  );
  await buildImageFromDir(docker, dir, tag);
}

beforeAll(async () => {
  docker = await ensureDockerEngine();
  const busybox = await ensureBusyboxImage(docker);
  busyboxImage = busybox;
  await buildApp(busybox, images.v1, 'version-1');
  await buildApp(busybox, images.v2, 'version-2');
  nats = await startNatsServer();
  registry = await startRegistry(nats.url);
  closers.push(registry);
  const lo = 30000 + Math.floor(Math.random() * 150) * 200;
  const deployer = await createDeployerDroplet({
    env: {
      ...meshEnv(nats.url, registry.url),
      DEPLOYER_MASTER_KEY: randomBytes(32).toString('base64'),
      DEPLOY_PORT_RANGE: `${lo}-${lo + 199}`,
      DRAIN_S: '0',
      DATA_DIR: join(tmp, 'data'),
      KEEP_IMAGES: '3',
    },
    logDestination: quiet(),
  });
  const { url: deployerUrl } = await deployer.start();
  deployerBase = deployerUrl;
  closers.push({
    close: async () => {
      await deployer.deployer.idle();
      await deployer.stop();
    },
  });
  await waitRegistered(registry.url, 'deployer');
  // The project, its environment and service, made through the deployer's API.
  const auth = { authorization: `Bearer ${await operatorToken(registry.url)}`, 'content-type': 'application/json' };
  for (const [path, body] of [
    ['/projects', { name: project }],
    [`/projects/${project}/environments`, { name: 'prod' }],
    [`/projects/${project}/environments`, { name: 'uat' }],
    [`/projects/${project}/services`, { name: 'web', type: 'web', health_path: '/health' }],
  ] as const) {
    const res = await fetch(`${deployerUrl}${path}`, { method: 'POST', headers: auth, body: JSON.stringify(body) });
    expect(res.status).toBe(201);
  }
  consoleApp = await startConsole(nats.url, registry.url);
  closers.push(consoleApp);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  closers.push({ close: () => browser.close() });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.setDefaultTimeout(20_000);
}, 240_000);

afterAll(async () => {
  expect(pageErrors).toEqual([]);
  await closeAll(closers, nats);
  if (docker) {
    for (const c of await docker.listContainers({ all: true, filters: { label: ['mesh.managed=true', `mesh.project=${project}`] } }))
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    for (const i of await docker.listImages({ filters: { reference: [`mesh-apps/${project}-*`] } }))
      for (const t of i.RepoTags ?? [])
        await docker
          .getImage(t)
          .remove()
          .catch(() => undefined);
  }
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

/** The deployment the page follows now (its progress box), or '' when none. */
async function followedId(): Promise<string> {
  const box = page.locator('.progress-box');
  return (await box.count()) ? ((await box.getAttribute('data-deployment')) ?? '') : '';
}

/**
 * After an action that starts a deployment: waits until the page follows a deployment other
 * than `previous`, then until that one ends; returns its status, title and log.
 */
async function finished(previous: string): Promise<{ status: string; title: string; log: string }> {
  const box = page.locator(`.progress-box[data-deployment]:not([data-deployment="${previous}"])`);
  await box.waitFor({ timeout: 30_000 });
  const badge = box.locator('h3 .badge', { hasText: /^(succeeded|failed|interrupted|rolled_back)$/ });
  await badge.waitFor({ timeout: 90_000 });
  const log = (await box.locator('pre.log').count()) ? await box.locator('pre.log').textContent() : '';
  return { status: (await badge.textContent()) ?? '', title: (await box.locator('h3').textContent()) ?? '', log: log ?? '' };
}

describe('deploys from the browser', () => {
  it('signs in and refuses a hostile image reference at the field', async () => {
    await page.goto(consoleApp.url);
    await page.getByRole('textbox', { name: 'Admin key' }).fill(ADMIN_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Deploys' }).click();
    await page.getByRole('heading', { name: 'Deploys', level: 1 }).waitFor();
    expect(await seriousA11yViolations(page)).toEqual([]);
    await page.getByRole('textbox', { name: 'Project' }).first().fill(project);
    await page.getByRole('textbox', { name: 'Service' }).first().fill('web');
    await page.getByRole('textbox', { name: 'Environment' }).first().fill('prod');
    await page.getByRole('textbox', { name: 'Image' }).fill('evil; rm -rf /');
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await expect(page.locator('#d-image-err').filter({ hasText: /\S/ }).waitFor()).resolves.toBeUndefined();
    await expect(page.getByRole('textbox', { name: 'Image' }).getAttribute('aria-invalid')).resolves.toBe('true');
  }, 60_000);

  it('deploys an image and shows its steps live until it succeeds', async () => {
    await page.getByRole('textbox', { name: 'Image' }).fill(images.v1);
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    expect(await finished('')).toMatchObject({ status: 'succeeded' });
    const box = page.locator('.progress-box');
    await expect(box.locator('progress').getAttribute('value')).resolves.toBe('100');
    const steps = await box.locator('.steps li').allTextContents();
    expect(steps.join(' ')).toMatch(/image/);
    expect(steps.join(' ')).toMatch(/health/);
    const first = await followedId();
    await page.getByRole('textbox', { name: 'Image' }).fill(images.v2);
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    expect(await finished(first)).toMatchObject({ status: 'succeeded' });
    await page.locator('section[aria-labelledby="history-h"] tbody tr').nth(1).waitFor();
  }, 200_000);

  it('rolls back after a confirmation, with live progress', async () => {
    const history = page.locator('section[aria-labelledby="history-h"] tbody tr');
    const older = history.filter({ hasText: images.v1 }).first();
    const before = await followedId();
    await older.getByRole('button', { name: 'Roll back to this…' }).click();
    await older.getByRole('button', { name: 'Roll back', exact: true }).click();
    expect(await finished(before)).toMatchObject({ status: 'succeeded', title: expect.stringContaining('rollback of') });
  }, 120_000);

  it('manages the running service: logs, scale, restart and promotion, each after a confirmation', async () => {
    const latest = page.locator('section[aria-labelledby="history-h"] tbody tr').first();
    await latest.getByRole('button', { name: `Manage ${project}/web/prod` }).click();
    const panel = page.locator('section[aria-labelledby="svc-h"]');
    await panel.getByText(/^Runs mesh-apps\//).waitFor();
    await panel.getByRole('button', { name: 'Logs' }).click();
    await panel.locator('pre.log').first().waitFor();

    let before = await followedId();
    await panel.getByRole('button', { name: 'Scale…' }).click();
    await panel.getByLabel('Replicas').fill('2');
    await panel.getByRole('button', { name: 'Scale', exact: true }).click();
    expect(await finished(before)).toMatchObject({ status: 'succeeded', title: expect.stringContaining('scale of') });
    await panel.getByText('2 containers').waitFor();

    await panel.getByRole('button', { name: 'Restart…' }).click();
    await panel.getByRole('button', { name: 'Restart', exact: true }).click();
    await panel.getByText(`${project}/web/prod restarted.`).waitFor({ timeout: 60_000 });

    before = await followedId();
    await panel.getByRole('button', { name: 'Promote…' }).click();
    await panel.getByLabel(/Promote the image of prod to environment/).fill('uat');
    await panel.getByRole('button', { name: 'Promote', exact: true }).click();
    expect(await finished(before)).toMatchObject({ status: 'succeeded', title: expect.stringContaining('promotion of') });
    await page
      .locator('section[aria-labelledby="history-h"] tbody tr', { hasText: `${project}/web/uat` })
      .first()
      .waitFor();
  }, 240_000);

  it('shows projects with their environments and services, and sets secrets without ever showing a value', async () => {
    await page.getByRole('link', { name: 'Projects' }).click();
    await page.getByRole('heading', { name: 'Projects', level: 1 }).waitFor();
    await page.getByRole('button', { name: project, exact: true }).click();
    await page.getByRole('heading', { name: `Project ${project}` }).waitFor();
    await page.getByText('Services: web · Environments: prod, uat').waitFor();
    const value = 'sup3r-s3cret-from-the-browser';
    await page.getByLabel('Secret name').fill('bad name');
    await page.getByLabel('Value').fill(value);
    await page.getByRole('button', { name: 'Set secret' }).click();
    await page.locator('#sec-name-err').filter({ hasText: /\S/ }).waitFor();
    await page.getByLabel('Secret name').fill('API_SECRET');
    await page.getByLabel('Value').fill(value);
    await page.getByRole('button', { name: 'Set secret' }).click();
    await page.getByText('Secret API_SECRET set in prod.').waitFor();
    await page.locator('li[data-secret="prod/API_SECRET"]').waitFor();
    expect(await page.content()).not.toContain(value);
    await page.getByRole('button', { name: 'Delete secret API_SECRET from prod' }).click();
    await page.getByRole('button', { name: 'Delete API_SECRET', exact: true }).click();
    await page.getByText('Secret API_SECRET deleted from prod.').waitFor();
    expect(await page.locator('li[data-secret="prod/API_SECRET"]').count()).toBe(0);
    // A project name the deployer refuses is shown at the field.
    await page.locator('#p-name').fill('Not A Name');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.locator('#p-name-err').filter({ hasText: /\S/ }).waitFor();
    expect(await seriousA11yViolations(page)).toEqual([]);
  }, 60_000);

  it('deploy configs (a field error, then saved and deployed) and servers (an engine check), with no serious a11y violation', async () => {
    await page.getByRole('link', { name: 'Deploy configs' }).click();
    await page.getByRole('heading', { name: 'Deploy configs', level: 1 }).waitFor();
    await page.getByLabel('Config name').fill('Not A Name');
    await page.locator('#cfg-project').fill(project);
    await page.locator('#cfg-service').fill('web');
    await page.locator('#cfg-env').fill('prod');
    await page.locator('#cfg-image').fill(images.v1);
    await page.getByRole('button', { name: 'Save config' }).click();
    await page.locator('#cfg-name-err').filter({ hasText: /\S/ }).waitFor();
    await expect(page.getByLabel('Config name').getAttribute('aria-invalid')).resolves.toBe('true');
    expect(await seriousA11yViolations(page)).toEqual([]);
    await page.getByLabel('Config name').fill('prod-v1');
    await page.getByRole('button', { name: 'Save config' }).click();
    await page.getByText('Deploy config prod-v1 saved.').waitFor();
    await page.getByRole('button', { name: 'Deploy prod-v1' }).click();
    await page.locator('p[data-started] .badge', { hasText: /^(succeeded|failed|interrupted|rolled_back)$/ }).waitFor({ timeout: 90_000 });
    // The whole line on failure: it carries the deployer's reason.
    await expect(page.locator('p[data-started]').textContent()).resolves.toMatch(/: succeeded\b/);
    expect(await seriousA11yViolations(page)).toEqual([]);

    await page.getByRole('link', { name: 'Servers' }).click();
    await page.getByRole('heading', { name: 'Servers', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Check engine of local' }).click();
    await page.locator('tr[data-server="local"] .engine', { hasText: /^answers \(Docker / }).waitFor();
    expect(await seriousA11yViolations(page)).toEqual([]);
  }, 120_000);

  it('deploys a directory picked in the browser, packed there as a .tar.gz and streamed through the console', async () => {
    const site = join(tmp, 'site');
    mkdirSync(join(site, 'www'), { recursive: true });
    writeFileSync(join(site, 'www', 'index.html'), 'version-upload');
    writeFileSync(join(site, 'www', 'health'), 'ok');
    mkdirSync(join(site, 'node_modules', 'left-out'), { recursive: true });
    writeFileSync(join(site, 'node_modules', 'left-out', 'big.bin'), Buffer.alloc(1024 * 1024));
    writeFileSync(
      join(site, 'Dockerfile'),
      `FROM ${busyboxImage}\nCOPY www /www\nRUN ["/bin/busybox", "chmod", "1777", "/tmp"]\nCMD ["/bin/sh", "-c", "exec httpd -f -p 0.0.0.0:$PORT -h /www"]\n`,
    );
    await page.getByRole('link', { name: 'Deploys' }).click();
    await page.getByRole('heading', { name: 'Deploys', level: 1 }).waitFor();
    await page.getByRole('textbox', { name: 'Project' }).first().fill(project);
    await page.getByRole('textbox', { name: 'Service' }).first().fill('web');
    await page.getByRole('textbox', { name: 'Environment' }).first().fill('uat');
    await page.getByRole('radio', { name: 'directory' }).check();
    await page.locator('#d-dir').setInputFiles(site);
    const before = await followedId();
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.getByText(/3 files, \d+ KB compressed/).waitFor();
    expect(await finished(before)).toMatchObject({ status: 'succeeded' });
    // The app built from the uploaded directory answers.
    const token = await operatorToken(registry.url);
    const release = (await (
      await fetch(`${deployerBase}/services/app-${project}-web-uat`, { headers: { authorization: `Bearer ${token}` } })
    ).json()) as { containers: Array<{ port: number }> };
    const answer = await fetch(`http://127.0.0.1:${release.containers[0].port}/`, { signal: AbortSignal.timeout(10_000) });
    expect(await answer.text()).toBe('version-upload');
  }, 180_000);
});
