/** Replace every occurrence of a secret value in text (container logs, error messages). */
export function redactValues(text: string, values: readonly string[]): string {
  let out = text;
  for (const v of values) if (v.length >= 4) out = out.split(v).join('[redacted]');
  return out;
}
