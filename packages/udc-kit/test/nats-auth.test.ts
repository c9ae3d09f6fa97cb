import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { natsPermissions, renderComposeNatsConfig } from '../src/nats-auth.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

describe('the NATS permission table', () => {
  it('is what compose runs: deploy/nats/nats.conf matches it (regenerate with node scripts/render-nats-conf.mjs)', () => {
    expect(readFileSync(join(repoRoot, 'deploy', 'nats', 'nats.conf'), 'utf8')).toBe(renderComposeNatsConfig());
  });

  it('gives only the registry its key bucket and the heartbeats of others', () => {
    expect(natsPermissions('registry').publish.allow).toContain('$KV.registry-keys.>');
    for (const name of ['deployer', 'proxy-manager', 'console']) {
      const p = natsPermissions(name);
      expect(p.publish.allow.some((s) => s.includes('registry-keys'))).toBe(false);
      expect(p.publish.allow.filter((s) => s.startsWith('registry.'))).toEqual([`registry.heartbeat.${name}`]);
      expect(p.subscribe.allow).not.toContain('registry.heartbeat.*');
    }
  });

  it('knows no droplet it was not told about: an unknown name gets no bucket', () => {
    const p = natsPermissions('stranger');
    expect(p.publish.allow.some((s) => s.startsWith('$KV.'))).toBe(false);
  });
});
