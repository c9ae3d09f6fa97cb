/** Something that must end by `deadlineAt` (performance.now() ms); linked in place, so queueing allocates nothing. */
export interface Deadline {
  deadlineAt: number;
  /** Called once, when the deadline passes before `remove`. */
  expire(): void;
  prevDeadline?: Deadline;
  nextDeadline?: Deadline;
  queued?: boolean;
}

/**
 * Many deadlines on one timer. A timer per check (set, then cleared when the check ends in
 * a few ms) was thousands of timer operations a second on a busy monitor; here a check is
 * linked into a list kept in deadline order and unlinked when it ends, and one timer waits
 * for the earliest. Checks share a timeout, so a new one almost always goes at the tail.
 */
export class DeadlineQueue {
  private head?: Deadline;
  private tail?: Deadline;
  private timer?: NodeJS.Timeout;
  /** When the armed timer fires (Infinity: none armed). */
  private timerAt = Infinity;

  constructor(private readonly now: () => number = () => performance.now()) {}

  add(d: Deadline): void {
    let after = this.tail;
    while (after && after.deadlineAt > d.deadlineAt) after = after.prevDeadline;
    d.prevDeadline = after;
    d.nextDeadline = after ? after.nextDeadline : this.head;
    if (d.nextDeadline) d.nextDeadline.prevDeadline = d;
    else this.tail = d;
    if (after) after.nextDeadline = d;
    else this.head = d;
    d.queued = true;
    if (d === this.head) this.arm();
  }

  remove(d: Deadline): void {
    if (!d.queued) return;
    d.queued = false;
    if (d.prevDeadline) d.prevDeadline.nextDeadline = d.nextDeadline;
    else this.head = d.nextDeadline;
    if (d.nextDeadline) d.nextDeadline.prevDeadline = d.prevDeadline;
    else this.tail = d.prevDeadline;
    d.prevDeadline = d.nextDeadline = undefined;
    // A timer left armed for a head that ended early finds nothing due and re-arms then;
    // only an empty queue stops it, so that nothing is left waiting.
    if (!this.head) this.disarm();
  }

  /** Whether a timer is waiting (none when the queue is empty). */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  get size(): number {
    let n = 0;
    for (let d = this.head; d; d = d.nextDeadline) n++;
    return n;
  }

  private arm(): void {
    const head = this.head;
    if (!head || this.timerAt <= head.deadlineAt) return;
    this.disarm();
    this.timerAt = head.deadlineAt;
    this.timer = setTimeout(() => this.expireDue(), Math.max(1, Math.ceil(head.deadlineAt - this.now())));
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private expireDue(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.now();
    while (this.head && this.head.deadlineAt <= now) {
      const d = this.head;
      this.remove(d);
      d.expire();
    }
    this.arm();
  }
}
