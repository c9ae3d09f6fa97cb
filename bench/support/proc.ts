import { readFileSync } from 'node:fs';

/** CPU seconds (user + system, all threads) a process has used: /proc/<pid>/stat, in clock ticks of 10 ms. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
