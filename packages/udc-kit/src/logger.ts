import pino, { type Logger } from 'pino';
import { Ring } from './ring.js';

export type { Logger } from 'pino';

export interface LogEntry {
  level: string;
  time: string;
  msg: string;
  [k: string]: unknown;
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
export const LEVEL_ORDER = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

/** Paths pino censors: credentials must never reach a log line. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-registry-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-registry-key"]',
  'authorization',
  'token',
  '*.token',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'api_key',
  '*.api_key',
  'apiToken',
  '*.apiToken',
  'registryKey',
  '*.registryKey',
  'droplet_key',
  '*.droplet_key',
  'private_key',
  '*.private_key',
  'secrets.*',
  '*.secrets.*',
];

const CENSOR = '[redacted]';
// pino's own redaction handles the literal paths cheaply (only when their first key is
// present), but a path starting with `*` makes it run a clone-and-stringify redactor on
// every value of every line (~100 µs a line, most of a request's cost). The `*.x` paths are
// applied here instead: a scan of the top-level values, copying only what it censors.
const NESTED_KEYS = new Set(REDACT_PATHS.filter((p) => /^\*\.[A-Za-z_]+$/.test(p)).map((p) => p.slice(2)));
const NESTED_BAGS = new Set(REDACT_PATHS.filter((p) => /^\*\.[A-Za-z_]+\.\*$/.test(p)).map((p) => p.slice(2, -2)));
const PINO_PATHS = REDACT_PATHS.filter((p) => !p.startsWith('*.'));

function censorAll(bag: object): object {
  if (Array.isArray(bag)) return bag.map(() => CENSOR);
  return Object.fromEntries(Object.keys(bag).map((k) => [k, CENSOR]));
}

/** A copy of `v` (same prototype and non-enumerable fields, so an Error still serializes as one) with its sensitive children censored; `v` itself when none. */
function censorChildren(v: object): object {
  let out: Record<string, unknown> | undefined;
  for (const k of Object.keys(v)) {
    const child = (v as Record<string, unknown>)[k];
    const bag = NESTED_BAGS.has(k) && child !== null && typeof child === 'object';
    if (!bag && !NESTED_KEYS.has(k)) continue;
    out ??= Object.create(Object.getPrototypeOf(v), Object.getOwnPropertyDescriptors(v)) as Record<string, unknown>;
    Object.defineProperty(out, k, {
      value: bag ? censorAll(child as object) : CENSOR,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out ?? v;
}

/** The `*.key` and `*.bag.*` paths of REDACT_PATHS over a line's (or a child's) fields: the object itself unless something is censored. */
export function redactNested<T extends Record<string, unknown>>(obj: T): T {
  let out: Record<string, unknown> | undefined;
  for (const k in obj) {
    const v = obj[k];
    if (v === null || typeof v !== 'object' || Array.isArray(v)) continue;
    const censored = censorChildren(v);
    if (censored === v) continue;
    out ??= { ...obj };
    out[k] = censored;
  }
  return (out ?? obj) as T;
}

function parseLine(line: string): LogEntry | undefined {
  try {
    const { level: lvl, time, msg, pid: _pid, hostname: _h, ...rest } = JSON.parse(line) as Record<string, unknown>;
    return { level: LEVELS[lvl as number] ?? String(lvl), time: new Date(time as number).toISOString(), msg: String(msg ?? ''), ...rest };
  } catch {
    return undefined; // a line we cannot parse is still on stdout
  }
}

/** The newest log lines as written (already redacted); parsed only when /logs asks. */
export class LogRing {
  private lines: Ring<string>;
  constructor(capacity: number) {
    this.lines = new Ring<string>(capacity);
  }
  push(line: string): void {
    this.lines.push(line);
  }
  query(filter: (e: LogEntry) => boolean, limit: number): LogEntry[] {
    return this.lines
      .query((line) => {
        const e = parseLine(line);
        return e !== undefined && filter(e);
      }, limit)
      .map((line) => parseLine(line)!);
  }
  get size(): number {
    return this.lines.size;
  }
}

export interface LoggerWithRing {
  logger: Logger;
  ring: LogRing;
}

/** pino to stdout (or a given stream) and into a bounded ring that /logs serves. */
export function createLogger(
  name: string,
  level: string,
  opts: { destination?: NodeJS.WritableStream; ringSize?: number } = {},
): LoggerWithRing {
  const ring = new LogRing(opts.ringSize ?? 1000);
  const ringStream = { write: (line: string) => ring.push(line) };
  const streams = pino.multistream([
    // Without a given stream, lines leave stdout in the background (pino's sonic-boom, as pino
    // advises for production): one synchronous write per line cost each logged request tens of
    // µs of the event loop. pino writes what is still buffered synchronously when the process exits.
    { level: 'trace' as const, stream: opts.destination ?? pino.destination({ dest: 1, sync: false }) },
    { level: 'trace' as const, stream: ringStream },
  ]);
  const logger = pino(
    {
      name,
      level,
      redact: { paths: PINO_PATHS, censor: CENSOR },
      formatters: { log: redactNested, bindings: redactNested },
      base: { droplet: name },
    },
    streams,
  );
  // pino applies the bindings formatter to the root's base only; a child's bindings are redacted here.
  const child = logger.child as unknown as (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => Logger;
  logger.child = function (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) {
    return child.call(this, redactNested(bindings), options);
  } as unknown as Logger['child'];
  return { logger, ring };
}
