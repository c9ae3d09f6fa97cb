import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// Issue 16 (idle RSS): modules only some configurations use are loaded when first used, not at
// start. Checked in a fresh node process, as a droplet starts: jest's module registry is not
// node's, so what jest loaded says nothing about what the droplet loads.
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const src = (path: string) => new URL(`../src/${path}`, import.meta.url).href;

/** Runs `body` (an ES module, top-level await allowed) in a new node with tsx; returns what it printed as JSON. */
async function inFreshNode(body: string): Promise<Record<string, unknown>> {
  const script = `
    import { createRequire } from 'node:module';
    const loaded = (pkg) => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/' + pkg + '/'));
    ${body}`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: PACKAGE_DIR,
    env: { ...process.env, NODE_OPTIONS: '' },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

describe('modules loaded on first use', () => {
  it('undici: not by a provider HTTP client until its first call, which then works', async () => {
    const out = await inFreshNode(`
      import { createServer } from 'node:http';
      const { ProviderHttpClient } = await import(${JSON.stringify(src('providers/http/provider-http-client.ts'))});
      const { doErrorBody } = await import(${JSON.stringify(src('providers/digitalocean/digitalocean-mapping.ts'))});
      const { testLogger } = await import(${JSON.stringify(new URL('./helpers.ts', import.meta.url).href)});
      const server = createServer((req, res) => res.end(JSON.stringify({ path: req.url, auth: req.headers.authorization })));
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      const opts = { provider: 'digitalocean', baseUrl: 'http://127.0.0.1:' + server.address().port, token: 'tok-1',
        timeoutMs: 2000, logger: testLogger(), parseError: doErrorBody, random: () => 0, maxRetries: 0 };
      const c = new ProviderHttpClient(opts);
      const atConstruction = loaded('undici');
      const body = await c.get('/v2/account');
      const afterCall = loaded('undici');
      await c.close();
      // A client closed before its first call fails its calls as a closed client always did.
      const closedFirst = new ProviderHttpClient(opts);
      await closedFirst.close();
      const closedErr = await closedFirst.get('/v2/account').then(() => null, (e) => ({ code: e.code, status: e.httpStatus }));
      server.close();
      console.log(JSON.stringify({ atConstruction, afterCall, body, closedErr }));
    `);
    expect(out).toEqual({
      atConstruction: false,
      afterCall: true,
      body: { path: '/v2/account', auth: 'Bearer tok-1' },
      closedErr: { code: 'DEPENDENCY_UNAVAILABLE', status: 503 },
    });
  }, 90_000);
});
