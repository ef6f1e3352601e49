/** The agent-side subcommands, one file each. */
import type { RegisterCommand } from '../../shared/cli/command';
import { registerAgent } from './agent';

export const agentCommands: RegisterCommand[] = [registerAgent];
