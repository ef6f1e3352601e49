/** The agent-side subcommands, one file each. */
import type { RegisterCommand } from '../../shared/cli/command';
import { registerAgent } from './agent';
import { registerRecover } from './recover';

export const agentCommands: RegisterCommand[] = [registerAgent, registerRecover];
