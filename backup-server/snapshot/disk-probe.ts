/** Free and total space of the volume holding a path; an interface so tests can fake readings. */
import * as fs from 'node:fs';
import { PgferryError } from '../../shared/errors';

export interface DiskUsage {
  /** bytes available to unprivileged writers (df "Available") */
  freeBytes: number;
  totalBytes: number;
}

export interface DiskProbe {
  measure(path: string): Promise<DiskUsage>;
}

export const statfsProbe: DiskProbe = {
  async measure(p: string): Promise<DiskUsage> {
    try {
      const s = await fs.promises.statfs(p);
      return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
    } catch (e) {
      throw new PgferryError(
        'DESTINATION_UNAVAILABLE',
        `cannot read the free space of ${p}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  },
};
