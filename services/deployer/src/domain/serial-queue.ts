/**
 * One lane per key: jobs with the same key run one at a time in arrival order, lanes run
 * in parallel. Positions are visible (0 = running).
 */
export class SerialQueue {
  private lanes = new Map<string, { ids: string[]; tail: Promise<void> }>();

  position(key: string, id: string): number | undefined {
    const i = this.lanes.get(key)?.ids.indexOf(id) ?? -1;
    return i < 0 ? undefined : i;
  }

  size(key: string): number {
    return this.lanes.get(key)?.ids.length ?? 0;
  }

  ids(key: string): string[] {
    return [...(this.lanes.get(key)?.ids ?? [])];
  }

  /** Returns when the job is queued; `done` settles when it has run. */
  enqueue(key: string, id: string, job: () => Promise<void>): { position: number; done: Promise<void> } {
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { ids: [], tail: Promise.resolve() };
      this.lanes.set(key, lane);
    }
    const l = lane;
    l.ids.push(id);
    const position = l.ids.length - 1;
    const done = l.tail.then(job).finally(() => {
      l.ids.splice(l.ids.indexOf(id), 1);
      if (l.ids.length === 0 && this.lanes.get(key) === l) this.lanes.delete(key);
    });
    l.tail = done.catch(() => undefined);
    return { position, done };
  }

  async idle(): Promise<void> {
    await Promise.all([...this.lanes.values()].map((l) => l.tail));
  }
}
