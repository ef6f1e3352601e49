/**
 * Read pacing on the replication connection (agent/read-pacer.ts): after a turn of the event loop that read
 * little, the socket is not read for a while, so what arrives meanwhile comes in one turn; a turn that read
 * a full 64 KiB never pauses; Node's own back-pressure keeps the last word.
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { FULL_TURN_BYTES, paceReads } from '../../agent/read-pacer';
import { writeSelfSignedCert } from '../support/self-signed';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A throwaway self-signed key and certificate (PEM) for a loopback TLS server. */
function selfSigned(): { key: string; cert: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgferry-pacer-tls-'));
  try {
    const { keyFile, certFile } = writeSelfSignedCert(dir);
    return { key: fs.readFileSync(keyFile, 'utf8'), cert: fs.readFileSync(certFile, 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What a socket receives, turn by turn of the event loop, from another process that writes `letters` one
 * at a time with `gapMs` between them (another process, so each write reaches us in a turn of its own
 * unless we wait). With `tlsOptions`, the connection is TLS (as to a primary with `sslmode=require`): the
 * pacer then works on the TLS socket's handle. Each letter is a TLS record of its own, and a TLS socket
 * emits one 'data' per record even when one read brought several, so what counts is the turns.
 */
async function receive(
  pauseMs: number,
  letters: string,
  gapMs: number,
  tlsOptions?: { key: string; cert: string },
): Promise<string[]> {
  const server = tlsOptions ? tls.createServer(tlsOptions) : net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const reads: string[] = [];
  let turnOpen = false;
  const done = new Promise<void>((resolve, reject) => {
    server.once(tlsOptions ? 'secureConnection' : 'connection', (socket: net.Socket) => {
      const pacer = paceReads(socket, pauseMs);
      socket.on('data', (b: Buffer) => {
        if (turnOpen) {
          reads[reads.length - 1] += b.toString();
          return;
        }
        reads.push(b.toString());
        turnOpen = true;
        setImmediate(() => {
          turnOpen = false;
        });
      });
      socket.once('error', reject);
      socket.once('end', () => {
        pacer.release();
        socket.end();
        resolve();
      });
    });
  });
  const connect = tlsOptions
    ? `require('node:tls').connect({ port: ${port}, host: '127.0.0.1', rejectUnauthorized: false }`
    : `require('node:net').connect(${port}, '127.0.0.1'`;
  const sender = spawn(
    process.execPath,
    [
      '-e',
      `const s = ${connect}, async () => {
         for (const c of ${JSON.stringify(letters)}) {
           s.write(c);
           await new Promise((r) => setTimeout(r, ${gapMs}));
         }
         s.end();
       });`,
    ],
    { stdio: 'inherit' },
  );
  try {
    await done;
  } finally {
    sender.kill();
    server.close();
  }
  return reads;
}

describe('read pacing', () => {
  it.each([
    ['plain TCP', () => undefined],
    ['TLS (the pause acts on the TLS socket)', selfSigned],
  ])(
    'gathers what arrives during the pause into one turn of the event loop: %s',
    async (_, keys) => {
      const tlsOptions = keys();
      // six letters 30 ms apart: without pacing, a turn for each letter
      const unpaced = await receive(0, 'abcdef', 30, tlsOptions);
      expect(unpaced.join('')).toBe('abcdef');
      expect(unpaced.length).toBeGreaterThanOrEqual(3);
      // a 1 s pause after the first small read: the other letters (sent within 150 ms) come in one turn
      const paced = await receive(1000, 'abcdef', 30, tlsOptions);
      expect(paced.join('')).toBe('abcdef');
      expect(paced.length).toBeLessThanOrEqual(2);
    },
    20_000,
  );

  /** a socket stand-in whose native handle records the calls */
  function fakeSocket() {
    const calls: string[] = [];
    const handle = {
      reading: true,
      readStop: () => calls.push('stop') && 0,
      readStart: () => calls.push('start') && 0,
    };
    const socket = Object.assign(new EventEmitter(), { _handle: handle, destroyed: false });
    return { socket: socket as unknown as net.Socket, handle, calls };
  }

  it('never pauses after a turn that read a full 64 KiB', async () => {
    const { socket, calls } = fakeSocket();
    paceReads(socket, 50);
    socket.emit('data', Buffer.alloc(FULL_TURN_BYTES / 2));
    socket.emit('data', Buffer.alloc(FULL_TURN_BYTES / 2));
    await nextTurn();
    expect(calls).toEqual([]);
    socket.emit('data', Buffer.alloc(100));
    await nextTurn();
    expect(calls).toEqual(['stop']);
    // a read in the same pause (Node restarted reading for its own reasons) does not stack a second pause
    socket.emit('data', Buffer.alloc(100));
    await nextTurn();
    expect(calls).toEqual(['stop']);
  });

  it('resumes after the pause, unless Node stopped reading for back-pressure meanwhile', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    try {
      const { socket, handle, calls } = fakeSocket();
      paceReads(socket, 5);
      socket.emit('data', Buffer.alloc(10));
      await nextTurn();
      jest.advanceTimersByTime(4);
      expect(calls).toEqual(['stop']);
      jest.advanceTimersByTime(1);
      expect(calls).toEqual(['stop', 'start']);

      socket.emit('data', Buffer.alloc(10));
      await nextTurn();
      handle.reading = false; // Node's stream buffer is full: it calls readStart itself once drained
      jest.advanceTimersByTime(5);
      expect(calls).toEqual(['stop', 'start', 'stop']);
    } finally {
      jest.useRealTimers();
    }
  });

  it('wake reads again at once; the pause after the next small read is whole', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    try {
      const { socket, calls } = fakeSocket();
      const pacer = paceReads(socket, 50);
      pacer.wake(); // not paused: nothing to do
      expect(calls).toEqual([]);
      socket.emit('data', Buffer.alloc(10));
      await nextTurn();
      pacer.wake();
      expect(calls).toEqual(['stop', 'start']);
      jest.advanceTimersByTime(50); // the woken pause's timer is gone: no second start
      expect(calls).toEqual(['stop', 'start']);
      socket.emit('data', Buffer.alloc(10));
      await nextTurn();
      jest.advanceTimersByTime(49);
      expect(calls).toEqual(['stop', 'start', 'stop']);
      jest.advanceTimersByTime(1);
      expect(calls).toEqual(['stop', 'start', 'stop', 'start']);
    } finally {
      jest.useRealTimers();
    }
  });

  it('release resumes reading at once and stops pacing', async () => {
    const { socket, calls } = fakeSocket();
    const pacer = paceReads(socket, 60_000);
    socket.emit('data', Buffer.alloc(10));
    await nextTurn();
    pacer.release();
    expect(calls).toEqual(['stop', 'start']);
    socket.emit('data', Buffer.alloc(10));
    await nextTurn();
    expect(calls).toEqual(['stop', 'start']);
  });

  it('leaves a socket alone with a pause of 0', async () => {
    const { socket, calls } = fakeSocket();
    paceReads(socket, 0);
    socket.emit('data', Buffer.alloc(10));
    await nextTurn();
    expect(calls).toEqual([]);
  });
});
