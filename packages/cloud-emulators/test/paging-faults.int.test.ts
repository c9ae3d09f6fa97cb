import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { startDigitalOceanEmulator, startHetznerEmulator, startVultrEmulator, type EmulatorHandle } from '../src/index.js';
import { client } from './http.js';

// injectPagingFault: list pages that repeat their next cursor / link, never end, or report a wrong total.
describe('paging faults', () => {
  let vu: EmulatorHandle;
  let dig: EmulatorHandle;
  let hz: EmulatorHandle;

  beforeAll(async () => {
    [vu, dig, hz] = await Promise.all([
      startVultrEmulator({ seedInstances: 12, rateLimit: { perSecond: 100_000 } }),
      startDigitalOceanEmulator({ seedInstances: 12 }),
      startHetznerEmulator({ seedInstances: 12 }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([vu.close(), dig.close(), hz.close()]);
  });

  test('Vultr repeat-next: the page asked with a cursor hands the same cursor back', async () => {
    const call = client(vu);
    vu.injectPagingFault({ mode: 'repeat-next', pathPattern: /\/instances$/ });
    const first = await call('GET', '/v2/instances?per_page=5');
    const next = first.body.meta.links.next as string;
    expect(next).not.toBe('');
    const second = await call('GET', `/v2/instances?per_page=5&cursor=${encodeURIComponent(next)}`);
    expect(second.body.meta.links.next).toBe(next);
    expect((await call('GET', `/v2/instances?per_page=5&cursor=${encodeURIComponent(next)}`)).body.meta.links.next).toBe(next);
    expect((await call('GET', '/v2/plans')).body.meta.links.next).toBe(''); // other paths page as usual
    vu.clearFaults();
    expect((await call('GET', '/v2/instances?per_page=50')).body.meta.links.next).toBe('');
  });

  test('Vultr endless: a next cursor past the last item, empty pages; total override', async () => {
    const call = client(vu);
    vu.injectPagingFault({ mode: 'endless', total: 1000 });
    let cursor = '';
    for (let i = 0; i < 5; i++) {
      const res = await call('GET', `/v2/instances?per_page=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.body.meta.total).toBe(1000);
      expect(res.body.meta.links.next).not.toBe('');
      expect(res.body.meta.links.next).not.toBe(cursor);
      if (i >= 2) expect(res.body.instances).toHaveLength(0);
      cursor = res.body.meta.links.next;
    }
    vu.clearFaults();
  });

  test('DigitalOcean repeat-next and endless: links.pages.next', async () => {
    const call = client(dig);
    dig.injectPagingFault({ mode: 'repeat-next' });
    const first = await call('GET', '/v2/droplets?per_page=5');
    expect(first.body.links.pages.next).toMatch(/[?&]page=2(&|$)/);
    const second = await call('GET', first.body.links.pages.next);
    expect(second.body.links.pages.next).toMatch(/[?&]page=2(&|$)/);
    dig.clearFaults();
    dig.injectPagingFault({ mode: 'endless', total: null });
    const beyond = await call('GET', '/v2/droplets?per_page=5&page=9');
    expect(beyond.body.droplets).toHaveLength(0);
    expect(beyond.body.links.pages.next).toMatch(/[?&]page=10(&|$)/);
    expect(beyond.body.meta.total).toBeUndefined();
    dig.clearFaults();
  });

  test('Hetzner repeat-next and endless: next_page, last_page and the Link header', async () => {
    const call = client(hz);
    hz.injectPagingFault({ mode: 'repeat-next' });
    const second = await call('GET', '/v1/servers?per_page=5&page=2');
    expect(second.body.meta.pagination.next_page).toBe(2);
    expect(second.headers.get('link')).toContain('page=2&per_page=5>; rel="next"');
    hz.clearFaults();
    hz.injectPagingFault({ mode: 'endless' });
    const beyond = await call('GET', '/v1/servers?per_page=5&page=7');
    expect(beyond.body.servers).toHaveLength(0);
    expect(beyond.body.meta.pagination).toMatchObject({ next_page: 8, last_page: null });
    hz.clearFaults();
    hz.injectPagingFault({ mode: 'none', total: 3 });
    expect((await call('GET', '/v1/servers?per_page=2')).body.meta.pagination).toMatchObject({
      total_entries: 3,
      last_page: 2,
      next_page: 2,
    });
    hz.clearFaults();
  });
});
