import { EmulatorError } from '../core/errors.js';
import type { PagingFaultSpec } from '../core/types.js';

export interface PageQuery {
  page: number;
  perPage: number;
}

/** DigitalOcean's `page` (from 1) and `per_page` (default 20, at most 200). */
export function parsePageQuery(query: Record<string, unknown>): PageQuery {
  const page = intParam(query.page, 1, 'page');
  const perPage = Math.min(200, intParam(query.per_page, 20, 'per_page'));
  return { page, perPage };
}

function intParam(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isInteger(n) || n < 1)
    throw new EmulatorError(400, 'bad_request', `${name} must be a positive integer`);
  return n;
}

/** One page plus DigitalOcean's `links.pages` (absolute URLs) and `meta.total`. */
export function paginate<T>(items: T[], q: PageQuery, url: string, query: Record<string, unknown>) {
  const total = items.length;
  const lastPage = Math.max(1, Math.ceil(total / q.perPage));
  const pageUrl = (page: number) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (k !== 'page' && k !== 'per_page' && typeof v === 'string') params.set(k, v);
    params.set('page', String(page));
    params.set('per_page', String(q.perPage));
    return `${url}?${params.toString()}`;
  };
  const pages: Record<string, string> = {};
  if (q.page > 1) {
    pages.first = pageUrl(1);
    pages.prev = pageUrl(Math.min(q.page - 1, lastPage));
  }
  if (q.page < lastPage) {
    pages.next = pageUrl(q.page + 1);
    pages.last = pageUrl(lastPage);
  }
  return {
    slice: items.slice((q.page - 1) * q.perPage, q.page * q.perPage),
    links: { pages },
    meta: { total },
  };
}

/** A paging fault on a page `paginate` built (see `PagingFaultSpec`); `url` is the list URL without query. */
export function misPage(body: Record<string, unknown>, fault: PagingFaultSpec, query: Record<string, unknown>, url: string): void {
  const q = parsePageQuery(query);
  const links = (body.links ?? {}) as { pages?: Record<string, string> };
  const pages = links.pages ?? {};
  const pageUrl = (page: number) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (k !== 'page' && k !== 'per_page' && typeof v === 'string') params.set(k, v);
    params.set('page', String(page));
    params.set('per_page', String(q.perPage));
    return `${url}?${params.toString()}`;
  };
  if (fault.mode === 'repeat-next') pages.next = q.page > 1 ? pageUrl(q.page) : (pages.next ?? pageUrl(1));
  if (fault.mode === 'endless') {
    pages.next = pageUrl(q.page + 1);
    delete pages.last;
  }
  body.links = { ...links, pages };
  const meta = body.meta as { total?: number };
  if (fault.total === null) delete meta.total;
  else if (fault.total !== undefined) meta.total = fault.total;
}
