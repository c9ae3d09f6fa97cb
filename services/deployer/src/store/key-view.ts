// The watched key view moved to udc-kit (the orchestrator reads its listings the same way).
export { KeyView } from '@droplet-mesh/udc-kit';
