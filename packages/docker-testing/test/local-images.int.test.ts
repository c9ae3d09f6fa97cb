import { describe, expect, it } from '@jest/globals';
import { ensureBusyboxImage, ensureDockerEngine, ensureNodeBaseImage } from '../src/index.js';

describe('local images on the real Docker Engine', () => {
  it('builds a busybox image and a node base image that run', async () => {
    const docker = await ensureDockerEngine();
    // A tag removed first, so the build through the Engine API really runs under jest.
    await docker
      .getImage('mesh-test/busybox:build-check')
      .remove({ force: true })
      .catch(() => undefined);
    const bb = await ensureBusyboxImage(docker, 'mesh-test/busybox:build-check');
    const node = await ensureNodeBaseImage(docker);
    for (const [image, cmd, expected] of [
      [bb, ['echo', 'hello'], 'hello'],
      [node, ['node', '-e', 'console.log(process.version)'], process.version],
    ] as const) {
      const c = await docker.createContainer({ Image: image, Cmd: [...cmd], HostConfig: { NetworkMode: 'host' } });
      try {
        await c.start();
        const res = await c.wait();
        expect(res.StatusCode).toBe(0);
        const logs = (await c.logs({ stdout: true, stderr: true })).toString('utf8');
        expect(logs).toContain(expected);
      } finally {
        await c.remove({ force: true });
      }
    }
  }, 180_000);
});
