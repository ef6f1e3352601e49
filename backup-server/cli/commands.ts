/** The backup-server-side subcommands, one file each. */
import type { RegisterCommand } from '../../shared/cli/command';
import { registerDemo } from './demo';
import { registerHashPassword } from './hash-password';
import { registerResync } from './resync';
import { registerRotate } from './rotate';
import { registerServer } from './server';
import { registerSnapshot } from './snapshot';

export const serverCommands: RegisterCommand[] = [
  registerServer,
  registerHashPassword,
  registerSnapshot,
  registerRotate,
  registerResync,
  registerDemo,
];
