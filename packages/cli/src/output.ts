import { ApiError, CliError } from './errors.js';
import { renderTable, type Column } from './table.js';

/** Where a command writes: results to stdout, progress and notes to stderr. */
export class Output {
  constructor(
    readonly json: boolean,
    readonly stdout: NodeJS.WritableStream = process.stdout,
    readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {}

  /** The raw JSON for scripts. */
  data(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value ?? null, null, 2)}\n`);
  }

  line(text = ''): void {
    this.stdout.write(`${text}\n`);
  }

  table<R>(columns: Column<R>[], rows: R[]): void {
    this.stdout.write(renderTable(columns, rows));
  }

  note(text: string): void {
    this.stderr.write(`${text}\n`);
  }

  /** `--json`: the value; otherwise the human rendering. */
  result(value: unknown, human: () => void): void {
    if (this.json) this.data(value);
    else human();
  }
}

function fieldLines(details: unknown): string[] {
  const fields = (details as { fields?: Array<{ path?: string; message?: string }> } | undefined)?.fields;
  if (!Array.isArray(fields)) return [];
  return fields.slice(0, 20).map((f) => `  ${f.path ?? '(root)'}: ${f.message ?? ''}`);
}

/** `error: <CODE>: <message>`, field errors indented below, then a hint; never a stack. */
export function formatError(err: unknown): string {
  if (err instanceof CliError) {
    const lines = [`error: ${err.code}: ${err.message}`, ...fieldLines(err.details)];
    const trace = (err.details as { trace_id?: unknown } | undefined)?.trace_id;
    if (err instanceof ApiError && typeof trace === 'string') lines.push(`  trace_id: ${trace}`);
    if (err.hint) lines.push(`hint: ${err.hint}`);
    return `${lines.join('\n')}\n`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return `error: INTERNAL_ERROR: ${message.split('\n')[0]}\n`;
}

/** The envelope a script gets on stdout under `--json` when a command fails. */
export function errorJson(err: unknown): unknown {
  if (err instanceof CliError) {
    return {
      status: 'error',
      error: { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) },
      ...(err instanceof ApiError ? { http_status: err.httpStatus, url: err.url } : {}),
    };
  }
  return { status: 'error', error: { code: 'INTERNAL_ERROR', message: err instanceof Error ? err.message : String(err) } };
}
