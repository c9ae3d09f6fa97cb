import type { FaultSpec } from './types.js';

interface ActiveFault extends FaultSpec {
  remaining: number;
}

/** Injected failures: the next `times` matching requests get `status` instead of an answer. */
export class FaultInjector {
  private faults: ActiveFault[] = [];

  add(fault: FaultSpec): void {
    const times = fault.times ?? 1;
    if (!Number.isInteger(times) || times < 1) throw new Error('injectFault: times must be a positive integer');
    if (!Number.isInteger(fault.status) || fault.status < 400 || fault.status > 599)
      throw new Error('injectFault: status must be 4xx or 5xx');
    this.faults.push({ ...fault, remaining: times });
  }

  clear(): void {
    this.faults = [];
  }

  /** The fault that applies to this request, consuming one of its `times`; undefined when none does. */
  take(method: string, path: string): FaultSpec | undefined {
    const fault = this.faults.find(
      (f) => (!f.method || f.method.toUpperCase() === method.toUpperCase()) && (!f.pathPattern || testPattern(f.pathPattern, path)),
    );
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults = this.faults.filter((f) => f !== fault);
    return fault;
  }
}

function testPattern(pattern: RegExp, path: string): boolean {
  pattern.lastIndex = 0; // a /g or /y pattern keeps state between calls
  return pattern.test(path);
}
