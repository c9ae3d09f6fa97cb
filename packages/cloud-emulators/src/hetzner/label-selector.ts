import { EmulatorError } from '../core/errors.js';

type Requirement = (labels: Record<string, string>) => boolean;

/**
 * Hetzner's label selector: comma-separated requirements, all of which must hold:
 * `k==v`, `k=v`, `k!=v`, `k`, `!k`, `k in (v1,v2)`, `k notin (v1,v2)`.
 */
export function parseLabelSelector(selector: string): (labels: Record<string, string>) => boolean {
  const requirements = splitTopLevel(selector).map(parseRequirement);
  return (labels) => requirements.every((r) => r(labels));
}

function splitTopLevel(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

function parseRequirement(expr: string): Requirement {
  let m = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(expr);
  if (m) {
    const [, key, op, list] = m as unknown as [string, string, string, string];
    const values = list.split(',').map((v) => v.trim());
    return op === 'in' ? (l) => key in l && values.includes(l[key]!) : (l) => !(key in l) || !values.includes(l[key]!);
  }
  m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(expr);
  if (m) {
    const [, key, op, value] = m as unknown as [string, string, string, string];
    return op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value;
  }
  m = /^!\s*([^\s!=(),]+)$/.exec(expr);
  if (m) {
    const key = m[1]!;
    return (l) => !(key in l);
  }
  m = /^([^\s!=(),]+)$/.exec(expr);
  if (m) {
    const key = m[1]!;
    return (l) => key in l;
  }
  throw new EmulatorError(422, 'invalid_input', `invalid label_selector: '${expr}'`, {
    fields: [{ name: 'label_selector', messages: ['invalid label selector'] }],
  });
}
