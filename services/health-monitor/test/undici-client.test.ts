// The monitor loads undici's HTTP client alone, never its package entry (fetch, WebSocket,
// cache, mocks): ~6.6 MB of idle RSS (issue 16). A plain node imports the built droplet, as
// `npm start` does, and lists the undici files it loaded.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';

describe('undici-client', () => {
  it('the built droplet loads undici’s dispatcher and connector, not its entry or fetch', async () => {
    const droplet = new URL('../dist/health-monitor.js', import.meta.url).pathname;
    const script = `
      await import(${JSON.stringify(droplet)});
      const { createRequire } = await import('node:module');
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('/undici/'));
      process.stdout.write(JSON.stringify(loaded.map((f) => f.slice(f.lastIndexOf('/undici/') + 8))));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, NODE_OPTIONS: '' },
      timeout: 30_000,
    });
    const loaded = JSON.parse(stdout) as string[];
    expect(loaded).toContain('lib/dispatcher/agent.js');
    expect(loaded).toContain('lib/core/connect.js');
    expect(loaded).not.toContain('index.js');
    expect(loaded.filter((f) => f.startsWith('lib/web/') || f.startsWith('lib/mock/') || f.startsWith('lib/cache/'))).toEqual([]);
  });
});
