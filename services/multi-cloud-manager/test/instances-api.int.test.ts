import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { Bus } from '@droplet-mesh/udc-kit';
import { expectEnvelope, natsAuthHeaders, waitFor } from '@droplet-mesh/udc-kit/testing';
import { CLOUD_TOKEN, startHarness, type Harness } from './harness.js';

const prefix = `mcm-api-${process.pid}`;
let h: Harness;
let bus: Bus;
const published: Array<{ subject: string; data: any }> = [];

beforeAll(async () => {
  h = await startHarness({ docker: true, env: { LOCAL_CATALOG_IMAGES: 'mesh-test/busybox:latest' } });
  bus = await Bus.connect({ url: h.nats.url, name: 'mcm-test-listener' });
  bus.nc.subscribe('multi-cloud-manager.instance.>', { callback: (_e, m) => void published.push({ subject: m.subject, data: m.json() }) });
}, 120_000);

afterAll(async () => {
  await bus?.close();
  if (h?.docker) {
    const mine = await h.docker.listContainers({ all: true, filters: JSON.stringify({ name: [prefix] }) });
    await Promise.all(
      mine.map((c) =>
        h
          .docker!.getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
  }
  await h?.close();
});

const api = () => request(h.droplet.app);
const doCreate = {
  provider: 'digitalocean',
  name: 'web-idem',
  region: 'nyc3',
  size: 's-1vcpu-1gb',
  image: 'ubuntu-24-04-x64',
  tags: ['web'],
};

describe('instances API', () => {
  it('lists instances from every provider with filters and pagination', async () => {
    const all = await api()
      .get('/instances?per_page=200')
      .set(h.auth(['read']));
    expect(all.status).toBe(200);
    for (const p of ['digitalocean', 'hetzner', 'vultr']) expect(all.body.items.filter((i: any) => i.provider === p)).toHaveLength(3);
    expect(all.body.providers.map((p: any) => p.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
    const page = await api()
      .get('/instances?provider=hetzner&per_page=2')
      .set(h.auth(['read']));
    expect(page.body.items).toHaveLength(2);
    expect(page.body.pagination).toMatchObject({ page: 1, per_page: 2, total: 3, next_page: 2 });
    const tagged = await api()
      .get('/instances?tag=seed&status=running&region=ewr')
      .set(h.auth(['read']));
    expect(tagged.body.items.every((i: any) => i.provider === 'vultr' && i.region === 'ewr')).toBe(true);
    const vultrPriced = all.body.items.filter((i: any) => i.provider === 'vultr');
    expect(vultrPriced.every((i: any) => i.price_monthly > 0)).toBe(true);
  });

  it('gets one instance; bad input is a clear 4xx', async () => {
    const list = await api()
      .get('/instances?provider=digitalocean')
      .set(h.auth(['read']));
    const one = list.body.items[0];
    const got = await api()
      .get(`/instances/digitalocean/${one.provider_id}`)
      .set(h.auth(['read']));
    expect(got.body).toEqual(one);
    expectEnvelope(
      await api()
        .get('/instances/nowhere/1')
        .set(h.auth(['read'])),
      400,
      'INVALID_REQUEST',
    );
    expectEnvelope(
      await api()
        .get('/instances/digitalocean/abc')
        .set(h.auth(['read'])),
      400,
      'INVALID_REQUEST',
    );
    const missing = await api()
      .get('/instances/digitalocean/999999')
      .set(h.auth(['read']));
    expectEnvelope(missing, 404, 'NOT_FOUND');
    expect(missing.body.error.details).toMatchObject({ provider: 'digitalocean', provider_status: 404, request_id: expect.any(String) });
    expectEnvelope(
      await api()
        .post('/instances')
        .set(h.auth())
        .send({ ...doCreate, name: 'bad name!' }),
      400,
      'INVALID_REQUEST',
    );
    expectEnvelope(
      await api()
        .post('/instances')
        .set(h.auth())
        .send({ ...doCreate, size: 'no-such-size' }),
      422,
    );
  });

  it('honours Idempotency-Key: a retried create does not create twice', async () => {
    const before = h.emus.digitalocean.requests.filter((r) => r.method === 'POST' && r.path === '/v2/droplets').length;
    const first = await api().post('/instances').set(h.auth()).set('Idempotency-Key', 'create-web-idem-1').send(doCreate);
    expect(first.status).toBe(202);
    expect(first.body.instance).toMatchObject({ provider: 'digitalocean', name: 'web-idem', managed: true });
    expect(first.body.instance.tags.sort()).toEqual(['droplet-mesh', 'web']);
    const retry = await api().post('/instances').set(h.auth()).set('Idempotency-Key', 'create-web-idem-1').send(doCreate);
    expect(retry.status).toBe(202);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.body).toEqual(first.body);
    expect(h.emus.digitalocean.requests.filter((r) => r.method === 'POST' && r.path === '/v2/droplets').length).toBe(before + 1);
    const reused = await api()
      .post('/instances')
      .set(h.auth())
      .set('Idempotency-Key', 'create-web-idem-1')
      .send({ ...doCreate, name: 'other' });
    expectEnvelope(reused, 422, 'INVALID_REQUEST');
    expectEnvelope(
      await api().post('/instances').set(h.auth()).set('Idempotency-Key', 'x'.repeat(300)).send(doCreate),
      400,
      'INVALID_REQUEST',
    );
    // Not waited for: the droplet follows it and registers the host once it runs.
    await waitFor('DO host registered', () => h.registry.hosts.has(`host-digitalocean-${first.body.instance.provider_id}`), 10_000);
  });

  it('create with wait: 201 running, host registered in the registry, events emitted on NATS', async () => {
    const res = await api()
      .post('/instances')
      .set(h.auth())
      .send({
        provider: 'hetzner',
        name: 'web-wait',
        region: 'fsn1',
        size: 'cx22',
        image: 'ubuntu-24.04',
        wait: true,
        labels: { team: 'ops' },
      });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ registered: true, instance: { status: 'running', managed: true, labels: { team: 'ops' } } });
    const id = res.body.instance.provider_id;
    expect(h.registry.hosts.get(`host-hetzner-${id}`)).toEqual({
      id: `host-hetzner-${id}`,
      name: 'web-wait',
      kind: 'host',
      url: `http://${res.body.instance.ipv4}`,
      metadata: { provider: 'hetzner', instance_id: id, region: 'fsn1', recovery: ['reboot', 'alert'] },
    });
    await waitFor(
      'created event on NATS',
      () => published.some((p) => p.subject === 'multi-cloud-manager.instance.created' && p.data.instance.provider_id === id),
      3000,
    );
    const events = await api()
      .get('/events?type=instance')
      .set(h.auth(['read']));
    expect(events.body.events.map((e: any) => e.type)).toEqual(expect.arrayContaining(['instance.created', 'instance.state_changed']));
  });

  it('creates a local instance on the real Docker Engine', async () => {
    const res = await api()
      .post('/instances')
      .set(h.auth())
      .send({
        provider: 'local',
        name: `${prefix}-web`,
        region: 'local',
        size: 'local-small',
        image: h.image,
        command: ['sleep', '3600'],
        wait: true,
      });
    expect(res.status).toBe(201);
    // On the mesh's bridge network: its address there, which the host reaches.
    expect(res.body.instance).toMatchObject({
      provider: 'local',
      status: 'running',
      ipv4: expect.stringMatching(/^\d+\.\d+\.\d+\.\d+$/),
      managed: true,
    });
    expect(res.body.instance.ipv4).not.toBe('127.0.0.1');
    expect(h.registry.hosts.get(`host-local-${res.body.instance.provider_id.slice(0, 12)}`)?.url).toBe(`http://${res.body.instance.ipv4}`);
    const del = await api().delete(`/instances/local/${res.body.instance.provider_id}`).set(h.auth());
    expect(del.status).toBe(200);
    expect(h.registry.hosts.has(`host-local-${res.body.instance.provider_id.slice(0, 12)}`)).toBe(false);
  });

  it('refuses to delete or power off an unmanaged server unless force=true', async () => {
    const seeded = (
      await api()
        .get('/instances?provider=vultr&tag=seed')
        .set(h.auth(['read']))
    ).body.items;
    const [a, b] = seeded;
    const refused = await api().delete(`/instances/vultr/${a.provider_id}`).set(h.auth());
    expectEnvelope(refused, 409, 'CONFLICT');
    expect(refused.body.error.details).toMatchObject({ managed: false, hint: 'force=true' });
    expectEnvelope(
      await api().post(`/instances/vultr/${b.provider_id}/actions`).set(h.auth()).send({ type: 'power_off' }),
      409,
      'CONFLICT',
    );
    const off = await api()
      .post(`/instances/vultr/${b.provider_id}/actions`)
      .set(h.auth())
      .send({ type: 'power_off', force: true, wait: true });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ action: { status: 'completed' }, instance: { status: 'off' } });
    await waitFor(
      'state_changed on NATS',
      () =>
        published.some((p) => p.subject === 'multi-cloud-manager.instance.state_changed' && p.data.instance.provider_id === b.provider_id),
      3000,
    );
    const forced = await api().delete(`/instances/vultr/${a.provider_id}?force=true`).set(h.auth());
    expect(forced.status).toBe(200);
    expectEnvelope(
      await api()
        .get(`/instances/vultr/${a.provider_id}`)
        .set(h.auth(['read'])),
      404,
      'NOT_FOUND',
    );
  });

  it('actions without wait answer 202 with the action to poll', async () => {
    const created = await api()
      .post('/instances')
      .set(h.auth())
      .send({ provider: 'digitalocean', name: 'act-1', region: 'nyc3', size: 's-1vcpu-1gb', image: 'ubuntu-24-04-x64', wait: true });
    const id = created.body.instance.provider_id;
    const res = await api().post(`/instances/digitalocean/${id}/actions`).set(h.auth()).send({ type: 'reboot' });
    expect(res.status).toBe(202);
    expect(res.body.action).toMatchObject({ provider: 'digitalocean', type: 'reboot', status: 'in_progress' });
    expectEnvelope(
      await api().post(`/instances/digitalocean/${id}/actions`).set(h.auth()).send({ type: 'explode' }),
      400,
      'INVALID_REQUEST',
    );
  });

  it('snapshots an instance and lists snapshots across providers', async () => {
    const created = await api()
      .post('/instances')
      .set(h.auth())
      .send({ provider: 'hetzner', name: 'snap-1', region: 'fsn1', size: 'cx22', image: 'ubuntu-24.04', wait: true });
    const snap = await api()
      .post(`/instances/hetzner/${created.body.instance.provider_id}/snapshots`)
      .set(h.auth())
      .send({ name: 'nightly', wait: true });
    expect(snap.status).toBe(201);
    const list = await api()
      .get('/snapshots')
      .set(h.auth(['read']));
    expect(list.body.snapshots.some((s: any) => s.provider === 'hetzner' && s.name === 'nightly')).toBe(true);
    expect(list.body.providers.every((p: any) => p.status === 'ok')).toBe(true);
  });

  it('handles instance.reboot, instance.list and instance.get messages over NATS', async () => {
    const created = await api()
      .post('/instances')
      .set(h.auth())
      .send({ provider: 'vultr', name: 'msg-1', region: 'ewr', size: 'vc2-1c-1gb', image: '2284', wait: true });
    const envelope = (payload: object, message_type = 'command') =>
      JSON.stringify({ source: 'health-monitor', target: 'multi-cloud-manager', message_type, payload });
    // Every message carries its sender's token, as droplets send them.
    const opts = () => ({ timeout: 5000, headers: natsAuthHeaders(h.auth(['read', 'write']).Authorization.slice('Bearer '.length)) });
    const reboot = (
      await bus.nc.request(
        'udc.multi-cloud-manager.message',
        envelope({ action: 'instance.reboot', provider: 'vultr', instance_id: created.body.instance.provider_id }),
        opts(),
      )
    ).json<any>();
    expect(reboot).toMatchObject({ result: 'success', data: { action: { type: 'reboot' } } });
    const list = (
      await bus.nc.request('udc.multi-cloud-manager.message', envelope({ action: 'instance.list', provider: 'vultr' }, 'query'), opts())
    ).json<any>();
    expect(list.result).toBe('success');
    expect(list.data.instances.some((i: any) => i.provider_id === created.body.instance.provider_id)).toBe(true);
    const bad = (
      await bus.nc.request('udc.multi-cloud-manager.message', envelope({ action: 'instance.reboot', provider: 'mars' }), opts())
    ).json<any>();
    expect(bad).toMatchObject({ result: 'error', error: { code: 'INVALID_REQUEST' } });
    // instance.get, by unified id (what the deployer sends) and by provider + id.
    const byId = (
      await bus.nc.request(
        'udc.multi-cloud-manager.message',
        envelope({ action: 'instance.get', id: created.body.instance.id }, 'query'),
        opts(),
      )
    ).json<any>();
    expect(byId).toMatchObject({ result: 'success', data: { instance: { id: created.body.instance.id, provider: 'vultr' } } });
    expect(byId.data.instance.ipv4).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const byParts = (
      await bus.nc.request(
        'udc.multi-cloud-manager.message',
        envelope({ action: 'instance.get', provider: 'vultr', instance_id: created.body.instance.provider_id }, 'query'),
        opts(),
      )
    ).json<any>();
    expect(byParts.data.instance.id).toBe(created.body.instance.id);
    const missing = (
      await bus.nc.request(
        'udc.multi-cloud-manager.message',
        envelope({ action: 'instance.get', id: 'vultr:no-such-instance' }, 'query'),
        opts(),
      )
    ).json<any>();
    expect(missing).toMatchObject({ result: 'error', error: { code: 'NOT_FOUND' } });
  });

  it('never puts a provider token in a log line, a response or an event', async () => {
    const logs = await api()
      .get('/logs?limit=1000&level=trace')
      .set(h.auth(['read']));
    const events = await api()
      .get('/events?limit=1000')
      .set(h.auth(['read']));
    for (const text of [h.logs.text(), JSON.stringify(logs.body), JSON.stringify(events.body), JSON.stringify(published)])
      expect(text).not.toContain(CLOUD_TOKEN);
    expect(h.logs.text()).toContain('provider call'); // the debug lines exist, without the token
  });

  it('sent only requests the providers’ OpenAPI descriptions allow', () => {
    for (const emu of [h.emus.digitalocean, h.emus.hetzner, h.emus.vultr]) expect(emu.contractViolations).toEqual([]);
  });
});
