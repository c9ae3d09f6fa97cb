import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import AjvModule, { type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

// Both are CommonJS; under NodeNext the default import may be the module object.
const Ajv = ((AjvModule as unknown as { default?: unknown }).default ?? AjvModule) as typeof AjvModule.default;
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as unknown as (
  ajv: InstanceType<typeof Ajv>,
) => void;

/** OpenAPI formats Ajv does not know, checked loosely or not at all. */
const extraFormats: Record<string, RegExp | true | { type: 'number'; validate: (n: number) => boolean }> = {
  int32: { type: 'number', validate: (n) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 },
  int64: { type: 'number', validate: (n) => Number.isInteger(n) },
  float: { type: 'number', validate: () => true },
  double: { type: 'number', validate: () => true },
  decimal: /^-?\d+(\.\d+)?$/,
  byte: /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
  binary: true,
  password: true,
  uint32: true,
  uint64: true,
  cidr: true,
  url: true,
  string: true,
  rfc5424: true,
  rfc3164: true,
  xfs: true,
};

type Json = Record<string, any>;

export interface RequestToCheck {
  method: string;
  /** Path as the OpenAPI file spells it (version prefix stripped where the file's server URL holds it). */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  query: Record<string, unknown>;
  body?: unknown;
}

export interface CheckResult {
  operationId?: string;
  errors: string[];
}

/** One operation of the description, with where it lives (JSON pointer) for compiling its schemas. */
export interface OperationRef {
  operationId: string;
  method: string;
  template: string;
  pointer: string;
  pathParams: Record<string, string>;
}

interface Route {
  method: string;
  template: string;
  regex: RegExp;
  names: string[];
  literalLength: number;
}

const methods = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/**
 * Validates requests and responses against one provider's OpenAPI description with Ajv, which
 * resolves every `$ref` inside the loaded document. Validators compile lazily per operation and
 * are cached: the files are several MB and a test touches a handful of operations.
 */
export class OpenApiContract {
  private readonly strictAjv: InstanceType<typeof Ajv>;
  /** Query and path parameters arrive as strings: this instance coerces them to the declared types. */
  private readonly paramAjv: InstanceType<typeof Ajv>;
  private readonly routes: Route[];
  private readonly validators = new Map<string, ValidateFunction | null>();

  private constructor(private readonly doc: Json) {
    prepareForAjv(doc);
    const base: Options = { strict: false, allErrors: true, logger: false, validateSchema: false, validateFormats: true };
    this.strictAjv = new Ajv(base);
    this.paramAjv = new Ajv({ ...base, coerceTypes: 'array' });
    for (const ajv of [this.strictAjv, this.paramAjv]) {
      addFormats(ajv);
      for (const [name, format] of Object.entries(extraFormats)) ajv.addFormat(name, format as never);
      ajv.addSchema(doc, 'spec');
    }
    this.routes = buildRoutes(doc);
  }

  static async load(file: string): Promise<OpenApiContract> {
    return new OpenApiContract(JSON.parse(await readFile(file, 'utf8')) as Json);
  }

  operationFor(method: string, path: string): OperationRef | undefined {
    const m = method.toLowerCase();
    for (const route of this.routes) {
      if (route.method !== m) continue;
      const match = route.regex.exec(path);
      if (!match) continue;
      const pointer = `/paths/${escapePointer(route.template)}/${m}`;
      const op = this.doc.paths[route.template][m] as Json;
      const pathParams = Object.fromEntries(route.names.map((n, i) => [n, decodeURIComponent(match[i + 1]!)]));
      return {
        operationId: (op.operationId as string) ?? `${m} ${route.template}`,
        method: m,
        template: route.template,
        pointer,
        pathParams,
      };
    }
    return undefined;
  }

  checkRequest(req: RequestToCheck): CheckResult {
    const op = this.operationFor(req.method, req.path);
    if (!op) return { errors: [`no operation ${req.method.toUpperCase()} ${req.path} in the description`] };
    const errors: string[] = [];
    const params = this.parameters(op);
    for (const location of ['path', 'query'] as const) {
      const validate = this.compile(
        `${op.pointer}#params-${location}`,
        () =>
          paramsSchema(
            params.filter((p) => p.in === location),
            location === 'query',
          ),
        this.paramAjv,
      );
      const data = location === 'path' ? { ...op.pathParams } : structuredClone(req.query);
      if (validate && !validate(data)) errors.push(...formatErrors(validate.errors, location));
    }
    const operation = this.at(op.pointer);
    if (operation.requestBody) {
      const { value: body, pointer } = this.deref(operation.requestBody, `${op.pointer}/requestBody`);
      const hasBody = req.body !== undefined;
      if (body.required && !hasBody) errors.push('requestBody is required');
      if (hasBody && body.content?.['application/json']?.schema) {
        const validate = this.compile(`${pointer}/content/application~1json/schema`, undefined, this.strictAjv);
        if (validate && !validate(req.body)) errors.push(...formatErrors(validate.errors, 'requestBody'));
      } else if (hasBody && body.content && !body.content['application/json'])
        errors.push('requestBody is JSON but the operation does not take JSON');
    } else if (req.body !== undefined && Object.keys(req.body as object).length > 0) {
      errors.push('requestBody sent to an operation that takes none');
    }
    return { operationId: op.operationId, errors };
  }

  checkResponse(op: OperationRef, status: number, body: unknown, headers: Record<string, unknown>): CheckResult {
    const responses = this.at(op.pointer).responses as Json | undefined;
    if (!responses) return { operationId: op.operationId, errors: [] };
    const key = [String(status), `${Math.floor(status / 100)}XX`, `${Math.floor(status / 100)}xx`, 'default'].find((k) => k in responses);
    if (!key) {
      // Errors (rate limits, outages, auth) can come from any operation even where the file omits them;
      // an undocumented success status is a real mismatch.
      return { operationId: op.operationId, errors: status >= 400 ? [] : [`status ${status} is not documented for ${op.operationId}`] };
    }
    const { value: response, pointer } = this.deref(responses[key], `${op.pointer}/responses/${escapePointer(key)}`);
    const errors: string[] = [];
    const json = response.content?.['application/json'];
    if (json?.schema) {
      const validate = this.compile(`${pointer}/content/application~1json/schema`, undefined, this.strictAjv);
      if (validate && !validate(body)) errors.push(...formatErrors(validate.errors, 'body'));
    }
    // A status documented without content (Vultr's bare 4xx) accepts the provider's JSON error body as is.
    if (status === 204 && body !== null && body !== undefined) errors.push('204 response must not have a body');
    for (const [name, header] of Object.entries((response.headers ?? {}) as Json)) {
      const value = headers[name.toLowerCase()];
      if (value === undefined) continue;
      const { pointer: headerPointer } = this.deref(header, `${pointer}/headers/${escapePointer(name)}`);
      // Header values are strings on the wire: the coercing instance checks them against the declared type.
      const validate = this.compile(
        `${headerPointer}#value`,
        () => ({ type: 'object', properties: { v: { $ref: `spec#${headerPointer}/schema` } } }),
        this.paramAjv,
      );
      if (validate && !validate({ v: String(value) })) errors.push(...formatErrors(validate.errors, `header ${name}`));
    }
    return { operationId: op.operationId, errors };
  }

  private parameters(op: OperationRef): Json[] {
    const pathItemPointer = `/paths/${escapePointer(op.template)}`;
    const collect = (list: unknown, base: string) =>
      ((list as Json[] | undefined) ?? []).map((p, i) => {
        const { value, pointer } = this.deref(p, `${base}/parameters/${i}`);
        return { ...value, schemaRef: `spec#${pointer}/schema` } as Json;
      });
    const shared = collect(this.at(pathItemPointer).parameters, pathItemPointer);
    const own = collect(this.at(op.pointer).parameters, op.pointer);
    const byKey = new Map<string, Json>();
    for (const p of [...shared, ...own]) byKey.set(`${p.in}:${p.name}`, p);
    return [...byKey.values()];
  }

  private compile(key: string, makeSchema: (() => Json) | undefined, ajv: InstanceType<typeof Ajv>): ValidateFunction | null {
    const cacheKey = `${ajv === this.paramAjv ? 'p' : 's'}:${key}`;
    let validate = this.validators.get(cacheKey);
    if (validate === undefined) {
      try {
        validate = ajv.compile(makeSchema ? makeSchema() : { $ref: `spec#${key}` });
      } catch (err) {
        // Reported as a violation on every use, so a schema that cannot be checked never passes silently.
        const message = `schema ${key} cannot be compiled: ${(err as Error).message}`;
        validate = Object.assign(() => false, {
          errors: [{ instancePath: '', schemaPath: '', keyword: 'compile', params: {}, message }],
        }) as unknown as ValidateFunction;
      }
      this.validators.set(cacheKey, validate);
    }
    return validate;
  }

  private at(pointer: string): Json {
    return pointer
      .split('/')
      .slice(1)
      .reduce<Json>((node, part) => node?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], this.doc);
  }

  /** Follows `$ref` chains of parameters, request bodies, responses and headers. */
  private deref(value: Json, pointer: string): { value: Json; pointer: string } {
    let current = value;
    let where = pointer;
    for (let i = 0; i < 10 && typeof current?.$ref === 'string' && current.$ref.startsWith('#'); i++) {
      where = current.$ref.slice(1);
      current = this.at(where);
    }
    return { value: current, pointer: where };
  }
}

function paramsSchema(params: Json[], closed: boolean): Json {
  return {
    type: 'object',
    properties: Object.fromEntries(params.map((p) => [p.name, p.schema ? { $ref: p.schemaRef } : {}])),
    required: params.filter((p) => p.required).map((p) => p.name),
    additionalProperties: !closed,
  };
}

function buildRoutes(doc: Json): Route[] {
  const routes: Route[] = [];
  for (const template of Object.keys(doc.paths ?? {})) {
    const names: string[] = [];
    const source = template
      .split(/(\{[^}]+\})/)
      .map((part) => {
        const param = /^\{([^}]+)\}$/.exec(part);
        if (param) {
          names.push(param[1]!);
          return '([^/]+)';
        }
        return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      })
      .join('');
    const literalLength = template.replace(/\{[^}]+\}/g, '').length;
    for (const method of methods)
      if (doc.paths[template][method]) routes.push({ method, template, regex: new RegExp(`^${source}/?$`), names, literalLength });
  }
  // Literal paths win over templated ones (`/droplets/actions` before `/droplets/{id}`).
  return routes.sort((a, b) => a.names.length - b.names.length || b.literalLength - a.literalLength);
}

/**
 * OpenAPI 3.0's `nullable: true` beside a `type` is understood by Ajv; without a `type` (next to
 * `allOf`, `$ref`, ...) Ajv refuses it, so rewrite those to `anyOf: [<schema>, {type: null}]`.
 */
function prepareForAjv(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) prepareForAjv(item);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const obj = node as Json;
  for (const value of Object.values(obj)) prepareForAjv(value);
  if (obj.nullable === true && obj.type === undefined) {
    const { nullable: _nullable, ...rest } = obj;
    for (const key of Object.keys(obj)) delete obj[key];
    obj.anyOf = [rest, { type: 'null' }];
  }
}

function escapePointer(part: string): string {
  return part.replace(/~/g, '~0').replace(/\//g, '~1');
}

function formatErrors(errors: ErrorObject[] | null | undefined, where: string): string[] {
  return (errors ?? []).map((e) => {
    const params = e.params as Record<string, unknown>;
    const extra =
      'additionalProperty' in params
        ? ` (${String(params.additionalProperty)})`
        : 'allowedValues' in params
          ? ` (${JSON.stringify(params.allowedValues)})`
          : '';
    return `${where}${e.instancePath} ${e.message ?? e.keyword}${extra}`;
  });
}

const cache = new Map<string, Promise<OpenApiContract>>();

/** One loaded description per file per process: emulators of the same provider share it. */
export function loadContract(dir: string, fileName: string): Promise<OpenApiContract> {
  const file = join(dir, fileName);
  let loading = cache.get(file);
  if (!loading) {
    loading = OpenApiContract.load(file);
    cache.set(file, loading);
    loading.catch(() => cache.delete(file));
  }
  return loading;
}
