import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startDigitalOceanEmulator, startHetznerEmulator, startVultrEmulator, type EmulatorHandle } from '@droplet-mesh/cloud-emulators';
import { UdcError } from '@droplet-mesh/udc-kit';
import type { CloudProvider } from '../src/providers/cloud-provider.js';
import { captureLogs, PER_PAGE, providerFor, testLogger, type CloudName } from './helpers.js';

// Paging is bounded: a repeated cursor or page link, the reported total and a page limit each
// end a listing (issue 16, item 6). Every listing here races a deadline, so a regression that
// pages forever fails the test instead of hanging it.
const start = { digitalocean: startDigitalOceanEmulator, hetzner: startHetznerEmulator, vultr: startVultrEmulator };
const LIST_PATH = { digitalocean: /^\/v2\/droplets$/, hetzner: /^\/v1\/servers$/, vultr: /^\/v2\/instances$/ };
const DEADLINE_MS = 10_000;

/** The listing's outcome, or a failure naming the deadline (the old code never ended). */
async function settle<T>(p: Promise<T>): Promise<{ value?: T; error?: UdcError }> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`listing still running after ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  try {
    return { value: await Promise.race([p, deadline]) };
  } catch (err) {
    if (err instanceof UdcError) return { error: err };
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

describe.each(['vultr', 'digitalocean', 'hetzner'] as CloudName[])('%s paging is bounded', (name) => {
  let emu: EmulatorHandle;
  let provider: CloudProvider;
  let stop: () => Promise<void>;
  const logs = captureLogs();
  // Three pages and a bit at the API's largest page size.
  const seeded = Math.round(PER_PAGE[name] * 2.4);
  const listRequests = () => emu.requests.filter((r) => r.method === 'GET' && LIST_PATH[name].test(r.path));

  beforeAll(async () => {
    emu = await start[name]({
      seedInstances: seeded,
      rateLimit: { perSecond: 100_000, perMinute: 10_000_000, perHour: 10_000_000 } as never,
    });
    const made = providerFor(name, emu, { logger: testLogger(logs.stream), maxPages: 6 });
    provider = made.provider;
    stop = () => made.http.close();
  });
  afterAll(async () => {
    await stop();
    await emu.close();
  });

  it('a repeated cursor or page link ends the listing with DEPENDENCY_UNAVAILABLE 502 saying so', async () => {
    emu.resetRecords();
    // The total is hidden too, so only the repeat can end it (Vultr, DigitalOcean: a total to count to would).
    emu.injectPagingFault({ mode: 'repeat-next', total: null, pathPattern: LIST_PATH[name] });
    const { error } = await settle(provider.list());
    emu.clearFaults();
    expect(error?.code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(error?.httpStatus).toBe(502);
    expect(error?.message).toMatch(/repeated/);
    expect(error?.details).toMatchObject({ provider: name, reason: 'page_repeated' });
    // Page 1, page 2, and page 2 again: the repeat is seen on the third request.
    expect(listRequests().length).toBeLessThanOrEqual(3);
  });

  it('a server that always says "more" stops at the reported total, with a warning', async () => {
    emu.resetRecords();
    emu.injectPagingFault({ mode: 'endless', pathPattern: LIST_PATH[name] });
    const { value, error } = await settle(provider.list());
    emu.clearFaults();
    expect(error).toBeUndefined();
    expect(value).toHaveLength(seeded);
    expect(listRequests().length).toBeLessThanOrEqual(4);
    expect(logs.text()).toMatch(/reported total/);
  });

  it('a server that always says "more" and reports no total ends at its first empty page, with a warning', async () => {
    emu.resetRecords();
    emu.injectPagingFault({ mode: 'endless', total: null, pathPattern: LIST_PATH[name] });
    const { value, error } = await settle(provider.list());
    emu.clearFaults();
    expect(error).toBeUndefined();
    expect(value).toHaveLength(seeded);
    expect(listRequests().length).toBe(4);
    expect(logs.text()).toMatch(/empty page/);
  });

  it('a listing longer than the page limit stops there with DEPENDENCY_UNAVAILABLE', async () => {
    const short = providerFor(name, emu, { logger: testLogger(logs.stream), maxPages: 2 });
    emu.resetRecords();
    emu.injectPagingFault({ mode: 'none', total: null, pathPattern: LIST_PATH[name] });
    const { error } = await settle(short.provider.list());
    emu.clearFaults();
    await short.http.close();
    expect(error?.code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(error?.httpStatus).toBe(502);
    expect(error?.details).toMatchObject({ provider: name, reason: 'page_limit', max_pages: 2 });
    expect(listRequests().length).toBe(2);
  });

  it('a total larger than the pages hold ends at the first empty page, with a warning', async () => {
    emu.resetRecords();
    emu.injectPagingFault({ mode: 'none', total: PER_PAGE[name] * 5, pathPattern: LIST_PATH[name] });
    const { value, error } = await settle(provider.list());
    emu.clearFaults();
    expect(error).toBeUndefined();
    expect(value).toHaveLength(seeded);
    expect(listRequests().length).toBeLessThanOrEqual(6);
    if (name !== 'vultr') expect(logs.text()).toMatch(/was not full/);
  });

  it('a total beyond the page limit is refused before paging through it', async () => {
    emu.resetRecords();
    emu.injectPagingFault({ mode: 'none', total: PER_PAGE[name] * 1000, pathPattern: LIST_PATH[name] });
    const { error } = await settle(provider.list());
    emu.clearFaults();
    expect(error?.code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(error?.details).toMatchObject({ provider: name, reason: 'page_limit', total: PER_PAGE[name] * 1000 });
    expect(listRequests().length).toBe(1);
  });

  it('pages as usual without a fault', async () => {
    const { value } = await settle(provider.list());
    expect(value).toHaveLength(seeded);
  });
});
