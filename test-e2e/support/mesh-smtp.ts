import { SMTPServer } from 'smtp-server';
import { freePort } from '@droplet-mesh/udc-kit/testing';

export interface RecordedMail {
  from: string;
  to: string[];
  subject: string;
  raw: string;
  at: number;
}

export interface SmtpRecorder {
  url: string;
  messages: RecordedMail[];
  subjects(pattern: RegExp): RecordedMail[];
  close(): Promise<void>;
}

/** A real SMTP server (npm smtp-server) on loopback that keeps every message it is sent. */
export async function startSmtpRecorder(): Promise<SmtpRecorder> {
  const messages: RecordedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      let raw = '';
      stream.on('data', (d: Buffer) => (raw += d.toString()));
      stream.on('end', () => {
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: /^Subject: (.*)$/m.exec(raw)?.[1]?.trim() ?? '',
          raw,
          at: Date.now(),
        });
        callback();
      });
    },
  });
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    subjects: (pattern) => messages.filter((m) => pattern.test(m.subject)),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
