import { EmulatorError } from '../core/errors.js';
import type { PagingFaultSpec } from '../core/types.js';

/**
 * Vultr's cursor pagination: `per_page` (default 100, at most 500) and an opaque `cursor`;
 * `meta.links.next`/`prev` hold the cursors to pass back ("" when there is none), `meta.total` the count.
 */
export function paginate<T>(items: T[], query: Record<string, unknown>) {
  const perPage = perPageParam(query.per_page);
  const offset = typeof query.cursor === 'string' && query.cursor !== '' ? decodeCursor(query.cursor) : 0;
  const end = offset + perPage;
  return {
    slice: items.slice(offset, end),
    meta: {
      total: items.length,
      links: {
        next: end < items.length ? encodeCursor('next', end) : '',
        prev: offset > 0 ? encodeCursor('prev', Math.max(0, offset - perPage)) : '',
      },
    },
  };
}

function perPageParam(value: unknown): number {
  if (value === undefined) return 100;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isInteger(n) || n < 1) throw new EmulatorError(400, 'invalid_input', 'Invalid per_page value.');
  return Math.min(500, n);
}

function encodeCursor(direction: 'next' | 'prev', offset: number): string {
  return Buffer.from(`${direction}__${offset}`).toString('base64');
}

function decodeCursor(cursor: string): number {
  const m = /^(next|prev)__(\d+)$/.exec(Buffer.from(cursor, 'base64').toString('utf8'));
  if (!m) throw new EmulatorError(400, 'invalid_input', 'Invalid cursor.');
  return Number(m[2]);
}

/** A paging fault on a page `paginate` built (see `PagingFaultSpec`). */
export function misPage(body: Record<string, unknown>, fault: PagingFaultSpec, query: Record<string, unknown>): void {
  const meta = body.meta as { total?: number; links: { next: string; prev: string } };
  const asked = typeof query.cursor === 'string' ? query.cursor : '';
  if (fault.mode === 'repeat-next') meta.links.next = asked || meta.links.next || encodeCursor('next', 0);
  if (fault.mode === 'endless' && !meta.links.next) {
    const offset = asked ? decodeCursor(asked) : 0;
    meta.links.next = encodeCursor('next', offset + perPageParam(query.per_page));
  }
  if (fault.total === null) delete meta.total;
  else if (fault.total !== undefined) meta.total = fault.total;
}
