import { headers as natsHeaders, type Msg, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { bearerToken, hasScope, type Principal, type Scope, type TokenVerifier } from './auth.js';
import type { Bus } from './bus.js';
import { DependencyUnavailable, Forbidden, UdcError, Unauthorized } from './errors.js';
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
/**
 * A handler, or one with limits: the message types it takes and the scope its sender's
 * token needs (default `write`; `public` needs no token, as `ping` does).
 */
export type MessageHandler = MessageHandlerFn | { types?: MessageType[]; scope?: Scope | 'public'; handle: MessageHandlerFn };

export const messageSubject = (droplet: string) => `udc.${droplet}.message`;
export const TRACE_HEADER = 'trace-id';
/** The sender's JWT (`Bearer <token>`), verified by the receiver exactly as HTTP does. */
export const AUTH_HEADER = 'authorization';

function errorReply(trace_id: string, code: UdcError['code'], message: string, details?: unknown): MessageReply {
  return {
    received: false,
    trace_id,
    processed_at: new Date().toISOString(),
    result: 'error',
    error: { code, message, ...(details === undefined ? {} : { details }) },
  };
}

/** Dispatches an envelope by `payload.action` (and `message_type`) to the droplet's handlers. */
export class MessageDispatcher {
  constructor(
    private name: string,
    private handlers: Record<string, MessageHandler>,
    private logger: Logger,
  ) {}

  /** Throws Unauthorized/Forbidden unless `principal` may send this message (each transport calls it first). */
  authorize(envelope: MessageEnvelope, principal: Principal | undefined): void {
    const action = typeof envelope.payload.action === 'string' ? envelope.payload.action : undefined;
    const entry = action ? this.handlers[action] : undefined;
    const scope = (typeof entry === 'function' ? undefined : entry?.scope) ?? 'write';
    if (scope === 'public') return;
    if (!principal) throw new Unauthorized('the message carries no valid token');
    if (!hasScope(principal, scope))
      throw new Forbidden(`action '${action ?? ''}' needs the '${scope}' scope`, { required_scope: scope, granted: principal.scopes });
  }

  async dispatch(envelope: MessageEnvelope, ctx: Omit<MessageContext, 'log'>): Promise<MessageReply> {
    // The handler's child logger is built when it first logs; the dispatcher's own lines carry the same fields.
    const logger = this.logger;
    const fields = { trace_id: envelope.trace_id, source: envelope.source, message_type: envelope.message_type };
    const line = (o: object) => ({ ...fields, ...o });
    let child: Logger | undefined;
    const handlerCtx: MessageContext = {
      principal: ctx.principal,
      transport: ctx.transport,
      get log() {
        child ??= logger.child(fields);
        return child;
      },
    };
    const base = { received: true, trace_id: envelope.trace_id };
    const action = typeof envelope.payload.action === 'string' ? envelope.payload.action : undefined;
    const entry = action ? this.handlers[action] : undefined;
    const fn = typeof entry === 'function' ? entry : entry?.handle;
    const types = typeof entry === 'function' ? undefined : entry?.types;
    if (!fn || (types && !types.includes(envelope.message_type))) {
      logger.warn(line({ action }), 'no handler for message');
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
      const out = await fn(envelope.payload, envelope, handlerCtx);
      logger.info(line({ action, result: isQueued(out) ? 'queued' : 'success' }), 'message handled');
      if (isQueued(out)) return { ...base, processed_at: new Date().toISOString(), result: 'queued', data: out.data };
      return { ...base, processed_at: new Date().toISOString(), result: 'success', data: out };
    } catch (err) {
      const e = err instanceof UdcError ? err : undefined;
      if (!e) logger.error(line({ err, action }), 'message handler failed');
      else logger.warn(line({ action, code: e.code, msg: e.message, sender: ctx.principal?.sub }), 'message refused');
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
export function serveMessages(
  bus: Bus,
  name: string,
  dispatcher: MessageDispatcher,
  logger: Logger,
  verifier: TokenVerifier,
): Subscription {
  return bus.nc.subscribe(messageSubject(name), {
    queue: name,
    callback: (err, msg: Msg) => {
      if (err) return;
      void handleNatsMessage(msg, dispatcher, logger, verifier);
    },
  });
}

/** The sender's principal from the message's token; undefined when it carries none. A token verified before comes from the cache without a promise. */
function senderOf(msg: Msg, verifier: TokenVerifier): Principal | undefined | Promise<Principal> {
  const header = msg.headers?.get(AUTH_HEADER);
  if (!header) return undefined;
  const token = bearerToken(header);
  if (!token) throw new Unauthorized('the authorization header must be `Bearer <token>`');
  return verifier.verifyCached?.(token) ?? verifier.verify(token);
}

async function handleNatsMessage(msg: Msg, dispatcher: MessageDispatcher, logger: Logger, verifier: TokenVerifier): Promise<void> {
  const headerTrace = msg.headers?.get(TRACE_HEADER) || undefined;
  let reply: MessageReply | undefined;
  let body: unknown;
  try {
    body = msg.json();
  } catch {
    body = undefined;
  }
  const parsed = messageEnvelopeSchema.safeParse(body);
  if (body === undefined) {
    reply = errorReply(headerTrace ?? newTraceId(), 'INVALID_REQUEST', 'message is not JSON');
  } else if (!parsed.success) {
    reply = errorReply(
      headerTrace ?? newTraceId(),
      'INVALID_REQUEST',
      'invalid message envelope',
      parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  } else {
    const env = completeEnvelope({ ...parsed.data, trace_id: parsed.data.trace_id ?? headerTrace });
    let principal: Principal | undefined;
    try {
      const sender = senderOf(msg, verifier);
      principal = sender instanceof Promise ? await sender : sender;
      dispatcher.authorize(env, principal);
    } catch (err) {
      const e = err instanceof UdcError ? err : new Unauthorized('invalid token');
      logger.warn(
        { trace_id: env.trace_id, source: env.source, sender: principal?.sub, code: e.code, msg: e.message },
        'message refused: not authorised',
      );
      reply = errorReply(env.trace_id, e.code, e.message);
    }
    // The dispatcher turns handler errors into replies; it does not throw.
    reply ??= await dispatcher.dispatch(env, { transport: 'nats', principal });
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
export async function sendMessage(
  bus: Bus,
  source: string,
  req: SendRequest,
  logger: Logger,
  /** The sender's JWT, which the receiver verifies; without one only public actions (ping) are served. */
  token?: string,
): Promise<MessageReply> {
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
  if (token) h.set(AUTH_HEADER, `Bearer ${token}`);
  // No child logger per message: the two fields go on each line.
  const fields = { trace_id: envelope.trace_id, target: req.target };
  let lastErr = 'unknown';
  for (let attempt = 0; attempt <= req.retry_count; attempt++) {
    try {
      const m = await bus.nc.request(messageSubject(req.target), JSON.stringify(envelope), { timeout: req.timeout_ms, headers: h });
      const reply = m.json<MessageReply>();
      logger.info({ ...fields, attempt, result: reply.result }, 'message delivered');
      return reply;
    } catch (err) {
      lastErr = (err as Error).message;
      logger.warn({ ...fields, attempt, reason: lastErr }, 'message delivery failed');
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
