/** Deploy tags of one service, newest first; everything after the first `keep` goes, except tags in use. */
export function tagsToRemove(tags: Array<{ tag: string; created_at: string }>, keep: number, inUse: ReadonlySet<string>): string[] {
  return [...tags]
    .sort((a, b) => b.created_at.localeCompare(a.created_at))
    .slice(keep)
    .map((t) => t.tag)
    .filter((t) => !inUse.has(t));
}
