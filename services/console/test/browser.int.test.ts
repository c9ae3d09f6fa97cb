import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort, startPebble, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import {
  ADMIN_KEY,
  CHROMIUM,
  CHROMIUM_ARGS,
  closeAll,
  registerRecord,
  seriousA11yViolations,
  startConsole,
  startFlakyApp,
  startHealthMonitor,
  startMultiCloud,
  startNatsServer,
  startProxyManager,
  startRegistry,
  type Closer,
} from './support/mesh.js';

const SCREENSHOT = fileURLToPath(new URL('../../../docs/console-overview.png', import.meta.url));

let nats: NatsServerHandle;
let registry: Awaited<ReturnType<typeof startRegistry>>;
let consoleApp: Awaited<ReturnType<typeof startConsole>>;
let app: Awaited<ReturnType<typeof startFlakyApp>>;
let browser: Browser;
let page: Page;
const closers: Closer[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
  registry = await startRegistry(nats.url);
  closers.push(registry);
  // Certificates come from Debian's pebble (a test ACME CA) over HTTP-01 to the proxy's nginx.
  const httpPort = await freePort();
  const pebble = await startPebble({ httpPort });
  closers.push({ close: () => pebble.stop() });
  closers.push(
    await startProxyManager(nats.url, registry.url, {
      httpPort,
      env: { ACME_DIRECTORY_URL: pebble.directoryUrl, ACME_CA_BUNDLE: pebble.apiCaFile, ACME_EMAIL: 'ops@example.com' },
    }),
  );
  app = await startFlakyApp();
  closers.push(app);
  closers.push(await startMultiCloud(nats.url, registry.url, 2));
  closers.push(await startHealthMonitor(nats.url, registry.url, [{ id: 'shop-web', url: app.url }]));
  consoleApp = await startConsole(nats.url, registry.url);
  closers.push(consoleApp);
  expect(consoleApp.web().available).toBe(true); // `pnpm build` ran first (turbo: test depends on build)
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  closers.push({ close: () => browser.close() });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  // Expected 4xx/5xx answers are not errors; nor is a request the browser cancelled because the
  // machine's addresses changed (other suites add and remove Docker networks meanwhile): the page asks again.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of [45][0-9][0-9]|net::ERR_NETWORK_CHANGED/.test(m.text())) pageErrors.push(m.text());
  });
  page.setDefaultTimeout(15_000);
  page.setDefaultNavigationTimeout(15_000);
}, 90_000);

afterAll(async () => {
  // Script errors in the page fail the run too (expected 4xx/5xx answers are not errors).
  expect(pageErrors).toEqual([]);
  await closeAll(closers, nats);
});

async function expectNoSeriousA11yViolations(label: string) {
  expect({ page: label, violations: await seriousA11yViolations(page) }).toEqual({ page: label, violations: [] });
}

describe('the console in a real browser', () => {
  let oldCookie = '';

  it('signs in from the keyboard with the admin key and shows the droplets as active', async () => {
    await page.goto(consoleApp.url);
    await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
    await expectNoSeriousA11yViolations('sign-in');
    await page.getByRole('textbox', { name: 'Admin key' }).fill(ADMIN_KEY);
    await page.getByRole('textbox', { name: 'Admin key' }).press('Enter');
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    for (const id of ['registry', 'proxy-manager', 'health-monitor', 'multi-cloud-manager']) {
      const row = page.locator(`tr[data-droplet="${id}"]`);
      await row.waitFor();
      await expect(row.locator('.badge').first().textContent()).resolves.toBe('active');
    }
    // Instances per provider with their monthly cost (2 seeded on each emulated provider).
    for (const provider of ['digitalocean', 'hetzner', 'vultr']) {
      await page.locator('section[aria-labelledby="fleet-h"] tr', { hasText: provider }).filter({ hasText: '2' }).waitFor();
    }
    // Droplets that are not running show as such, and their sections say why, never a spinner.
    await expect(page.locator('tr[data-droplet="deployer"] .badge').textContent()).resolves.toBe('not registered');
    await page.getByText("droplet 'deployer' is not registered").waitFor();
    await expect(page.locator('.error .code').first().textContent()).resolves.toBe('DEPENDENCY_UNAVAILABLE');
    // Nothing secret where scripts can read it.
    const stored = await page.evaluate(() => ({
      local: localStorage.length,
      session: sessionStorage.length,
      cookie: document.cookie,
      url: location.href,
    }));
    expect(stored).toEqual({ local: 0, session: 0, cookie: '', url: `${consoleApp.url}/` });
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'mesh_console')!;
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    oldCookie = `${session.name}=${session.value}`;
    await page.locator('.live.on').waitFor();
    for (const id of ['registry', 'proxy-manager', 'health-monitor', 'multi-cloud-manager']) {
      await page.locator(`tr[data-droplet="${id}"] td:nth-child(3) .badge`, { hasText: 'active' }).waitFor();
    }
    if (process.env.CONSOLE_SCREENSHOTS === '1') {
      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }
    // Live: a droplet registering now appears without a reload (registry event → NATS → /live → page).
    await registerRecord(registry.url, { id: 'late-droplet', url: 'http://127.0.0.1:9', kind: 'service', version: '9.9.9' });
    await page.locator('tr[data-droplet="late-droplet"]').waitFor();
    await expectNoSeriousA11yViolations('overview');
  }, 60_000);

  it('a read the network drops is asked again: the overview fills in rather than showing droplets down', async () => {
    // The first answer of each of these fails in the network, as when the machine's addresses change.
    const flaky = /\/api\/(registry\/droplets|proxy-manager\/health)(\?|$)/;
    const dropped = new Set<string>();
    await page.route(flaky, (route) => {
      const path = new URL(route.request().url()).pathname;
      if (dropped.has(path)) return route.continue();
      dropped.add(path);
      return route.abort('connectionreset');
    });
    const errorsBefore = pageErrors.length;
    try {
      await page.reload();
      for (const id of ['registry', 'proxy-manager'])
        await page.locator(`tr[data-droplet="${id}"] td:nth-child(3) .badge`, { hasText: 'active' }).waitFor();
      expect([...dropped].sort()).toEqual(['/api/proxy-manager/health', '/api/registry/droplets']);
    } finally {
      await page.unroute(flaky);
      // The browser reports the two dropped requests; nothing else this test caused is forgiven.
      const caused = pageErrors.splice(errorsBefore);
      pageErrors.push(...caused.filter((e) => !/net::ERR_CONNECTION_RESET/.test(e)));
    }
  }, 60_000);

  it('adds a route with a hostile domain and sees the field error, then a good one', async () => {
    await page.getByRole('link', { name: 'Routes' }).click();
    await page.getByRole('heading', { name: 'Routes', level: 1 }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('shop');
    await page.getByLabel('Domain').fill('evil.example;} server { listen 80');
    await page.getByLabel('Upstream host').fill('127.0.0.1');
    await page.getByLabel('Upstream port').fill(new URL(consoleApp.url).port);
    await page.getByRole('button', { name: 'Save route' }).click();
    const domainError = page.locator('#route-domain-err');
    await expect(domainError.filter({ hasText: 'must be a valid hostname' }).waitFor()).resolves.toBeUndefined();
    await expect(page.getByLabel('Domain').getAttribute('aria-invalid')).resolves.toBe('true');
    await expect(page.locator('.error .code').first().textContent()).resolves.toBe('INVALID_REQUEST');
    await expectNoSeriousA11yViolations('routes with a field error');

    await page.getByLabel('Domain').fill('shop.example.test');
    await page.getByRole('button', { name: 'Save route' }).click();
    await page.getByText('Route shop saved.').waitFor();
    await page.locator('tr[data-route="shop"]').waitFor();
    await expect(page.locator('#route-domain-err').textContent()).resolves.toBe('');
    // A certificate from the ACME CA; the route shows its expiry.
    await page.getByRole('button', { name: 'Issue a certificate for shop' }).click();
    await page.getByText('Certificate for shop.example.test issued.').waitFor({ timeout: 60_000 });
    await page.locator('tr[data-route="shop"] td', { hasText: /^until .+ \(\d+ d\)$/ }).waitFor();
    // Edit puts the route back in the form; the focus moves there.
    await page.getByRole('button', { name: 'Edit route shop' }).press('Enter');
    await expect(page.getByLabel('Domain').inputValue()).resolves.toBe('shop.example.test');
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe('route-name');
    // The events page has the live tail, the proxy-manager's route.applied among them.
    await page.getByRole('link', { name: 'Events' }).click();
    await page.locator('tr[data-event-type="route.applied"]').first().waitFor();
    await expectNoSeriousA11yViolations('events');
  }, 60_000);

  it('shows an incident open and resolve live when an app goes down and comes back', async () => {
    await page.getByRole('link', { name: 'Incidents' }).click();
    await page.getByRole('heading', { name: 'Incidents', level: 1 }).waitFor();
    await page.getByLabel('Status').selectOption('');
    const row = page.locator('tr[data-incident-target="shop-web"]');
    expect(await row.count()).toBe(0);
    app.setHealthy(false);
    await row.locator('.badge', { hasText: /^(open|recovering)$/ }).waitFor({ timeout: 30_000 });
    await expectNoSeriousA11yViolations('incidents');
    // Acknowledged by hand, from the keyboard.
    await page.getByRole('button', { name: 'Acknowledge the incident on shop-web' }).press('Enter');
    await page.getByText('Incident on shop-web acknowledged.').waitFor();
    await row.getByText('acknowledged by operator').waitFor();
    app.setHealthy(true);
    await row.locator('.badge', { hasText: 'resolved' }).waitFor({ timeout: 30_000 });
    await row.getByRole('button', { name: 'Timeline of the incident on shop-web' }).press('Enter');
    await page.locator('.timeline li', { hasText: 'acknowledged' }).first().waitFor();
  }, 90_000);

  it('lists instances of every provider, sends a power action and deletes one only after its name is typed', async () => {
    await page.getByRole('link', { name: 'Instances' }).click();
    await page.getByRole('heading', { name: 'Instances', level: 1 }).waitFor();
    const rows = page.locator('tr[data-instance]');
    await rows.nth(5).waitFor();
    expect(await rows.count()).toBe(6);
    const id = (await rows.first().getAttribute('data-instance'))!;
    const name = (await rows.first().getAttribute('data-name'))!;
    const provider = (await rows.first().getAttribute('data-provider'))!;
    await page.getByRole('button', { name: `Reboot ${name} (${provider})`, exact: true }).click();
    await page.getByText(`reboot sent to ${name}.`).waitFor();
    await page.getByRole('button', { name: `Delete ${name} (${provider})`, exact: true }).click();
    const confirm = page.getByRole('button', { name: 'Delete instance' });
    await expect(confirm.isDisabled()).resolves.toBe(true);
    await page.getByLabel(`Type ${name} to confirm`).fill(`${name}x`);
    await expect(confirm.isDisabled()).resolves.toBe(true);
    await page.getByLabel(`Type ${name} to confirm`).fill(name);
    await expectNoSeriousA11yViolations('instances with the delete confirmation');
    await confirm.click();
    await page.getByText(`${name} is being deleted.`).waitFor();
    // Gone from the list, or shown as deleting while the provider finishes.
    await waitFor(
      'the deleted instance to leave the list',
      async () => {
        // One look at the rows (no auto-waiting): gone, or shown as deleting.
        const badges = await page.locator(`tr[data-instance="${id}"] td .badge`).evaluateAll((els) => els.map((e) => e.textContent));
        return badges.length === 0 || badges.includes('deleting');
      },
      15_000,
      100,
    );

    // Create from the provider's catalog; the API's validation error shows at the name.
    await page.locator('#c-provider').selectOption('digitalocean');
    await page.locator('#c-size option').first().waitFor({ state: 'attached' });
    await page.getByRole('textbox', { name: 'Name', exact: true }).first().fill('bad name!');
    await page.getByRole('button', { name: 'Create instance' }).click();
    await page.locator('#c-name-err').filter({ hasText: /\S/ }).waitFor();
    await page.getByRole('textbox', { name: 'Name', exact: true }).first().fill('web-console-1');
    await page.getByRole('button', { name: 'Create instance' }).click();
    await page.getByText('web-console-1 created on digitalocean.').waitFor();
    await page.locator('tr[data-name="web-console-1"][data-provider="digitalocean"]').waitFor();
    await expectNoSeriousA11yViolations('instances after a create');
  }, 60_000);

  it('signs out, and the API refuses the old cookie; another tab of the session notices by itself', async () => {
    const other = await page.context().newPage();
    await other.goto(consoleApp.url);
    await other.locator('.live.on').waitFor({ timeout: 15_000 });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
    await page.getByText('Signed out.').waitFor();
    await expect(page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length }))).resolves.toEqual({
      local: 0,
      session: 0,
    });
    const res = await fetch(`${consoleApp.url}/api/registry/droplets`, {
      headers: { cookie: oldCookie },
      signal: AbortSignal.timeout(10_000),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    const live = await fetch(`${consoleApp.url}/live`, { headers: { cookie: oldCookie }, signal: AbortSignal.timeout(10_000) });
    expect(live.status).toBe(401);
    // The other tab's live stream ended with the session: it went back to sign-in without a click.
    await other.getByRole('heading', { name: 'Sign in to the console' }).waitFor({ timeout: 15_000 });
    await other.getByText('Your session has ended. Sign in again.').waitFor();
    await other.close();
  }, 60_000);
});
