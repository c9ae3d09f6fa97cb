import type { FaultSpec, PagingFaultSpec } from './types.js';

interface ActiveFault extends FaultSpec {
  remaining: number;
}

/** Injected failures: the next `times` matching requests get `status` instead of an answer. */
export class FaultInjector {
  private faults: ActiveFault[] = [];
  private paging: PagingFaultSpec[] = [];

  add(fault: FaultSpec): void {
    const times = fault.times ?? 1;
    if (!Number.isInteger(times) || times < 1) throw new Error('injectFault: times must be a positive integer');
    if (!Number.isInteger(fault.status) || fault.status < 400 || fault.status > 599)
      throw new Error('injectFault: status must be 4xx or 5xx');
    this.faults.push({ ...fault, remaining: times });
  }

  addPaging(fault: PagingFaultSpec): void {
    if (!['repeat-next', 'endless', 'none'].includes(fault.mode))
      throw new Error('injectPagingFault: mode must be repeat-next, endless or none');
    if (fault.total !== undefined && fault.total !== null && !(Number.isInteger(fault.total) && fault.total >= 0))
      throw new Error('injectPagingFault: total must be a non-negative integer or null');
    this.paging.push({ ...fault });
  }

  clear(): void {
    this.faults = [];
    this.paging = [];
  }

  /** The paging fault for a list request on this path (the latest injected that matches). */
  pagingFor(path: string): PagingFaultSpec | undefined {
    for (let i = this.paging.length - 1; i >= 0; i--) {
      const f = this.paging[i]!;
      if (!f.pathPattern || testPattern(f.pathPattern, path)) return f;
    }
    return undefined;
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
