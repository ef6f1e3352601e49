/** The agent-side subcommands, one file each. */
import type { RegisterCommand } from '../../shared/cli/command';

export const agentCommands: RegisterCommand[] = [];
