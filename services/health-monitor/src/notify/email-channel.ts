import type { Transporter } from 'nodemailer';
import type { NotificationChannel } from './notifier.js';
import type { Notification } from './notification.js';

/**
 * Email through SMTP (nodemailer); the URL carries host, port and credentials. nodemailer
 * (~12 MB of RSS) loads with the first mail, not when the monitor starts.
 */
export class EmailChannel implements NotificationChannel {
  readonly name = 'email';
  private transport?: Promise<Transporter>;
  private closed = false;

  constructor(
    private smtpUrl: string,
    private from: string,
    private to: string[],
  ) {
    new URL(smtpUrl); // a malformed URL fails here, where the channel is configured
  }

  private transporter(): Promise<Transporter> {
    this.transport ??= import('nodemailer').then(({ default: nodemailer }) => {
      const url = new URL(this.smtpUrl);
      return nodemailer.createTransport({
        host: url.hostname,
        port: Number(url.port || (url.protocol === 'smtps:' ? 465 : 25)),
        secure: url.protocol === 'smtps:',
        auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 20_000,
      });
    });
    return this.transport;
  }

  async send(n: Notification): Promise<void> {
    if (this.closed) throw new Error('email channel closed');
    await (await this.transporter()).sendMail({ from: this.from, to: this.to, subject: n.subject, text: n.text });
  }

  close(): void {
    this.closed = true;
    void this.transport?.then((t) => t.close());
  }
}
