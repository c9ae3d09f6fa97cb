// One EventSource to the console's /live stream: every droplet's events, pushed over SSE.
// Pages subscribe to what concerns them and reload then; nothing polls on a timer.

export interface LiveEvent {
  droplet: string;
  type: string;
  data: unknown;
  time: string;
}

type Listener = (e: LiveEvent) => void;

export const liveState = $state<{ connected: boolean; last: LiveEvent[] }>({ connected: false, last: [] });

const listeners = new Set<Listener>();

function parse(data: string): LiveEvent | undefined {
  try {
    return JSON.parse(data) as LiveEvent;
  } catch {
    return undefined;
  }
}
let source: EventSource | undefined;

export function startLive(): void {
  if (source) return;
  source = new EventSource('/live');
  source.addEventListener('ready', () => {
    liveState.connected = true;
    // A (re)opened stream starts with the console's last events: they replace the list.
    liveState.last = [];
  });
  // What happened just before the stream opened: listed, but no page reloads for it.
  source.addEventListener('backfill', (m) => {
    const e = parse((m as MessageEvent<string>).data);
    if (e) liveState.last = [e, ...liveState.last].slice(0, 500);
  });
  source.onmessage = (m) => {
    const e = parse(m.data);
    if (!e) return;
    liveState.last = [e, ...liveState.last].slice(0, 500);
    for (const l of listeners) l(e);
  };
  const mine = source;
  source.onerror = () => {
    liveState.connected = false;
    // Closed for good (the console refused it: the session ended, or the console restarted):
    // ask once whether the session still holds; signed in, the app opens a new stream.
    if (mine.readyState === EventSource.CLOSED && source === mine) {
      source = undefined;
      setTimeout(() => void onClosed?.(), 1000);
    }
  };
}

let onClosed: (() => Promise<void>) | undefined;
/** What to do when the stream closes for good (App: check the session, which restarts the stream). */
export function whenLiveCloses(fn: () => Promise<void>): void {
  onClosed = fn;
}

export function stopLive(): void {
  source?.close();
  source = undefined;
  liveState.connected = false;
}

/** Calls `fn` (at most every 250 ms) when an event matching `match` arrives; returns the unsubscribe. */
export function onLive(match: (e: LiveEvent) => boolean, fn: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const l: Listener = (e) => {
    if (!match(e) || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      fn();
    }, 250);
  };
  listeners.add(l);
  return () => {
    listeners.delete(l);
    if (timer) clearTimeout(timer);
  };
}
