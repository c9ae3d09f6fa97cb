import nodemailer, { type Transporter } from 'nodemailer';
import type { NotificationChannel } from './notifier.js';
import type { Notification } from './notification.js';

/** Email through SMTP (nodemailer); the URL carries host, port and credentials. */
export class EmailChannel implements NotificationChannel {
  readonly name = 'email';
  private transport: Transporter;

  constructor(
    smtpUrl: string,
    private from: string,
    private to: string[],
  ) {
    const url = new URL(smtpUrl);
    this.transport = nodemailer.createTransport({
      host: url.hostname,
      port: Number(url.port || (url.protocol === 'smtps:' ? 465 : 25)),
      secure: url.protocol === 'smtps:',
      auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 20_000,
    });
  }

  async send(n: Notification): Promise<void> {
    await this.transport.sendMail({ from: this.from, to: this.to, subject: n.subject, text: n.text });
  }

  close(): void {
    this.transport.close();
  }
}
