import pMap from 'p-map';

/**
 * Every page of a page-numbered listing: the first page says how many there are, the rest
 * are fetched a few at a time, so a long listing costs about (pages / concurrency) round trips.
 */
export async function allNumberedPages<P, T>(opts: {
  fetchPage: (page: number) => Promise<P>;
  items: (page: P) => T[];
  /** Last page number known from the first page, or undefined when the API does not say. */
  lastPage: (first: P) => number | undefined;
  /** Whether a page says more follow (used when lastPage is unknown). */
  hasNext: (page: P) => boolean;
  concurrency?: number;
  idOf?: (item: T) => string | number;
}): Promise<T[]> {
  const first = await opts.fetchPage(1);
  const out = [...opts.items(first)];
  const last = opts.lastPage(first);
  if (last !== undefined) {
    const rest = Array.from({ length: Math.max(0, last - 1) }, (_, i) => i + 2);
    const pages = await pMap(rest, (p) => opts.fetchPage(p), { concurrency: opts.concurrency ?? 4 });
    for (const p of pages) out.push(...opts.items(p));
  } else {
    let page = first;
    for (let n = 2; opts.hasNext(page); n++) {
      page = await opts.fetchPage(n);
      out.push(...opts.items(page));
    }
  }
  if (!opts.idOf) return out;
  // Items created while we paged can shift another item onto two pages.
  const seen = new Set<string | number>();
  return out.filter((i) => {
    const id = opts.idOf!(i);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** Every page of a cursor listing (Vultr): one after the other, as the cursor requires. */
export async function allCursorPages<P, T>(opts: {
  fetchPage: (cursor: string | undefined) => Promise<P>;
  items: (page: P) => T[];
  next: (page: P) => string | undefined;
  maxPages?: number;
}): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (let n = 0; n < (opts.maxPages ?? 10_000); n++) {
    const page = await opts.fetchPage(cursor);
    out.push(...opts.items(page));
    cursor = opts.next(page);
    if (!cursor) break;
  }
  return out;
}
