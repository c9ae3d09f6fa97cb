import { headers as natsHeaders, type Msg, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Principal } from './auth.js';
import type { Bus } from './bus.js';
import { DependencyUnavailable, UdcError } from './errors.js';
import {
  completeEnvelope,
  isQueued,
  messageEnvelopeSchema,
  newTraceId,
  type MessageEnvelope,
  type MessageReply,
  type MessageType,
  type SendRequest,
} from './envelope.js';

export interface MessageContext {
  log: Logger;
  principal?: Principal;
  transport: 'http' | 'nats';
}
export type MessageHandlerFn = (
  payload: Record<string, unknown>,
  envelope: MessageEnvelope,
  ctx: MessageContext,
) => unknown | Promise<unknown>;
export type MessageHandler = MessageHandlerFn | { types: MessageType[]; handle: MessageHandlerFn };

export const messageSubject = (droplet: string) => `udc.${droplet}.message`;
export const TRACE_HEADER = 'trace-id';

/** Dispatches an envelope by `payload.action` (and `message_type`) to the droplet's handlers. */
export class MessageDispatcher {
  constructor(
    private name: string,
    private handlers: Record<string, MessageHandler>,
    private logger: Logger,
  ) {}

  async dispatch(envelope: MessageEnvelope, ctx: Omit<MessageContext, 'log'>): Promise<MessageReply> {
    const log = this.logger.child({ trace_id: envelope.trace_id, source: envelope.source, message_type: envelope.message_type });
    const base = { received: true, trace_id: envelope.trace_id };
    const action = typeof envelope.payload.action === 'string' ? envelope.payload.action : undefined;
    const entry = action ? this.handlers[action] : undefined;
    const fn = typeof entry === 'function' ? entry : entry?.handle;
    const types = typeof entry === 'function' ? undefined : entry?.types;
    if (!fn || (types && !types.includes(envelope.message_type))) {
      log.warn({ action }, 'no handler for message');
      return {
        ...base,
        processed_at: new Date().toISOString(),
        result: 'error',
        error: {
          code: 'NOT_FOUND',
          message: action
            ? `${this.name} has no handler for action '${action}' with message_type '${envelope.message_type}'`
            : 'payload.action is required',
          details: { known_actions: Object.keys(this.handlers).sort() },
        },
      };
    }
    try {
      const out = await fn(envelope.payload, envelope, { ...ctx, log });
      log.info({ action, result: isQueued(out) ? 'queued' : 'success' }, 'message handled');
      if (isQueued(out)) return { ...base, processed_at: new Date().toISOString(), result: 'queued', data: out.data };
      return { ...base, processed_at: new Date().toISOString(), result: 'success', data: out };
    } catch (err) {
      const e = err instanceof UdcError ? err : undefined;
      if (!e) log.error({ err, action }, 'message handler failed');
      else log.warn({ action, code: e.code, msg: e.message }, 'message refused');
      return {
        ...base,
        processed_at: new Date().toISOString(),
        result: 'error',
        error: e
          ? { code: e.code, message: e.message, details: e.details }
          : { code: 'INTERNAL_ERROR', message: `handler failed (trace ${envelope.trace_id})` },
      };
    }
  }
}

/** Serve `udc.<name>.message` in a queue group so replicas share the load. */
export function serveMessages(bus: Bus, name: string, dispatcher: MessageDispatcher, logger: Logger): Subscription {
  return bus.nc.subscribe(messageSubject(name), {
    queue: name,
    callback: (err, msg: Msg) => {
      if (err) return;
      void handleNatsMessage(msg, dispatcher, logger);
    },
  });
}

async function handleNatsMessage(msg: Msg, dispatcher: MessageDispatcher, logger: Logger): Promise<void> {
  const headerTrace = msg.headers?.get(TRACE_HEADER) || undefined;
  let reply: MessageReply;
  try {
    const parsed = messageEnvelopeSchema.safeParse(msg.json());
    if (!parsed.success) {
      reply = {
        received: false,
        trace_id: headerTrace ?? newTraceId(),
        processed_at: new Date().toISOString(),
        result: 'error',
        error: {
          code: 'INVALID_REQUEST',
          message: 'invalid message envelope',
          details: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
        },
      };
    } else {
      const env = completeEnvelope({ ...parsed.data, trace_id: parsed.data.trace_id ?? headerTrace });
      reply = await dispatcher.dispatch(env, { transport: 'nats' });
    }
  } catch {
    reply = {
      received: false,
      trace_id: headerTrace ?? newTraceId(),
      processed_at: new Date().toISOString(),
      result: 'error',
      error: { code: 'INVALID_REQUEST', message: 'message is not JSON' },
    };
  }
  if (msg.reply) {
    const h = natsHeaders();
    h.set(TRACE_HEADER, reply.trace_id);
    msg.respond(JSON.stringify(reply), { headers: h });
  } else {
    logger.debug({ trace_id: reply.trace_id }, 'message without reply subject');
  }
}

/**
 * Request/reply to another droplet over NATS with retries. No responder or a timeout on
 * every attempt gives DEPENDENCY_UNAVAILABLE. Priority travels as a header (advisory).
 */
export async function sendMessage(bus: Bus, source: string, req: SendRequest, logger: Logger): Promise<MessageReply> {
  const envelope = completeEnvelope({
    trace_id: req.trace_id,
    source,
    target: req.target,
    message_type: req.message_type,
    payload: req.payload,
  });
  const h = natsHeaders();
  h.set(TRACE_HEADER, envelope.trace_id);
  h.set('priority', req.priority);
  const log = logger.child({ trace_id: envelope.trace_id, target: req.target });
  let lastErr = 'unknown';
  for (let attempt = 0; attempt <= req.retry_count; attempt++) {
    try {
      const m = await bus.nc.request(messageSubject(req.target), JSON.stringify(envelope), { timeout: req.timeout_ms, headers: h });
      const reply = m.json<MessageReply>();
      log.info({ attempt, result: reply.result }, 'message delivered');
      return reply;
    } catch (err) {
      lastErr = (err as Error).message;
      log.warn({ attempt, reason: lastErr }, 'message delivery failed');
      if (attempt < req.retry_count) await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
    }
  }
  throw new DependencyUnavailable(`droplet '${req.target}' did not answer`, {
    target: req.target,
    attempts: req.retry_count + 1,
    reason: lastErr,
    trace_id: envelope.trace_id,
  });
}
