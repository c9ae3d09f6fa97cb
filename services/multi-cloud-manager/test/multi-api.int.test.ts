import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { expectEnvelope } from '@droplet-mesh/udc-kit/testing';
import { createMultiCloudDroplet } from '../src/app.js';
import { quiet } from './helpers.js';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ seedInstances: 4, env: { PROVIDER_LIST_TIMEOUT_MS: '1500' } });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const api = () => request(h.droplet.app);
const byProvider = (providers: any[]) => Object.fromEntries(providers.map((p) => [p.provider, p]));

describe('/multi and catalog API', () => {
  it('/multi/list: every provider in parallel', async () => {
    const res = await api()
      .get('/multi/list')
      .set(h.auth(['read']));
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(12);
    const p = byProvider(res.body.providers);
    expect(p.digitalocean).toMatchObject({ status: 'ok', count: 4 });
    expect(p.local).toMatchObject({ status: 'not_configured', hint: 'set LOCAL_PROVIDER_ENABLED=true' });
  });

  it('/multi/list: a failing provider gives partial results and an error entry, never a 500', async () => {
    h.emus.vultr.injectFault({ status: 500, times: 20, pathPattern: /^\/v2\/instances$/ });
    const res = await api()
      .get('/multi/list')
      .set(h.auth(['read']));
    h.emus.vultr.clearFaults();
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(8);
    const p = byProvider(res.body.providers);
    expect(p.vultr).toMatchObject({
      status: 'error',
      error: { code: 'DEPENDENCY_UNAVAILABLE', details: { provider: 'vultr', provider_status: 500 } },
    });
    expect(p.hetzner.status).toBe('ok');
  });

  it('/multi/list: a slow provider is cut at its own deadline', async () => {
    h.emus.hetzner.setLatency(3000);
    const started = Date.now();
    const res = await api()
      .get('/multi/list')
      .set(h.auth(['read']));
    h.emus.hetzner.setLatency(0);
    expect(Date.now() - started).toBeLessThan(2800);
    expect(res.status).toBe(200);
    expect(byProvider(res.body.providers).hetzner).toMatchObject({
      status: 'error',
      error: { message: expect.stringContaining('did not answer within 1500 ms') },
    });
    expect(res.body.total).toBe(8);
  });

  it('/multi/summary counts by provider, status and region and estimates monthly cost', async () => {
    const res = await api()
      .get('/multi/summary')
      .set(h.auth(['read']));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ total: 12, by_provider: { digitalocean: 4, hetzner: 4, vultr: 4 }, by_status: { running: 12 } });
    expect(Object.values(res.body.by_region as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(12);
    expect(res.body.estimated_monthly_cost.by_currency.USD).toBeGreaterThan(0);
    expect(res.body.estimated_monthly_cost.by_currency.EUR).toBeGreaterThan(0);
    expect(res.body.estimated_monthly_cost.by_provider.vultr.unpriced).toBe(0);
  });

  it('/multi/search finds by IP, name, id and tag, with filters', async () => {
    const all = (
      await api()
        .get('/multi/list')
        .set(h.auth(['read']))
    ).body.instances;
    const target = all.find((i: any) => i.provider === 'hetzner');
    const byIp = await api()
      .get(`/multi/search?q=${target.ipv4}`)
      .set(h.auth(['read']));
    expect(byIp.body.instances.map((i: any) => i.id)).toEqual([target.id]);
    expect(
      (
        await api()
          .get(`/multi/search?q=${encodeURIComponent(target.id)}`)
          .set(h.auth(['read']))
      ).body.total,
    ).toBe(1);
    expect(
      (
        await api()
          .get('/multi/search?q=seed&provider=vultr')
          .set(h.auth(['read']))
      ).body.total,
    ).toBe(4);
    expect(
      (
        await api()
          .get('/multi/search?q=seed&status=off')
          .set(h.auth(['read']))
      ).body.total,
    ).toBe(0);
    expectEnvelope(
      await api()
        .get('/multi/search')
        .set(h.auth(['read'])),
      400,
      'INVALID_REQUEST',
    );
  });

  it('/multi/health-check reports reachability, token validity and latency', async () => {
    const res = await api()
      .get('/multi/health-check')
      .set(h.auth(['read']));
    const p = byProvider(res.body.providers);
    for (const name of ['digitalocean', 'hetzner', 'vultr'])
      expect(p[name]).toMatchObject({ status: 'ok', reachable: true, token_valid: true, latency_ms: expect.any(Number) });
    expect(p.local).toMatchObject({ status: 'not_configured', reachable: null });
  });

  it('/catalog is cached for its TTL', async () => {
    const plans = () => h.emus.vultr.requests.filter((r) => r.path === '/v2/plans').length;
    const before = plans();
    const first = await api()
      .get('/catalog/sizes?provider=vultr')
      .set(h.auth(['read']));
    await api()
      .get('/catalog/sizes?provider=vultr')
      .set(h.auth(['read']));
    expect(plans() - before).toBeLessThanOrEqual(1);
    expect(first.body.items[0]).toMatchObject({ provider: 'vultr', price_monthly: expect.any(Number), price_hourly: expect.any(Number) });
    const regions = await api()
      .get('/catalog/regions')
      .set(h.auth(['read']));
    expect(new Set(regions.body.items.map((r: any) => r.provider))).toEqual(new Set(['digitalocean', 'hetzner', 'vultr']));
    expectEnvelope(
      await api()
        .get('/catalog/flavours')
        .set(h.auth(['read'])),
      400,
      'INVALID_REQUEST',
    );
  });

  it('keeps the original routes as aliases', async () => {
    const doList = await api()
      .get('/do/list')
      .set(h.auth(['read']));
    expect(doList.body.items).toHaveLength(4);
    expect(doList.body.items.every((i: any) => i.provider === 'digitalocean')).toBe(true);
    const reg = await api()
      .post('/vultr/register')
      .set(h.auth())
      .send({ name: 'alias-1', region: 'ewr', size: 'vc2-1c-1gb', image: '2284', wait: true });
    expect(reg.status).toBe(201);
    const id = reg.body.instance.provider_id;
    expect(
      (
        await api()
          .get(`/vultr/instance/${id}`)
          .set(h.auth(['read']))
      ).body.name,
    ).toBe('alias-1');
    const act = await api().post(`/vultr/action/${id}`).set(h.auth()).send({ type: 'power_off', wait: true });
    expect(act.body.instance.status).toBe('off');
    expect((await api().delete(`/vultr/delete/${id}`).set(h.auth())).status).toBe(200);
    for (const path of ['/hetzner/sizes', '/hetzner/images', '/hetzner/locations', '/vultr/plans', '/vultr/os', '/vultr/regions']) {
      const r = await api()
        .get(path)
        .set(h.auth(['read']));
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeGreaterThan(0);
    }
    expect(
      (
        await api()
          .get('/hetzner/list')
          .set(h.auth(['read']))
      ).body.items,
    ).toHaveLength(4);
  });

  it('a droplet with no tokens lists every provider as not_configured, not as an error', async () => {
    const bare = createMultiCloudDroplet({
      env: { PORT: '0', NATS_URL: h.nats.url, LOCAL_PROVIDER_ENABLED: 'false', ...h.authority.env() },
      registry: false,
      logDestination: quiet(),
    });
    const res = await request(bare.app)
      .get('/multi/list')
      .set(h.auth(['read']));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ total: 0, instances: [] });
    expect(res.body.providers.map((p: any) => p.status)).toEqual(['not_configured', 'not_configured', 'not_configured', 'not_configured']);
    expect(
      (
        await request(bare.app)
          .get('/providers')
          .set(h.auth(['read']))
      ).body.providers[0],
    ).toEqual({ provider: 'digitalocean', status: 'not_configured', hint: 'set DO_TOKEN' });
    expectEnvelope(
      await request(bare.app)
        .get('/instances/digitalocean/1')
        .set(h.auth(['read'])),
      503,
      'DEPENDENCY_UNAVAILABLE',
    );
    await bare.stop();
  });

  it('sent only requests the providers’ OpenAPI descriptions allow', () => {
    for (const emu of [h.emus.digitalocean, h.emus.hetzner, h.emus.vultr]) expect(emu.contractViolations).toEqual([]);
  });
});
