import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { startNatsServer, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { startRegistry, subscribeEvents } from './support.js';

// A mesh droplet's replicas share what it stewards: the deployer replica that deployed an
// app may be dead when the other redeploys it, and the app's record must follow (else the
// health-monitor checks the old address and restarts the healthy new deployment).
let nats: NatsServerHandle;
let reg: Awaited<ReturnType<typeof startRegistry>>;

const as = (droplet: string) =>
  `Bearer ${reg.keyring().sign({ sub: droplet, droplet_id: droplet, scopes: ['read', 'write'] }, 'droplet-mesh-registry', 'droplet-mesh').token}`;
const post = (droplet: string, body: Record<string, unknown>) =>
  request(reg.droplet.app).post('/droplets').set('Authorization', as(droplet)).send(body);

beforeAll(async () => {
  nats = await startNatsServer();
  reg = await startRegistry(nats.url);
}, 60_000);

afterAll(async () => {
  await reg?.droplet.stop();
  await nats?.stop({ removeStore: true });
});

describe('records stewarded by a mesh droplet with replicas', () => {
  it('another replica of the steward updates (keeping the steward) and removes an app record; the update is an event', async () => {
    const events = await subscribeEvents(nats.url, 'registry.droplet.>');
    try {
      const created = await post('deployer', { id: 'app-shop-web-prod', url: 'http://127.0.0.1:20001', kind: 'service' });
      expect(created.status).toBe(201);
      expect(created.body.droplet.steward).toBe('deployer');
      const moved = await post('deployer-2', { id: 'app-shop-web-prod', url: 'http://127.0.0.1:20002', kind: 'service' });
      expect([moved.status, moved.body.droplet?.url, moved.body.droplet?.steward]).toEqual([200, 'http://127.0.0.1:20002', 'deployer']);
      // The same record again is no news; a new address is.
      expect((await post('deployer', { id: 'app-shop-web-prod', url: 'http://127.0.0.1:20002', kind: 'service' })).status).toBe(200);
      const removed = await request(reg.droplet.app).delete('/droplets/app-shop-web-prod').set('Authorization', as('deployer-3'));
      expect(removed.status).toBe(204);
      await new Promise((r) => setTimeout(r, 200));
      expect(events.seen.filter((e) => e.data.droplet?.id === 'app-shop-web-prod').map((e) => e.subject)).toEqual([
        'registry.droplet.registered',
        'registry.droplet.updated',
        'registry.droplet.deregistered',
      ]);
    } finally {
      await events.close();
    }
  });

  it('never a droplet outside the mesh, another mesh droplet, or a droplet’s own record', async () => {
    expect((await post('web-1', { id: 'thing', url: 'http://127.0.0.1:20003', kind: 'service' })).status).toBe(201);
    expect((await post('web-2', { id: 'thing', url: 'http://127.0.0.1:20004', kind: 'service' })).status).toBe(403);
    expect((await post('deployer', { id: 'app-two', url: 'http://127.0.0.1:20005', kind: 'service' })).status).toBe(201);
    expect((await post('proxy-manager', { id: 'app-two', url: 'http://127.0.0.1:20006', kind: 'service' })).status).toBe(403);
    expect((await post('deployer-x', { id: 'app-two', url: 'http://127.0.0.1:20006', kind: 'service' })).status).toBe(403);
    // The deployer's own record (its own steward): a replica registers itself under its own id.
    expect((await post('deployer', { id: 'deployer', url: 'http://127.0.0.1:20007', kind: 'service' })).status).toBe(201);
    expect((await post('deployer-2', { id: 'deployer', url: 'http://127.0.0.1:20008', kind: 'service' })).status).toBe(403);
    expect((await request(reg.droplet.app).delete('/droplets/deployer').set('Authorization', as('deployer-2'))).status).toBe(403);
  });
});
