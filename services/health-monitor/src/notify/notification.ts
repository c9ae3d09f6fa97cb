import type { Incident, Target } from '../domain/types.js';

export type NotificationKind = 'incident.opened' | 'incident.resolved' | 'incident.escalated' | 'digest';

export interface Notification {
  kind: NotificationKind;
  subject: string;
  text: string;
  /** The JSON body webhooks receive. */
  data: Record<string, unknown>;
}

export function incidentNotification(
  kind: Exclude<NotificationKind, 'digest'>,
  incident: Incident,
  target: Target | undefined,
  note?: string,
): Notification {
  const label = kind === 'incident.opened' ? 'DOWN' : kind === 'incident.resolved' ? 'RESOLVED' : 'NEEDS A PERSON';
  const where = target ? ` (${target.url})` : '';
  const lines = [
    `Target: ${incident.target_id}${where}`,
    `Incident: ${incident.id}`,
    `Status: ${incident.status}`,
    `Opened: ${incident.opened_at} by ${incident.opened_by}`,
    `Reason: ${incident.reason}`,
    ...(incident.resolved_at ? [`Resolved: ${incident.resolved_at}`] : []),
    ...(note ? ['', note] : []),
    '',
    'Timeline:',
    ...incident.timeline.slice(-20).map((t) => `  ${t.at}  ${t.event}  (${t.by})`),
  ];
  return {
    kind,
    subject: `[${label}] ${incident.target_id} - incident ${incident.id}`,
    text: lines.join('\n'),
    data: { kind, incident, target: target ? { id: target.id, url: target.url } : undefined, note },
  };
}

export interface DigestSummary {
  at: string;
  targets: number;
  up: number;
  down: number;
  unknown: number;
  open_incidents: Array<{ id: string; target_id: string; status: string; opened_at: string }>;
  monitors: string[];
}

export function digestNotification(s: DigestSummary): Notification {
  const allOk = s.open_incidents.length === 0 && s.down === 0;
  const lines = [
    allOk ? `All OK: ${s.up} of ${s.targets} targets up.` : `${s.down} target(s) down, ${s.open_incidents.length} open incident(s).`,
    `Unknown (not checked yet): ${s.unknown}`,
    `Monitors: ${s.monitors.join(', ')}`,
    ...s.open_incidents.map((i) => `  ${i.target_id}: ${i.status} since ${i.opened_at} (${i.id})`),
  ];
  return {
    kind: 'digest',
    subject: allOk ? `[health digest] all OK (${s.targets} targets)` : `[health digest] ${s.open_incidents.length} open incident(s)`,
    text: lines.join('\n'),
    data: { kind: 'digest', ...s },
  };
}
