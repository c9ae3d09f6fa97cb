import { describe, expect, it } from '@jest/globals';
import { doErrorBody, doInstance } from '../src/providers/digitalocean/digitalocean-mapping.js';
import { hzAction, hzErrorBody, hzInstance, hzLabels, hzSize } from '../src/providers/hetzner/hetzner-mapping.js';
import { vuErrorBody, vuInstance, vuSize, vultrStatus } from '../src/providers/vultr/vultr-mapping.js';
import { joinTags, splitTags } from '../src/providers/cloud-provider.js';

// Recorded-shape fixtures: the fields each API documents, trimmed to what we read.
const doDroplet = {
  id: 3164444,
  name: 'example.com',
  status: 'active' as const,
  created_at: '2020-07-21T18:37:44Z',
  networks: {
    v4: [
      { ip_address: '10.128.192.124', netmask: '255.255.0.0', gateway: 'nil', type: 'private' as const },
      { ip_address: '192.241.165.154', netmask: '255.255.255.0', gateway: '192.241.165.1', type: 'public' as const },
    ],
    v6: [{ ip_address: '2604:a880:0:1010::18a:a001', netmask: 64, gateway: '2604:a880:0:1010::1', type: 'public' as const }],
  },
  region: { slug: 'nyc3', name: 'New York 3', features: [], available: true, sizes: [] },
  size: { slug: 's-1vcpu-1gb', price_monthly: 6 },
  size_slug: 's-1vcpu-1gb',
  image: { id: 7555620, slug: 'ubuntu-24-04-x64', name: '24.04 x64', distribution: 'Ubuntu' },
  tags: ['web', 'droplet-mesh', 'team:ops'],
};

const hzServer = {
  id: 42,
  name: 'my-server',
  status: 'initializing',
  created: '2016-01-30T23:55:00Z',
  public_net: {
    ipv4: { ip: '1.2.3.4', blocked: false, dns_ptr: 'server01.example.com' },
    ipv6: { ip: '2001:db8::/64', blocked: false, dns_ptr: [] },
    floating_ips: [],
  },
  private_net: [{ network: 4711, ip: '10.0.0.2', alias_ips: [], mac_address: '86:00:ff:2a:7d:e1' }],
  server_type: {
    id: 1,
    name: 'cx22',
    cores: 2,
    memory: 4,
    disk: 40,
    prices: [
      { location: 'nbg1', price_hourly: { net: '0.005', gross: '0.006' }, price_monthly: { net: '3.29', gross: '3.79' } },
      { location: 'fsn1', price_hourly: { net: '0.005', gross: '0.0061' }, price_monthly: { net: '3.3', gross: '3.93' } },
    ],
  },
  location: { name: 'fsn1' },
  image: { id: 4711, name: 'ubuntu-24.04', description: 'Ubuntu 24.04' },
  labels: { 'droplet-mesh': 'true', web: 'true', team: 'ops' },
};

const vuRaw = {
  id: 'cb676a46-66fd-4dfb-b839-443f2e6c0b60',
  os: 'Ubuntu 24.04 LTS x64',
  main_ip: '0.0.0.0',
  v6_main_ip: '',
  internal_ip: '',
  region: 'ewr',
  plan: 'vc2-1c-1gb',
  date_created: '2020-10-10T01:56:20+00:00',
  status: 'pending',
  power_status: 'running',
  server_status: 'none',
  label: 'web-1',
  hostname: 'web-1',
  tags: ['droplet-mesh', 'env:prod'],
};

describe('DigitalOcean mapping', () => {
  it('maps a droplet to the unified instance', () => {
    expect(doInstance(doDroplet)).toEqual({
      id: 'digitalocean:3164444',
      provider: 'digitalocean',
      provider_id: '3164444',
      name: 'example.com',
      status: 'running',
      raw_status: 'active',
      ipv4: '192.241.165.154',
      ipv6: '2604:a880:0:1010::18a:a001',
      private_ip: '10.128.192.124',
      region: 'nyc3',
      size: 's-1vcpu-1gb',
      image: 'ubuntu-24-04-x64',
      tags: ['web', 'droplet-mesh'],
      labels: { team: 'ops' },
      created_at: '2020-07-21T18:37:44Z',
      price_monthly: 6,
      managed: true,
    });
  });
  it.each([
    ['new', 'provisioning'],
    ['off', 'off'],
    ['archive', 'unknown'],
  ] as const)('status %s is %s', (raw, status) => {
    expect(doInstance({ ...doDroplet, status: raw }).status).toBe(status);
  });
  it('reads the error body', () => {
    expect(doErrorBody({ id: 'not_found', message: 'The resource you were accessing could not be found.', request_id: 'abc' })).toEqual({
      code: 'not_found',
      message: 'The resource you were accessing could not be found.',
      request_id: 'abc',
    });
    expect(doErrorBody('garbage')).toEqual({ code: undefined, message: undefined, request_id: undefined });
  });
});

describe('Hetzner mapping', () => {
  it('maps a server, pricing it at its own location', () => {
    const i = hzInstance(hzServer);
    expect(i).toMatchObject({
      id: 'hetzner:42',
      status: 'provisioning',
      raw_status: 'initializing',
      ipv4: '1.2.3.4',
      ipv6: '2001:db8::1',
      private_ip: '10.0.0.2',
      region: 'fsn1',
      size: 'cx22',
      price_monthly: 3.93,
      managed: true,
    });
    expect(i.tags.sort()).toEqual(['droplet-mesh', 'web']);
    expect(i.labels).toEqual({ team: 'ops' });
  });
  it('writes tags as labels valued true', () => {
    expect(hzLabels(['web'], { team: 'ops' })).toEqual({ team: 'ops', web: 'true', 'droplet-mesh': 'true' });
  });
  it('maps actions, sizes and errors', () => {
    expect(
      hzAction(
        {
          id: 13,
          command: 'start_server',
          status: 'error',
          progress: 0,
          started: 'x',
          finished: 'y',
          resources: [{ id: 42, type: 'server' }],
          error: { code: 'action_failed', message: 'Action failed' },
        } as never,
        'power_on',
      ),
    ).toMatchObject({
      id: '13',
      type: 'power_on',
      status: 'errored',
      resource_id: '42',
      error: 'action_failed: Action failed',
    });
    expect(hzSize(hzServer.server_type)).toMatchObject({
      slug: 'cx22',
      vcpus: 2,
      memory_mb: 4096,
      price_monthly: 3.79,
      price_hourly: 0.006,
      currency: 'EUR',
      regions: ['nbg1', 'fsn1'],
    });
    expect(hzErrorBody({ error: { code: 'locked', message: 'server is locked', details: null } })).toEqual({
      code: 'locked',
      message: 'server is locked',
    });
  });
});

describe('Vultr mapping', () => {
  it('maps an instance; 0.0.0.0 and empty addresses are null', () => {
    expect(vuInstance(vuRaw, 5)).toMatchObject({
      id: `vultr:${vuRaw.id}`,
      name: 'web-1',
      status: 'provisioning',
      raw_status: 'pending/running/none',
      ipv4: null,
      ipv6: null,
      private_ip: null,
      price_monthly: 5,
      managed: true,
      tags: ['droplet-mesh'],
      labels: { env: 'prod' },
    });
  });
  it.each([
    [{ status: 'active', power_status: 'running', server_status: 'ok' }, 'running'],
    [{ status: 'active', power_status: 'running', server_status: 'installingbooting' }, 'provisioning'],
    [{ status: 'active', power_status: 'stopped' }, 'off'],
    [{ status: 'suspended', power_status: 'stopped' }, 'error'],
    [{ status: 'resizing', power_status: 'running' }, 'provisioning'],
  ])('status %j is %s', (s, expected) => {
    expect(vultrStatus({ id: 'x', ...s })).toBe(expected);
  });
  it('derives an hourly price and reads the error body', () => {
    expect(vuSize({ id: 'vc2-1c-1gb', vcpu_count: 1, ram: 1024, disk: 25, monthly_cost: 5 })).toMatchObject({
      price_monthly: 5,
      price_hourly: 0.0068,
    });
    expect(vuErrorBody({ error: 'Invalid API token.', status: 401 })).toEqual({ message: 'Invalid API token.' });
  });
});

describe('tags and labels on tag-only providers', () => {
  it('round-trips', () => {
    const joined = joinTags(['web', 'droplet-mesh'], { team: 'ops' });
    expect(joined).toEqual(['web', 'droplet-mesh', 'team:ops']);
    expect(splitTags(joined)).toEqual({ tags: ['web', 'droplet-mesh'], labels: { team: 'ops' } });
  });
});
