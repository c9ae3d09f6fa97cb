import { z } from 'zod';
import type { RouteRecord } from './api.js';

function schemaOf(s: z.ZodType | undefined): unknown {
  if (!s) return undefined;
  try {
    return z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
  } catch {
    return { type: 'object' };
  }
}

function parametersOf(s: z.ZodType | undefined, where: 'query' | 'path'): unknown[] {
  const js = schemaOf(s) as { properties?: Record<string, unknown>; required?: string[] } | undefined;
  if (!js?.properties) return [];
  return Object.entries(js.properties).map(([name, schema]) => ({
    name,
    in: where,
    required: where === 'path' || (js.required ?? []).includes(name),
    schema,
  }));
}

/** OpenAPI 3.1 document built from the same zod schemas that validate requests. */
export function buildOpenApi(info: { title: string; version: string; description?: string }, routes: RouteRecord[]) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const p = r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const scope = r.spec.scope ?? 'read';
    const op: Record<string, unknown> = {
      summary: r.spec.summary,
      tags: r.spec.tags,
      parameters: [...parametersOf(r.spec.params, 'path'), ...parametersOf(r.spec.query, 'query')],
      responses: {
        [String(r.spec.status ?? 200)]: { description: 'success' },
        default: {
          description: 'UDC error envelope',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } },
        },
      },
      ...(scope === 'public' ? { security: [] } : { security: [{ bearer: [] }], 'x-required-scope': scope }),
    };
    if (r.spec.body) op.requestBody = { required: true, content: { 'application/json': { schema: schemaOf(r.spec.body) } } };
    (paths[p] ??= {})[r.method] = op;
  }
  return {
    openapi: '3.1.0',
    info,
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: {
        ErrorEnvelope: {
          type: 'object',
          required: ['status', 'error', 'timestamp'],
          properties: {
            status: { const: 'error' },
            error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} } },
            timestamp: { type: 'string', format: 'date-time' },
          },
        },
      },
    },
  };
}
