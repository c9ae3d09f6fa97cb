import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import { createOrchestratorDroplet, type OrchestratorDroplet } from '../src/app.js';
import { quiet } from './support/mesh.js';

// Whatever arrives as a stack file is answered with a 4xx in the UDC envelope, never a 500.
let nats: NatsServerHandle;
let authority: TestAuthority;
let made: OrchestratorDroplet;
let auth: Record<string, string>;

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  made = await createOrchestratorDroplet({
    env: { PORT: '0', NATS_URL: nats.url, LOG_LEVEL: 'silent', ...authority.env() },
    logDestination: quiet(),
  });
  await made.droplet.start();
  auth = { Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'] })}` };
}, 60_000);

afterAll(async () => {
  await made?.droplet.stop();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

const yamlBodies: Array<[string, string]> = [
  [
    'a billion laughs',
    `a: &a ["x","x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n`,
  ],
  ['a duplicate key', 'servers: {}\nservers: {}\n'],
  ['a scalar', '42'],
  ['null', 'null'],
  ['a tab-indented mapping', 'projects:\n\tp: {}\n'],
  ['a custom tag', 'projects: !!js/function "x"\n'],
  ['binary noise', '\u0000\u0001\u0002\uffff'],
  ['a very deep nesting', `${'['.repeat(5000)}${']'.repeat(5000)}`],
  ['a prototype key', '__proto__: { polluted: true }\nprojects: {}\n'],
  ['a cycle (an alias inside the node it names)', 'projects: &p\n  shop:\n    environments: *p\n'],
];

const jsonBodies: Array<[string, unknown]> = [
  ['an array', [1, 2, 3]],
  ['wrong types everywhere', { version: 2, servers: [], projects: 'p', routes: null }],
  ['a huge count', { servers: { a: { provider: 'hetzner', region: 'r', size: 's', image: 'i', count: 1e300 } } }],
  ['a constructor key', { constructor: { prototype: {} } }],
  ['file that is not text', { file: 42 }],
  ['env with a non-string value', { projects: { p: { environments: { e: { env: { A: 1 } } } } } }],
];

describe('hostile stack files', () => {
  it.each(yamlBodies)('YAML: %s → 4xx with fields', async (_name, body) => {
    const res = await request(made.droplet.app).post('/stacks/x/validate').set(auth).set('content-type', 'application/yaml').send(body);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.status).toBe('error');
    expect(res.body.error.code).toBe('INVALID_REQUEST');
    expect(res.body.error.details.fields.length).toBeGreaterThan(0);
  });

  it.each(jsonBodies)('JSON: %s → 4xx with fields', async (_name, body) => {
    const res = await request(made.droplet.app)
      .post('/stacks/x/plan')
      .set(auth)
      .send(body as object);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.error.code).toBe('INVALID_REQUEST');
  });

  it('malformed JSON and an oversized text body', async () => {
    const bad = await request(made.droplet.app)
      .post('/stacks/x/plan')
      .set(auth)
      .set('content-type', 'application/json')
      .send('{"servers":');
    expect(bad.status).toBe(400);
    const big = await request(made.droplet.app)
      .post('/stacks/x/plan')
      .set(auth)
      .set('content-type', 'text/plain')
      .send(`# ${'x'.repeat(600 * 1024)}\n`);
    expect(big.status).toBe(413);
  });
});
