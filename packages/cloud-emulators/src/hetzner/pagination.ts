import { EmulatorError } from '../core/errors.js';
import type { PagingFaultSpec } from '../core/types.js';

/** Hetzner's `page` (from 1) and `per_page` (default 25, at most 50), with `meta.pagination` and a `Link` header. */
export function paginate<T>(items: T[], query: Record<string, unknown>, url: string) {
  const page = intParam(query.page, 1, 'page');
  const perPage = Math.min(50, intParam(query.per_page, 25, 'per_page'));
  const total = items.length;
  const lastPage = Math.max(1, Math.ceil(total / perPage));
  const pageUrl = (p: number) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (k === 'page' || k === 'per_page') continue;
      for (const one of Array.isArray(v) ? v : [v]) if (typeof one === 'string') params.append(k, one);
    }
    params.set('page', String(p));
    params.set('per_page', String(perPage));
    return `${url}?${params.toString()}`;
  };
  const links: string[] = [];
  if (page > 1) links.push(`<${pageUrl(Math.min(page - 1, lastPage))}>; rel="prev"`);
  if (page < lastPage) links.push(`<${pageUrl(page + 1)}>; rel="next"`);
  links.push(`<${pageUrl(lastPage)}>; rel="last"`);
  return {
    slice: items.slice((page - 1) * perPage, page * perPage),
    meta: {
      pagination: {
        page,
        per_page: perPage,
        previous_page: page > 1 ? Math.min(page - 1, lastPage) : null,
        next_page: page < lastPage ? page + 1 : null,
        last_page: lastPage,
        total_entries: total,
      },
    },
    linkHeader: links.join(', '),
  };
}

function intParam(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isInteger(n) || n < 1) {
    throw new EmulatorError(422, 'invalid_input', `invalid input in field '${name}'`, {
      fields: [{ name, messages: ['must be a positive integer'] }],
    });
  }
  return n;
}

/** A paging fault on a page `paginate` built (see `PagingFaultSpec`); `url` is the list URL without query. */
export function misPage(
  body: Record<string, unknown>,
  fault: PagingFaultSpec,
  query: Record<string, unknown>,
  url: string,
  setHeader: (k: string, v: string) => void,
): void {
  const p = (body.meta as { pagination: Record<string, number | null> }).pagination;
  const page = p.page as number;
  const perPage = p.per_page as number;
  if (fault.total === null) {
    p.total_entries = null;
    p.last_page = null;
  } else if (fault.total !== undefined) {
    p.total_entries = fault.total;
    p.last_page = Math.max(1, Math.ceil(fault.total / perPage));
    p.next_page = page < p.last_page ? page + 1 : null;
  }
  if (fault.mode === 'repeat-next') p.next_page = page > 1 ? page : (p.next_page ?? 1);
  if (fault.mode === 'endless') {
    p.next_page = page + 1;
    p.last_page = null;
  }
  const pageUrl = (n: number) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (k === 'page' || k === 'per_page') continue;
      for (const one of Array.isArray(v) ? v : [v]) if (typeof one === 'string') params.append(k, one);
    }
    params.set('page', String(n));
    params.set('per_page', String(perPage));
    return `${url}?${params.toString()}`;
  };
  const links: string[] = [];
  if (p.previous_page) links.push(`<${pageUrl(p.previous_page)}>; rel="prev"`);
  if (p.next_page) links.push(`<${pageUrl(p.next_page)}>; rel="next"`);
  if (p.last_page) links.push(`<${pageUrl(p.last_page)}>; rel="last"`);
  setHeader('Link', links.join(', '));
}
