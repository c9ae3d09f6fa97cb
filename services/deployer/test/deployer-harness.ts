import { afterAll, beforeAll, expect } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import type { RegistryLink, RegistryRecord, RegistryRecordInput } from '@droplet-mesh/udc-kit';
import {
  startNatsServer,
  startTestAuthority,
  tokenOnlyRegistry,
  type NatsServerHandle,
  type TestAuthority,
} from '@droplet-mesh/udc-kit/testing';
import { createDeployerDroplet, type DeployerDroplet } from '../src/app.js';
import { cleanDocker, masterKey, portRange, quiet, testImages, type TestImages } from './helpers.js';

export interface TestDeployerOptions {
  natsUrl: string;
  authority: TestAuthority;
  dataDir: string;
  /** Listen on this port on 127.0.0.1 (PORT is set to it too). Default: PORT 0 on the droplet's own host. */
  port?: number;
  /**
   * Variables over the defaults (LOG_LEVEL warn, a fresh master key and port range, DRAIN_S 1) and
   * extra ones; a variable given as undefined is left out. The authority's variables come last.
   */
  env?: Record<string, string | undefined>;
  /**
   * Default: a link that only gives out the deployer's own token, so its route messages to
   * proxy-manager carry its own token, as a registered deployer's do.
   * 'none': no link passed (the droplet's own default: none without REGISTRY_KEY).
   */
  registry?: RegistryLink | 'none';
  /** Default: quiet. */
  logDestination?: NodeJS.WritableStream;
}

export type StartedDeployer = DeployerDroplet & { listening: { url: string; port: number } };

/** A deployer droplet built with the integration tests' settings and started; `listening` is where. */
export async function startTestDeployer(o: TestDeployerOptions): Promise<StartedDeployer> {
  const env: Record<string, string> = {};
  const given: Record<string, string | undefined> = {
    PORT: o.port === undefined ? '0' : String(o.port),
    NATS_URL: o.natsUrl,
    LOG_LEVEL: 'warn',
    DEPLOYER_MASTER_KEY: masterKey(),
    DEPLOY_PORT_RANGE: portRange(),
    DRAIN_S: '1',
    DATA_DIR: o.dataDir,
    ...o.env,
    ...o.authority.env(),
  };
  for (const [k, v] of Object.entries(given)) if (v !== undefined) env[k] = v;
  const authority = o.authority;
  const droplet = await createDeployerDroplet({
    env,
    registry:
      o.registry === 'none'
        ? undefined
        : (o.registry ?? tokenOnlyRegistry(() => authority.mint({ sub: 'deployer', scopes: ['read', 'write'] }))),
    logDestination: o.logDestination ?? quiet(),
  });
  const listening = await droplet.start(o.port === undefined ? undefined : { port: o.port, host: '127.0.0.1' });
  return Object.assign(droplet, { listening });
}

/** What a deployer integration suite runs against; set once its beforeAll has run. */
export interface DeployerSuite {
  nats: NatsServerHandle;
  authority: TestAuthority;
  images: TestImages;
  droplet: StartedDeployer;
  /** A read + write token. */
  auth: Record<string, string>;
}

/**
 * The beforeAll/afterAll of a deployer integration suite: the test images, a real NATS, a test
 * authority and a started deployer (`deployer` adds its options), then `project` with
 * `services`; afterwards all of it stopped and the project's containers removed.
 */
export function deployerSuite(
  project: string,
  o: {
    deployer?: (s: Pick<DeployerSuite, 'authority' | 'images'>) => Omit<TestDeployerOptions, 'natsUrl' | 'authority' | 'dataDir'>;
    services?: object[];
  } = {},
): DeployerSuite {
  const suite = {} as DeployerSuite;
  const tmp = mkdtempSync(join(tmpdir(), `deployer-${project}-`));
  beforeAll(async () => {
    suite.images = await testImages();
    suite.nats = await startNatsServer();
    suite.authority = await startTestAuthority();
    suite.droplet = await startTestDeployer({
      natsUrl: suite.nats.url,
      authority: suite.authority,
      dataDir: join(tmp, 'data'),
      ...o.deployer?.(suite),
    });
    suite.auth = { Authorization: `Bearer ${suite.authority.mint({ scopes: ['read', 'write'] })}` };
    await createProject(suite.droplet.app, suite.auth, project, { services: o.services });
  }, 180_000);
  afterAll(async () => {
    await suite.droplet?.deployer.idle();
    await suite.droplet?.stop();
    await suite.authority?.close();
    await suite.nats?.stop({ removeStore: true });
    if (suite.images) await cleanDocker(suite.images.docker, project);
    rmSync(tmp, { recursive: true, force: true });
  }, 60_000);
  return suite;
}

type Target = Parameters<typeof request>[0];

/**
 * A project with its environments and services, each created with one POST that must answer
 * 201. An environment is a name or a full body; a service is its full body. Returns the
 * services' responses, in order.
 */
export async function createProject(
  app: Target,
  auth: Record<string, string>,
  project: string,
  o: { environments?: Array<string | ({ name: string } & Record<string, unknown>)>; services?: object[] } = {},
): Promise<request.Response[]> {
  const post = (p: string, b: object) => request(app).post(p).set(auth).send(b);
  expect((await post('/projects', { name: project })).status).toBe(201);
  for (const e of o.environments ?? ['prod'])
    expect((await post(`/projects/${project}/environments`, typeof e === 'string' ? { name: e } : e)).status).toBe(201);
  const services: request.Response[] = [];
  for (const s of o.services ?? []) {
    const res = await post(`/projects/${project}/services`, s);
    expect(res.status).toBe(201);
    services.push(res);
  }
  return services;
}

/** The registry as the deployer sees it: the records it registers for its apps, kept in `records`. */
export function recordingRegistry(records: Map<string, RegistryRecordInput>, token: () => string): RegistryLink {
  return {
    ...tokenOnlyRegistry(token),
    upsertRecord: async (r) => {
      records.set(r.id, r);
      return { ...r, status: 'active' } as unknown as RegistryRecord;
    },
    removeRecord: async (id) => void records.delete(id),
    get: async (id) => (records.has(id) ? ({ ...records.get(id), status: 'active' } as unknown as RegistryRecord) : undefined),
  };
}
