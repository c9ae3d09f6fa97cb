import { it } from '@jest/globals';
import { createWriteStream } from 'node:fs';
// @ts-ignore
import * as tar from '../../packages/docker-testing/node_modules/tar/dist/esm/index.js';
it('probe', async () => {
  await new Promise((res) => (tar as any).c({ cwd: '/tmp/cmp-ctx3', portable: true }, ['.']).pipe(createWriteStream('/tmp/cmp-jest.tar')).on('close', res));
});
