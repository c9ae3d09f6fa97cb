import { errors as natsErrors } from '@nats-io/transport-node';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { ZodError } from 'zod';
import { DependencyUnavailable, errorEnvelope, fieldErrors, UdcError } from './errors.js';

// What a NATS call throws while the server is away or restarting: the request is fine, the
// dependency is not, so the caller gets 503 and may retry.
const NATS_UNAVAILABLE = [
  natsErrors.ClosedConnectionError,
  natsErrors.DrainingConnectionError,
  natsErrors.ConnectionError,
  natsErrors.TimeoutError,
  natsErrors.NoRespondersError,
  natsErrors.RequestError,
];

/** A NATS outage, as a typed error; anything else unchanged. */
export function asDependencyError(err: unknown): unknown {
  if (NATS_UNAVAILABLE.some((E) => err instanceof E))
    return new DependencyUnavailable('NATS is not available; try again shortly', { dependency: 'nats', reason: (err as Error).message });
  return err;
}

interface BodyParserError {
  type?: string;
  status?: number;
  expose?: boolean;
}

/** The one error middleware: every failure leaves as the UDC envelope, never with a stack. */
export function errorMiddleware(logger: Logger) {
  return (thrown: unknown, req: Request, res: Response, _next: NextFunction) => {
    const log = req.log ?? logger;
    const err = asDependencyError(thrown);
    if (res.headersSent) {
      log.error({ err }, 'error after response started');
      res.destroy();
      return;
    }
    if (err instanceof UdcError) {
      for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
      if (err.httpStatus >= 500) log.error({ err, code: err.code }, err.message);
      res.status(err.httpStatus).json(err.toEnvelope());
      return;
    }
    if (err instanceof ZodError) {
      res.status(400).json(errorEnvelope('INVALID_REQUEST', 'invalid request', fieldErrors(err.issues)));
      return;
    }
    // Client errors raised by Express itself: body-parser (http-errors: `expose`, maybe a
    // `type`) and the router (URIError with status 400 for a badly encoded path param).
    const bp = err as BodyParserError;
    const clientError =
      !!bp &&
      typeof bp.status === 'number' &&
      bp.status >= 400 &&
      bp.status < 500 &&
      (typeof bp.type === 'string' || bp.expose === true || err instanceof URIError);
    if (clientError) {
      if (bp.type === 'entity.too.large') {
        res.status(413).json(errorEnvelope('INVALID_REQUEST', 'request body is too large'));
      } else if (bp.type === 'entity.parse.failed') {
        res.status(400).json(errorEnvelope('INVALID_REQUEST', 'request body is not valid JSON'));
      } else if (err instanceof URIError) {
        res.status(400).json(errorEnvelope('INVALID_REQUEST', 'request path is not valid percent-encoding'));
      } else {
        res
          .status(bp.status!)
          .json(
            errorEnvelope('INVALID_REQUEST', `request body could not be read (${bp.type ?? 'content encoding does not match the body'})`),
          );
      }
      return;
    }
    log.error({ err }, 'unexpected error');
    res.status(500).json(errorEnvelope('INTERNAL_ERROR', 'internal error', { trace_id: req.correlationId }));
  };
}
