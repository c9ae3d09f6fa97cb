import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { startAllEmulators } from '../src/index.js';
import { client } from './http.js';

describe('startAllEmulators', () => {
  test('starts the three on their own ports with shared options and per-provider overrides; close stops all', async () => {
    const all = await startAllEmulators({ token: 'shared', seedInstances: 2, hetzner: { token: 'hz-only' } });
    try {
      expect(new Set([all.digitalocean.port, all.hetzner.port, all.vultr.port]).size).toBe(3);
      expect((await client(all.digitalocean)('GET', '/v2/droplets')).body.meta.total).toBe(2);
      expect(all.hetzner.token).toBe('hz-only');
      expect((await client(all.hetzner)('GET', '/v1/servers')).body.meta.pagination.total_entries).toBe(2);
      expect((await client(all.vultr)('GET', '/v2/instances')).body.meta.total).toBe(2);
    } finally {
      await all.close();
    }
    await expect(fetch(`${all.vultr.url}/v2/instances`)).rejects.toThrow();
  });
});

describe('pnpm emulate (dist/cli.js)', () => {
  test('prints the three base URLs and tokens, serves them, and stops on SIGINT', async () => {
    const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
    const child = spawn(process.execPath, [cli], {
      env: { ...process.env, EMULATOR_TOKEN: 'cli-token', EMULATOR_SEED_INSTANCES: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor('CLI prints URLs', () => /VULTR_API_URL=\S+/.test(out), 15_000);
      const url = (name: string) => new RegExp(`${name}=(\\S+)`).exec(out)![1]!;
      expect(out).toContain('DO_TOKEN=cli-token');
      const headers = { authorization: 'Bearer cli-token' };
      expect((await fetch(`${url('DO_API_URL')}/v2/account`, { headers })).status).toBe(200);
      expect((await fetch(`${url('HETZNER_API_URL')}/v1/locations`, { headers })).status).toBe(200);
      expect((await fetch(`${url('VULTR_API_URL')}/v2/account`, { headers })).status).toBe(200);
    } finally {
      child.kill('SIGINT');
    }
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 5000).unref());
    expect(await Promise.race([exited, timeout])).toBe(0);
    if (child.exitCode === null) child.kill('SIGKILL');
  });
});
