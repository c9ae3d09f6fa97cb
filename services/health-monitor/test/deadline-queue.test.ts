import { describe, expect, it } from '@jest/globals';
import { type Deadline, DeadlineQueue } from '../src/checks/deadline-queue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

function entry(name: string, deadlineAt: number, expired: string[]): Deadline {
  return { deadlineAt, expire: () => void expired.push(name) };
}

describe('DeadlineQueue', () => {
  it('expires each entry once its deadline passes, in deadline order, whatever the order they came in', async () => {
    const q = new DeadlineQueue();
    const expired: string[] = [];
    const t = performance.now();
    q.add(entry('c', t + 60, expired));
    q.add(entry('a', t + 20, expired)); // earlier than the head: re-arms the timer
    q.add(entry('b', t + 40, expired)); // in the middle
    q.add(entry('d', t + 60, expired)); // same deadline: after the one already there
    await sleep(30);
    expect(expired).toEqual(['a']);
    await sleep(60);
    expect(expired).toEqual(['a', 'b', 'c', 'd']);
    expect(q.size).toBe(0);
  });

  it('never expires an entry removed before its deadline, and leaves no timer once empty', async () => {
    const before = timers();
    const q = new DeadlineQueue();
    const expired: string[] = [];
    const t = performance.now();
    const kept = entry('kept', t + 40, expired);
    const removed = [entry('x', t + 20, expired), entry('y', t + 40, expired), entry('z', t + 60, expired)];
    for (const d of removed) q.add(d);
    q.add(kept);
    for (const d of removed) q.remove(d);
    q.remove(removed[0]); // twice: a no-op
    expect(q.size).toBe(1);
    await sleep(80);
    expect(expired).toEqual(['kept']);
    expect(timers()).toBe(before);

    q.add(entry('late', performance.now() + 60_000, expired));
    expect(timers()).toBe(before + 1);
    q.remove((q as unknown as { head: Deadline }).head);
    expect(timers()).toBe(before);
  });

  it('an entry that expires adds and removes others from its callback', async () => {
    const q = new DeadlineQueue();
    const expired: string[] = [];
    const t = performance.now();
    const later = entry('later', t + 30, expired);
    q.add({
      deadlineAt: t + 10,
      expire: () => {
        expired.push('first');
        q.remove(later);
        q.add(entry('added', performance.now() + 10, expired));
      },
    });
    q.add(later);
    await sleep(60);
    expect(expired).toEqual(['first', 'added']);
  });
});
