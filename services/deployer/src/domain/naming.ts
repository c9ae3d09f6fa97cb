/** Names and labels derived from a project/service/environment, in one place. */
export const MANAGED_LABEL = 'mesh.managed';

export const targetId = (project: string, service: string, environment: string) => `app-${project}-${service}-${environment}`;

// A target id, and the suffix of a replica's record id (`.r2` to `.r9999`).
const TARGET = 'app-[a-z0-9-]{5,120}';
const REPLICA_SUFFIX = '\\.r([1-9][0-9]{0,3})';
const REPLICA_RECORD_ID = new RegExp(`^(.+)${REPLICA_SUFFIX}$`);

/**
 * The registry record of a web service's replica: the target itself for the first (what every
 * caller knew before replicas had records), `<target>.r<n>` for the n-th. Target ids hold no
 * dots, so the suffix cannot be mistaken for part of one.
 */
export const replicaRecordId = (target: string, index: number) => (index === 0 ? target : `${target}.r${index + 1}`);
/** A target id or a replica's record id: the target, and which replica (0 for the first). */
export function parseRecordId(id: string): { target: string; index: number } {
  const m = REPLICA_RECORD_ID.exec(id);
  return m ? { target: m[1], index: Number(m[2]) - 1 } : { target: id, index: 0 };
}
/** A target as the API and messages name it: `app-<project>-<service>-<environment>`. */
export const TARGET_PATTERN = new RegExp(`^${TARGET}$`);
/** A target, or one replica of it (`.r<n>`): what a restart accepts. */
export const TARGET_OR_REPLICA_PATTERN = new RegExp(`^${TARGET}(?:${REPLICA_SUFFIX})?$`);

export const imageBaseOf = (project: string, service: string, override?: string) => override ?? `mesh-apps/${project}-${service}`;
export const deployTag = (imageBase: string, deploymentId: string) => `${imageBase}:deploy_${deploymentId.replace(/-/g, '').slice(0, 8)}`;
export const containerName = (target: string, deploymentId: string, replica: number) => `${target}-${deploymentId.slice(0, 8)}-${replica}`;

export function meshLabels(d: { project: string; service: string; environment: string; id: string }): Record<string, string> {
  return {
    [MANAGED_LABEL]: 'true',
    'mesh.project': d.project,
    'mesh.service': d.service,
    'mesh.environment': d.environment,
    'mesh.deployment': d.id,
  };
}
