import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { Bus, createLogger } from '@droplet-mesh/udc-kit';
import { startNatsServer, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { deployerConfigSchema } from '../src/config.js';
import type { DeployerDeps } from '../src/deploy/deploy-context.js';
import { DeploymentTracker } from '../src/deploy/progress.js';
import { Recovery } from '../src/deploy/recovery.js';
import { ServiceLanes } from '../src/deploy/service-lanes.js';
import type { Deployment, DeploymentStatus } from '../src/domain/model.js';
import { EnginePool } from '../src/engine/engine-pool.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { masterKey, quiet } from './helpers.js';

// Finding 8 of the zero-trust review, the deployer's part: every recovery sweep (every
// RECOVERY_INTERVAL_S, on every replica) read the whole deployment history. It now reads
// an index of unfinished deployments; the history is scanned once, to build the index.

let nats: NatsServerHandle;
let bus: Bus;
const counts = { deploymentGets: 0, deploymentListings: 0 };

/** The bucket, counting reads of deployment records and listings of their keys. */
function counting(kv: KV): KV {
  return new Proxy(kv, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (prop === 'get')
        return (key: string, ...rest: unknown[]) => {
          if (key.startsWith('deployment.')) counts.deploymentGets++;
          return (v as (...a: unknown[]) => unknown).call(target, key, ...rest);
        };
      if (prop === 'keys')
        return (filter?: string | string[], ...rest: unknown[]) => {
          if ([filter ?? '>'].flat().some((f) => f.startsWith('deployment.') || f === '>')) counts.deploymentListings++;
          return (v as (...a: unknown[]) => unknown).call(target, filter, ...rest);
        };
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

function deployment(status: DeploymentStatus, owner: string, target = 'app-p-web-prod'): Deployment {
  return {
    id: randomUUID(),
    target_id: target,
    project: 'p',
    service: 'web',
    environment: 'prod',
    service_type: 'web',
    source: { kind: 'image', image: 'x:1' },
    status,
    percent: 0,
    steps: [],
    containers: [],
    route_switched: false,
    auto_rollback: false,
    requested_by: 'test',
    owner,
    created_at: new Date(Date.now() - 60_000).toISOString(),
    events: [],
  };
}

let stores: Stores;
let recovery: Recovery;
const log = createLogger('deployer', 'silent', { destination: quiet() }).logger;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'recovery-index-test' });
  stores = createStores(counting(await bus.kv('deployer-index-test', { history: 3 })));
  const config = deployerConfigSchema.parse({ NATS_URL: nats.url, DEPLOYER_MASTER_KEY: masterKey(), ALLOW_SIMPLE_TOKEN: 'false' });
  const deps: DeployerDeps = {
    config,
    stores,
    bus,
    engines: new EnginePool(config.DEPLOYER_MASTER_KEY),
    logger: log,
    ownerId: 'this-replica',
    send: async () => ({ result: 'success' }) as never,
    registry: () => undefined,
    emit: () => undefined,
  };
  recovery = new Recovery(deps, new ServiceLanes({ store: stores.lanes, ownerId: deps.ownerId, ttlMs: 30_000, logger: log }));
}, 30_000);

afterAll(async () => {
  await bus?.close();
  await nats?.stop({ removeStore: true });
});

describe('recovery reads only unfinished deployments', () => {
  it('a long history is scanned once (to build the index), then sweeps read only what is unfinished', async () => {
    // 300 finished deployments from the past, recorded before the index existed.
    const history = Array.from({ length: 300 }, (_, i) => deployment(i % 3 === 0 ? 'failed' : 'succeeded', 'gone-long-ago'));
    await Promise.all(history.map((d) => stores.deployments.put([d.id], d)));
    // One a dead replica left running, recorded as every deploy is (through its tracker).
    const left = deployment('running', 'dead-replica');
    await new DeploymentTracker(left, stores, bus, log).save();

    await recovery.sweep();
    counts.deploymentGets = 0;
    counts.deploymentListings = 0;
    const recovered = await recovery.sweep();
    // The dead replica's deploy was found and settled by the first sweep already.
    expect(recovered).toEqual([]);
    expect((await stores.deployments.get(left.id))?.status).toBe('interrupted');
    expect(counts.deploymentListings).toBe(0);
    expect(counts.deploymentGets).toBeLessThanOrEqual(2);
  }, 60_000);

  it('every later sweep costs what is unfinished, however long the history grows', async () => {
    for (let round = 0; round < 3; round++) {
      const more = Array.from({ length: 100 }, () => deployment('succeeded', 'someone'));
      for (const d of more) {
        // Each goes through its lifecycle as the runner records it: queued, running, final.
        const t = new DeploymentTracker({ ...d, status: 'queued' }, stores, bus, log);
        await t.save();
        t.setStatus('running');
        await t.save();
        t.setStatus('succeeded');
        await t.save();
      }
      const stuck = deployment('running', `dead-${round}`, `app-p-w${round}-prod`);
      await new DeploymentTracker(stuck, stores, bus, log).save();
      counts.deploymentGets = 0;
      counts.deploymentListings = 0;
      expect(await recovery.sweep()).toEqual([stuck.id]);
      expect(counts.deploymentListings).toBe(0);
      // The stuck one, read to settle it (and once more by its cleanup): never the history.
      expect(counts.deploymentGets).toBeLessThanOrEqual(4);
      expect(await stores.openDeployments.list()).toEqual([]);
    }
  }, 120_000);
});
