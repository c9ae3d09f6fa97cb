import pino, { type Logger } from 'pino';

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

/**
 * The newest `capacity` log lines as written (already redacted), parsed only when /logs asks.
 * A line is kept as UTF-8 bytes in a slot of one buffer allocated up front, not as a string:
 * a string kept for the next 1,000 lines outlives the young generation's collections, is
 * copied, promoted and later marked by a major GC (~3 µs of CPU a logged request under load,
 * bench/udc/logline.ts); the bytes cost one copy and nothing for the collector. A line longer
 * than a slot (a stack trace) is kept as its string.
 */
export class LogRing {
  private readonly bytes: Buffer;
  /** Byte length of each slot's line; -1: the line is in `long`. */
  private readonly lens: Int32Array;
  private readonly long = new Map<number, string>();
  /** The slot the next line goes to. */
  private next = 0;
  private count = 0;
  constructor(
    readonly capacity: number,
    private readonly slotBytes = 512,
  ) {
    // Not zeroed (pages are touched as lines arrive); a slot is read only up to its line's length.
    this.bytes = Buffer.allocUnsafeSlow(capacity * slotBytes);
    this.lens = new Int32Array(capacity);
  }
  push(line: string): void {
    const i = this.next;
    const slot = this.slotBytes;
    const n = this.bytes.write(line, i * slot, slot, 'utf8');
    // write() stops before a character that does not fit whole (at most 4 bytes): with 4 bytes to spare, the line is all there.
    if (n <= slot - 4 || Buffer.byteLength(line) === n) {
      if (this.lens[i] === -1) this.long.delete(i);
      this.lens[i] = n;
    } else {
      this.lens[i] = -1;
      this.long.set(i, line);
    }
    this.next = i + 1 === this.capacity ? 0 : i + 1;
    if (this.count < this.capacity) this.count++;
  }
  private line(i: number): string {
    const len = this.lens[i];
    if (len === -1) return this.long.get(i)!;
    const at = i * this.slotBytes;
    return this.bytes.toString('utf8', at, at + len);
  }
  /** Newest `limit` entries that pass `filter`, oldest first. */
  query(filter: (e: LogEntry) => boolean, limit: number): LogEntry[] {
    const out: LogEntry[] = [];
    for (let k = 1; k <= this.count && out.length < limit; k++) {
      const e = parseLine(this.line((this.next - k + this.capacity) % this.capacity));
      if (e !== undefined && filter(e)) out.push(e);
    }
    return out.reverse();
  }
  get size(): number {
    return this.count;
  }
}

export interface LoggerWithRing {
  logger: Logger;
  ring: LogRing;
}

/** Bytes of log lines a write to stdout carries at least, unless `STDOUT_FLUSH_MS` pass first. */
export const STDOUT_BATCH_BYTES = 16_384;
/** The longest a line waits before it is handed to the write. */
export const STDOUT_FLUSH_MS = 100;

/** Batches not yet written when the process exits are written then (one listener for all). */
const unwritten = new Set<WeakRef<StdoutBatch>>();
let exitListener = false;

/**
 * Log lines gathered and written to stdout STDOUT_BATCH_BYTES at a time, or what
 * STDOUT_FLUSH_MS gathered, in one synchronous write (pino's sonic-boom, which retries
 * EAGAIN and partial writes). A synchronous write per line cost a logged request tens of µs
 * of the event loop; one per batch costs no more CPU per line than sonic-boom's asynchronous
 * mode (bench/udc/logline.ts, kit vs kitOld). Not that mode: a write still in the thread
 * pool when the process exits lands after, or without, the lines written at exit (out of
 * order in 12 of 100 runs of 500 lines then process.exit()).
 * Lines are kept in an array until then: sonic-boom's own minLength appends each to one
 * string, copied whole on every line.
 */
class StdoutBatch {
  private lines: string[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly dest: ReturnType<typeof pino.destination>;
  constructor(fd: number) {
    this.dest = pino.destination({ dest: fd, sync: true });
    if (!exitListener) {
      exitListener = true;
      process.on('exit', () => {
        for (const ref of unwritten) ref.deref()?.flush();
      });
    }
    for (const ref of unwritten) if (!ref.deref()) unwritten.delete(ref);
    unwritten.add(new WeakRef(this));
  }
  write(line: string): boolean {
    this.lines.push(line);
    this.bytes += line.length;
    if (this.bytes >= STDOUT_BATCH_BYTES) this.flush();
    // Armed at most once per STDOUT_FLUSH_MS, not per batch: a batch it finds half full is written early.
    else this.timer ??= setTimeout(this.onTimer, STDOUT_FLUSH_MS).unref();
    return true;
  }
  private readonly onTimer = () => {
    this.timer = undefined;
    this.flush();
  };
  /** Also at exit: every write is synchronous, so what is gathered here is all that is unwritten. */
  flush(): void {
    if (this.lines.length === 0) return;
    const text = this.lines.join('');
    this.lines = [];
    this.bytes = 0;
    try {
      this.dest.write(text);
    } catch {
      // Destroyed (stdout closed): nowhere to write to.
    }
  }
}

/** Log lines to a file descriptor (stdout), in batches (StdoutBatch). */
export function stdoutDestination(fd = 1): NodeJS.WritableStream {
  return new StdoutBatch(fd) as unknown as NodeJS.WritableStream;
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
    { level: 'trace' as const, stream: opts.destination ?? stdoutDestination() },
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
