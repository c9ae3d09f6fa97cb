export class StepTimeout extends Error {
  constructor(
    readonly step: string,
    readonly ms: number,
  ) {
    super(`step '${step}' timed out after ${Math.round(ms / 1000)} s`);
    this.name = 'StepTimeout';
  }
}

/**
 * Run a step with a deadline; its AbortSignal fires at the deadline (or when `cancel`
 * fires, e.g. the service lease was lost) so the work can stop too.
 */
export async function withTimeout<T>(step: string, ms: number, fn: (signal: AbortSignal) => Promise<T>, cancel?: AbortSignal): Promise<T> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onCancel: (() => void) | undefined;
  const deadline = new Promise<never>((_, reject) => {
    const stop = (err: Error) => {
      reject(err);
      ac.abort(err);
    };
    timer = setTimeout(() => stop(new StepTimeout(step, ms)), ms);
    if (cancel) {
      onCancel = () => stop(cancel.reason instanceof Error ? cancel.reason : new Error(String(cancel.reason)));
      if (cancel.aborted) onCancel();
      else cancel.addEventListener('abort', onCancel, { once: true });
    }
  });
  try {
    const out = await Promise.race([fn(ac.signal), deadline]);
    // Work that gave up because of the abort may resolve: the deadline still wins.
    if (ac.signal.aborted) throw ac.signal.reason;
    return out;
  } finally {
    clearTimeout(timer);
    if (onCancel) cancel?.removeEventListener('abort', onCancel);
  }
}
