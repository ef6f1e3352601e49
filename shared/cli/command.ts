/** The shape every subcommand file exports: it adds itself (usage text ending in examples) to the program. */
import type { Command } from 'commander';

export type RegisterCommand = (program: Command) => void;
