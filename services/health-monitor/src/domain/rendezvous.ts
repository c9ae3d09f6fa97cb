import { createHash } from 'node:crypto';

function score(member: string, key: string): bigint {
  return createHash('sha256').update(member).update('\0').update(key).digest().readBigUInt64BE(0);
}

/**
 * Rendezvous (highest-random-weight) order of `members` for `key`: every monitor that
 * knows the same member set computes the same order, and a join or leave moves only
 * the keys whose top k included that member.
 */
export function rendezvousRank(key: string, members: readonly string[]): string[] {
  return members
    .map((m) => ({ m, s: score(m, key) }))
    .sort((a, b) => (a.s === b.s ? (a.m < b.m ? -1 : 1) : a.s > b.s ? -1 : 1))
    .map((x) => x.m);
}

/** The k monitors that check `key` (all of them when fewer than k are alive). */
export function assignMonitors(key: string, members: readonly string[], k: number): string[] {
  return rendezvousRank(key, members).slice(0, Math.min(k, members.length));
}
