/** Fixed-size in-memory ring, newest last. Used for /logs and /events. */
export class Ring<T> {
  private items: T[] = [];
  /** Index of the oldest item once the ring is full. */
  private start = 0;
  constructor(readonly capacity: number) {}
  push(item: T): void {
    if (this.items.length < this.capacity) {
      this.items.push(item);
    } else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.capacity;
    }
  }
  /** Newest `limit` items that pass `filter`, oldest first. */
  query(filter: (item: T) => boolean, limit: number): T[] {
    const out: T[] = [];
    const n = this.items.length;
    for (let k = n - 1; k >= 0 && out.length < limit; k--) {
      const item = this.items[(this.start + k) % n];
      if (filter(item)) out.push(item);
    }
    return out.reverse();
  }
  get size(): number {
    return this.items.length;
  }
}
