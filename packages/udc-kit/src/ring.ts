/** Fixed-size in-memory ring, newest last. Used for /logs and /events. */
export class Ring<T> {
  private items: T[] = [];
  constructor(readonly capacity: number) {}
  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }
  /** Newest `limit` items that pass `filter`, oldest first. */
  query(filter: (item: T) => boolean, limit: number): T[] {
    const out: T[] = [];
    for (let i = this.items.length - 1; i >= 0 && out.length < limit; i--) {
      if (filter(this.items[i])) out.push(this.items[i]);
    }
    return out.reverse();
  }
  get size(): number {
    return this.items.length;
  }
}
