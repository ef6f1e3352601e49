/**
 * A minimal SMTP client (RFC 5321) for the email hook: plain TCP to a relay, EHLO (HELO as fallback),
 * MAIL FROM, RCPT TO, DATA with dot-stuffing, QUIT. No AUTH and no STARTTLS: point it at the local MTA
 * or an internal relay that accepts mail from this host.
 */
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import * as os from 'node:os';
import { PgferryError } from '../../shared/errors';

export interface MailMessage {
  from: string;
  to: string[];
  subject: string;
  text: string;
}

export interface SmtpOptions {
  host: string;
  port: number;
  /** the name given in EHLO (default: this host's name) */
  heloName?: string;
  signal?: AbortSignal;
}

interface Reply {
  code: number;
  text: string;
}

/** Reads complete (possibly multi-line) replies off the socket, one at a time. */
class ReplyReader {
  private buffered = '';
  private lines: string[] = [];
  private readonly ready: Reply[] = [];
  private waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.feed(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('the SMTP server closed the connection')));
  }

  private feed(data: string): void {
    this.buffered += data;
    let nl = this.buffered.indexOf('\n');
    while (nl >= 0) {
      const line = this.buffered.slice(0, nl).replace(/\r$/, '');
      this.buffered = this.buffered.slice(nl + 1);
      this.lines.push(line);
      if (!/^\d{3}-/.test(line)) {
        const reply = {
          code: Number(line.slice(0, 3)) || 0,
          text: this.lines.map((l) => l.slice(4)).join(' '),
        };
        this.lines = [];
        if (this.waiter) {
          this.waiter.resolve(reply);
          this.waiter = null;
        } else this.ready.push(reply);
      }
      nl = this.buffered.indexOf('\n');
    }
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    this.waiter?.reject(e);
    this.waiter = null;
  }

  next(): Promise<Reply> {
    const r = this.ready.shift();
    if (r) return Promise.resolve(r);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }
}

function checkAddress(a: string, field: string): string {
  if (!/^[^\s<>@]+@[^\s<>@]+$/.test(a))
    throw new PgferryError('CONFIG_INVALID', `hooks.email.${field}: "${a}" is not a mail address`, {
      hint: 'use a plain address such as pgferry@backup.example',
    });
  return a;
}

function encodeHeader(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? text : `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`;
}

/** The message as sent after DATA: headers, CRLF lines, dot-stuffed, with the final "." line. */
export function formatMessage(m: MailMessage, date = new Date()): string {
  const domain = m.from.split('@')[1] ?? 'localhost';
  const head = [
    `From: ${m.from}`,
    `To: ${m.to.join(', ')}`,
    `Subject: ${encodeHeader(m.subject.replace(/[\r\n]+/g, ' '))}`,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${randomUUID()}@${domain}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
  ];
  const body = m.text
    .replace(/\r?\n/g, '\n')
    .split('\n')
    .map((l) => (l.startsWith('.') ? `.${l}` : l));
  return `${[...head, '', ...body].join('\r\n')}\r\n.\r\n`;
}

export async function sendMail(opts: SmtpOptions, m: MailMessage): Promise<void> {
  const from = checkAddress(m.from, 'from');
  const to = m.to.map((a) => checkAddress(a, 'to'));
  const where = `${opts.host}:${opts.port}`;
  const socket = net.connect({ host: opts.host, port: opts.port });
  const abort = () => socket.destroy(new Error('no answer in time'));
  if (opts.signal?.aborted) abort();
  opts.signal?.addEventListener('abort', abort, { once: true });
  const replies = new ReplyReader(socket);
  const expect = async (what: string, ok: (code: number) => boolean): Promise<Reply> => {
    let r: Reply;
    try {
      r = await replies.next();
    } catch (e) {
      throw new PgferryError('HOOK_FAILED', `SMTP ${where}: ${(e as Error).message} (waiting for ${what})`);
    }
    if (!ok(r.code))
      throw new PgferryError('HOOK_FAILED', `SMTP ${where} refused ${what}: ${r.code} ${r.text}`);
    return r;
  };
  const send = async (line: string, what: string, ok: (code: number) => boolean) => {
    socket.write(`${line}\r\n`);
    return expect(what, ok);
  };
  const is2xx = (c: number) => c >= 200 && c < 300;
  try {
    await expect('the greeting', (c) => c === 220);
    const helo = opts.heloName ?? os.hostname();
    try {
      await send(`EHLO ${helo}`, 'EHLO', is2xx);
    } catch (e) {
      if (socket.destroyed) throw e;
      await send(`HELO ${helo}`, 'HELO', is2xx);
    }
    await send(`MAIL FROM:<${from}>`, `the sender ${from}`, is2xx);
    for (const r of to) await send(`RCPT TO:<${r}>`, `the recipient ${r}`, is2xx);
    await send('DATA', 'DATA', (c) => c === 354);
    socket.write(formatMessage({ ...m, from, to }));
    await expect('the message', is2xx);
    socket.write('QUIT\r\n');
    await replies.next().catch(() => undefined);
  } finally {
    opts.signal?.removeEventListener('abort', abort);
    socket.destroy();
  }
}
