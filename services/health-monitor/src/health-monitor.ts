import { Bus, resolveAll, type Env, type RegistryLink, type ResolveAll } from '@droplet-mesh/udc-kit';
import { createHealthMonitorDroplet } from './app.js';
import { checkPolicies, UndiciProbe, type HttpProbe } from './checks/http-checker.js';
import { EngineProbe, MonitorCertificate } from './checks/engine-probe.js';
import { MonitorEngine } from './engine/monitor-engine.js';
import { EngineDirectory, ServerEngineSource } from './targets/server-engines.js';
import { EmailChannel } from './notify/email-channel.js';
import { Notifier, type NotificationChannel } from './notify/notifier.js';
import { WebhookChannel } from './notify/webhook-channel.js';
import { apiRecipients } from './notify/api-recipients.js';
import {
  CombinedTargetSource,
  RegistryTargetSource,
  StaticTargetSource,
  TargetAddressFilter,
  type TargetSource,
} from './targets/target-source.js';

export interface HealthMonitorDeps {
  env: Env;
  bus?: Bus;
  registry?: RegistryLink;
  /** Default: STATIC_TARGETS plus every record the registry knows. */
  targetSource?: TargetSource;
  /** Default: email (SMTP_URL + ALERT_EMAIL_TO) and webhooks (ALERT_WEBHOOK_URLS). */
  channels?: NotificationChannel[];
  probe?: HttpProbe;
  /** Name resolution for the address policy of registry targets (default getaddrinfo). */
  resolve?: ResolveAll;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
  now?: () => number;
}

/**
 * Builds a health-monitor replica. `start()` serves HTTP, then joins the monitor
 * membership and starts checking; `droplet.stop()` leaves cleanly.
 */
export function createHealthMonitor(deps: HealthMonitorDeps) {
  let engine: MonitorEngine | undefined;
  let observationBus: Bus | undefined;
  const closers: Array<() => void> = [];
  // Recipients set over the API (/notifications/recipients, e.g. a stack's alerts:), beside ALERT_*.
  const recipients = apiRecipients(() => droplet.ctx);
  const droplet = createHealthMonitorDroplet({
    env: deps.env,
    bus: deps.bus,
    registry: deps.registry,
    exit: deps.exit,
    logDestination: deps.logDestination,
    engine: () => engine,
    notifications: recipients.routes,
    // New check timing from the env file reaches the running scheduler; other settings wait for a restart.
    liveConfig: {
      keys: ['CHECK_INTERVAL_MS', 'CHECK_TIMEOUT_MS', 'RECHECK_DELAY_MS', 'QUORUM_WINDOW_MS'],
      apply: (next) => engine?.applyTiming(next),
    },
    onStop: async () => {
      await engine?.stop();
      await observationBus?.close();
      for (const close of closers) close();
      await recipients.close();
    },
  });
  const { ctx } = droplet;
  const config = ctx.config;

  const channels = deps.channels ?? defaultChannels();
  function defaultChannels(): NotificationChannel[] {
    const out: NotificationChannel[] = [];
    if (config.SMTP_URL && config.ALERT_EMAIL_TO.length) {
      const email = new EmailChannel(config.SMTP_URL, config.ALERT_EMAIL_FROM, config.ALERT_EMAIL_TO);
      closers.push(() => email.close());
      out.push(email);
    }
    if (config.ALERT_WEBHOOK_URLS.length)
      out.push(
        new WebhookChannel(config.ALERT_WEBHOOK_URLS, { maxAttempts: config.WEBHOOK_MAX_ATTEMPTS, backoffMs: config.WEBHOOK_BACKOFF_MS }),
      );
    out.push(recipients.channel());
    return out;
  }
  const policies = { service: config.RECOVERY_POLICY, host: config.HOST_RECOVERY_POLICY };
  // Registry records are checked only where the address policy allows (CHECK_ALLOW for
  // exceptions), once when listed and again by the probe when it connects.
  const addressRules = {
    allow: config.CHECK_ALLOW,
    extraLoopbackPorts: config.PORT > 0 ? [config.PORT] : [],
    resolve: deps.resolve ?? resolveAll(Math.max(1000, config.CHECK_TIMEOUT_MS)),
  };
  const addressFilter = new TargetAddressFilter({
    policies: checkPolicies(addressRules),
    resolve: addressRules.resolve,
    onRefused: (id, _url, reason) =>
      ctx.logger.warn({ target_id: id, reason }, 'registry record not checked: its address is refused by the address policy'),
  });
  // Server engines: listed by the deployer, pinged over mutual TLS (a client certificate it issues).
  const engines = new EngineDirectory();
  const certificate = new MonitorCertificate((req) => ctx.send(req));
  const serverSource = config.SERVER_ENGINE_CHECKS
    ? [
        new ServerEngineSource(
          (req) => ctx.send(req),
          engines,
          () => certificate.usable(),
        ),
      ]
    : [];
  const targetSource =
    deps.targetSource ??
    new CombinedTargetSource(
      [
        new StaticTargetSource(config.STATIC_TARGETS, policies),
        new RegistryTargetSource(() => ctx.registry, policies, addressFilter),
        ...serverSource,
      ],
      (err) => ctx.logger.warn({ err }, 'could not list registry targets; keeping the last list'),
    );

  return {
    droplet,
    get engine() {
      return engine;
    },
    async start(opts: { port?: number; host?: string } = {}) {
      const addr = await droplet.start(opts);
      observationBus = await Bus.fromConfig(config, 'health-monitor', ctx.logger, { noEcho: true });
      engine = new MonitorEngine({
        config,
        bus: ctx.bus,
        observationBus,
        log: ctx.logger,
        selfUrl: config.PUBLIC_URL ?? addr.url,
        targetSource,
        notifier: new Notifier(channels, ctx.logger),
        emit: (type, data, level) => ctx.emit(type, data, level),
        send: (req) => ctx.send(req),
        probe: new EngineProbe(deps.probe ?? new UndiciProbe(addressRules), engines, certificate),
        now: deps.now,
      });
      await engine.start();
      return addr;
    },
    stop: (opts?: { deregister?: boolean }) => droplet.stop(opts),
  };
}

export type HealthMonitor = ReturnType<typeof createHealthMonitor>;
