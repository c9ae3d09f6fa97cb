import { describe, expect, it } from '@jest/globals';
import { parseForwardUrl } from '../src/forward.js';

describe('parseForwardUrl', () => {
  it('keeps the raw path and query after /api/<droplet>', () => {
    expect(parseForwardUrl('/api/deployer/deployments?status=running&page=2')).toEqual({
      droplet: 'deployer',
      pathAndQuery: '/deployments?status=running&page=2',
    });
    expect(parseForwardUrl('/api/multi-cloud-manager/instances/local/a%3Ab')).toEqual({
      droplet: 'multi-cloud-manager',
      pathAndQuery: '/instances/local/a%3Ab',
    });
    expect(parseForwardUrl('/api/registry')).toEqual({ droplet: 'registry', pathAndQuery: '/' });
    // Registry ids may be dotted (drop4.fullpotential.ai).
    expect(parseForwardUrl('/api/drop4.fullpotential.ai/health')).toEqual({ droplet: 'drop4.fullpotential.ai', pathAndQuery: '/health' });
  });

  it.each([
    '/api/x/../y',
    '/api/../x',
    '/api/a..b/x',
    '/api/.x/y',
    '/api/x/%2e%2e/y',
    '/api/x/a/%2E/b',
    '/api/x/a%5Cb',
    '/api/x/%0a',
    '/api/UPPER/x',
    '/api/x/%zz',
    '/apix/y',
  ])('refuses %s', (url) => {
    expect(() => parseForwardUrl(url)).toThrow();
  });
});
