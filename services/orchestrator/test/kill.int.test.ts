import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { api, cleanDocker, startMesh, testImages, type Images, type Mesh } from './support/mesh.js';

// kill -9 of the deployer in the middle of an apply's deploy: the apply waits for it to come
// back, finds its deployment interrupted, deploys again and converges.
const project = `k${randomBytes(3).toString('hex')}`;
const domain = `${project}.mesh.test`;
let mesh: Mesh;
let images: Images;
let o: ReturnType<typeof api>;

const file = (image: string) => `
projects:
  ${project}:
    environments:
      prod:
        services:
          web: { image: ${image}, domain: ${domain} }
`;

beforeAll(async () => {
  images = await testImages();
  mesh = await startMesh({ deployerProcess: true, orchestratorEnv: { STEP_RETRY_S: '60', DRIFT_INTERVAL_S: '0' } });
  o = api(mesh);
}, 180_000);

afterAll(async () => {
  await mesh?.close();
  if (images) await cleanDocker(images.docker, project);
}, 120_000);

describe('kill -9 of the deployer during an apply', () => {
  it('the apply converges once the deployer is back; the old version serves meanwhile', async () => {
    const first = await o.plan('k', file(images.v1));
    expect((await o.apply('k', first.body.id)).body.status).toBe('succeeded');
    expect(await mesh.viaProxy(domain)).toEqual({ status: 200, body: 'version-1' });

    const p = await o.plan('k', file(images.slow));
    const started = await o.call('POST', '/stacks/k/apply', { plan_id: p.body.id });
    expect(started.status).toBe(202);
    const url = `/stacks/k/applies/${started.body.id}`;
    let killedDeployment = '';
    await waitFor(
      'the deploy to be under way',
      async () => {
        const step = (await o.call('GET', url)).body.steps.find((s: { id: string }) => s.id.startsWith('release/'));
        killedDeployment = step?.deployment_id ?? '';
        return step?.status === 'running' && !!step.deployment_id;
      },
      30_000,
      50,
    );
    await mesh.killDeployer();
    expect(await mesh.viaProxy(domain)).toEqual({ status: 200, body: 'version-1' });
    await mesh.startDeployer();
    let final: { status: string; steps: Array<{ id: string; deployment_id?: string; detail?: string }> } | undefined;
    await waitFor(
      'the apply to finish',
      async () => {
        final = (await o.call('GET', url)).body;
        return final?.status !== 'running';
      },
      120_000,
      250,
    );
    if (final?.status !== 'succeeded') throw new Error(JSON.stringify(final, null, 2));
    const step = final!.steps.find((s) => s.id.startsWith('release/'))!;
    expect(step.deployment_id).not.toBe(killedDeployment);
    expect(await mesh.viaProxy(domain)).toEqual({ status: 200, body: 'version-3' });
  }, 240_000);
});
