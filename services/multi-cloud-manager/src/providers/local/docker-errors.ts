import { Conflict, DependencyUnavailable, InvalidRequest, NotFound, UdcError } from '@droplet-mesh/udc-kit';

/** A dockerode failure as a UDC error: the engine's message, never a stack. */
export function mapDockerError(err: unknown, operation: string): UdcError {
  if (err instanceof UdcError) return err;
  const e = err as { statusCode?: number; json?: { message?: string }; reason?: string; message?: string; code?: string };
  const message = e.json?.message ?? e.reason ?? e.message ?? 'unknown error';
  const details = { provider: 'local', operation, provider_status: e.statusCode, provider_message: message };
  if (e.statusCode === 404) return new NotFound(`local: ${message}`, details);
  if (e.statusCode === 409) return new Conflict(`local: ${message}`, details);
  if (e.statusCode === 400) return new InvalidRequest(`local: ${message}`, details);
  if (!e.statusCode)
    return new DependencyUnavailable('the local Docker Engine is unreachable', { ...details, reason: e.code ?? message }, 503);
  return new DependencyUnavailable(`the local Docker Engine failed: ${message}`, details, 502);
}

/** Docker answers 304 when a container is already in the asked state: that is success. */
export function isNotModified(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 304;
}

/** Exactly what the engine answers for a container that does not exist: how a hidden one looks. */
export function noSuchContainer(id: string, operation: string): UdcError {
  return mapDockerError({ statusCode: 404, json: { message: `No such container: ${id}` } }, operation);
}
