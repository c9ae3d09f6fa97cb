import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OpenAPIBackend, SetMatchType, type Document, type Operation } from 'openapi-backend';
import addFormatsImport from 'ajv-formats';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = ((addFormatsImport as unknown as { default?: unknown }).default ?? addFormatsImport) as (ajv: unknown) => unknown;

/** Formats these specs use that neither Ajv nor ajv-formats know; checked loosely or not at all. */
const extraFormats: Record<string, RegExp | true> = {
  decimal: /^-?\d+(\.\d+)?$/,
  uint32: true, uint64: true, cidr: true, url: true, string: true, rfc5424: true, rfc3164: true, xfs: true,
};

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

/**
 * Validates requests and responses against one provider's OpenAPI description with openapi-backend
 * (Ajv underneath). Validators compile lazily per operation: the files are several MB.
 */
export class OpenApiContract {
  private constructor(private readonly api: OpenAPIBackend) {}

  static async load(file: string): Promise<OpenApiContract> {
    const definition = normaliseStatusRanges(JSON.parse(await readFile(file, 'utf8')) as Document);
    const api = new OpenAPIBackend({
      definition,
      quick: true, // skip validating the description itself and compile validators lazily
      strict: false,
      validate: true,
      ajvOpts: { logger: false, allErrors: true },
      customizeAjv: (ajv) => {
        addFormats(ajv);
        for (const [name, format] of Object.entries(extraFormats)) ajv.addFormat(name, format);
        return ajv;
      },
    });
    await api.init();
    return new OpenApiContract(api);
  }

  operationFor(method: string, path: string): Operation | undefined {
    return this.api.router.matchOperation({ method: method.toLowerCase(), path, headers: {} }) ?? undefined;
  }

  checkRequest(req: RequestToCheck): CheckResult {
    const operation = this.operationFor(req.method, req.path);
    if (!operation) return { errors: [`no operation ${req.method.toUpperCase()} ${req.path} in the description`] };
    const result = this.api.validateRequest({ method: req.method.toLowerCase(), path: req.path, headers: req.headers as Record<string, string | string[]>, query: req.query as Record<string, string | string[]>, body: req.body }, operation);
    return { operationId: operation.operationId, errors: formatErrors(result.errors) };
  }

  checkResponse(operation: Operation, status: number, body: unknown, headers: Record<string, unknown>): CheckResult {
    const bodyResult = this.api.validateResponse(body, operation, status);
    const headerResult = this.api.validateResponseHeaders(headers, operation, { statusCode: status, setMatchType: SetMatchType.Any });
    return { operationId: operation.operationId, errors: [...formatErrors(bodyResult.errors), ...formatErrors(headerResult.errors)] };
  }
}

/** The parts of an Ajv error we report. */
interface ErrorObject {
  instancePath: string;
  keyword: string;
  message?: string;
  params?: Record<string, unknown>;
}

function formatErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}${e.params && 'allowedValues' in e.params ? ` (${JSON.stringify(e.params.allowedValues)})` : ''}`);
}

/** openapi-backend matches `4XX` but Hetzner's file writes `4xx`; the spec allows either case for ranges. */
function normaliseStatusRanges(definition: Document): Document {
  for (const item of Object.values(definition.paths ?? {})) {
    for (const op of Object.values(item ?? {})) {
      const responses = (op as { responses?: Record<string, unknown> })?.responses;
      if (!responses || typeof responses !== 'object') continue;
      for (const key of Object.keys(responses)) {
        if (/^[1-5]xx$/.test(key)) {
          responses[key.toUpperCase()] = responses[key];
          delete responses[key];
        }
      }
    }
  }
  return definition;
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
