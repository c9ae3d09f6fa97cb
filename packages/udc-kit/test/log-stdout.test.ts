// Log lines to stdout: batched writes in the background, none lost when a line is alone or the process exits.
import { execFile } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';
import { createLogger, STDOUT_BATCH_BYTES, STDOUT_FLUSH_MS, stdoutDestination } from '../src/logger.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const linesOf = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg: string });

describe('stdoutDestination', () => {
  it('writes a line that is alone within STDOUT_FLUSH_MS, and many lines in order', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'log-stdout-')), 'out');
    const fd = openSync(file, 'w');
    try {
      const { logger } = createLogger('solo', 'info', { destination: stdoutDestination(fd) });
      logger.info('alone');
      await sleep(STDOUT_FLUSH_MS * 3);
      expect(linesOf(file).map((l) => l.msg)).toEqual(['alone']);
      // More than a batch: written without waiting for the timer, and all of it in order once it fires.
      const n = Math.ceil((STDOUT_BATCH_BYTES * 3) / 100);
      for (let i = 0; i < n; i++) logger.info(`line-${i}`);
      await sleep(STDOUT_FLUSH_MS * 3);
      expect(linesOf(file).map((l) => l.msg)).toEqual(['alone', ...Array.from({ length: n }, (_, i) => `line-${i}`)]);
    } finally {
      closeSync(fd);
    }
  });

  it.each([
    ['process.exit()', 'process.exit(0);'],
    ['the event loop ending', ''],
  ])(
    'writes every line still buffered, in order, when the process exits by %s',
    async (_how, exit) => {
      // The built module (`npm test` builds before testing): a plain node runs it, as a droplet's would.
      const logger = new URL('../dist/logger.js', import.meta.url).pathname;
      // Some batches written, the last lines still gathered.
      const script = `
      const { createLogger } = await import(${JSON.stringify(logger)});
      const { logger } = createLogger('exiting', 'info');
      for (let i = 0; i < 500; i++) logger.info('before-exit-' + i);
      ${exit}`;
      // A write left in flight at exit went wrong in about 1 run of 8: 24 runs, so such a fault shows.
      for (let run = 0; run < 24; run++) {
        const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
          env: { ...process.env, NODE_OPTIONS: '' },
          timeout: 60_000,
          maxBuffer: 10 * 1024 * 1024,
        });
        expect(
          stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => (JSON.parse(l) as { msg: string }).msg),
        ).toEqual(Array.from({ length: 500 }, (_, i) => `before-exit-${i}`));
      }
    },
    120_000,
  );
});
