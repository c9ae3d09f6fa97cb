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
    { level: 'trace' as const, stream: opts.destination ?? process.stdout },
    { level: 'trace' as const, stream: ringStream },
  ]);
  const logger = pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { droplet: name } }, streams);
  return { logger, ring };
}
