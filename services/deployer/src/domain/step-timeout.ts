export class StepTimeout extends Error {
  constructor(readonly step: string, readonly ms: number) {
    super(`step '${step}' timed out after ${Math.round(ms / 1000)} s`);
    this.name = 'StepTimeout';
  }
}

/** Run a step with a deadline; its AbortSignal fires at the deadline so the work can stop too. */
export async function withTimeout<T>(step: string, ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new StepTimeout(step, ms);
      reject(err);
      ac.abort(err);
    }, ms);
  });
  try {
    const out = await Promise.race([fn(ac.signal), deadline]);
    // Work that gave up because of the abort may resolve: the deadline still wins.
    if (ac.signal.aborted) throw ac.signal.reason;
    return out;
  } finally {
    clearTimeout(timer);
  }
}
