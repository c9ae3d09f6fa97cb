import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { UDC_ENDPOINTS } from '../src/testing/index.js';
import { createTestDroplet, type TestDroplet } from './helpers.js';

let droplet: TestDroplet;
let doc: {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths: Record<
    string,
    Record<
      string,
      {
        security: unknown[];
        'x-required-scope'?: string;
        parameters: { name: string; in: string; required: boolean }[];
        requestBody?: { content: { 'application/json': { schema: { properties: Record<string, unknown>; required?: string[] } } } };
        responses: Record<string, unknown>;
      }
    >
  >;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
};

beforeAll(async () => {
  droplet = createTestDroplet({ env: {} });
  const res = await request(droplet.app).get('/openapi.json');
  expect(res.status).toBe(200);
  doc = res.body;
});
afterAll(() => droplet.stop());

describe('/openapi.json', () => {
  it('is an OpenAPI 3.1 document describing the droplet', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toEqual({ title: 'testdrop', version: '1.2.3', description: 'udc-kit test droplet' });
    expect(doc.components.schemas.ErrorEnvelope).toBeDefined();
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('lists all 14 UDC endpoints and the droplet routes', () => {
    for (const [m, p] of UDC_ENDPOINTS) expect(doc.paths[p]?.[m]).toBeDefined();
    expect(doc.paths['/things/{id}'].get).toBeDefined();
    expect(doc.paths['/things/{id}'].delete).toBeDefined();
    expect(Object.keys(doc.paths).some((p) => p.includes(':'))).toBe(false);
  });

  it('marks public routes without security and protected routes with their scope', () => {
    expect(doc.paths['/health'].get.security).toEqual([]);
    expect(doc.paths['/state'].get.security).toEqual([{ bearer: [] }]);
    expect(doc.paths['/state'].get['x-required-scope']).toBe('read');
    expect(doc.paths['/shutdown'].post['x-required-scope']).toBe('admin');
    expect(doc.paths['/echo'].post['x-required-scope']).toBe('write');
  });

  it('derives parameters and request bodies from the zod schemas', () => {
    const params = doc.paths['/things/{id}'].get.parameters;
    expect(params).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'id', in: 'path', required: true }),
        expect.objectContaining({ name: 'verbose', in: 'query', required: false }),
      ]),
    );
    const logs = doc.paths['/logs'].get.parameters.map((p) => p.name).sort();
    expect(logs).toEqual(['level', 'limit', 'since']);
    const echo = doc.paths['/echo'].post.requestBody!.content['application/json'].schema;
    expect(Object.keys(echo.properties).sort()).toEqual(['count', 'text']);
    expect(echo.required).toEqual(['text']);
    const msg = doc.paths['/message'].post.requestBody!.content['application/json'].schema;
    expect(Object.keys(msg.properties)).toEqual(expect.arrayContaining(['source', 'target', 'message_type', 'payload', 'trace_id']));
  });

  it('gives the success status of each route', () => {
    expect(Object.keys(doc.paths['/things'].post.responses)).toContain('201');
    expect(Object.keys(doc.paths['/shutdown'].post.responses)).toContain('202');
  });
});

describe('/docs', () => {
  it('serves Swagger UI pointing at /openapi.json', async () => {
    const page = await request(droplet.app).get('/docs/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/html/);
    expect(page.text).toContain('swagger');
    const init = await request(droplet.app).get('/docs/swagger-ui-init.js');
    expect(init.status).toBe(200);
    expect(init.text).toContain('/openapi.json');
  });
});

describe('/redoc', () => {
  it('serves a ReDoc page loading /openapi.json, with the bundle from the redoc package (no CDN)', async () => {
    const page = await request(droplet.app).get('/redoc');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/html/);
    expect(page.text).toContain('<redoc spec-url="openapi.json">');
    expect(page.text).toContain('<script src="redoc/redoc.standalone.js">');
    expect(page.text).not.toMatch(/https?:\/\//);
    const bundle = await request(droplet.app).get('/redoc/redoc.standalone.js');
    expect(bundle.status).toBe(200);
    expect(bundle.headers['content-type']).toMatch(/javascript/);
    expect(Number(bundle.headers['content-length'] ?? bundle.text.length)).toBeGreaterThan(100_000);
  });

  it('sends /redoc/ to /redoc, where the relative links resolve; anything else under it is a UDC 404', async () => {
    const slash = await request(droplet.app).get('/redoc/');
    expect(slash.status).toBe(301);
    expect(slash.headers.location).toBe('../redoc');
    const other = await request(droplet.app).get('/redoc/nothing.js');
    expect(other.status).toBe(404);
    expect(other.body.status).toBe('error');
  });
});
