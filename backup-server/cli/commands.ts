/** The backup-server-side subcommands, one file each. */
import type { RegisterCommand } from '../../shared/cli/command';

export const serverCommands: RegisterCommand[] = [];
