import { describe, expect, it } from '@jest/globals';
import { type Deadline, DeadlineQueue } from '../src/checks/deadline-queue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function entry(name: string, deadlineAt: number, expired: string[]): Deadline {
  return { deadlineAt, expire: () => void expired.push(name) };
}

describe('DeadlineQueue', () => {
  it('expires each entry once its deadline passes, in deadline order, whatever the order they came in', async () => {
    const q = new DeadlineQueue();
    const expired: string[] = [];
    const t = performance.now();
    // Far apart, so that a loaded machine's late timer does not make two deadlines due at once.
    q.add(entry('c', t + 600, expired));
    q.add(entry('a', t + 50, expired)); // earlier than the head: re-arms the timer
    q.add(entry('b', t + 400, expired)); // in the middle
    q.add(entry('d', t + 600, expired)); // same deadline: after the one already there
    await sleep(200);
    expect(expired).toEqual(['a']);
    await sleep(600);
    expect(expired).toEqual(['a', 'b', 'c', 'd']);
    expect(q.size).toBe(0);
  });

  it('never expires an entry removed before its deadline, and leaves no timer once empty', async () => {
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
    expect(q.armed).toBe(false);

    const late = entry('late', performance.now() + 60_000, expired);
    q.add(late);
    expect(q.armed).toBe(true);
    q.remove(late);
    expect(q.armed).toBe(false);
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
