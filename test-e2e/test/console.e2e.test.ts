import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type Page } from 'playwright-core';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { ConsoleMesh } from '../support/console-mesh.js';
import { viaHttp } from '../support/mesh-http.js';
import { ADMIN_KEY } from '../support/registry-api.js';

// Issue 13, "Tested in a real browser": Debian's chromium (playwright-core, no browser
// download) drives the console against the mesh started as separate processes (NATS,
// nginx run by proxy-manager, the Docker Engine). The steps build on each other.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-sync',
];
const DROPLETS = ['registry', 'multi-cloud-manager', 'proxy-manager', 'deployer', 'health-monitor', 'console'];
const DOMAIN = 'app.console.test';

const mesh = new ConsoleMesh();
const target = `app-${mesh.project}-web-prod`;
const images = { v1: `mesh-test/console-e2e:v1`, v2: `mesh-test/console-e2e:v2` };
// Screenshots of the main pages, for a person to look at (never committed).
const shots = process.env.CONSOLE_E2E_SCREENSHOTS ?? join(tmpdir(), `console-e2e-screenshots-${mesh.runId}`);
let browser: Browser;
let page: Page;
let cookie = '';
const pageErrors: string[] = [];

const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const app = () => viaHttp(mesh.proxyHttpPort, DOMAIN);

/** After an action that starts a deployment: the page follows a new one until it ends; its final status. */
async function followedToTheEnd(previous: string): Promise<string> {
  const box = page.locator(`.progress-box[data-deployment]:not([data-deployment="${previous}"])`);
  await box.waitFor({ timeout: 20_000 });
  const badge = box.locator('h3 .badge', { hasText: /^(succeeded|failed|interrupted|rolled_back)$/ });
  await badge.waitFor({ timeout: 60_000 });
  return (await badge.textContent()) ?? '';
}
const followed = async () =>
  (await page.locator('.progress-box').count()) ? ((await page.locator('.progress-box').getAttribute('data-deployment')) ?? '') : '';

beforeAll(async () => {
  mkdirSync(shots, { recursive: true });
  await mesh.start();
  await Promise.all([mesh.buildApp(images.v1, 'v1'), mesh.buildApp(images.v2, 'v2')]);
  // The project the operator deploys into (its service names the domain the deployer routes).
  for (const [path, body] of [
    ['/projects', { name: mesh.project }],
    [`/projects/${mesh.project}/environments`, { name: 'prod' }],
    [`/projects/${mesh.project}/services`, { name: 'web', type: 'web', health_path: '/health', domain: DOMAIN }],
  ] as const)
    expect((await mesh.call(mesh.deployer, 'POST', path, body)).status).toBe(201);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.setDefaultTimeout(15_000);
}, 120_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await mesh.stop();
  expect(pageErrors).toEqual([]);
}, 60_000);

describe('the console over a real mesh, in chromium', () => {
  it('signs in from the keyboard; every droplet shows as active', async () => {
    await page.goto(mesh.console.url);
    const key = page.getByRole('textbox', { name: 'Admin key' });
    await key.focus();
    await page.keyboard.type(ADMIN_KEY);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await page.locator('.live.on').waitFor();
    for (const id of DROPLETS) await page.locator(`tr[data-droplet="${id}"] td:nth-child(3) .badge`, { hasText: 'active' }).waitFor();
    const session = (await page.context().cookies()).find((c) => c.name === 'mesh_console');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    cookie = `${session!.name}=${session!.value}`;
    await shot('overview');
  }, 30_000);

  it('deploys an image and follows its progress to success; the app answers through its route via nginx', async () => {
    await page.getByRole('link', { name: 'Deploys' }).click();
    await page.getByRole('heading', { name: 'Deploys', level: 1 }).waitFor();
    await page.getByRole('textbox', { name: 'Project' }).first().fill(mesh.project);
    await page.getByRole('textbox', { name: 'Service' }).first().fill('web');
    await page.getByRole('textbox', { name: 'Environment' }).first().fill('prod');
    await page.getByRole('textbox', { name: 'Image' }).fill(images.v1);
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    const status = await followedToTheEnd('');
    if (status !== 'succeeded') throw new Error(`deploy of v1 ${status}\n${mesh.dump()}`);
    await expect(page.locator('.progress-box progress').getAttribute('value')).resolves.toBe('100');
    await waitFor('v1 through nginx', async () => (await app()).body === 'v1', 15_000, 200);
    await shot('deploy-v1');

    const first = await followed();
    await page.getByRole('textbox', { name: 'Image' }).fill(images.v2);
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    expect(await followedToTheEnd(first)).toBe('succeeded');
    await waitFor('v2 through nginx', async () => (await app()).body === 'v2', 15_000, 200);
  }, 90_000);

  it('rolls back to the first image from the keyboard, after a confirmation', async () => {
    const older = page.locator('section[aria-labelledby="history-h"] tbody tr', { hasText: images.v1 }).first();
    const before = await followed();
    await older.getByRole('button', { name: 'Roll back to this…' }).press('Enter');
    await older.getByRole('button', { name: 'Roll back', exact: true }).press('Enter');
    expect(await followedToTheEnd(before)).toBe('succeeded');
    await expect(page.locator('.progress-box h3').textContent()).resolves.toContain('rollback of');
    await waitFor('v1 through nginx again', async () => (await app()).body === 'v1', 15_000, 200);
    await shot('deploy-rollback');
  }, 60_000);

  it('adds a route with a hostile domain and sees the field error, then a good one that nginx serves', async () => {
    const release = await mesh.call<{ containers: Array<{ port: number }> }>(mesh.deployer, 'GET', `/services/${target}`);
    const port = String(release.body.containers[0].port);
    await page.getByRole('link', { name: 'Routes' }).click();
    await page.getByRole('heading', { name: 'Routes', level: 1 }).waitFor();
    await page.locator(`tr[data-route="${target}"]`).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('alias');
    await page.getByLabel('Domain').fill('evil.test;} server { listen 80');
    await page.getByLabel('Upstream host').fill('127.0.0.1');
    await page.getByLabel('Upstream port').fill(port);
    await page.getByRole('button', { name: 'Save route' }).click();
    await page.locator('#route-domain-err').filter({ hasText: 'must be a valid hostname' }).waitFor();
    await expect(page.getByLabel('Domain').getAttribute('aria-invalid')).resolves.toBe('true');
    await expect(page.locator('.error .code').first().textContent()).resolves.toBe('INVALID_REQUEST');
    await shot('routes-field-error');
    await page.getByLabel('Domain').fill('alias.console.test');
    await page.getByRole('button', { name: 'Save route' }).click();
    await page.getByText('Route alias saved.').waitFor();
    await page.locator('tr[data-route="alias"]').waitFor();
    await waitFor(
      'the new route through nginx',
      async () => (await viaHttp(mesh.proxyHttpPort, 'alias.console.test')).body === 'v1',
      10_000,
      200,
    );
  }, 30_000);

  it('shows the incident of a killed app container appear and resolve live', async () => {
    await page.getByRole('link', { name: 'Incidents' }).click();
    await page.getByRole('heading', { name: 'Incidents', level: 1 }).waitFor();
    await page.getByLabel('Status').selectOption('');
    const rows = page.locator(`tr[data-incident-target="${target}"]`);
    expect(await rows.count()).toBe(0);
    const containers = await mesh.docker.listContainers({
      filters: { label: ['mesh.managed=true', `mesh.project=${mesh.project}`, 'mesh.service=web'] },
    });
    expect(containers).toHaveLength(1);
    await mesh.docker.getContainer(containers[0].Id).kill();
    // No reload: the row arrives over the live stream.
    await rows
      .first()
      .locator('.badge', { hasText: /^(open|recovering)$/ })
      .waitFor({ timeout: 20_000 });
    await shot('incident-open');
    await rows.first().locator('.badge', { hasText: 'resolved' }).waitFor({ timeout: 40_000 });
    await expect(rows.count()).resolves.toBe(1);
    // Its timeline says how it recovered: health-monitor had the deployer restart the container.
    await rows
      .first()
      .getByRole('button', { name: `Timeline of the incident on ${target}` })
      .press('Enter');
    await page.locator('.timeline li', { hasText: 'restart.accepted' }).first().waitFor();
    await waitFor('the app through nginx after the restart', async () => (await app()).body === 'v1', 15_000, 200);
    await shot('incident-resolved');
  }, 70_000);

  it('a page opened now lists the events that came before it (backfill), the routes and the incident among them', async () => {
    const fresh = await page.context().newPage();
    try {
      await fresh.goto(`${mesh.console.url}/#/events`);
      await fresh.getByRole('heading', { name: 'Events', level: 1 }).waitFor();
      await fresh.locator('tr[data-event-type="route.applied"]').first().waitFor();
      await fresh.locator('tr[data-event-type="incident.resolved"]').first().waitFor();
    } finally {
      await fresh.close();
    }
  }, 20_000);

  it('servers and deploy configs, from the keyboard only: an engine check, a refused removal, a config saved and deployed', async () => {
    const tab = async (to: string, max = 60) => {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press('Tab');
        const focused = page.locator(':focus');
        if ((await focused.getAttribute('aria-label')) === to || (await focused.textContent())?.trim() === to) return;
      }
      throw new Error(`'${to}' not reached with Tab`);
    };
    await page.goto(`${mesh.console.url}/#/servers`);
    await page.getByRole('heading', { name: 'Servers', level: 1 }).waitFor();
    await page.locator('tr[data-server="local"]').waitFor();
    await tab('Check engine of local');
    await page.keyboard.press('Enter');
    await page.locator('tr[data-server="local"] .engine', { hasText: /^answers \(Docker / }).waitFor();
    await tab('Remove server local');
    await page.keyboard.press('Enter');
    await tab('Remove');
    await page.keyboard.press('Enter');
    // The deployer's refusal, with its code, where it happened.
    await page.locator('.error .code', { hasText: 'CONFLICT' }).waitFor();
    await page.getByText('the local server cannot be removed').waitFor();
    await shot('servers');

    await page.goto(`${mesh.console.url}/#/configs`);
    await page.getByRole('heading', { name: 'Deploy configs', level: 1 }).waitFor();
    await page.locator('#cfg-name').focus();
    for (const value of ['web-v2', mesh.project, 'web', 'prod', images.v2]) {
      await page.keyboard.type(value);
      await page.keyboard.press('Tab');
    }
    await page.keyboard.press('Enter'); // the Save button
    await page.getByText('Deploy config web-v2 saved.').waitFor();
    await tab('Deploy web-v2');
    await page.keyboard.press('Enter');
    await page.locator('p[data-started] .badge', { hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
    await waitFor('v2 through nginx from the config', async () => (await app()).body === 'v2', 15_000, 200);
    await shot('deploy-configs');
  }, 90_000);

  it('signs out from the keyboard, and the API refuses the old cookie', async () => {
    await page.getByRole('button', { name: 'Sign out' }).press('Enter');
    await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
    const res = await fetch(`${mesh.console.url}/api/registry/droplets`, { headers: { cookie }, signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    expect((await fetch(`${mesh.console.url}/live`, { headers: { cookie }, signal: AbortSignal.timeout(10_000) })).status).toBe(401);
  }, 20_000);
});
