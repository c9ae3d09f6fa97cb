import { describe, expect, it } from '@jest/globals';
import type { RegistryLink } from '@droplet-mesh/udc-kit';
import { CatalogCache } from '../src/domain/catalog-cache.js';
import { Fleet } from '../src/domain/fleet.js';
import { HostRegistry } from '../src/domain/host-registry.js';
import { LifecycleWatcher } from '../src/domain/lifecycle-watcher.js';
import type { AskUsage, ServerUsage } from '../src/domain/server-usage-guard.js';
import { ProviderSet } from '../src/providers/provider-set.js';
import { FakeProvider, MemoryIdempotencyStore } from './fake-provider.js';
import { testLogger } from './helpers.js';

// Deleting an instance the deployer still runs services on is refused without force; a mesh
// server is refused when the deployer cannot answer (fail closed); other instances are not held up.
const logger = testLogger();

function build(answer: ServerUsage | 'silent') {
  const provider = new FakeProvider('hetzner');
  const asked: string[] = [];
  const ask: AskUsage = async (i) => {
    asked.push(i.id);
    return answer === 'silent' ? undefined : answer;
  };
  const link = { upsertRecord: async () => undefined, removeRecord: async () => undefined } as unknown as RegistryLink;
  const fleet = new Fleet({
    providers: ProviderSet.of([provider]),
    catalog: new CatalogCache(60),
    idempotency: new MemoryIdempotencyStore(),
    hosts: new HostRegistry(() => link, logger),
    watcher: new LifecycleWatcher({ intervalMs: 5, timeoutMs: 2000 }, logger),
    emit: () => undefined,
    logger,
    settings: { listTimeoutMs: 1000, pollIntervalMs: 5, waitTimeoutMs: 2000 },
    serverUsage: ask,
  });
  const server = provider.add({
    provider_id: '1',
    managed: true,
    tags: ['droplet-mesh', 'mesh-server'],
    labels: { 'mesh-server': 'web-1' },
  });
  const plain = provider.add({ provider_id: '2', managed: true, tags: ['droplet-mesh'] });
  return { fleet, provider, asked, server, plain };
}

const admin = { admin: true };

describe('deleting an instance that is a deployer server', () => {
  it('is refused while the deployer says services run there, with what runs; force deletes it', async () => {
    const { fleet, provider, asked, server } = build({ server_id: 'web-1', services: ['app-shop-web-prod'] });
    const refused = await fleet.delete('hetzner', '1', false, admin).catch((e: Error) => e);
    expect(refused).toMatchObject({ httpStatus: 409, code: 'CONFLICT' });
    expect((refused as Error).message).toMatch(/server 'web-1' and still runs app-shop-web-prod.*DELETE \/servers\/web-1.*force=true/);
    expect(asked).toEqual([server.id]);
    expect(await provider.get('1')).toBeDefined();
    expect(await fleet.delete('hetzner', '1', true, admin)).toMatchObject({ deleted: true });
  });

  it('goes ahead when the deployer says nothing runs there', async () => {
    const { fleet } = build({ server_id: 'web-1', services: [] });
    expect(await fleet.delete('hetzner', '1', false, admin)).toMatchObject({ deleted: true });
  });

  it('a mesh server is refused when the deployer cannot answer (fail closed); another instance is deleted', async () => {
    const { fleet } = build('silent');
    const refused = await fleet.delete('hetzner', '1', false, admin).catch((e: Error) => e);
    expect(refused).toMatchObject({ httpStatus: 409, code: 'CONFLICT' });
    expect((refused as Error).message).toMatch(/mesh server and the deployer could not say/);
    expect(await fleet.delete('hetzner', '2', false, admin)).toMatchObject({ deleted: true });
  });
});
