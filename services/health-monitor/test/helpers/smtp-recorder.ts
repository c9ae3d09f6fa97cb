import { SMTPServer } from 'smtp-server';
import { freePort } from '@droplet-mesh/udc-kit/testing';

export interface RecordedMail {
  from: string;
  to: string[];
  subject: string;
  raw: string;
}

/** A real SMTP server on loopback that keeps every message it receives. */
export async function startSmtpRecorder() {
  const messages: RecordedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      let raw = '';
      stream.on('data', (d: Buffer) => (raw += d.toString()));
      stream.on('end', () => {
        const subject = /^Subject: (.*)$/m.exec(raw)?.[1]?.trim() ?? '';
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          subject,
          raw,
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
    subjects: (pattern: RegExp) => messages.filter((m) => pattern.test(m.subject)),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
export type SmtpRecorder = Awaited<ReturnType<typeof startSmtpRecorder>>;
