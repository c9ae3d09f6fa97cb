import { beforeAll, describe, expect, test } from '@jest/globals';
import { loadContract, resolveOpenapiDir, type OpenApiContract } from '../src/index.js';

// The validator itself must catch what it is there to catch, or an empty contractViolations proves nothing.
describe('OpenApiContract', () => {
  let digitalocean: OpenApiContract;
  let hetzner: OpenApiContract;
  let vultr: OpenApiContract;

  beforeAll(async () => {
    const dir = resolveOpenapiDir();
    [digitalocean, hetzner, vultr] = await Promise.all([
      loadContract(dir, 'digitalocean-v2.json'),
      loadContract(dir, 'hetzner-cloud-v1.json'),
      loadContract(dir, 'vultr-v2.json'),
    ]);
  });

  test('finds the operation for a path with parameters', () => {
    expect(digitalocean.operationFor('GET', '/v2/droplets/123')?.operationId).toBe('droplets_get');
    expect(hetzner.operationFor('POST', '/servers/5/actions/poweron')?.operationId).toBe('poweron_server');
    expect(vultr.operationFor('POST', '/instances/abc/halt')?.operationId).toBe('halt-instance');
  });

  test('accepts a valid create request and rejects a bad one', () => {
    const ok = digitalocean.checkRequest({
      method: 'POST',
      path: '/v2/droplets',
      headers: { 'content-type': 'application/json' },
      query: {},
      body: { name: 'web-1', size: 's-1vcpu-1gb', image: 'ubuntu-24-04-x64' },
    });
    expect(ok.errors).toEqual([]);
    const bad = digitalocean.checkRequest({
      method: 'POST',
      path: '/v2/droplets',
      headers: { 'content-type': 'application/json' },
      query: {},
      body: { name: 'web-1' },
    });
    expect(bad.errors.length).toBeGreaterThan(0);
    const badQuery = hetzner.checkRequest({ method: 'GET', path: '/servers', headers: {}, query: { per_pag: '5' } });
    expect(badQuery.errors.join()).toMatch(/per_pag/);
  });

  test('reports a request for an operation the description does not have', () => {
    expect(vultr.checkRequest({ method: 'GET', path: '/no-such-thing', headers: {}, query: {} }).errors[0]).toMatch(/no operation/);
  });

  test('rejects a response body that does not match, including under a 4xx range', () => {
    const op = digitalocean.operationFor('GET', '/v2/droplets/1')!;
    expect(digitalocean.checkResponse(op, 200, { droplet: { id: 'x' } }, {}).errors.length).toBeGreaterThan(0);
    expect(digitalocean.checkResponse(op, 404, { id: 'not_found', message: 'gone' }, {}).errors).toEqual([]);
    expect(digitalocean.checkResponse(op, 404, { message: 'gone' }, {}).errors.join()).toMatch(/id/);
    const hop = hetzner.operationFor('GET', '/servers/1')!;
    expect(hetzner.checkResponse(hop, 423, { error: { code: 'locked', message: 'locked', details: null } }, {}).errors).toEqual([]);
    expect(hetzner.checkResponse(hop, 423, { code: 'locked' }, {}).errors.length).toBeGreaterThan(0);
  });

  test('checks documented response headers', () => {
    const op = digitalocean.operationFor('GET', '/v2/account')!;
    const body = {
      account: {
        droplet_limit: 1,
        floating_ip_limit: 1,
        email: 'a@example.com',
        uuid: 'u',
        email_verified: true,
        status: 'active',
        status_message: '',
      },
    };
    expect(digitalocean.checkResponse(op, 200, body, { 'ratelimit-limit': '5000' }).errors).toEqual([]);
    expect(digitalocean.checkResponse(op, 200, body, { 'ratelimit-limit': 'lots' }).errors.length).toBeGreaterThan(0);
  });
});
