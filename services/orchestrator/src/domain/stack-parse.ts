import { LineCounter, parseDocument } from 'yaml';
import { stackFile, type StackFile } from './stack-schema.js';

export interface FieldProblem {
  path: string;
  message: string;
  code?: string;
}

/** A stack file that cannot be used: every problem with its path in the file. */
export class StackFileError extends Error {
  constructor(
    message: string,
    readonly fields: FieldProblem[],
  ) {
    super(message);
  }
}

const MAX_BYTES = 512 * 1024;

/** Environment variable names whose values are secrets: they belong in `secrets:`, by name. */
const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|ACCESS_KEY|CREDENTIAL)/i;
const SECRET_VALUE = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/**
 * Secret values are refused before anything else: a `secrets:` that is a map (or list of
 * objects) carries values, an env var named like a secret carries one, and so does a PEM key.
 */
export function findSecretValues(raw: unknown): FieldProblem[] {
  const out: FieldProblem[] = [];
  const walk = (v: unknown, path: string[]) => {
    if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) walk(x, [...path, String(i)]);
      return;
    }
    if (v === null || typeof v !== 'object') {
      if (typeof v === 'string' && SECRET_VALUE.test(v))
        out.push({
          path: path.join('.'),
          message: 'looks like a private key: secret values never go in a stack file',
          code: 'secret_value',
        });
      return;
    }
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const at = [...path, k];
      if (k === 'secrets' && x !== null && typeof x === 'object') {
        const values = Array.isArray(x) ? x.some((i) => typeof i !== 'string') : Object.keys(x).length > 0;
        if (values) {
          out.push({
            path: at.join('.'),
            message:
              'secret values never go in a stack file: list secret names only (secrets: [NAME]) and set each value with the deployer (PUT /projects/{project}/environments/{environment}/secrets/{name})',
            code: 'secret_value',
          });
          continue;
        }
      }
      if (k === 'env' && x !== null && typeof x === 'object' && !Array.isArray(x)) {
        for (const [name, value] of Object.entries(x as Record<string, unknown>))
          if (SECRET_NAME.test(name) && typeof value === 'string' && value.length > 0)
            out.push({
              path: [...at, name].join('.'),
              message: `'${name}' looks like a secret: put its name under secrets: and its value in the deployer, not in the file`,
              code: 'secret_value',
            });
      }
      walk(x, at);
    }
  };
  walk(raw, []);
  return out;
}

/**
 * A YAML alias that refers to a node containing it (`a: &x {b: *x}`) builds an endless
 * structure: refused with where it loops back to, before anything walks it.
 */
export function findCycle(raw: unknown): FieldProblem | undefined {
  const onPath = new Map<object, string>();
  const walk = (v: unknown, path: string[]): FieldProblem | undefined => {
    if (v === null || typeof v !== 'object') return undefined;
    const at = path.join('.') || '(root)';
    const back = onPath.get(v);
    if (back !== undefined) return { path: at, message: `a cycle: this alias refers back to ${back}, which contains it`, code: 'cycle' };
    onPath.set(v, at);
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as Record<string, unknown>);
    for (const [k, x] of entries) {
      const found = walk(x, [...path, k]);
      if (found) return found;
    }
    onPath.delete(v);
    return undefined;
  };
  return walk(raw, []);
}

/** The file's text (YAML, of which JSON is a subset) or an already parsed JSON value. */
export function parseStackSource(input: unknown): StackFile {
  let raw: unknown = input;
  if (typeof input === 'string') {
    if (Buffer.byteLength(input) > MAX_BYTES)
      throw new StackFileError('the stack file is too large', [{ path: '(root)', message: `at most ${MAX_BYTES} bytes` }]);
    const lineCounter = new LineCounter();
    const doc = parseDocument(input, { prettyErrors: false, uniqueKeys: true, lineCounter });
    if (doc.errors.length > 0)
      throw new StackFileError(
        'the stack file is not valid YAML or JSON',
        doc.errors.map((e) => ({
          path: '(root)',
          message: (() => {
            const at = lineCounter.linePos(e.pos[0]);
            return `line ${at.line}, column ${at.col}: ${e.message.split('\n')[0]}`;
          })(),
          code: e.code,
        })),
      );
    try {
      raw = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // An alias bomb (or another document yaml refuses to build).
      throw new StackFileError('the stack file cannot be read', [{ path: '(root)', message: (err as Error).message.split('\n')[0] }]);
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new StackFileError('the stack file must be a mapping (an object)', [{ path: '(root)', message: 'expected an object' }]);
  const cycle = findCycle(raw);
  if (cycle) throw new StackFileError('the stack file has a cycle', [cycle]);
  const secrets = findSecretValues(raw);
  if (secrets.length > 0) throw new StackFileError('the stack file contains secret values', secrets);
  const r = stackFile.safeParse(raw);
  if (!r.success)
    throw new StackFileError(
      'the stack file is invalid',
      r.error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.message, code: i.code })),
    );
  return r.data;
}
