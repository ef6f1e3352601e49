/**
 * Local receivers for the hook tests: an HTTP server that records POSTed JSON (and can fail the first
 * requests), and a tiny SMTP server that records the mails it is given.
 */
import * as http from 'node:http';
import * as net from 'node:net';

export interface Received<T> {
  items: T[];
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Records JSON bodies POSTed to any path; answers 500 to the first `failFirst` requests. */
export async function webhookReceiver(
  failFirst = 0,
): Promise<Received<Record<string, unknown>> & { requests: number }> {
  const items: Record<string, unknown>[] = [];
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      state.requests++;
      if (state.requests <= failFirst) {
        res.writeHead(500).end('not yet');
        return;
      }
      items.push(JSON.parse(body) as Record<string, unknown>);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    items,
    port,
    url: `http://127.0.0.1:${port}/pgferry-hook`,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface Mail {
  from: string;
  to: string[];
  /** the DATA section as received (dot-stuffing undone) */
  data: string;
}

/** An SMTP server speaking just enough of RFC 5321 for the email hook. */
export async function smtpReceiver(): Promise<Received<Mail>> {
  const items: Mail[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.setEncoding('utf8');
    let buf = '';
    let inData = false;
    let mail: Mail = { from: '', to: [], data: '' };
    const reply = (line: string) => socket.write(`${line}\r\n`);
    reply('220 test-smtp ready');
    socket.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\r\n'); nl >= 0; nl = buf.indexOf('\r\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            items.push(mail);
            mail = { from: '', to: [], data: '' };
            reply('250 queued');
          } else mail.data += `${line.startsWith('..') ? line.slice(1) : line}\n`;
          continue;
        }
        const cmd = line.slice(0, 4).toUpperCase();
        if (cmd === 'EHLO') {
          reply('250-test-smtp greets you');
          reply('250 8BITMIME');
        } else if (cmd === 'MAIL') {
          mail.from = /<(.*)>/.exec(line)?.[1] ?? '';
          reply('250 ok');
        } else if (cmd === 'RCPT') {
          mail.to.push(/<(.*)>/.exec(line)?.[1] ?? '');
          reply('250 ok');
        } else if (cmd === 'DATA') {
          inData = true;
          reply('354 go ahead');
        } else if (cmd === 'QUIT') {
          reply('221 bye');
          socket.end();
        } else reply('502 not implemented');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    items,
    port,
    url: `smtp://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
