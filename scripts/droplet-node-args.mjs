// The arguments `node` gets before a droplet's dist/main.js wherever users run it: `npm start`
// (scripts/start-mesh.mjs), the images (CMD of deploy/droplet.Dockerfile and
// deploy/proxy-manager.Dockerfile, which must spell the list out: a Dockerfile cannot import
// it; bench/footprint refuses to run when they disagree) and bench/footprint (issue 16).
//
// --max-semi-space-size=2 (MB): V8's young generation grows up to 2 × 16 MB while a droplet
// starts (module loading and config parsing make a lot of short-lived objects) and keeps that
// size until V8's memory reducer shrinks it, ~8 s after the process goes idle. Capped at 2 MB
// per semi-space a droplet idles 5–15 MB lower from its first seconds (bench/footprint). 1 MB
// would save ~2 MB more but costs ~13% more CPU per /health request (~15× more scavenges)
// and ~13% more CPU to start; at 2 MB neither cost stood out from the noise (issue 16 report).
export const DROPLET_NODE_ARGS = Object.freeze(['--max-semi-space-size=2']);
