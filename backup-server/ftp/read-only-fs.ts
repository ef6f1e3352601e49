/**
 * ftp-srv's FileSystem, made read-only and confined to the snapshot tree (see snapshot-tree.ts).
 *
 * - Every write method refuses with 550 (the write commands are also blacklisted at the server).
 * - Error replies carry only fixed texts ("No such file or directory", ...), never a server path; the real
 *   cause of unexpected failures goes to the log.
 * - A download opens its file descriptor before ftp-srv sends "150": a snapshot deleted by rotation after
 *   that point is still read to the end (Linux keeps an unlinked file's data while an fd is open), and one
 *   deleted before it fails with 551 and no data. The stream is handed over paused, so no byte precedes 150.
 * - Streams still open when the connection ends are destroyed (`closeStreams`), so no fd outlives a session.
 */
import { constants, promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { FileSystem, type FtpConnection } from 'ftp-srv';
import type { Logger } from '../../shared/log';
import { renderCatalog } from './catalog';
import { FtpReplyError } from './ftp-srv-internals';
import { clientSegments, type SnapshotTree, type TreeNode } from './snapshot-tree';

/** Bigger chunks than fs's default 64 KiB: ftp-srv waits for each socket write before reading the next one. */
const READ_CHUNK_BYTES = 1024 * 1024;

const NOT_FOUND = 'No such file or directory';
const READ_ONLY = 'Read-only server: snapshots cannot be changed over FTP';

/** What ftp-srv's LIST/SIZE/MDTM/STAT formatters read from a stat. */
export interface FtpFileStat {
  name: string;
  size: number;
  mtime: Date;
  mode: number;
  uid: number;
  gid: number;
  isDirectory(): boolean;
}

function fileStat(name: string, kind: 'directory' | 'file', size: number, mtime: Date): FtpFileStat {
  const isDir = kind === 'directory';
  return { name, size, mtime, mode: isDir ? 0o555 : 0o444, uid: 0, gid: 0, isDirectory: () => isDir };
}

export interface ReadOnlyFsOptions {
  tree: SnapshotTree;
  /** the snapshot folder (for catalogs) */
  root: string;
  logger: Logger;
}

export class ReadOnlyFs extends FileSystem {
  private clientCwd = '/';
  private readonly streams = new Set<Readable>();

  constructor(
    connection: FtpConnection,
    private readonly opts: ReadOnlyFsOptions,
  ) {
    // the base class only keeps root/cwd; every method it has is overridden below
    super(connection, { root: opts.root, cwd: '/' });
  }

  override currentDirectory(): string {
    return this.clientCwd;
  }

  override get(fileName: string): Promise<FtpFileStat> {
    return this.guard('get', async () => {
      const node = await this.lookup(fileName);
      return this.statOf(fileName, node);
    });
  }

  override list(dirPath = '.'): Promise<FtpFileStat[]> {
    return this.guard('list', async () => {
      const segments = this.segments(dirPath);
      const node = await this.opts.tree.resolve(segments);
      if (!node) throw new FtpReplyError(NOT_FOUND);
      if (node.kind !== 'directory') return [await this.statOf(dirPath, node)];
      const children = await this.opts.tree.children(segments);
      return Promise.all(children.map((c) => this.statOf(c.name, c.node)));
    });
  }

  override chdir(dirPath = '.'): Promise<string> {
    return this.guard('chdir', async () => {
      const node = await this.lookup(dirPath);
      if (node.kind !== 'directory') throw new FtpReplyError('Not a directory');
      this.clientCwd = node.clientPath;
      return this.clientCwd;
    });
  }

  override read(
    fileName: string,
    opts: { start?: unknown } = {},
  ): Promise<{ stream: Readable; clientPath: string }> {
    return this.guard('read', async () => {
      const start = typeof opts.start === 'number' && opts.start > 0 ? Math.floor(opts.start) : 0;
      const node = await this.lookup(fileName);
      let stream: Readable;
      if (node.kind === 'catalog') {
        const body = await renderCatalog(this.opts.root, node.source);
        stream = Readable.from([body.subarray(Math.min(start, body.length))]);
      } else if (node.kind === 'file') {
        stream = await this.openFile(node.realPath, start);
      } else {
        throw new FtpReplyError('Cannot download a directory');
      }
      // paused: ftp-srv attaches 'data' before it replies 150 and resumes the stream after
      stream.pause();
      this.streams.add(stream);
      stream.once('close', () => this.streams.delete(stream));
      return { stream, clientPath: node.clientPath };
    });
  }

  /** Destroys the streams of downloads still in progress (connection closed, server stopping). */
  closeStreams(): void {
    for (const s of this.streams) s.destroy();
    this.streams.clear();
  }

  override write(): never {
    throw new FtpReplyError(READ_ONLY);
  }

  override async delete(): Promise<never> {
    throw new FtpReplyError(READ_ONLY);
  }

  override async mkdir(): Promise<never> {
    throw new FtpReplyError(READ_ONLY);
  }

  override async rename(): Promise<never> {
    throw new FtpReplyError(READ_ONLY);
  }

  override async chmod(): Promise<never> {
    throw new FtpReplyError(READ_ONLY);
  }

  override getUniqueName(): never {
    throw new FtpReplyError(READ_ONLY);
  }

  private segments(clientPath: string | undefined): string[] {
    const segments = clientSegments(this.clientCwd, clientPath);
    if (!segments) throw new FtpReplyError(NOT_FOUND);
    return segments;
  }

  private async lookup(clientPath: string | undefined): Promise<TreeNode> {
    const node = await this.opts.tree.resolve(this.segments(clientPath));
    if (!node) throw new FtpReplyError(NOT_FOUND);
    return node;
  }

  private async statOf(name: string, node: TreeNode): Promise<FtpFileStat> {
    if (node.kind === 'catalog') {
      const body = await renderCatalog(this.opts.root, node.source);
      return fileStat(name, 'file', body.length, new Date());
    }
    return fileStat(name, node.kind, node.kind === 'file' ? node.size : 0, node.mtime);
  }

  /** Opens (and checks) the file now; the returned stream owns the descriptor. */
  private async openFile(realPath: string, start: number): Promise<Readable> {
    const handle = await fsp.open(realPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      if (!(await handle.stat()).isFile()) throw new FtpReplyError(NOT_FOUND);
      return handle.createReadStream({ start, highWaterMark: READ_CHUNK_BYTES, autoClose: true });
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** Lets our own refusals through; replaces anything else by a path-free reply and logs the cause. */
  private async guard<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof FtpReplyError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') throw new FtpReplyError(NOT_FOUND);
      this.opts.logger.warn('ftp: file system operation failed', {
        component: 'ftp',
        op,
        error: e instanceof Error ? e.message : String(e),
      });
      throw new FtpReplyError('Cannot read this entry; the server log has the cause', 550);
    }
  }
}
