/**
 * Hooks in front of ftp-srv's per-connection command dispatcher:
 *
 * - AUTH: ftp-srv 4.6.3 wraps the control socket in TLS only after its 234 reply was written, so a fast
 *   client's ClientHello could arrive first and be parsed as an FTP command (curl failed about one time in
 *   three with "SSL routines::wrong version number", then "502 Command not allowed: <binary>"). The socket
 *   is paused and ftp-srv's reader held back while AUTH runs: the bytes stay buffered, Node's TLS socket
 *   consumes them when it wraps the socket, and ftp-srv never sees them as a command.
 * - TLS required: USER and PASS on a plain control channel get "530 TLS required", so a well-behaved client
 *   never sends its password in clear.
 */
import { TLS_REQUIRED } from './ftp-login';
import { directiveOf, type FtpConnectionInternals } from './ftp-srv-internals';

/** First byte of a TLS handshake record; no FTP command starts with it. */
const TLS_HANDSHAKE_RECORD = 0x16;

export interface CommandGuardOptions {
  tlsConfigured: boolean;
  tlsRequired: boolean;
}

export function guardCommands(connection: FtpConnectionInternals, opts: CommandGuardOptions): void {
  if (!opts.tlsConfigured) return;
  const commands = connection.commands;
  const handle = commands.handle.bind(commands);
  commands.handle = (command: unknown) => {
    const directive = directiveOf(command);
    if (opts.tlsRequired && (directive === 'USER' || directive === 'PASS') && !connection.secure) {
      return connection.reply(530, TLS_REQUIRED);
    }
    if (directive !== 'AUTH' || connection.secure) return handle(command);
    const plain = connection.commandSocket;
    if (!plain) return handle(command);
    // Hold ftp-srv's command reader back while AUTH runs; drop TLS records: they are the ClientHello that
    // Node's TLS socket re-reads (and re-emits here) from this socket's buffer when it wraps it.
    const readers = plain.listeners('data');
    const deliver = (chunk: unknown) => {
      for (const read of readers) Reflect.apply(read, plain, [chunk]);
    };
    let waiting: unknown[] | null = [];
    plain.removeAllListeners('data');
    plain.on('data', (chunk: unknown) => {
      if (Buffer.isBuffer(chunk) && chunk[0] === TLS_HANDSHAKE_RECORD) return;
      if (waiting) waiting.push(chunk);
      else deliver(chunk);
    });
    plain.pause();
    return Promise.resolve(handle(command)).finally(() => {
      const held = waiting ?? [];
      waiting = null;
      for (const chunk of held) deliver(chunk);
      // still plain (AUTH refused or unknown method): read commands again; upgraded: the TLS socket reads
      if (connection.commandSocket === plain) plain.resume();
    });
  };
}
