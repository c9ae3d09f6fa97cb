import { afterAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { startDigitalOceanEmulator, startHetznerEmulator, startVultrEmulator, type EmulatorHandle } from '@droplet-mesh/cloud-emulators';
import type { UdcError } from '@droplet-mesh/udc-kit';
import { providerFor, type CloudName } from './helpers.js';
import { startHarness, type Harness } from './harness.js';

// One client-side rate limiter per provider account, shared by every concurrent call (issue 16,
// item 6). Rates are asserted as request counts per 1 s window at the emulator, with a margin of
// one for network jitter, never as durations.

/** The most requests any 1 s window (starting at a request) holds. */
function busiestSecond(at: number[]): number {
  const sorted = [...at].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[j]! < sorted[i]! - 999) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

const emus: EmulatorHandle[] = [];
let h: Harness | undefined;
afterAll(async () => {
  await Promise.all(emus.map((e) => e.close()));
  await h?.close();
}, 30_000);

describe('client-side rate limits per provider account', () => {
  it('concurrent Vultr listings from two clients of one account together stay under VULTR_MAX_RPS', async () => {
    const MAX_RPS = 8;
    // The emulator refuses above 12/s, so two clients pacing separately (16/s) would draw 429s.
    const emu = await startVultrEmulator({ seedInstances: 1100, rateLimit: { perSecond: 12 } });
    emus.push(emu);
    const a = providerFor('vultr', emu, { maxRps: MAX_RPS });
    const b = providerFor('vultr', emu, { maxRps: MAX_RPS });
    const lists = await Promise.all([a, b, a, b, a, b].map(({ provider }) => provider.list({ signal: AbortSignal.timeout(20_000) })));
    await Promise.all([a.http.close(), b.http.close()]);
    for (const l of lists) expect(l).toHaveLength(1100);
    const sent = emu.requests.filter((r) => r.path === '/v2/instances');
    expect(sent).toHaveLength(18); // 6 listings × 3 pages
    expect(sent.filter((r) => r.status === 429)).toHaveLength(0);
    expect(busiestSecond(sent.map((r) => r.at))).toBeLessThanOrEqual(MAX_RPS + 1);
  }, 30_000);

  it.each(['digitalocean', 'hetzner'] as CloudName[])(
    '%s: two clients of one account pace by its rate-limit headers: no request past the limit reaches it',
    async (name) => {
      const LIMIT = 12;
      const emu =
        name === 'digitalocean'
          ? await startDigitalOceanEmulator({ rateLimit: { perHour: LIMIT } })
          : await startHetznerEmulator({ rateLimit: { perHour: LIMIT } });
      emus.push(emu);
      const a = providerFor(name, emu, {});
      const b = providerFor(name, emu, {});
      const outcomes = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).provider.ping({ signal: AbortSignal.timeout(10_000) })),
      );
      await Promise.all([a.http.close(), b.http.close()]);
      expect(emu.requests.filter((r) => r.status === 429)).toHaveLength(0);
      expect(emu.requests.length).toBeLessThanOrEqual(LIMIT);
      const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as UdcError);
      expect(refused.length).toBe(20 - emu.requests.length);
      for (const e of refused) {
        expect(e.code).toBe('RATE_LIMITED');
        expect(Number(e.headers['Retry-After'])).toBeGreaterThan(0);
      }
    },
    30_000,
  );

  it('the droplet: concurrent /instances and /multi/list stay under VULTR_MAX_RPS; a repeated cursor is a provider error, not a hang', async () => {
    h = await startHarness({ seedInstances: 1100, env: { VULTR_MAX_RPS: '6', PROVIDER_LIST_TIMEOUT_MS: '20000' } });
    const api = () => request(h!.droplet.app);
    const vultr = h.emus.vultr;
    vultr.resetRecords();
    const answers = await Promise.all([
      ...Array.from({ length: 3 }, () =>
        api()
          .get('/instances?provider=vultr')
          .set(h!.auth(['read'])),
      ),
      ...Array.from({ length: 2 }, () =>
        api()
          .get('/multi/list')
          .set(h!.auth(['read'])),
      ),
    ]);
    for (const r of answers) {
      expect(r.status).toBe(200);
      expect(r.body.providers.find((p: { provider: string }) => p.provider === 'vultr')).toMatchObject({ status: 'ok', count: 1100 });
    }
    expect(vultr.requests.filter((r) => r.status === 429)).toHaveLength(0);
    expect(vultr.requests.length).toBeGreaterThanOrEqual(15);
    expect(busiestSecond(vultr.requests.map((r) => r.at))).toBeLessThanOrEqual(7);

    // The case: Vultr hands back its `next` cursor again (the total stays the real one).
    vultr.resetRecords();
    vultr.injectPagingFault({ mode: 'repeat-next', pathPattern: /^\/v2\/instances$/ });
    const res = await api()
      .get('/instances?provider=vultr')
      .set(h.auth(['read']));
    vultr.clearFaults();
    expect(res.status).toBe(200);
    expect(res.body.providers.find((p: { provider: string }) => p.provider === 'vultr')).toMatchObject({
      status: 'error',
      error: { code: 'DEPENDENCY_UNAVAILABLE', details: { provider: 'vultr', reason: 'page_repeated', items: 1000, total: 1100 } },
    });
    expect(vultr.requests.filter((r) => r.path === '/v2/instances')).toHaveLength(2);
  }, 60_000);
});
