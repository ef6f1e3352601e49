/** The backup-server-side subcommands, one file each. */
import type { RegisterCommand } from '../../shared/cli/command';
import { registerHashPassword } from './hash-password';
import { registerServer } from './server';

export const serverCommands: RegisterCommand[] = [registerServer, registerHashPassword];
