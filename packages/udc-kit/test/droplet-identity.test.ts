import { describe, expect, it } from '@jest/globals';
import { assertDropletOrAdmin, isDroplet, type Principal } from '../src/auth.js';
import { Forbidden, Unauthorized } from '../src/errors.js';

const token = (droplet_id: string, scopes: Principal['scopes'] = ['read', 'write']): Principal => ({
  sub: droplet_id,
  droplet_id,
  scopes,
  via: 'jwt',
});

describe('actions reserved to droplets by identity', () => {
  it('the droplet and its replicas are it; look-alikes are not', () => {
    expect(isDroplet(token('orchestrator'), 'orchestrator')).toBe(true);
    expect(isDroplet(token('orchestrator-2'), 'orchestrator')).toBe(true);
    for (const id of ['console', 'orchestratorx', 'orchestrator-', 'orchestrator-a.b', 'x-orchestrator', `orchestrator-${'a'.repeat(17)}`])
      expect(isDroplet(token(id), 'orchestrator')).toBe(false);
    // The shared API token is not a droplet identity (it has admin anyway).
    expect(isDroplet({ sub: 'orchestrator', droplet_id: 'orchestrator', scopes: ['read'], via: 'api_token' }, 'orchestrator')).toBe(false);
    expect(isDroplet(undefined, 'orchestrator')).toBe(false);
  });

  it('allows the named droplets and admins, refuses another droplet with write (403) and no caller (401)', () => {
    expect(assertDropletOrAdmin(token('deployer'), ['deployer', 'orchestrator'], 'provision servers').droplet_id).toBe('deployer');
    expect(assertDropletOrAdmin(token('operator', ['admin']), ['orchestrator'], 'provision servers').sub).toBe('operator');
    expect(() => assertDropletOrAdmin(token('console'), ['orchestrator'], 'provision servers')).toThrow(Forbidden);
    expect(() => assertDropletOrAdmin(token('console'), ['orchestrator'], 'provision servers')).toThrow(
      /only orchestrator \(or the 'admin' scope\) may provision servers/,
    );
    expect(() => assertDropletOrAdmin(undefined, ['orchestrator'], 'provision servers')).toThrow(Unauthorized);
  });
});
