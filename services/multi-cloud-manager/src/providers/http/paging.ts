import { DependencyUnavailable, type Logger } from '@droplet-mesh/udc-kit';
import type { ProviderName } from '../cloud-provider.js';

/** Pages one listing may read unless PROVIDER_MAX_PAGES says otherwise. */
export const DEFAULT_MAX_PAGES = 1000;

/** Who lists what, and how far a listing may go. */
export interface ListingContext {
  provider: ProviderName;
  /** `GET /instances`: for errors and logs. */
  operation: string;
  maxPages: number;
  logger: Logger;
}

/** Why a listing stopped before the provider said it was done. */
export type PagingStop = 'page_repeated' | 'page_limit';

interface Progress {
  pages: number;
  items: number;
  total?: number;
}

/**
 * A provider whose paging misbehaves is a dependency failing, not our bug: DEPENDENCY_UNAVAILABLE
 * 502, saying which bound stopped the listing.
 */
function stopped(ctx: ListingContext, reason: PagingStop, message: string, p: Progress): DependencyUnavailable {
  return new DependencyUnavailable(
    `${ctx.provider}: ${message}; listing stopped`,
    {
      provider: ctx.provider,
      operation: ctx.operation,
      reason,
      pages: p.pages,
      items: p.items,
      ...(p.total !== undefined ? { total: p.total } : {}),
      max_pages: ctx.maxPages,
    },
    502,
  );
}

function warn(ctx: ListingContext, reason: string, message: string, p: Progress): void {
  ctx.logger.warn(
    { provider: ctx.provider, operation: ctx.operation, reason, pages: p.pages, items: p.items, total: p.total },
    `${ctx.provider} ${ctx.operation}: ${message}`,
  );
}

function tooManyPages(ctx: ListingContext, total: number, perPage: number): DependencyUnavailable {
  const pages = Math.ceil(total / perPage);
  return stopped(ctx, 'page_limit', `reports ${total} items (${pages} pages of ${perPage}), more than the ${ctx.maxPages}-page limit`, {
    pages: 1,
    items: Math.min(total, perPage),
    total,
  });
}

/** Keeps the first of each id (items created while we page can shift one onto two pages). */
function dedupe<T>(items: T[], idOf?: (item: T) => string | number): T[] {
  if (!idOf) return items;
  const seen = new Set<string | number>();
  return items.filter((i) => {
    const id = idOf(i);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * Every page of a page-numbered listing (DigitalOcean, Hetzner), bounded:
 * - a known last page (or total) beyond `maxPages` is refused before paging;
 * - known pages are fetched a few at a time, and none after a short page (a total larger than
 *   the pages hold ends at the first page that is not full, with a warning);
 * - otherwise the next-page links are followed: a link back to a page already read, or more
 *   than `maxPages` pages, stops it with DEPENDENCY_UNAVAILABLE; reaching the reported total or
 *   an empty page ends it with a warning, whatever the links say.
 */
export async function allNumberedPages<P, T>(
  ctx: ListingContext,
  opts: {
    fetchPage: (page: number) => Promise<P>;
    items: (page: P) => T[];
    perPage: number;
    /** Items the API says there are, when it says. */
    total: (page: P) => number | undefined;
    /** Last page number the API reports (Hetzner); otherwise derived from the total. */
    lastPage?: (page: P) => number | undefined;
    /** The page number the page's next link names; undefined when none follows. */
    nextPage: (page: P) => number | undefined;
    concurrency?: number;
    idOf?: (item: T) => string | number;
  },
): Promise<T[]> {
  const first = await opts.fetchPage(1);
  const firstItems = opts.items(first);
  const total = opts.total(first);
  const last = opts.lastPage?.(first) ?? (total !== undefined ? Math.max(1, Math.ceil(total / opts.perPage)) : undefined);

  if (last !== undefined) {
    if (last > ctx.maxPages) throw tooManyPages(ctx, total ?? last * opts.perPage, opts.perPage);
    const pages = new Map<number, P>([[1, first]]);
    let end = firstItems.length < opts.perPage ? 1 : last;
    let next = 2;
    const worker = async () => {
      while (next <= end) {
        const n = next++;
        const body = await opts.fetchPage(n);
        pages.set(n, body);
        // No page after a short one: a total larger than the pages hold stops here.
        if (opts.items(body).length < opts.perPage && n < end) end = n;
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 4, Math.max(1, last - 1)) }, worker));
    const out: T[] = [];
    for (let n = 1; n <= end; n++) {
      const body = pages.get(n);
      if (body !== undefined) out.push(...opts.items(body));
    }
    const progress = { pages: pages.size, items: out.length, total };
    const said = `${last} pages${total !== undefined ? ` (${total} items)` : ''}`;
    if (end < last) warn(ctx, 'short_page', `reported ${said} but page ${end} was not full; ending the listing there`, progress);
    else if (opts.nextPage(pages.get(end)!) !== undefined)
      warn(
        ctx,
        'total_reached',
        `reached the reported total of ${said}, though the last page links to a next; ending the listing`,
        progress,
      );
    return dedupe(out, opts.idOf);
  }

  const out = [...firstItems];
  const seen = new Set<number>([1]);
  let page = first;
  let pageItems = firstItems;
  for (;;) {
    const n = opts.nextPage(page);
    if (n === undefined) break;
    const progress = { pages: seen.size, items: out.length, total };
    if (pageItems.length === 0) {
      warn(ctx, 'empty_page', `an empty page says page ${n} follows; ending the listing`, progress);
      break;
    }
    if (seen.has(n)) throw stopped(ctx, 'page_repeated', `repeated its link to page ${n}`, progress);
    if (seen.size >= ctx.maxPages) throw stopped(ctx, 'page_limit', `more than the ${ctx.maxPages}-page limit`, progress);
    seen.add(n);
    page = await opts.fetchPage(n);
    pageItems = opts.items(page);
    out.push(...pageItems);
  }
  return dedupe(out, opts.idOf);
}

/**
 * Every page of a cursor listing (Vultr), one after the other as the cursor requires, bounded:
 * a cursor handed back twice, or more than `maxPages` pages, stops it with DEPENDENCY_UNAVAILABLE;
 * reaching the reported total or an empty page ends it with a warning, whatever the cursor says.
 */
export async function allCursorPages<P, T>(
  ctx: ListingContext,
  opts: {
    fetchPage: (cursor: string | undefined) => Promise<P>;
    items: (page: P) => T[];
    next: (page: P) => string | undefined;
    perPage: number;
    total: (page: P) => number | undefined;
    idOf?: (item: T) => string | number;
  },
): Promise<T[]> {
  const out: T[] = [];
  const ids = new Set<string | number>();
  const add = (items: T[]) => {
    for (const i of items) {
      if (opts.idOf) {
        const id = opts.idOf(i);
        if (ids.has(id)) continue;
        ids.add(id);
      }
      out.push(i);
    }
  };
  const cursors = new Set<string>();
  let page = await opts.fetchPage(undefined);
  let pages = 1;
  const total = opts.total(page);
  if (total !== undefined && Math.ceil(total / opts.perPage) > ctx.maxPages) throw tooManyPages(ctx, total, opts.perPage);
  let pageItems = opts.items(page);
  add(pageItems);
  for (;;) {
    const cursor = opts.next(page);
    if (!cursor) break;
    const progress = { pages, items: out.length, total };
    if (total !== undefined && out.length >= total) {
      warn(
        ctx,
        'total_reached',
        `reached the reported total of ${total} items, though a next cursor follows; ending the listing`,
        progress,
      );
      break;
    }
    if (pageItems.length === 0) {
      warn(ctx, 'empty_page', 'an empty page hands out a next cursor; ending the listing', progress);
      break;
    }
    if (cursors.has(cursor)) throw stopped(ctx, 'page_repeated', `repeated its next cursor after ${pages} pages`, progress);
    if (pages >= ctx.maxPages) throw stopped(ctx, 'page_limit', `more than the ${ctx.maxPages}-page limit`, progress);
    cursors.add(cursor);
    page = await opts.fetchPage(cursor);
    pages++;
    pageItems = opts.items(page);
    add(pageItems);
  }
  return out;
}
